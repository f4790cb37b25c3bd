"""Scores against measured fitness, as ProteinGym reports them: Spearman, NDCG over the top
10 % and the recall of the top 10 %."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def ndcg(y_true, y_score, top: float = 10) -> float:
    """ProteinGym's ``calc_ndcg``: gains are the min-max scaled measurements, cut at the
    top ``top`` % of variants by predicted score."""
    y_true, y_score = np.asarray(y_true, float), np.asarray(y_score, float)
    k = int(np.floor(len(y_true) * top / 100))
    gains = minmax(y_true)
    ranks = np.argsort(np.argsort(-y_score)) + 1
    keep = (ranks <= k) & (gains != 0)
    if not keep.any():
        return 0.0
    dcg = np.sum(gains[keep] / np.log2(ranks[keep] + 1))
    ideal = np.argsort(np.argsort(-gains)) + 1
    keep_ideal = (ideal <= k) & (gains != 0)
    idcg = np.sum(gains[keep_ideal] / np.log2(ideal[keep_ideal] + 1))
    return float(dcg / idcg) if idcg > 0 else 0.0


def top_recall(y_true, y_score, top: float = 10) -> float:
    """ProteinGym's ``calc_toprecall``: share of the top ``top`` % measured variants that
    are in the top ``top`` % predicted."""
    y_true, y_score = np.asarray(y_true, float), np.asarray(y_score, float)
    true_top = y_true >= np.percentile(y_true, 100 - top)
    model_top = y_score >= np.percentile(y_score, 100 - top)
    return float((true_top & model_top).sum() / true_top.sum())


def score_metrics(y_true, y_score) -> dict:
    """Spearman, NDCG, top-10 % recall and the count over variants with both values."""
    y_true, y_score = np.asarray(y_true, float), np.asarray(y_score, float)
    both = np.isfinite(y_true) & np.isfinite(y_score)
    n = int(both.sum())
    if n < 3:
        return {"n": n, "spearman": None, "ndcg": None, "top10_recall": None}
    t, s = y_true[both], y_score[both]
    rho = spearmanr(t, s).correlation
    return {"n": n, "spearman": None if not np.isfinite(rho) else float(rho), "ndcg": ndcg(t, s),
            "top10_recall": top_recall(t, s)}
