"""Stage 05: score every clustering of a run directory against known families.

``run(run_dir, **params)`` compares ``clusters.parquet`` (the chosen clustering), every
``clusters/<method>.parquet`` and the ``baselines`` (``baselines/<method>.parquet``, made
when ``clusters/`` lacks a current one) with the family labels of ``proteins.parquet``: NMI,
ARI, Hungarian-matched accuracy, AUPR. Writes ``metrics.json``, ``metrics_table.csv``,
``per_family.csv``, the matched confusion figure, ``evaluate.json`` and, when 04 wrote an
explorer page, a copy with the labels scored (``figures/explorer_labelled.html``,
:mod:`protlab.plot.explorer`); 04's artifacts are read, never written. Labels may come from
a file instead (``labels``); with no labels anywhere it writes a label-free report (sizes,
confidence, neighbour agreement) and computes no baselines; labels too sparse to score are refused
(:func:`~protlab.evaluate.labels.require_enough_labels`). A chosen clustering that is damaged
or made from other proteins or embeddings is refused; any other such clustering is listed
with the reason (``skipped_stale`` in ``metrics.json``, ``skipped`` in the record and the
command line's summary), not scored beside current ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from protlab.cluster.methods import GRAPH_METHODS, METHODS
from protlab.cluster.stage import current_fingerprints, read_clustering, stale_input, write_clustering
from protlab.cluster.tables import cluster_count, probability_matrix
from protlab.core.atomic import atomic_path, atomic_write_json
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult, existing_file, regular_expression
from protlab.evaluate.label_free import label_free_report
from protlab.evaluate.labels import labels_for, require_enough_labels
from protlab.evaluate.metrics import evaluate, matched_accuracy, matched_confusion, per_family
from protlab.plot.evaluate import confusion_figure
from protlab.plot.explorer import labelled_explorer
from protlab.plot.export import save_figure

MAX_CONFUSION = 400  # families or clusters beyond which the heatmap is not drawn




BASELINES = tuple(m for m in METHODS if m not in GRAPH_METHODS)


STAGE = Stage("evaluate", "05_evaluate", "Score clusterings against known families: NMI, ARI, matched accuracy.", (
    Param("baselines", ["kmeans", "pca_kmeans"], "baseline clusterings computed into baselines/ when clusters/ "
          "lacks a current one",
          "list", items=BASELINES),
    Param("seed", 0, "random seed of the baselines", "int", low=0, high=MAX_SEED),
    Param("labels", None, "family labels from elsewhere, when proteins.parquet has none: a TSV/CSV (id, label) or "
          "a FASTA whose headers carry them; None: the labels of proteins.parquet", "str", none=True,
          check=existing_file),
    Param("label_regex", None, "with a FASTA labels file: regex whose first group is the label (None: the Pfam "
          "accession in the header)", "str", none=True, check=regular_expression),
))


def evaluate_clusters(frame: pd.DataFrame, labels: pd.Series, known: np.ndarray) -> dict:
    probs = probability_matrix(frame)
    probs = None if probs is None else probs[known]
    clusters = frame["cluster"].to_numpy()[known]
    if probs is not None and clusters.max() >= probs.shape[1]:
        probs = None
    return evaluate(labels.to_numpy()[known].astype(str), clusters, probs)


def heads_agreement(frames: dict[str, pd.DataFrame]) -> float | None:
    """Share of proteins the SCAN heads put in the cluster matched (one-to-one) to their
    homology-graph family; None unless both clusterings are scored."""
    if not {"families", "scan"} <= set(frames):
        return None
    families = frames["families"].set_index(frames["families"]["id"].astype(str))["cluster"]
    heads = frames["scan"].set_index(frames["scan"]["id"].astype(str))["cluster"].reindex(families.index)
    if heads.isna().any():
        return None
    return float(matched_accuracy(families.to_numpy(), heads.to_numpy().astype(np.int64)))


def _current(run: RunDir, method: str, now: dict, folder: str) -> bool:
    """Whether ``clusters/<method>.*`` (or ``baselines/<method>.*``) exists, is readable and was
    made from the run's inputs as they are."""
    if method not in run.clustering_methods(folder):
        return False
    try:
        return stale_input(run, method, now, folder) is None and \
            read_clustering(run.root, method, now, folder) is not None
    except InputError:  # damaged: a baseline is made again
        return False


def _sources(run: RunDir, baselines: list[str], now: dict) -> tuple[dict[str, str], list[str]]:
    """method → the folder its clustering is scored from: 04's ``clusters/``, else 05's own
    ``baselines/``; and the requested baselines that neither holds current (05 makes them)."""
    sources = {method: "baselines" for method in run.clustering_methods("baselines")}
    sources.update({method: "clusterings" for method in run.clustering_methods()})
    missing = []
    for method in baselines:
        if _current(run, method, now, "clusterings"):
            continue
        sources[method] = "baselines"
        if not _current(run, method, now, "baselines"):
            missing.append(method)
    return dict(sorted(sources.items())), missing


