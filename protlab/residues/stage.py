"""Stage 06: critical residues of protein structures by neural clustering of residues.

``run(run_dir, **params)`` loads a residue-clustering network (``checkpoint``) or trains one
on the toy universe (saved as ``checkpoints/residue_cluster.pt``), explains the structures
(the toy's held-out proteins, or PDB/mmCIF files), and writes the residue table
``residues/critical_residues.parquet``, one standalone 3D view per protein (up to
``max_views``), the importance figure, ``residue_metrics.json`` when sites are known (the
toy's planted sites, a ``sites`` table, or the files' SITE records and ligand contacts) and
``residues.json``.

With real structures and a ``sites`` table (and no checkpoint) the network learns the sites
instead (:mod:`protlab.residues.site_model`): every protein chain of each file, pocket
features, a 30 %-identity split; it is measured on the held-out structures beside the
cavity-detection baseline (pyKVFinder) and random picks, and the training curves are saved
(``residues/training.csv``, figure ``residue_training``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from protlab.core.atomic import atomic_write_csv, atomic_write_json, atomic_write_parquet
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.core.runtime import seed_everything, torch_threads
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult, existing_file, writable_dir
from protlab.curate.toy import MAX_SUPERFAMILY
from protlab.plot.export import save_figure
from protlab.plot.residues import importance_figure
from protlab.plot.structure_export import write_structure_exports
from protlab.plot.training import training_figure
from protlab.plot.view3d import export_view, view_stem
from protlab.residues.explain import Explanation, explain_structures, residue_tables
from protlab.residues.features import baseline_scores, featurize, residue_embeddings
from protlab.residues.inputs import (ResidueInputs, check_structure_files, get_model, held_out,
                                     read_structure_inputs)
from protlab.residues.label_model import train_on_labels
from protlab.residues.network import SCORES
from protlab.residues.pockets import CAVITY_BASELINE
from protlab.residues.site_model import train_on_sites
from protlab.residues.sites import site_summary


def _structures(value):
    if isinstance(value, str):
        if value != "toy" and not Path(value).exists():
            raise ValueError(f"{value} is neither 'toy' nor an existing file or directory")
        return value
    if not value or not all(isinstance(v, (str, Path)) for v in value):
        raise ValueError("a list of structures must hold file paths, at least one")
    return [str(v) for v in value]


def _length_range(value):
    if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()
                                  for v in value):
        raise ValueError("give [shortest, longest] template lengths, two integers")
    lo, hi = (int(v) for v in value)
    if not 40 <= lo <= hi <= 2000:
        raise ValueError("need 40 <= shortest <= longest <= 2000")
    return [lo, hi]


def _below_one(value):
    if value >= 1:
        raise ValueError("must be < 1")


STAGE = Stage("residues", "06_critical_residues",
              "Critical residues in 3D: neural clustering of residues (Quan et al., CVPR 2024).", (
    Param("structures", "toy", "'toy', a PDB/mmCIF file, a directory of them, or a list of files", "str|list",
          check=_structures),
    Param("chain", None, "chain to read alone from each structure file (None: every protein chain; rows of a "
          "labels table without a chain take this chain, else the file's first protein chain)", "str", none=True),
    Param("checkpoint", None, "a saved residue-clustering model; None: train on the toy universe", "str",
          none=True, check=existing_file),
    Param("epochs", None, "training epochs when checkpoint is None (None: 60 on the toy universe, 30 on sites or "
          "labels of structure files, where longer training overfits a few hundred structures)", "int", low=1,
          none=True),
    Param("n_families", 8, "toy families (classes)", "int", low=2),
    Param("members_per_family", 50, "toy proteins per family", "int", low=1),
    Param("families_per_superfamily", 8, "toy families sharing one fold; they differ only in the combination "
          "of their site residues", "int", low=1, high=MAX_SUPERFAMILY),
    Param("val_fraction", 0.2, "toy proteins held out in training, in [0, 1); site metrics are measured on them",
          "float", low=0, check=_below_one),
    Param("length_range", [80, 140], "toy template lengths [shortest, longest]", "list", check=_length_range),
    Param("hidden", 64, "network width", "int", low=1),
    Param("batch_size", 16, "training batch size (proteins)", "int", low=1),
    Param("residue_dropout", 0.0, "fraction of residue types hidden in each training batch, in [0, 1)", "float",
          low=0, check=_below_one),
    Param("seed", 0, "random seed", "int", low=0, high=MAX_SEED),
    Param("cpu_threads", 1, "torch CPU threads (None: torch's default); small graphs gain little from more",
          "int", low=1, none=True),
    Param("score", "occlusion", "residue importance", "str", choices=SCORES),
    Param("top_k", 10, "residues labelled / listed per protein", "int", low=1),
    Param("max_views", 4, "proteins exported as standalone HTML views", "int", low=1),
    Param("toy_model", False, "explain real structures with a model trained on the toy universe anyway (its scores "
          "say little about real proteins; the views say so)", "bool"),
    Param("sites", None, "table of known site residues of the structure files (binding-site TSV: pdb_id/file, "
          "chain, res_num, ins_code; SITE-record TSV; Catalytic Site Atlas CSV). With real structures and no "
          "checkpoint the network learns to score these sites on a training part and is measured on the rest; "
          "None: the files' own SITE records and ligand contacts (measured only)", "str", none=True,
          check=existing_file),
    Param("labels", None, "table of protein-level labels of the structure files (structure/file/id/pdb_id, "
          "optional chain, label or labels separated by ; or ,), or a DeepFRI annotation file as it is. With no "
          "checkpoint the network learns them (cross-entropy, or binary cross-entropy with several labels) and is "
          "measured on the held-out part", "str", none=True, check=existing_file),
    Param("split", None, "for training on sites or labels: a TSV with columns id (structure id or PDBID-CHAIN) and "
          "split (train/test), or a list of the test ids, one per line (e.g. DeepFRI's split lists); None: whole "
          "30 %-identity clusters, test_fraction of the structures tested", "str", none=True, check=existing_file),
    Param("test_fraction", 0.33, "structures held out to measure a site model (split=None)", "float", low=0.05,
          high=0.9),
    Param("cache_dir", None, "where residue graphs are cached (None: the run directory's cache/residue_graphs)",
          "str", none=True, check=writable_dir),
    Param("bf16", False, "bfloat16 autocast when training on sites or labels (GPU servers)", "bool"),
    Param("resume", True, "continue a training on sites or labels that was stopped from its saved state "
          "(checkpoints/residue_training_state.pt); False: start over", "bool"),
    Param("resume_override", False, "resume even when that state was made with other data or settings (refused "
          "otherwise)", "bool"),
    Param("esm", None, "per-residue protein-language-model features for training on sites or labels: an ESM-2 "
          "encoder as 02 takes it (a checkpoint path or model name; embeddings cached in the run directory); "
          "None: structure features only (a saved model brings its own)", "str", none=True),
))
NO_TOY_ON_REAL = ("real structures need a model trained on real data, and {what}: its residue scores say little "
                  "about real proteins. Pass sites=TABLE (known site residues: the network learns them), "
                  "checkpoint=PATH (a residue-clustering model trained on labelled structures), or toy_model=True "
                  "to look at them with the toy-trained model anyway (the views then say so)")
TOY_CAVEAT = "TOY-TRAINED MODEL: these scores are not evidence about this real protein"
TOY_EPOCHS, REAL_EPOCHS = 60, 30
TRAINING = ("epochs", "n_families", "members_per_family", "families_per_superfamily", "val_fraction",
            "length_range", "hidden", "batch_size", "residue_dropout", "seed")
TOY = ("n_families", "members_per_family", "length_range", "families_per_superfamily", "seed")


def write_outputs(run_dir: str | Path, explanations: Sequence[Explanation], inputs: ResidueInputs, *,
                  top_k: int = 10, max_views: int = 4, caveat: str | None = None) -> dict:
    """The residue table, one HTML view per protein (the first ``max_views``) and, with known
    sites, ``residue_metrics.json``; beside each view a PDB with the scores as B-factors and PyMOL /
    ChimeraX scripts. Returns ``{"table", "views", "exports", "metrics"?, "metrics_summary"}``
    (the summary is None without sites; a metrics file left by an earlier run is removed then)."""
    run = RunDir(run_dir)
    explanations = list(explanations)
    out: dict = {"table": atomic_write_parquet(run.writable("critical_residues"), residue_tables(explanations))}
    out["views"] = [export_view(ex, _html(run.figure(view_stem(ex.id))), top_k=top_k,
                                title=f"critical residues of {ex.id}" + (f" ({caveat})" if caveat else ""))
                    for ex in explanations[:max_views]]
    out["exports"] = [path for ex in explanations[:max_views] for path in write_structure_exports(
        ex.structure, ex.importance, run.figure(view_stem(ex.id)),
        label="site probability" if ex.classes == ["site"] else "residue importance").values()]
    summary = site_summary(explanations, inputs.sites, baseline=inputs.baseline, top_k=top_k, source=inputs.source,
                           baseline_name=inputs.baseline_name)
    if summary is None:
        run.path("residue_metrics").unlink(missing_ok=True)  # a stale file would describe other structures
        out["metrics_summary"] = None
    else:
        out["metrics"] = atomic_write_json(run.writable("residue_metrics"), summary)
        out["metrics_summary"] = {k: v for k, v in summary.items() if k != "per_protein"}
    return out


def _html(stem: Path) -> Path:
    return stem.with_name(stem.name + ".html")


def _read_inputs(record: StageRecord, params: dict) -> None:
    if params["checkpoint"] is not None:
        record.read(params["checkpoint"])
    structures = params["structures"]
    if structures != "toy":
        for path in [structures] if isinstance(structures, str) else structures:
            record.read(path)
    for key in ("sites", "labels", "split"):
        if params[key] is not None:
            record.read(params[key])


def _check(params: dict) -> None:
    if params["structures"] == "toy" and params["sites"] is not None:
        raise InputError(f"sites={params['sites']!r} is for structure files; the toy universe has its own planted "
                         "sites: use sites=None with structures='toy'")
    if params["structures"] == "toy" and params["labels"] is not None:
        raise InputError(f"labels={params['labels']!r} is for structure files; the toy universe has its families: "
                         "use labels=None with structures='toy'")
    if params["sites"] is not None and params["labels"] is not None and params["checkpoint"] is None:
        raise InputError("sites and labels both given: train on one task per run (sites=None or labels=None)")
    if params["split"] is not None and ((params["sites"] is None and params["labels"] is None)
                                        or params["checkpoint"] is not None):
        raise InputError("split is used when training on sites or labels: give sites=TABLE or labels=TABLE with "
                         "checkpoint=None, or split=None")
    if params["esm"] is not None and (params["structures"] == "toy" or params["checkpoint"] is not None
                                      or (params["sites"] is None and params["labels"] is None)):
        raise InputError(f"esm={params['esm']!r} adds per-residue embeddings when training on sites or labels of "
                         "structure files (a checkpoint brings its own): use esm=None here")
    real = params["structures"] != "toy"
    if (real and params["checkpoint"] is None and params["sites"] is None and params["labels"] is None
            and not params["toy_model"]):
        raise InputError(NO_TOY_ON_REAL.format(what="checkpoint=None would train one on the toy universe"))


def _explain_inputs(model, params: dict, cache_dir: Path, run_dir):
    """The structures a loaded or toy-trained model explains (graphs as it was trained: pocket
    columns, its own per-residue embeddings), with sites and, for a site model, the baseline."""
    site_model = model.config.task == "residue"
    inputs = read_structure_inputs(params["structures"], chain=params["chain"], sites=params["sites"],
                                   complexes=site_model, **{k: params[k] for k in TOY})
    inputs = held_out(inputs, model)  # toy: only the proteins the model did not train on
    spec = (getattr(model, "meta", None) or {}).get("esm")
    if model.config.esm_dim and not spec:
        raise InputError("this model was trained with per-residue embeddings but its checkpoint does not name the "
                         "encoder; load it in Python and pass esm= to explain_structures")
    if not site_model and not spec:
        return inputs, None
    graphs = featurize(inputs.structures, pockets=site_model, cache_dir=cache_dir,
                       esm=residue_embeddings(spec, inputs.structures, RunDir(run_dir).path("embedding_cache")))
    if site_model:  # graphs with pocket columns: the cavity baseline comes with them
        inputs.baseline = {s.id: baseline_scores(g) for s, g in zip(inputs.structures, graphs)}
        inputs.baseline_name = CAVITY_BASELINE
    return inputs, {s.id: g for s, g in zip(inputs.structures, graphs)}


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    _check(params)
    real = params["structures"] != "toy"
    record = StageRecord(STAGE, run_dir, params)
    on_files = real and (params["sites"] is not None or params["labels"] is not None) and params["checkpoint"] is None
    if params["epochs"] is None:
        params = {**params, "epochs": REAL_EPOCHS if on_files else TOY_EPOCHS}
        record.results["epochs"] = params["epochs"]
    run_ = RunDir(run_dir)
    cache_dir = Path(params["cache_dir"]) if params["cache_dir"] else run_.path("residue_graph_cache")
    record.resolve(epochs=params["epochs"], cache_dir=str(cache_dir))
    _read_inputs(record, params)
    seed_everything(params["seed"])
    with torch_threads(params["cpu_threads"]):
        report = None
        if real and params["sites"] is not None and params["checkpoint"] is None:
            with record.timed("train on sites"):
                model, history, inputs, graphs = train_on_sites(run_dir, params, cache_dir)
            record.wrote(run_.path("residue_network"))
        elif real and params["labels"] is not None and params["checkpoint"] is None:
            with record.timed("train on labels"):
                model, history, inputs, graphs, report = train_on_labels(run_dir, params, cache_dir)
            record.wrote(run_.path("residue_network"))
            record.wrote(atomic_write_json(run_.writable("label_metrics"), report))
        else:
            if real and params["checkpoint"] is None:  # a bad structure file is named before the toy model trains
                check_structure_files(params["structures"], chain=params["chain"])
            with record.timed("model"):
                model, history = get_model(params["checkpoint"], run_dir, log_every=max(1, params["epochs"] // 10),
                                           **{k: params[k] for k in TRAINING})
            if params["checkpoint"] is None:
                record.wrote(run_.path("residue_network"))
            with record.timed("inputs"):
                inputs, graphs = _explain_inputs(model, params, cache_dir, run_dir)
        trained_on = (getattr(model, "meta", None) or {}).get("trained_on")
        if real and trained_on == "toy" and not params["toy_model"]:
            raise InputError(NO_TOY_ON_REAL.format(what=f"checkpoint={params['checkpoint']!r} was trained on the "
                                                        "toy universe"))
        with record.timed("explain"):
            explanations = explain_structures(model, inputs.structures, score=params["score"], cache_dir=cache_dir,
                                              graphs=None if graphs is None else [graphs[s.id]
                                                                                   for s in inputs.structures])
    with record.timed("write"):
        caveat = TOY_CAVEAT if real and trained_on == "toy" else None
        outputs = write_outputs(run_dir, explanations, inputs, top_k=params["top_k"], max_views=params["max_views"],
                                caveat=caveat)
        if history:
            outputs["training"] = atomic_write_csv(run_.writable("residue_training"), pd.DataFrame(history))
    for path in [outputs["table"], *outputs["views"], *outputs["exports"], outputs.get("metrics"),
                 outputs.get("training")]:
        if path is not None:
            record.wrote(path)
    with record.timed("figures"):
        figures = {"importance": importance_figure(explanations[:params["max_views"]], sites=inputs.sites)}
        if history:
            figures["training"] = training_figure(history)
        for name, figure in figures.items():
            stem = "residue_importance" if name == "importance" else "residue_training"
            for path in save_figure(figure, run_.figure(stem)).values():
                record.wrote(path)
    metrics = outputs["metrics_summary"]
    record.results.update({"model_trained_on": trained_on or "unrecorded", "model_task": model.config.task,
                           "caveat": caveat, "n_structures": len(explanations), "n_with_sites": len(inputs.sites),
                           "source": inputs.source, "skipped": sorted(inputs.skipped)})
    if history:
        record.results["training"] = history[-1]
    if report is not None:
        record.results["labels"] = report
    if metrics is not None:
        record.results.update({k: metrics[k] for k in ("precision_at_k", "random_precision_at_k",
                                                       "random_scores_precision_at_k", "baseline_precision_at_k",
                                                       "baseline", "n_proteins", "at_top_k") if k in metrics})
    record.save()
    return StageResult(record, figures, explanations=explanations, inputs=inputs, model=model,
                       history=history, metrics=metrics, outputs=outputs, label_metrics=report)


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: what 06 explained and, with known sites, how well."""
    parts = [f"{results.get('n_structures')} structures explained ({results.get('n_with_sites')} with known sites)",
             f"model trained on {results.get('model_trained_on')}"]
    if results.get("precision_at_k") is not None:
        parts.append(f"precision@k {results['precision_at_k']:.3f}"
                     + (f", {results.get('baseline')} {results['baseline_precision_at_k']:.3f}"
                        if results.get("baseline_precision_at_k") is not None else "")
                     + (f", random {results['random_precision_at_k']:.3f}"
                        if results.get("random_precision_at_k") is not None else ""))
    labels = results.get("labels") or {}
    for key in ("accuracy", "fmax", "aupr"):
        if isinstance(labels.get(key), (int, float)):
            parts.append(f"{key} {labels[key]:.3f}")
    skipped = labels.get("skipped", len(results.get("skipped") or []))  # files and table rows, as the report
    if skipped:
        parts.append(f"{skipped} skipped (listed in residues.json)")
    if results.get("caveat"):
        parts.append(results["caveat"])
    parts.append(f"{timings.get('total', 0):.0f} s")
    return "; ".join(parts)


run.__doc__ = STAGE.docstring()
