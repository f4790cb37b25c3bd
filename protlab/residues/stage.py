"""Stage 06: critical residues of protein structures by neural clustering of residues.

``run(run_dir, **params)`` runs one of four workflows (:mod:`protlab.residues.workflows`):
``toy`` trains the residue-clustering network on the toy universe (saved as
``checkpoints/residue_cluster.pt``) and explains its held-out proteins; ``sites`` and
``labels`` learn a table of site residues or protein labels of PDB/mmCIF files on a training
part (a 30 %-identity split) and explain the held-out structures, measured beside the
cavity-detection baseline (pyKVFinder) and random picks; ``explain`` explains structures with a
saved model. ``mode="auto"`` picks the workflow from the inputs. Every workflow writes the residue
table ``residues/critical_residues.parquet``, one standalone 3D view per protein (up to
``max_views``), the importance figure, ``residue_metrics.json`` when sites are known and
``residues.json``; trainings add their curves (``residues/training.csv``, figure
``residue_training``, the JSONL log ``residues/training_log.jsonl``).
"""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Sequence

import numpy as np
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
from protlab.residues.explain import Explanation, explain_structures, pocket_table, residue_tables
from protlab.residues.inputs import ResidueInputs
from protlab.residues.network import SCORES
from protlab.residues.pocket_peer import ENSEMBLE, MODES as PEER_MODES, ensemble
from protlab.residues.sites import site_summary
from protlab.residues.toy_training import train_on_toy
from protlab.residues.training import train_residue_model
from protlab.residues.workflows import MODES, NO_TOY_ON_REAL, REAL_EPOCHS, TOY_EPOCHS, run_workflow, workflow_options


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


# the training functions' own defaults, written once in their signatures
NETWORK = {name: p.default for name, p in inspect.signature(train_residue_model).parameters.items()}
TOY_SPLIT = inspect.signature(train_on_toy).parameters["val_fraction"].default
STAGE = Stage("residues", "06_critical_residues",
              "Critical residues in 3D: neural clustering of residues (Quan et al., CVPR 2024).", (
    Param("mode", "auto", "workflow: 'toy' (train on the toy universe), 'sites' or 'labels' (learn a table of "
          "structure files), 'explain' (a saved checkpoint); 'auto': a checkpoint explains, structures='toy' trains "
          "on the toy, a sites or labels table trains on it", "str", choices=("auto", *MODES)),
    Param("structures", "toy", "'toy', a PDB/mmCIF file, a directory of them, or a list of files", "str|list",
          check=_structures),
    Param("chain", None, "chain to read alone from each structure file (None: every protein chain; rows of a "
          "labels table without a chain take this chain, else the file's first protein chain)", "str", none=True),
    Param("checkpoint", None, "a saved residue-clustering model; None: train on the toy universe", "str",
          none=True, check=existing_file),
    Param("epochs", None, f"training epochs (None: {TOY_EPOCHS} on the toy universe, {REAL_EPOCHS} on sites or "
          "labels of structure files, where longer training overfits a few hundred structures)", "int", low=1,
          none=True),
    Param("n_families", 8, "toy families (classes)", "int", low=2),
    Param("members_per_family", 50, "toy proteins per family", "int", low=1),
    Param("families_per_superfamily", 8, "toy families sharing one fold; they differ only in the combination "
          "of their site residues", "int", low=1, high=MAX_SUPERFAMILY),
    Param("val_fraction", TOY_SPLIT, "toy proteins held out in training, in [0, 1); site metrics are measured on them",
          "float", low=0, check=_below_one),
    Param("length_range", [80, 140], "toy template lengths [shortest, longest]", "list", check=_length_range),
    Param("hidden", NETWORK["hidden"], "network width", "int", low=1),
    Param("batch_size", NETWORK["batch_size"], "training batch size (proteins)", "int", low=1),
    Param("residue_dropout", NETWORK["residue_dropout"], "fraction of residue types hidden in each training batch, "
          "in [0, 1)", "float", low=0, check=_below_one),
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
    Param("peer", "ensemble", "with a site model, the learned pocket predictor PocketNet when it is installed (pip "
          "install 'protlab[peers]'; its scores cached beside the residue graphs): 'ensemble' makes the site "
          "probability the network's and PocketNet's weighted mean and measures PocketNet on the same structures, "
          "'measure' only measures it, 'off' neither", "str", choices=PEER_MODES),
    Param("esm", None, "per-residue protein-language-model features for training on sites or labels: an ESM-2 "
          "encoder as 02 takes it (a checkpoint path or model name; embeddings cached in the run directory); "
          "None: structure features only (a saved model brings its own)", "str", none=True),
))
TOY_CAVEAT = "TOY-TRAINED MODEL: these scores are not evidence about this real protein"

