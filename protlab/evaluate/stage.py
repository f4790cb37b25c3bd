"""Stage 05: score every clustering of a run directory against known families.

``run(run_dir, **params)`` compares ``clusters.parquet`` (the chosen clustering) and every
``clusters/<method>.parquet`` (computing the ``baselines`` that are missing) with the
family labels of ``proteins.parquet``: NMI, ARI, Hungarian-matched accuracy, AUPR. Writes
``metrics.json``, ``metrics_table.csv``, ``per_family.csv``, the matched confusion
figure and ``evaluate.json``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from protlab.cluster.methods import METHODS
from protlab.cluster.stage import read_clustering, write_clustering
from protlab.core.atomic import atomic_path, atomic_write_json
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.core.stage import Param, Stage, StageRecord, StageResult
from protlab.evaluate.metrics import evaluate, matched_confusion, per_family
from protlab.plot.evaluate import confusion_figure
from protlab.plot.export import save_figure

MAX_CONFUSION = 400  # families or clusters beyond which the heatmap is not drawn


def _baselines(value):
    unknown = [m for m in value if m not in METHODS or m == "scan"]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from 'kmeans', 'pca_kmeans'")


STAGE = Stage("evaluate", "05_evaluate", "Score clusterings against known families: NMI, ARI, matched accuracy.", (
    Param("baselines", ["kmeans", "pca_kmeans"], "baseline clusterings computed when missing from clusters/",
          "list", check=_baselines),
    Param("seed", 0, "random seed of the baselines", "int", low=0),
))


def labels_for(run: RunDir, ids) -> tuple[pd.Series, np.ndarray]:
    """The family label of each id (NaN where unknown) and the mask of known labels."""
    proteins = run.load_proteins()
    if "label" not in proteins.columns:
        raise InputError(f"{run.path('proteins')} has no label column: 05_evaluate needs family labels")
    labels = proteins.assign(id=proteins["id"].astype(str)).set_index("id")["label"]
    labels = labels.reindex([str(i) for i in ids])
    known = labels.notna() & (labels.astype(str).str.len() > 0)
    if known.sum() == 0:
        raise InputError(f"{run.path('proteins')} has no family labels: evaluation needs labelled proteins "
                         "(01_curate with label_regex / label_field)")
    return labels, known.to_numpy()


def evaluate_clusters(frame: pd.DataFrame, labels: pd.Series, known: np.ndarray) -> dict:
    probs = np.stack(frame["probabilities"].to_numpy())[known] if "probabilities" in frame.columns else None
    clusters = frame["cluster"].to_numpy()[known]
    if probs is not None and clusters.max() >= probs.shape[1]:
        probs = None
    return evaluate(labels.to_numpy()[known].astype(str), clusters, probs)


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    record = StageRecord(STAGE, run_dir, params)
    run_ = RunDir(run_dir)
    chosen = read_clustering(run_dir)
    record.read(run_.path("clusters"))
    record.read(run_.path("proteins"))
    labels, known = labels_for(run_, chosen["id"])  # before any baseline is computed
    chosen_method = str(chosen["method"].iloc[0]) if "method" in chosen.columns and len(chosen) else "chosen"
    probs = chosen["probabilities"].iloc[0] if "probabilities" in chosen.columns and len(chosen) else None
    n_clusters = int(len(probs)) if probs is not None else int(chosen["cluster"].nunique())
    with record.timed("baselines"):
        for method in params["baselines"]:
            if method not in run_.clustering_methods():
                write_clustering(run_dir, method=method, n_clusters=n_clusters, seed=params["seed"],
                                 write_main=False, record=record)
    rows = []
    with record.timed("metrics"):
        for method in run_.clustering_methods():
            frame = read_clustering(run_dir, method)
            lab, kn = labels_for(run_, frame["id"]) if not frame["id"].equals(chosen["id"]) else (labels, known)
            rows.append({"method": method, **evaluate_clusters(frame, lab, kn)})
        table = pd.DataFrame(rows).set_index("method")
        metrics = {"method": chosen_method, **evaluate_clusters(chosen, labels, known),
                   "n_unlabelled": int((~known).sum()), "per_method": table.reset_index().to_dict(orient="records")}
        y, c = labels.to_numpy()[known].astype(str), chosen["cluster"].to_numpy()[known]
        family = per_family(y, c)
    record.wrote(atomic_write_json(run_.writable("metrics"), metrics))
    with atomic_path(run_.writable("metrics_table")) as tmp:
        table.to_csv(tmp)
    with atomic_path(run_.writable("per_family")) as tmp:
        family.to_csv(tmp, index=False)
    record.wrote(run_.path("metrics_table"))
    record.wrote(run_.path("per_family"))
    figures = {}
    confusion = None
    if metrics["n_labels"] <= MAX_CONFUSION and metrics["n_clusters"] <= MAX_CONFUSION:
        confusion = matched_confusion(y, c)
        figures["confusion"] = confusion_figure(confusion, title=f"Matched confusion: {chosen_method}")
        for path in save_figure(figures["confusion"], run_.figure("matched_confusion")).values():
            record.wrote(path)
    record.results.update({k: metrics[k] for k in ("method", "nmi", "ari", "acc") if k in metrics})
    record.save()
    return StageResult(record, figures, table=table, metrics=metrics, per_family=family, confusion=confusion)


run.__doc__ = STAGE.docstring()
