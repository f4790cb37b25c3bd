"""How well clusters recover known families: NMI, ARI, Hungarian-matched accuracy and more.

Matching clusters to families is a maximum-weight bipartite matching on the *sparse*
contingency table (clusters × families). At Pfam scale (15 000 clusters × 13 000 families,
1.8 M proteins) a dense ``linear_sum_assignment`` would need a 15 000² cost matrix; instead
:func:`match_clusters` solves it with ``scipy.sparse.csgraph.min_weight_full_bipartite_matching``
on a sparse graph made always-feasible by dummy structure (see its docstring). Clusters
left unmatched (more clusters than families) count as errors in the accuracy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from sklearn.metrics import adjusted_rand_score, average_precision_score, normalized_mutual_info_score

from protlab.core.errors import InputError


def _codes(values) -> tuple[np.ndarray, np.ndarray]:

    codes, uniques = pd.factorize(pd.Series(list(values) if not isinstance(values, np.ndarray) else values), sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


def _check_pair(labels, clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    clusters = np.asarray(clusters)
    if labels.shape[0] == 0:
        raise InputError("no proteins to evaluate: labels and clusters are empty")
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise InputError(f"labels ({labels.shape}) and clusters ({clusters.shape}) must be 1-D and of equal length")

    if pd.isna(pd.Series(labels)).any():
        raise InputError("labels contain missing values: evaluate only the labelled proteins")
    y, y_names = _codes(labels)
    c, c_names = _codes(clusters)
    return y, c, y_names, c_names


def contingency(clusters, labels) -> sp.csr_matrix:
    """Sparse ``(n_clusters, n_labels)`` counts of integer-coded clusters and labels."""
    clusters = np.asarray(clusters, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    shape = (int(clusters.max()) + 1, int(labels.max()) + 1)
    table = sp.coo_matrix((np.ones(len(labels), dtype=np.int64), (clusters, labels)), shape=shape).tocsr()
    table.sum_duplicates()
    return table


def match_clusters(table: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, int]:
    """Maximum-weight one-to-one matching of rows (clusters) to columns (labels).

    Returns ``(rows, cols, total)``: matched pairs with positive overlap and the matched
    total. Solved as a min-weight *full* matching on a square sparse graph with
    ``R + C`` nodes per side: the real block has weight ``M + 1 − count`` (``M`` the
    largest count), each cluster ``i`` may match its own dummy label ``i`` and each label
    ``j`` its own dummy cluster ``j`` at weight ``M + 1`` (= count 0), and dummy cluster
    ``j`` may match dummy label ``i`` wherever ``count[i, j] > 0``. Every matching of the
    real block completes to a perfect matching, every perfect matching has exactly
    ``R + C`` edges, so its weight is ``(R + C)(M + 1) − matched total``: minimising it
    maximises the matched total. The graph has ``3·nnz + R + C`` edges.
    """

    table = sp.csr_matrix(table)
    table.eliminate_zeros()
    n_rows, n_cols = table.shape
    if table.nnz == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    coo = table.tocoo()
    big = float(coo.data.max()) + 1.0
    r, c, v = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)
    rows = np.concatenate([r, np.arange(n_rows), n_rows + np.arange(n_cols), n_rows + c])
    cols = np.concatenate([c, n_cols + np.arange(n_rows), np.arange(n_cols), n_cols + r])
    weights = np.concatenate([big - v, np.full(n_rows, big), np.full(n_cols, big), np.full(len(v), big)])
    size = n_rows + n_cols
    graph = sp.csr_matrix((weights, (rows, cols)), shape=(size, size))
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    real = (row_ind < n_rows) & (col_ind < n_cols)
    mr, mc = row_ind[real].astype(np.int64), col_ind[real].astype(np.int64)
    counts = np.asarray(table[mr, mc]).ravel()
    keep = counts > 0
    return mr[keep], mc[keep], int(counts[keep].sum())


def matched_accuracy(labels, clusters) -> float:
    """Accuracy after Hungarian matching; proteins in unmatched clusters count as errors."""
    y, c, _, _ = _check_pair(labels, clusters)
    return match_clusters(contingency(c, y))[2] / len(y)


def cluster_to_label(labels, clusters) -> dict:
    """The matched family of each matched cluster (original names/values)."""
    y, c, y_names, c_names = _check_pair(labels, clusters)
    rows, cols, _ = match_clusters(contingency(c, y))
    return {c_names[r].item() if hasattr(c_names[r], "item") else c_names[r]: y_names[j] for r, j in zip(rows, cols)}


def per_family(labels, clusters):
    """Per family: size, matched cluster, precision and recall (0 when unmatched)."""

    y, c, y_names, c_names = _check_pair(labels, clusters)
    table = contingency(c, y)
    rows, cols, _ = match_clusters(table)
    cluster_sizes = np.asarray(table.sum(axis=1)).ravel()
    family_sizes = np.bincount(y, minlength=len(y_names))
    matched = np.full(len(y_names), -1)
    matched[cols] = rows
    overlap = np.zeros(len(y_names))
    overlap[cols] = np.asarray(table[rows, cols]).ravel()
    precision = np.where(matched >= 0, overlap / np.maximum(cluster_sizes[np.maximum(matched, 0)], 1), 0.0)
    recall = overlap / np.maximum(family_sizes, 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return pd.DataFrame({"family": y_names, "size": family_sizes,
                         "cluster": [c_names[m] if m >= 0 else None for m in matched],
                         "precision": precision, "recall": recall, "f1": f1})


def matched_aupr(labels, clusters, probabilities) -> float:
    """Mean over families of the average precision of the matched cluster's probability.

    ``probabilities[:, k]`` is the probability of cluster ``k`` (clusters coded 0..K-1 as
    in ``clusters``; dense, or a scipy sparse matrix holding each protein's top few); an
    unmatched family scores 0 for every protein.
    """

    y, _, y_names, _ = _check_pair(labels, clusters)
    clusters = np.asarray(clusters, dtype=np.int64)
    if sp.issparse(probabilities):  # the top few per protein (large runs): the others are 0
        probabilities = probabilities.tocsc()
        column = lambda k: probabilities[:, k].toarray().ravel()  # noqa: E731
    else:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        column = lambda k: probabilities[:, k]  # noqa: E731
    if probabilities.ndim != 2 or probabilities.shape[0] != len(y) or clusters.max() >= probabilities.shape[1]:
        raise InputError(f"probabilities of shape {probabilities.shape} do not match {len(y)} proteins "
                         f"with clusters up to {clusters.max()}")
    rows, cols, _ = match_clusters(contingency(clusters, y))
    matched = dict(zip(cols.tolist(), rows.tolist()))
    scores = []
    for j in range(len(y_names)):
        target = y == j
        score = column(matched[j]) if j in matched else np.zeros(len(y))
        scores.append(average_precision_score(target, score))
    return float(np.mean(scores))


def matched_confusion(labels, clusters, *, max_size: int = 400):
    """Dense confusion (families × clusters), clusters ordered by their matched family.

    Matched clusters come first in family order, unmatched clusters last; refuses tables
    larger than ``max_size`` on either side (use :func:`per_family` at scale).
    """

    y, c, y_names, c_names = _check_pair(labels, clusters)
    if len(y_names) > max_size or len(c_names) > max_size:
        raise InputError(f"confusion matrix of {len(y_names)} families × {len(c_names)} clusters is too large "
                         f"to draw (max {max_size}); use per_family() instead")
    table = contingency(c, y)
    rows, cols, _ = match_clusters(table)
    dense = table.toarray().T  # families × clusters
    by_family = dict(zip(cols.tolist(), rows.tolist()))
    order = [by_family[j] for j in range(len(y_names)) if j in by_family]
    order += [k for k in range(len(c_names)) if k not in set(order)]
    return pd.DataFrame(dense[:, order], index=[str(n) for n in y_names], columns=[str(c_names[k]) for k in order])


def many_to_one(table: sp.spmatrix) -> dict:
    """Scores that allow several clusters per family (overclustering, as SCAN's users score it):

    * ``acc_many_to_one``: each cluster takes its majority family; the share of proteins in
      their cluster's family. It equals the clusters' purity.
    * ``inverse_purity``: each family takes its largest cluster; the share of proteins in it
      (low when families are split).
    * ``purity_f1``: their harmonic mean."""
    n = table.sum()
    purity = float(table.max(axis=1).sum() / n)
    inverse = float(table.max(axis=0).sum() / n)
    return {"acc_many_to_one": purity, "purity": purity, "inverse_purity": inverse,
            "purity_f1": 2 * purity * inverse / (purity + inverse) if purity + inverse > 0 else 0.0}


def evaluate(labels, clusters, probabilities=None) -> dict:
    """``{"nmi", "ari", "acc", "acc_many_to_one", "purity", "inverse_purity", "purity_f1",
    "aupr"?, "n", "n_clusters", "n_labels"}`` (``acc``: one-to-one Hungarian matching)."""

    y, c, y_names, c_names = _check_pair(labels, clusters)
    table = contingency(c, y)
    out = {"nmi": float(normalized_mutual_info_score(y, c)), "ari": float(adjusted_rand_score(y, c)),
           "acc": match_clusters(table)[2] / len(y), **many_to_one(table),
           "n": int(len(y)), "n_clusters": int(len(c_names)), "n_labels": int(len(y_names))}
    if probabilities is not None:
        out["aupr"] = matched_aupr(labels, clusters, probabilities)
    return out
