"""Stage 04: cluster the proteins of a run directory into families, without labels.

``run(run_dir, **params)`` reads ``proteins.parquet`` and ``embeddings.npy``, clusters with
``method`` (:mod:`protlab.cluster.methods`) and writes ``clusters.parquet`` (the chosen
method's clusters), ``clusters/<method>.parquet`` + ``.json``, the cluster-size figure and
``cluster.json``. ``families`` and ``scan`` come from one fit, so either writes both
``clusters/families.*`` and ``clusters/scan.*`` (and ``clusters/scan_model.pt`` and the heads'
training log ``clusters/scan_log.jsonl``), and 05 scores both. Labels are never used except
to default ``n_clusters`` to their number; without labels, ``n_clusters=None`` estimates the
number of families from the homology graph (:mod:`protlab.cluster.families`), with a figure
of the evidence.
"""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from protlab.cluster.family_outputs import write_attribution, write_family_profiles
from protlab.cluster.family_types import FamilyConfig
from protlab.cluster.graph_features import GRAPH_FEATURES
from protlab.cluster.methods import GRAPH_METHODS, METHODS, Clustering, cluster, fit_graph_methods
from protlab.cluster.methods import no_families_error, refuse_families_without_graph
from protlab.cluster.scan import ScanClusterer
from protlab.cluster.neighbors import NEIGHBOR_SOURCES
from protlab.cluster.tables import clustering_problem, clusters_frame
from protlab.core.atomic import atomic_paths, jsonable
from protlab.core.errors import InputError
from protlab.core.fingerprint import proteins_fingerprint
from protlab.core.rundir import RunDir
from protlab.core.runtime import check_device, dist_env, leave_distributed, seed_everything
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult, map_points
from protlab.plot.cluster import cluster_sizes_figure, family_count_figure, family_profiles_figure
from protlab.plot.embed import umap_figure
from protlab.plot.explorer import map_coordinates, write_explorer
from protlab.plot.export import save_figure

def _family_config(value: dict) -> None:
    FamilyConfig.from_dict(value)  # unknown names and bad values refused before any work


HEADS = "SCAN heads: shapes the 'scan' clusters and every method's probabilities, not the 'families' labels"
# the fit's own defaults, written once in ScanClusterer's signature
FIT = {name: p.default for name, p in inspect.signature(ScanClusterer).parameters.items()}
STAGE = Stage("cluster", "04_cluster", "Discover protein families without labels (homology-graph families, SCAN, "
              "k-means, PCA + k-means).", (
    Param("method", "families", "clustering method: 'families' (the homology graph's families), 'scan' (the SCAN "
          "heads' own assignment; one fit gives both), 'kmeans', 'pca_kmeans'", "str", choices=METHODS),
    Param("n_clusters", None, "number of clusters; None: the number of distinct labels in proteins.parquet, or "
          "without labels estimated from the homology graph (families / scan)", "int", low=2, none=True),
    Param("neighbors", FIT["neighbors"], "neighbours of families / scan: MMseqs2 homology hits or faiss embedding kNN "
          "(scan only)", "str", choices=NEIGHBOR_SOURCES),
    Param("k", FIT["k"], "neighbours per protein (families / scan)", "int", low=1),
    Param("entropy_weight", FIT["entropy_weight"], f"λ of the SCAN loss (pull towards equal cluster sizes; {HEADS})",
          "float", low=0),
    Param("n_heads", FIT["n_heads"], f"SCAN heads trained at once, the best by validation loss kept ({HEADS})",
          "int", low=1),
    Param("epochs", FIT["epochs"], f"SCAN epochs ({HEADS})", "int", low=1),
    Param("self_label_epochs", FIT["self_label_epochs"], f"self-labelling epochs, 0: skip ({HEADS})", "int", low=0),
    Param("max_steps", FIT["max_steps"], f"most batches of the SCAN and of the self-labelling pass: large sets get "
          f"fewer epochs (at least one); 0: no cap ({HEADS})", "int", low=0),
    Param("graph_features", FIT["graph_features"], f"features the heads train on: spectral (homology graphs), "
          f"diffusion or none ({HEADS})", "str", choices=GRAPH_FEATURES),
    Param("family_config", {}, "constants of the family algorithm to change (protlab.cluster.families.FamilyConfig: "
          "shared_neighbors, merge_ratio, merge_hits, min_family, min_family_share, split_spectral_max, "
          "split_smoothing, longer, profile_seeds, profile_iterations, profile_evalue, part_share); {}: the "
          "defaults; families / scan only", "dict", check=_family_config),
    Param("device", FIT["device"], "device the SCAN heads train on: 'auto' (CUDA when available), 'cpu', 'cuda', "
          "'cuda:N' or 'mps'; under torchrun each rank takes its local GPU", "str", check=check_device),
    Param("seed", 0, "random seed", "int", low=0, high=MAX_SEED),
    Param("resume", FIT["resume"], "continue a stopped fit from its saved graph step and heads' state (checkpoints/"
          "scan_graph_state.pt, scan_training_state.pt); False: start over (families / scan)", "bool"),
    Param("resume_override", FIT["resume_override"], "resume even when that state was made from other inputs or "
          "settings (refused otherwise)", "bool"),
    Param("attribution_max", 20_000, "residue attribution of the clustering network (which residues make each "
          "protein a member of its cluster; clusters/attribution.parquet) when there are at most this many "
          "proteins; 0: none (families / scan with MMseqs2 neighbours)", "int", low=0),
    Param("map_max_points", 5000, "the embedding map coloured by discovered cluster shows a seeded subset of at "
          "most this many proteins; 0: no map", "int", low=0, check=map_points),
))
FIGURE_STEMS = {"cluster_sizes": "cluster_sizes", "map": "cluster_map", "family_count": "family_count",
                "family_profiles": "family_profiles"}
