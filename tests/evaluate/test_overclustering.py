"""Scores for more clusters than families: many-to-one accuracy, purity, inverse purity;
without labels, the counts of tiny and outsized clusters."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from protlab.evaluate.label_free import label_free_report, size_flags
from protlab.evaluate.metrics import evaluate


def test_a_family_split_in_two_is_whole_under_many_to_one_but_not_one_to_one():
    labels = ["a"] * 60 + ["b"] * 40
    clusters = [0] * 30 + [1] * 30 + [2] * 40  # family a split into clusters 0 and 1
    scores = evaluate(labels, clusters)
    assert scores["acc"] == pytest.approx(0.7)  # one of a's halves is unmatched
    assert scores["acc_many_to_one"] == scores["purity"] == 1.0
    assert scores["inverse_purity"] == pytest.approx(0.7)  # a's largest cluster holds 30 of 60
    assert scores["purity_f1"] == pytest.approx(2 * 0.7 / 1.7)


def test_merged_families_lower_purity_not_inverse_purity():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    clusters = [0] * 80 + [1] * 20  # a and b merged
    scores = evaluate(labels, clusters)
    assert scores["purity"] == pytest.approx(0.7) and scores["inverse_purity"] == 1.0


def test_label_free_report_counts_tiny_and_outsized_clusters():
    sizes = [100] * 8 + [2, 3] + [2000]
    assert size_flags(sizes) == {"tiny_clusters": 2, "tiny_below": 10.0, "outsized_clusters": 1,
                                 "outsized_above": 1000.0, "median_cluster_size": 100.0}
    clusters = pd.DataFrame({"cluster": np.repeat(np.arange(len(sizes)), sizes)})
    embeddings = np.random.default_rng(0).normal(size=(len(clusters), 8)).astype(np.float32)
    summary, _ = label_free_report(clusters, embeddings, k=3)
    assert summary["tiny_clusters"] == 2 and summary["outsized_clusters"] == 1