def _method_name(chosen: pd.DataFrame) -> str:
    """The method that made the chosen clustering, "chosen" when it does not say."""
    return str(chosen["method"].iloc[0]) if "method" in chosen.columns and len(chosen) else "chosen"


def _score_each(run_: RunDir, sources: dict[str, str], now: dict, chosen: pd.DataFrame, labels: pd.Series,
                known: np.ndarray, params: dict) -> tuple[list[dict], dict[str, str], dict[str, pd.DataFrame]]:
    """``(rows, skipped, frames)``: the scores of each current clustering of ``sources``, why
    each other one was not scored, and the clusterings scored."""
    rows, skipped, frames = [], {}, {}
    for method, folder in sources.items():
        try:  # an older or damaged clustering is listed, not scored beside current ones
            changed = stale_input(run_, method, now, folder)
            if changed is not None:
                skipped[method] = f"made from another {run_.path(changed).name}"
                continue
            frame = frames[method] = read_clustering(run_.root, method, now, folder)
        except InputError as exc:
            skipped[method] = str(exc)
            continue
        lab, kn = (labels, known) if frame["id"].equals(chosen["id"]) else \
            labels_for(run_, frame["id"], params["labels"], params["label_regex"])
        rows.append({"method": method, **evaluate_clusters(frame, lab, kn)})
    return rows, skipped, frames


def _chosen_scores(chosen: pd.DataFrame, method: str, rows: list[dict], frames: dict[str, pd.DataFrame],
                   labels: pd.Series, known: np.ndarray) -> dict:
    """The chosen clustering's scores: its method's row when ``clusters/<method>`` is the same
    clustering (the usual case; on large sets a second scoring is a noticeable cost), else scored here."""
    same = method in frames and frames[method].reset_index(drop=True).equals(chosen.reset_index(drop=True))
    row = next((r for r in rows if r["method"] == method), None) if same else None
    return {k: v for k, v in row.items() if k != "method"} if row is not None else \
        evaluate_clusters(chosen, labels, known)


def _write_tables(run_: RunDir, record: StageRecord, metrics: dict, table: pd.DataFrame,
                  family: pd.DataFrame) -> None:
    """``metrics``, the per-method table and the per-family scores, each recorded as written."""
    record.wrote(atomic_write_json(run_.writable("metrics"), metrics))
    with atomic_path(run_.writable("metrics_table")) as tmp:
        table.to_csv(tmp)
    with atomic_path(run_.writable("per_family")) as tmp:
        family.to_csv(tmp, index=False)
    record.wrote(run_.path("metrics_table"))
    record.wrote(run_.path("per_family"))


def _confusion(run_: RunDir, record: StageRecord, metrics: dict, y: np.ndarray, c: np.ndarray,
               chosen_method: str) -> tuple[dict, pd.DataFrame | None]:
    """``(figures, confusion)``: the matched confusion and its figure (saved), unless there are
    more than ``MAX_CONFUSION`` families or clusters to draw."""
    figures = {}
    confusion = None
    if metrics["n_labels"] <= MAX_CONFUSION and metrics["n_clusters"] <= MAX_CONFUSION:
        confusion = matched_confusion(y, c)
        figures["confusion"] = confusion_figure(confusion, title=f"Matched confusion: {chosen_method}")
        for path in save_figure(figures["confusion"], run_.figure("matched_confusion")).values():
            record.wrote(path)
    return figures, confusion