SCAN_ONLY = ("neighbors", "k", "entropy_weight", "n_heads", "epochs", "self_label_epochs", "max_steps",
             "graph_features", "family_config", "device", "resume", "resume_override")
GRAPH_ONLY = (*SCAN_ONLY, "attribution_max")


def default_n_clusters(proteins: pd.DataFrame, method: str = "families") -> int | None:
    """Number of distinct labels in the proteins table; without labels None (families /
    scan estimate it) or, for methods that cannot estimate it, an error asking for n_clusters."""
    labels = proteins["label"] if "label" in proteins.columns else None
    if labels is not None:
        labels = labels.dropna()
        labels = labels[labels.astype(str).str.len() > 0]
    if labels is not None and labels.nunique() >= 2:
        return int(labels.nunique())
    if method in GRAPH_METHODS:
        return None
    raise InputError(f"n_clusters=None with method={method!r} needs family labels in proteins.parquet to count "
                     "them, and there are none: give n_clusters (or use method='families', which estimates it)")


def aligned_inputs(run: RunDir) -> tuple[pd.DataFrame, list[str], np.ndarray, dict]:
    """``(proteins in embedding order, ids, embeddings, embedding meta)`` of a run directory,
    refused when the embeddings were not made from the proteins table as it is now."""
    proteins = run.load_proteins_checked()
    ids, emb, meta = run.load_embeddings()
    if len(proteins) == 0 or len(ids) == 0:
        raise InputError(f"{run.root}: no proteins to cluster (proteins.parquet / embeddings.npy are empty); "
                         "check 01_curate's filters")
    rerun = f"rerun 02_embed (python -m protlab.embed --run-dir {run.root})"
    current = proteins_fingerprint(proteins["id"].astype(str), proteins["sequence"])
    made_from = meta.get("proteins_sha256")
    by_id = proteins.assign(id=proteins["id"].astype(str)).set_index("id")
    missing = [i for i in ids if i not in by_id.index]
    if missing or len(ids) != len(proteins) or (made_from is not None and made_from != current):
        what = (f"{len(missing)} embedded ids are not in it (e.g. {missing[:3]})" if missing else
                f"it has {len(proteins)} proteins, the embeddings {len(ids)}" if len(ids) != len(proteins) else
                "its ids or sequences changed since they were embedded")
        raise InputError(f"{run.path('embeddings')} was not made from {run.path('proteins')} as it is now ({what}); "
                         f"{rerun}")
    return by_id.loc[list(ids)].reset_index(), list(ids), emb, meta


