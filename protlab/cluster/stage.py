"""Stage 04: cluster the proteins of a run directory into families, without labels.

``run(run_dir, **params)`` reads ``proteins.parquet`` and ``embeddings.npy``, clusters with
``method`` (:mod:`protlab.cluster.methods`) and writes ``clusters.parquet``,
``clusters/<method>.parquet`` + ``.json`` (SCAN also ``clusters/scan_model.pt``), the
cluster-size figure and ``cluster.json``. Labels are never used except to default
``n_clusters`` to their number; without labels, ``n_clusters=None`` makes SCAN estimate the
number of families from the homology graph (:mod:`protlab.cluster.families`), with a figure
of the evidence.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from protlab.cluster.methods import GRAPH_FEATURES, METHODS, Clustering, cluster
from protlab.cluster.neighbors import NEIGHBOR_SOURCES
from protlab.core.atomic import atomic_paths, jsonable
from protlab.core.errors import InputError
from protlab.core.fingerprint import proteins_fingerprint
from protlab.core.rundir import RunDir
from protlab.core.runtime import check_device, dist_env, leave_distributed, seed_everything
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult, map_points
from protlab.plot.cluster import cluster_sizes_figure, family_count_figure
from protlab.plot.embed import umap_figure
from protlab.plot.export import save_figure

STAGE = Stage("cluster", "04_cluster", "Discover protein families without labels (SCAN, k-means, PCA + k-means).", (
    Param("method", "scan", "clustering method", "str", choices=METHODS),
    Param("n_clusters", None, "number of clusters; None: the number of distinct labels in proteins.parquet, or "
          "without labels estimated from the homology graph (SCAN)", "int", low=2, none=True),
    Param("neighbors", "auto", "SCAN neighbours: MMseqs2 homology hits or faiss embedding kNN", "str",
          choices=NEIGHBOR_SOURCES),
    Param("k", 20, "neighbours per protein", "int", low=1),
    Param("entropy_weight", 5.0, "λ of the SCAN loss (pull towards equal cluster sizes)", "float", low=0),
    Param("n_heads", 5, "SCAN heads trained at once; the best by validation loss is kept", "int", low=1),
    Param("epochs", 30, "SCAN epochs", "int", low=1),
    Param("self_label_epochs", 10, "self-labelling epochs (0: skip)", "int", low=0),
    Param("graph_features", "auto", "features SCAN trains on: spectral (homology graphs), diffusion or none",
          "str", choices=GRAPH_FEATURES),
    Param("device", "auto", "device the SCAN heads train on: 'auto' (CUDA when available), 'cpu', 'cuda', "
          "'cuda:N' or 'mps'; under torchrun each rank takes its local GPU", "str", check=check_device),
    Param("seed", 0, "random seed", "int", low=0, high=MAX_SEED),
    Param("map_max_points", 5000, "the embedding map coloured by discovered cluster shows a seeded subset of at "
          "most this many proteins; 0: no map", "int", low=0, check=map_points),
))
FIGURE_STEMS = {"cluster_sizes": "cluster_sizes", "map": "cluster_map", "family_count": "family_count"}
SCAN_ONLY = ("neighbors", "k", "entropy_weight", "n_heads", "epochs", "self_label_epochs", "graph_features", "device")


def default_n_clusters(proteins: pd.DataFrame, method: str = "scan") -> int | None:
    """Number of distinct labels in the proteins table; without labels None (SCAN estimates
    it) or, for methods that cannot estimate it, an error asking for n_clusters."""
    labels = proteins["label"] if "label" in proteins.columns else None
    if labels is not None:
        labels = labels.dropna()
        labels = labels[labels.astype(str).str.len() > 0]
    if labels is not None and labels.nunique() >= 2:
        return int(labels.nunique())
    if method == "scan":
        return None
    raise InputError(f"n_clusters=None with method={method!r} needs family labels in proteins.parquet to count "
                     "them, and there are none: give n_clusters (or use method='scan', which estimates it)")


def clusters_frame(ids, result: Clustering) -> pd.DataFrame:
    return pd.DataFrame({"id": [str(i) for i in ids], "cluster": result.labels.astype(np.int64),
                         "confidence": result.confidence.astype(np.float32),
                         "probabilities": list(result.probabilities.astype(np.float32)),
                         "method": result.method})


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


def write_clustering(run_dir: str | Path, *, method: str = "scan", n_clusters: int | None = None, seed: int = 0,
                     write_main: bool = True, record: StageRecord | None = None, **options) -> Clustering:
    """Cluster the proteins of ``run_dir`` with ``method`` and write ``clusters/<method>.*``
    (and ``clusters.parquet`` with ``write_main``); 05 uses it for missing baselines."""
    if method not in METHODS:
        raise InputError(f"method={method!r} is unknown; use one of {METHODS}")
    run = RunDir(run_dir)
    proteins, ids, emb, meta = aligned_inputs(run)
    if record is not None:
        for key in ("proteins", "embeddings", "embeddings_meta"):
            record.read(run.path(key))
    if n_clusters is None:
        n_clusters = default_n_clusters(proteins, method)
    if method == "scan":
        options.setdefault("neighbors", "auto")
        sequences = proteins["sequence"].astype(str).tolist()
    else:
        options = {k: v for k, v in options.items() if k not in SCAN_ONLY}
        sequences = None
    start = time.perf_counter()
    result = cluster(emb, sequences, method=method, n_clusters=n_clusters, seed=seed, **options)
    elapsed = time.perf_counter() - start
    leave_distributed()  # torchrun: the ranks' work together ends here
    if not dist_env().is_main:  # a torchrun worker of SCAN: rank 0 writes
        return result
    frame = clusters_frame(ids, result)
    info = {"method": method, "seed": seed, "seconds": elapsed, "n_clusters_requested": n_clusters,
            "encoder": meta.get("encoder") or meta.get("name"), **result.info, **current_fingerprints(run),
            "n_clusters": int(result.probabilities.shape[1])}
    written = []
    if method == "scan":
        written.append(result.model.save(run.path("scan_model")))
        info["model"] = str(run.path("scan_model"))
    targets = [run.writable("clusterings") / f"{method}.parquet", run.clustering(method, ".json")]
    if write_main:
        targets.append(run.writable("clusters"))
    with atomic_paths(*targets) as tmps:  # the tables and their record land together
        frame.to_parquet(tmps[0], index=False)
        tmps[1].write_text(json.dumps(info, indent=2, sort_keys=True, default=jsonable) + "\n")
        if write_main:
            frame.to_parquet(tmps[2], index=False)
    written += targets
    if record is not None:
        for path in written:
            record.wrote(path)
    result.info = info
    return result


def current_fingerprints(run: RunDir, proteins: pd.DataFrame | None = None) -> dict:
    """The fingerprints a clustering made now is made from (proteins in file order, embeddings);
    ``proteins``: the run's table when already loaded."""
    proteins = run.load_proteins() if proteins is None else proteins
    meta = json.loads(run.path("embeddings_meta").read_text()) if run.path("embeddings_meta").is_file() else {}
    return {"proteins_sha256": proteins_fingerprint(proteins["id"].astype(str), proteins["sequence"]),
            "embeddings_sha256": meta.get("array_sha256")}