def write_outputs(run_dir: str | Path, explanations: Sequence[Explanation], inputs: ResidueInputs, *,
                  top_k: int = 10, max_views: int = 4, caveat: str | None = None) -> dict:
    """The residue table, one HTML view per protein (the first ``max_views``) and, with known
    sites, ``residue_metrics.json``; beside each view a PDB with the scores as B-factors and PyMOL /
    ChimeraX scripts. Returns ``{"table", "views", "exports", "metrics"?, "metrics_summary"}``
    (the summary is None without sites; a metrics file left by an earlier run is removed then)."""
    run = RunDir(run_dir)
    explanations = list(explanations)
    table = residue_tables(explanations)
    out: dict = {"table": atomic_write_parquet(run.writable("critical_residues"), table),
                 "by_structure": _write_structure_tables(run, explanations, table)}
    if any(ex.is_site_model for ex in explanations):
        out["pockets"] = atomic_write_csv(run.writable("site_pockets"), pocket_table(explanations), sep="\t")
    else:
        run.path("site_pockets").unlink(missing_ok=True)
    out["views"] = [export_view(ex, _html(run.figure(view_stem(ex.id))), top_k=top_k,
                                title=f"critical residues of {ex.id}" + (f" ({caveat})" if caveat else ""))
                    for ex in explanations[:max_views]]
    out["exports"] = [path for ex in explanations[:max_views] for path in write_structure_exports(
        ex.structure, ex.importance, run.figure(view_stem(ex.id)),
        label="site probability" if ex.is_site_model else "residue importance").values()]
    summary = site_summary(explanations, inputs.sites, baseline=inputs.baseline, top_k=top_k, source=inputs.source,
                           peer=inputs.peer, peer_name=inputs.peer_name, peer_note=inputs.peer_note,
                           baseline_name=inputs.baseline_name,
                           ensemble=ENSEMBLE if any(ex.own is not None for ex in explanations) else None)
    if summary is None:
        run.path("residue_metrics").unlink(missing_ok=True)  # a stale file would describe other structures
        out["metrics_summary"] = None
    else:
        out["metrics"] = atomic_write_json(run.writable("residue_metrics"), summary)
        out["metrics_summary"] = {k: v for k, v in summary.items() if k != "per_protein"}
    return out


def _write_structure_tables(run: RunDir, explanations: Sequence[Explanation], table: pd.DataFrame) -> list[Path]:
    """``residues/by_structure/<id>.tsv``: each structure's rows of ``table`` (:func:`residue_tables`:
    residues best first, a site model's with their pocket); tables of structures this run did not
    explain are removed."""
    folder = run.path("residue_tables")
    folder.mkdir(parents=True, exist_ok=True)
    rows = dict(tuple(table.groupby("id", sort=False)))
    paths = [atomic_write_csv(folder / f"{view_stem(ex.id, prefix='')}.tsv", rows[ex.id].drop(columns="id"), sep="\t")
             for ex in explanations]
    for stale in set(folder.glob("*.tsv")) - set(paths):
        stale.unlink()
    return paths


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


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    mode, options = workflow_options(params, STAGE.defaults())
    record = StageRecord(STAGE, run_dir, params)
    record.results["mode"] = mode
    if params["epochs"] is None and hasattr(options, "epochs"):
        record.results["epochs"] = options.epochs
    run_ = RunDir(run_dir)
    cache_dir = Path(params["cache_dir"]) if params["cache_dir"] else run_.path("residue_graph_cache")
    record.resolve(epochs=getattr(options, "epochs", None), cache_dir=str(cache_dir))
    _read_inputs(record, params)
    seed_everything(params["seed"])
    with torch_threads(params["cpu_threads"]):
        with record.timed(mode):
            trained = run_workflow(mode, options, params, run_dir, cache_dir)
        _refuse_toy_model_on_real(trained.model, params)
        with record.timed("explain"):
            explanations = explain_structures(
                trained.model, trained.inputs.structures, score=params["score"], cache_dir=cache_dir,
                graphs=None if trained.graphs is None else [trained.graphs[s.id] for s in trained.inputs.structures])
            if params["peer"] == "ensemble" and trained.inputs.peer:
                explanations = [with_peer(ex, trained.inputs.peer) for ex in explanations]
    if mode != "explain":
        record.wrote(run_.path("residue_network"))
    if trained.report is not None:
        record.wrote(atomic_write_json(run_.writable("label_metrics"), trained.report))
    real = params["structures"] != "toy"
    caveat = TOY_CAVEAT if real and _trained_on(trained.model) == "toy" else None
    with record.timed("write"):
        outputs = write_outputs(run_dir, explanations, trained.inputs, top_k=params["top_k"],
                                max_views=params["max_views"], caveat=caveat)
        if trained.history:
            outputs["training"] = atomic_write_csv(run_.writable("residue_training"), pd.DataFrame(trained.history))
    for path in [outputs["table"], run_.path("residue_tables"), outputs.get("pockets"), *outputs["views"],
                 *outputs["exports"], outputs.get("metrics"),
                 outputs.get("training"), run_.path("residue_log") if trained.history else None]:
        if path is not None and Path(path).exists():
            record.wrote(path)
    with record.timed("figures"):
        figures = _figures(run_, record, explanations[:params["max_views"]], trained)
    _record_results(record, trained, explanations, outputs["metrics_summary"], caveat)
    record.save()
    return StageResult(record, figures, explanations=explanations, inputs=trained.inputs, model=trained.model,
                       history=trained.history, metrics=outputs["metrics_summary"], outputs=outputs,
                       label_metrics=trained.report, mode=mode)