def write_clustering(run_dir: str | Path, *, method: str = "families", n_clusters: int | None = None, seed: int = 0,
                     write_main: bool = True, record: StageRecord | None = None, folder: str = "clusterings",
                     **options) -> Clustering:
    """Cluster the proteins of ``run_dir`` with ``method`` and write ``clusters/<method>.*``
    (``families`` and ``scan`` write both, from one fit) and, with ``write_main``,
    ``clusters.parquet``; 05 writes its missing baselines with ``folder="baselines"``
    (``baselines/<method>.*``, its own folder: 05 never writes 04's)."""
    if method not in METHODS:
        raise InputError(f"method={method!r} is unknown; use one of {METHODS}")
    run = RunDir(run_dir)
    proteins, ids, emb, meta = aligned_inputs(run)
    if record is not None:
        for key in ("proteins", "embeddings", "embeddings_meta"):
            record.read(run.path(key))
    if n_clusters is None:
        n_clusters = default_n_clusters(proteins, method)
    start = time.perf_counter()
    results = _fit(run, emb, proteins, method=method, n_clusters=n_clusters, seed=seed, folder=folder, **options)
    elapsed = time.perf_counter() - start
    leave_distributed()  # torchrun: the ranks' work together ends here
    if not dist_env().is_main:  # a torchrun worker of SCAN: rank 0 writes
        return results[method]
    common = {"seed": seed, "seconds": elapsed, "n_clusters_requested": n_clusters,
              "encoder": meta.get("encoder") or meta.get("name"), **current_fingerprints(run)}
    written, targets, frames = [], [], {}
    for name, result in results.items():
        result.info = {"method": name, **common, **result.info, "n_clusters": int(result.probabilities.shape[1])}
        frames[name] = clusters_frame(ids, result)
        targets += [run.writable(folder) / f"{name}.parquet", run.clustering(name, ".json", folder)]
    model = results[method].model
    if isinstance(model, ScanClusterer):
        written.append(model.save(run.path("scan_model")))
        if model.log_file is not None:
            written.append(model.log_file)
        for result in results.values():
            result.info["model"] = str(run.path("scan_model"))
    if write_main:
        targets.append(run.writable("clusters"))
    with atomic_paths(*targets) as tmps:  # the tables and their records land together
        for (name, frame), table, info_path in zip(frames.items(), tmps[0::2], tmps[1::2]):
            frame.to_parquet(table, index=False)
            info_path.write_text(json.dumps(results[name].info, indent=2, sort_keys=True, default=jsonable) + "\n")
        if write_main:
            frames[method].to_parquet(tmps[-1], index=False)
    written += targets
    if record is not None:
        for path in written:
            record.wrote(path)
    return results[method]


def _fit(run: RunDir, emb: np.ndarray, proteins: pd.DataFrame, *, method: str, n_clusters: int | None, seed: int,
         folder: str, **options) -> dict[str, Clustering]:
    """``{method: Clustering}``: a graph method's one fit gives both families and scan."""
    if method in GRAPH_METHODS:
        options.setdefault("neighbors", "auto")
        # a stopped fit resumes (scan_state)
        options.setdefault("state_files", (run.path("scan_graph_state"), run.path("scan_training_state")))
        if folder == "clusterings":  # 04's heads log their training (05's baselines write nothing in clusters/)
            options.setdefault("log_file", run.path("scan_log"))
        if method == "families":
            refuse_families_without_graph(options["neighbors"], have_sequences=True)
        results = fit_graph_methods(emb, proteins["sequence"].astype(str).tolist(), n_clusters=n_clusters,
                                    seed=seed, **options)
        if method not in results:
            raise no_families_error()
    else:
        options = {k: v for k, v in options.items() if k not in SCAN_ONLY}
        results = {method: cluster(emb, None, method=method, n_clusters=n_clusters, seed=seed, **options)}
    return results


def current_fingerprints(run: RunDir, proteins: pd.DataFrame | None = None) -> dict:
    """The fingerprints a clustering made now is made from (proteins in file order, embeddings);
    ``proteins``: the run's table when already loaded."""
    proteins = run.load_proteins() if proteins is None else proteins
    meta_path = run.path("embeddings_meta")
    meta = run.read_json(meta_path, "embeddings_meta") if meta_path.is_file() else {}
    return {"proteins_sha256": proteins_fingerprint(proteins["id"].astype(str), proteins["sequence"]),
            "embeddings_sha256": meta.get("array_sha256")}