def _headline(chosen_method: str, metrics: dict, skipped: dict[str, str]) -> str:
    """The chosen clustering's scores and the clusterings not scored, for the command line."""
    return (f"chosen clustering ({chosen_method}): NMI {metrics['nmi']:.3f}  ARI {metrics['ari']:.3f}  "
            f"ACC {metrics['acc']:.3f}" + (f"  ({metrics['n_unlabelled']} proteins without a label left out)"
                                           if metrics["n_unlabelled"] else "")
            + "".join(f"\n  not scored: {method}: {why}" for method, why in skipped.items()))


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    record = StageRecord(STAGE, run_dir, params)
    run_ = RunDir(run_dir)
    chosen = read_clustering(run_dir)
    record.read(run_.path("clusters"))
    record.read(run_.path("proteins"))
    if params["labels"] is not None:
        record.read(params["labels"])
    # labels first: without any, a label-free report instead of baselines and then an error
    labels, known = labels_for(run_, chosen["id"], params["labels"], params["label_regex"])
    if not known.any():
        return _label_free(run_, chosen, record)
    require_enough_labels(labels, known, params["labels"] or run_.path("proteins"))
    chosen_method = _method_name(chosen)
    n_clusters = cluster_count(chosen)
    now = current_fingerprints(run_)  # baselines are made from these inputs; they do not change here
    sources, missing = _sources(run_, params["baselines"], now)
    with record.timed("baselines"):  # missing ones, and those made from other proteins or embeddings
        for method in missing:
            write_clustering(run_dir, method=method, n_clusters=n_clusters, seed=params["seed"], write_main=False,
                             record=record, folder="baselines")
    with record.timed("metrics"):
        rows, skipped, frames = _score_each(run_, sources, now, chosen, labels, known, params)
        table = pd.DataFrame(rows).set_index("method")
        metrics = {"method": chosen_method, **_chosen_scores(chosen, chosen_method, rows, frames, labels, known),
                   "n_unlabelled": int((~known).sum()), "per_method": table.reset_index().to_dict(orient="records"),
                   "skipped_stale": skipped, "agreement_heads_families": heads_agreement(frames)}
        y, c = labels.to_numpy()[known].astype(str), chosen["cluster"].to_numpy()[known]
        family = per_family(y, c)
    _write_tables(run_, record, metrics, table, family)
    figures, confusion = _confusion(run_, record, metrics, y, c, chosen_method)
    explorer = labelled_explorer(run_dir, labels=labels[known])  # 04's page, with these labels
    if explorer is not None:
        record.wrote(explorer)
    record.results.update({k: metrics[k] for k in ("method", "nmi", "ari", "acc", "agreement_heads_families")
                           if k in metrics})
    record.results["per_method"] = {row["method"]: {k: row.get(k) for k in RECORDED} for row in rows}
    record.results["skipped"] = skipped
    record.save()
    return StageResult(record, figures, table=table, metrics=metrics, per_family=family, confusion=confusion,
                       headline=_headline(chosen_method, metrics, skipped))


def _label_free(run: RunDir, chosen: pd.DataFrame, record: StageRecord) -> StageResult:
    """No family labels anywhere: cluster sizes, confidence and neighbour agreement, no baselines."""
    ids, embeddings, _ = run.load_embeddings()
    record.read(run.path("embeddings"))
    row_of = {pid: i for i, pid in enumerate(ids)}
    rows = [row_of.get(str(pid)) for pid in chosen["id"]]
    if any(r is None for r in rows):
        raise InputError(f"{run.path('clusters')} holds ids that {run.path('embeddings')} lacks; rerun 04_cluster")
    chosen_method = _method_name(chosen)
    with record.timed("label_free_report"):
        summary, per_cluster = label_free_report(chosen, embeddings[rows])
    metrics = {"method": chosen_method, **summary,
               "note": "no family labels (proteins.parquet has none and no labels file was given): sizes, "
                       "confidence and the share of nearest neighbours in the same cluster; give labels=... "
                       "for NMI / ARI / accuracy"}
    record.wrote(atomic_write_json(run.writable("metrics"), metrics))
    with atomic_path(run.writable("cluster_report")) as tmp:
        per_cluster.to_csv(tmp, index=False)
    record.wrote(run.path("cluster_report"))
    record.results.update(summary)
    record.save()
    headline = (f"no family labels: {summary['n_clusters']} clusters of {summary['n']} proteins (largest "
                f"{summary['largest_cluster']}, {summary['singletons']} singletons; {summary['tiny_clusters']} tiny "
                f"(< {summary['tiny_below']:g}), {summary['outsized_clusters']} over {summary['outsized_above']:g}, "
                f"10x the median: merged families?); median confidence "
                f"{summary['median_confidence']}; {summary['neighbour_share']:.2f} of nearest neighbours share "
                f"a cluster. Pass labels=... (TSV/CSV id,label or FASTA) for NMI / ARI / accuracy")
    return StageResult(record, {}, table=per_cluster, metrics=metrics, per_family=None, confusion=None,
                       headline=headline)


RECORDED = ("nmi", "ari", "acc", "acc_many_to_one", "inverse_purity")  # per method in the stage record


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: the scores of every clustering scored."""
    if "nmi" not in results:
        return (f"no family labels: {results.get('n_clusters')} clusters of {results.get('n')} proteins; "
                "pass --labels for NMI / ARI / accuracy")
    lines = [f"NMI / ARI / matched ACC (one-to-one; many-to-one) of each clustering (chosen: {results['method']}):"]
    names = {"nmi": "NMI", "ari": "ARI", "acc": "ACC", "acc_many_to_one": "ACC m:1"}
    for method, scores in (results.get("per_method") or {}).items():
        lines.append(f"  {method:<12} " + "  ".join(f"{names[k]} {scores[k]:.3f}" for k in names
                                                   if isinstance(scores.get(k), (int, float))))
    if results.get("agreement_heads_families") is not None:
        lines.append(f"  SCAN heads agree with the families on {results['agreement_heads_families']:.1%} (matched)")
    lines += [f"  not scored: {method}: {why}" for method, why in (results.get("skipped") or {}).items()]
    return "\n".join(lines)


run.__doc__ = STAGE.docstring()