def stale_input(run: RunDir, method: str, now: dict | None = None) -> str | None:
    """The input (``"proteins"`` or ``"embeddings"``) that changed since ``clusters/<method>.*``
    was made, or None; ``now``: :func:`current_fingerprints` when already computed. A
    clustering without fingerprints (made before they were recorded) counts as current."""
    info_path = run.clustering(method, ".json")
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text())
    now = current_fingerprints(run) if now is None else now
    for artifact in ("proteins", "embeddings"):
        key = f"{artifact}_sha256"
        if info.get(key) is not None and now[key] is not None and info[key] != now[key]:
            return artifact
    return None


def read_clustering(run_dir: str | Path, method: str | None = None) -> pd.DataFrame:
    """``clusters.parquet`` (``method=None``) or ``clusters/<method>.parquet``, refused when it
    was made from another proteins table than the run's ``proteins.parquet``."""
    run = RunDir(run_dir)
    if method is None:
        path = run.require("clusters")
    else:
        path = run.clustering(method)
        if not path.exists():
            raise InputError(f"{path} does not exist: run 04_cluster with method={method!r} first")
    frame = pd.read_parquet(path)
    method = method or (str(frame["method"].iloc[0]) if "method" in frame.columns and len(frame) else None)
    if not run.path("proteins").is_file():
        return frame
    proteins = run.load_proteins()
    reason = None
    if set(frame["id"].astype(str)) - set(proteins["id"].astype(str)):
        reason = f"its ids are not all in {run.path('proteins').name}"
    elif method and stale_input(run, method, current_fingerprints(run, proteins)) == "proteins":
        reason = f"made from another {run.path('proteins').name}"
    if reason is not None:
        raise InputError(f"{path} does not match {run.path('proteins')} ({reason}; its ids or sequences changed "
                         f"since): rerun 02_embed and 04_cluster (python -m protlab.embed / protlab.cluster "
                         f"--run-dir {run.root})")
    return frame


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    record = StageRecord(STAGE, run_dir, params)
    seed_everything(params["seed"])
    options = {**{k: params[k] for k in SCAN_ONLY}, "progress": True} if params["method"] == "scan" else {}
    with record.timed("cluster"):
        result = write_clustering(run_dir, method=params["method"], n_clusters=params["n_clusters"],
                                  seed=params["seed"], record=record, **options)
    if not dist_env().is_main:  # torchrun: rank 0 draws and records
        return StageResult(record, {}, clustering=result, labels=result.labels, confidence=result.confidence,
                           info=result.info)
    method = params["method"]
    figures = {"cluster_sizes": cluster_sizes_figure(result.labels, result.confidence, method=method)}
    if result.info.get("family_group_sizes"):
        figures["family_count"] = family_count_figure(result.info["family_group_sizes"], result.info["family_min_size"],
                                                      result.info["n_clusters_estimated"], result.info["n_clusters"])
    if params["map_max_points"]:
        with record.timed("map"):
            ids, embeddings, _ = RunDir(run_dir).load_embeddings()  # the row order of the clustering
            figures["map"] = umap_figure(embeddings, labels=[f"cluster {c}" for c in result.labels], ids=ids,
                                         seed=params["seed"], max_points=params["map_max_points"],
                                         title=f"Embeddings coloured by discovered cluster ({method})")
    for name, fig in figures.items():
        for path in save_figure(fig, RunDir(run_dir).figure(f"{FIGURE_STEMS[name]}_{method}")).values():
            record.wrote(path)
    info = result.info
    record.results.update({"n_clusters": info["n_clusters"], "n_clusters_estimated": info.get("n_clusters_estimated"),
                           "cluster_sizes": np.bincount(result.labels).tolist(),
                           "median_confidence": float(np.median(result.confidence)),
                           **({"neighbors": info.get("neighbors"), "mean_neighbors": info.get("mean_neighbors"),
                               "best_head": result.model.best_head} if params["method"] == "scan" else {})})
    record.save()
    return StageResult(record, figures, clustering=result, labels=result.labels,
                       confidence=result.confidence, info=info)


run.__doc__ = STAGE.docstring()