def stale_input(run: RunDir, method: str, now: dict | None = None, folder: str = "clusterings") -> str | None:
    """The input (``"proteins"`` or ``"embeddings"``) that changed since ``clusters/<method>.*``
    (or ``baselines/<method>.*``) was made, or None; ``now``: :func:`current_fingerprints` when
    already computed. A clustering without fingerprints (made before they were recorded) counts as current."""
    info_path = run.clustering(method, ".json", folder)
    if not info_path.is_file():
        return None
    info = run.read_json(info_path, "clusterings")
    now = current_fingerprints(run) if now is None else now
    for artifact in ("proteins", "embeddings"):
        key = f"{artifact}_sha256"
        if info.get(key) is not None and now[key] is not None and info[key] != now[key]:
            return artifact
    return None


def read_clustering(run_dir: str | Path, method: str | None = None, now: dict | None = None,
                    folder: str = "clusterings") -> pd.DataFrame:
    """``clusters.parquet`` (``method=None``) or ``clusters/<method>.parquet`` (05's
    ``baselines/<method>.parquet`` with ``folder="baselines"``), checked
    (:func:`clustering_problem`) and refused when made from other proteins or embeddings than
    the run's; every refusal is an :class:`InputError` naming the file and what is wrong.
    ``now``: :func:`current_fingerprints` when already computed."""
    run = RunDir(run_dir)
    if method is None:
        path = run.require("clusters")
    else:
        path = run.clustering(method, folder=folder)
        if not path.exists():
            raise InputError(f"{path} does not exist: run 04_cluster with method={method!r} first")
    frame = run.read_parquet(path, "clusters")
    proteins = run.load_proteins() if run.path("proteins").is_file() else None
    protein_ids = None if proteins is None else proteins["id"].astype(str)

    def mismatch(reason: str) -> InputError:
        return InputError(f"{path} does not match {run.path('proteins')} ({reason}; its ids or sequences changed "
                          f"since): rerun 02_embed and 04_cluster (python -m protlab.embed / protlab.cluster "
                          f"--run-dir {run.root})")

    unknown = [] if proteins is None or "id" not in frame.columns else \
        sorted(set(frame["id"].astype(str)) - set(protein_ids))
    if unknown:
        raise mismatch(f"{len(unknown)} of its ids are not in {run.path('proteins').name}, e.g. {unknown[:3]}")
    problem = clustering_problem(frame, protein_ids)
    if problem is not None:
        raise InputError(f"{path}: {problem}; {run.rerun('clusters')}")
    if frame["cluster"].dtype.kind != "i":  # integral floats (NaN refused above) as the ids they are
        frame = frame.assign(cluster=frame["cluster"].astype(np.int64))
    if proteins is None:
        return frame
    method = method or (str(frame["method"].iloc[0]) if "method" in frame.columns and len(frame) else None)
    changed = stale_input(run, method, now or current_fingerprints(run, proteins), folder) if method else None
    if changed == "proteins":
        raise mismatch(f"made from another {run.path('proteins').name}")
    if changed == "embeddings":
        raise InputError(f"{path} was made from another {run.path('embeddings').name} (02_embed ran since, "
                         f"{run.clustering(method, '.json', folder).name} says): {run.rerun('clusters')}")
    return frame