def with_peer(ex: Explanation, peer: dict[str, np.ndarray]) -> Explanation:
    """A site model's explanation whose site probability is ensembled with the peer's scores
    (:func:`~protlab.residues.pocket_peer.ensemble`; the network's own kept in ``own``)."""
    if not ex.is_site_model or ex.id not in peer:
        return ex
    scores = ensemble(ex.importance, peer[ex.id])
    return dataclasses.replace(ex, importance=scores, probabilities=scores, own=ex.importance)


def _trained_on(model) -> str | None:
    return (getattr(model, "meta", None) or {}).get("trained_on")


def _refuse_toy_model_on_real(model, params: dict) -> None:
    if params["structures"] != "toy" and _trained_on(model) == "toy" and not params["toy_model"]:
        raise InputError(NO_TOY_ON_REAL.format(what=f"checkpoint={params['checkpoint']!r} was trained on the "
                                                    "toy universe"))


def _figures(run_: RunDir, record: StageRecord, shown: Sequence[Explanation], trained) -> dict:
    """The importance figure of the shown proteins and, after a training, its curves; saved."""
    figures = {"residue_importance": importance_figure(shown, sites=trained.inputs.sites)}
    if trained.history:
        figures["residue_training"] = training_figure(trained.history)
    for stem, figure in figures.items():
        for path in save_figure(figure, run_.figure(stem)).values():
            record.wrote(path)
    return {stem.removeprefix("residue_"): figure for stem, figure in figures.items()}


def _record_results(record: StageRecord, trained, explanations, metrics: dict | None, caveat: str | None) -> None:
    inputs = trained.inputs
    record.results.update({"model_trained_on": _trained_on(trained.model) or "unrecorded",
                           "model_task": trained.model.config.task, "caveat": caveat,
                           "n_structures": len(explanations), "n_with_sites": len(inputs.sites),
                           "source": inputs.source, "skipped": sorted(inputs.skipped)})
    if trained.history:
        record.results["training"] = trained.history[-1]
    if trained.report is not None:
        record.results["labels"] = trained.report
    if metrics is not None:
        record.results.update({k: metrics[k] for k in ("precision_at_k", "random_precision_at_k",
                                                       "random_scores_precision_at_k", "baseline_precision_at_k",
                                                       "baseline", "n_proteins", "at_top_k", "peer",
                                                       "peer_precision_at_k", "peer_note", "ensemble",
                                                       "own_precision_at_k") if k in metrics})


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: what 06 explained and, with known sites, how well."""
    parts = [f"{results.get('n_structures')} structures explained ({results.get('n_with_sites')} with known sites)",
             f"model trained on {results.get('model_trained_on')}"]
    if results.get("precision_at_k") is not None:
        parts.append(f"precision@k {results['precision_at_k']:.3f}"
                     + (f", {results.get('baseline')} {results['baseline_precision_at_k']:.3f}"
                        if results.get("baseline_precision_at_k") is not None else "")
                     + (f", PocketNet {results['peer_precision_at_k']:.3f}"
                        if results.get("peer_precision_at_k") is not None else "")
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
