"""Metrics: sparse Hungarian matching equals dense LSA; NMI/ARI/ACC/AUPR/per-family values."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from protlab.core.errors import InputError
from protlab.evaluate.metrics import (contingency, evaluate, match_clusters, matched_accuracy, matched_aupr,
                             matched_confusion, per_family)


@pytest.mark.parametrize("seed", range(40))
def test_sparse_matching_equals_dense_lsa(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    n_clusters, n_labels = int(rng.integers(1, 25)), int(rng.integers(1, 25))
    clusters = rng.integers(0, n_clusters, n)
    # labels correlated with clusters half of the time, so both easy and hard tables occur
    labels = np.where(rng.random(n) < 0.5, clusters % n_labels, rng.integers(0, n_labels, n))
    table = contingency(clusters, labels)
    rows, cols, total = match_clusters(table)
    dense = table.toarray()
    r, c = linear_sum_assignment(-dense)
    assert total == dense[r, c].sum()
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert dense[rows, cols].sum() == total


def test_unmatched_clusters_count_as_errors():
    labels = ["a"] * 4 + ["b"] * 4
    clusters = [0, 0, 1, 1, 2, 2, 2, 2]  # family a split in two: only one half can match
    assert matched_accuracy(labels, clusters) == pytest.approx(6 / 8)
    # more families than clusters: one family stays unmatched
    assert matched_accuracy(["a", "b", "c", "c"], [0, 0, 1, 1]) == pytest.approx(3 / 4)


def test_permuted_names_score_perfectly():
    labels = np.array(["PF1"] * 5 + ["PF2"] * 3 + ["PF3"] * 2)
    clusters = np.array([7] * 5 + [3] * 3 + [9] * 2)
    out = evaluate(labels, clusters)
    assert out["nmi"] == pytest.approx(1.0) and out["ari"] == pytest.approx(1.0) and out["acc"] == 1.0
    assert out["n_clusters"] == 3 and out["n_labels"] == 3


def test_per_family_precision_recall():
    labels = ["a"] * 4 + ["b"] * 4
    clusters = [0, 0, 0, 1, 1, 1, 1, 1]
    table = per_family(labels, clusters).set_index("family")
    assert table.loc["a", "precision"] == pytest.approx(1.0)
    assert table.loc["a", "recall"] == pytest.approx(0.75)
    assert table.loc["b", "precision"] == pytest.approx(4 / 5)
    assert table.loc["b", "recall"] == pytest.approx(1.0)
    assert table.loc["a", "cluster"] == 0 and table.loc["b", "cluster"] == 1


def test_matched_aupr():
    labels = ["a", "a", "b", "b"]
    clusters = [1, 1, 0, 0]
    perfect = np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.7, 0.3]])
    assert matched_aupr(labels, clusters, perfect) == pytest.approx(1.0)
    # a family with no matched cluster scores its prevalence (constant score)
    assert matched_aupr(["a", "a", "b", "c"], [0, 0, 1, 1], np.eye(2)[[0, 0, 1, 1]]) < 1.0


def test_matched_confusion_is_diagonal_first():
    labels = ["x"] * 3 + ["y"] * 3
    clusters = [5, 5, 5, 2, 2, 9]
    conf = matched_confusion(labels, clusters)
    assert list(conf.index) == ["x", "y"]
    assert conf.iloc[0, 0] == 3 and conf.iloc[1, 1] == 2
    assert list(conf.columns)[-1] == "9"  # the unmatched cluster comes last


def test_bad_input():
    with pytest.raises(InputError, match="empty"):
        evaluate([], [])
    with pytest.raises(InputError, match="equal length"):
        evaluate(["a", "b"], [0])
    with pytest.raises(InputError, match="missing"):
        evaluate(["a", None], [0, 1])