def _refuse_idle_params(params: dict) -> None:
    """k-means methods use none of the graph / heads parameters: a changed one is an error, not ignored."""
    if params["method"] in GRAPH_METHODS:
        return
    changed = [name for name in GRAPH_ONLY if name != "device" and params[name] != STAGE.by_name[name].default]
    if changed:
        raise InputError(f"{', '.join(changed)} only act with method='families' or 'scan'; method="
                         f"{params['method']!r} does not use them (leave them at their defaults)")


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    _refuse_idle_params(params)
    record = StageRecord(STAGE, run_dir, params)
    seed_everything(params["seed"])
    graph = params["method"] in GRAPH_METHODS
    options = {**{k: params[k] for k in SCAN_ONLY}, "progress": True} if graph else {}
    with record.timed("cluster"):
        result = write_clustering(run_dir, method=params["method"], n_clusters=params["n_clusters"],
                                  seed=params["seed"], record=record, **options)
    if not dist_env().is_main:  # torchrun: rank 0 draws and records
        return StageResult(record, {}, clustering=result, labels=result.labels, confidence=result.confidence,
                           info=result.info)
    method = params["method"]
    info = result.info
    record.resolve(n_clusters=info["n_clusters"], **({
        "neighbors": info.get("neighbors"), "graph_features": info.get("graph_features"),
        "family_config": info.get("family_config"), "device": info.get("device")} if graph else {}))
    figures = {"cluster_sizes": cluster_sizes_figure(result.labels, result.confidence, method=method)}
    if info.get("family_group_sizes"):
        figures["family_count"] = family_count_figure(info["family_group_sizes"], info["family_min_size"],
                                                      info["n_clusters_estimated"], info["n_clusters"])
    proteins, ids, embeddings, meta = aligned_inputs(RunDir(run_dir))  # the row order of the clustering
    sequences = proteins["sequence"].astype(str).tolist()
    with record.timed("attribution"):
        record.results["attribution"], attribution = write_attribution(
            run_dir, result, ids, sequences, embeddings, params["attribution_max"], record)
    with record.timed("profiles"):
        summary, strips = write_family_profiles(run_dir, result, ids, sequences, attribution, record)
    if strips is not None:
        figures["family_profiles"] = family_profiles_figure(summary, strips)
    with record.timed("map"):
        # one projection for the map figure and the explorer
        coordinates, projection = map_coordinates(ids, embeddings, max_points=params["map_max_points"],
                                                  seed=params["seed"])
        if len(coordinates):
            figures["map"] = umap_figure(embeddings, labels=[f"cluster {c}" for c in result.labels], ids=ids,
                                         seed=params["seed"], max_points=params["map_max_points"],
                                         projected=(coordinates[["x", "y"]].to_numpy(), projection),
                                         title=f"Embeddings coloured by discovered cluster ({method})")
    with record.timed("explorer"):
        coordinates.attrs = {"method": projection, "embeddings_sha256": meta.get("array_sha256")}
        record.wrote(write_explorer(run_dir, coordinates=coordinates, max_map_points=params["map_max_points"],
                                    seed=params["seed"]))
    for name, fig in figures.items():
        for path in save_figure(fig, RunDir(run_dir).figure(f"{FIGURE_STEMS[name]}_{method}")).values():
            record.wrote(path)
    record.results.update({"method": method, "n_clusters": info["n_clusters"],
                           "n_clusters_estimated": info.get("n_clusters_estimated"),
                           "cluster_sizes": np.bincount(result.labels).tolist(),
                           "median_confidence": float(np.median(result.confidence)),
                           **({"neighbors": info.get("neighbors"), "mean_neighbors": info.get("mean_neighbors"),
                               "best_head": result.model.best_head,
                               "agreement_heads_families": info.get("agreement_heads_families"),
                               "fit_steps": info.get("families_fit_steps")} if graph else {})})
    record.save()
    return StageResult(record, figures, clustering=result, labels=result.labels,
                       confidence=result.confidence, info=info)


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: what 04 found."""
    sizes = results.get("cluster_sizes") or []
    parts = [f"{results.get('n_clusters')} clusters ({results.get('method')}) of {sum(sizes)} proteins"]
    if results.get("n_clusters_estimated") is not None:
        parts.append(f"homology graph's estimate {results['n_clusters_estimated']} families")
    if results.get("fit_steps"):
        kinds = [next(iter(step)) for step in results["fit_steps"]]
        parts.append(f"{kinds.count('merged')} merges, {kinds.count('promoted')} groups kept as families and "
                     f"{kinds.count('split')} splits met n_clusters "
                     "(cluster.json: fit_steps)")
    if results.get("agreement_heads_families") is not None:
        parts.append(f"SCAN heads agree with the families on {results['agreement_heads_families']:.1%}")
    if sizes:
        parts.append(f"sizes {min(sizes)}-{max(sizes)}")
    parts.append(f"{timings.get('total', 0):.0f} s")
    return "; ".join(parts)


run.__doc__ = STAGE.docstring()
