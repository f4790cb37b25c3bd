"""Large clusterings keep each protein's top few probabilities; 05 scores them as the whole ones."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from protlab.cluster.methods import Clustering
from protlab.cluster.tables import cluster_count, clustering_problem, clusters_frame, probability_matrix
from protlab.evaluate.metrics import matched_aupr


def _clustering(n=600, k=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 4.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return Clustering(labels=p.argmax(1), probabilities=p.astype(np.float32), method="scan"), labels


def test_above_the_limit_the_top_five_are_kept_largest_first():
    result, _ = _clustering()
    whole = clusters_frame(range(600), result)
    top = clusters_frame(range(600), result, dense_max=1000)
    assert "probabilities" in whole.columns and "probabilities" not in top.columns
    assert top["top_clusters"].map(len).eq(5).all()
    row = top.iloc[7]
    expected = np.argsort(-result.probabilities[7])[:5]
    assert row["top_clusters"].tolist() == expected.tolist() and row["top_clusters"][0] == row["cluster"]
    np.testing.assert_allclose(row["top_probabilities"], result.probabilities[7, expected])
    assert clustering_problem(top, None) is None and cluster_count(top) == cluster_count(whole) == 40
    sparse = probability_matrix(top)
    assert sparse.shape == (600, 40) and sparse.nnz == 3000


def test_05_scores_the_top_few_as_the_whole_probabilities():
    result, truth = _clustering()
    names = np.array([f"family{t}" for t in truth])
    whole = matched_aupr(names, result.labels, probability_matrix(clusters_frame(range(600), result)))
    top = matched_aupr(names, result.labels, probability_matrix(clusters_frame(range(600), result, dense_max=1000)))
    assert top == pytest.approx(whole, abs=0.01) and whole > 0.5


def test_unequal_top_lists_are_refused():
    result, _ = _clustering(n=10, k=8)
    frame = clusters_frame(range(10), result, dense_max=10)
    frame.at[3, "top_clusters"] = np.array([1, 2], dtype=np.int32)
    assert "top_clusters" in clustering_problem(frame, None)


def test_a_run_storing_the_top_few_is_scored_by_05(tmp_path, monkeypatch):
    import protlab
    from protlab.cluster import tables
    from protlab.core.rundir import RunDir
    from protlab.curate.toy import make_universe
    from protlab.embed.kmer import KmerEncoder

    proteins = make_universe(6, 20, seed=2).proteins
    run = RunDir(tmp_path)
    run.save_proteins(proteins[["id", "sequence", "label"]].assign(split="train"))
    run.save_embeddings(proteins["id"], KmerEncoder(dim=24).embed(proteins["sequence"].tolist()), encoder="kmer3")
    monkeypatch.setattr(tables, "DENSE_MAX", 100)
    protlab.cluster.run(tmp_path, method="kmeans", n_clusters=6, map_max_points=0)
    table = pd.read_parquet(run.path("clusters"))
    assert "top_clusters" in table.columns and "probabilities" not in table.columns
    protlab.evaluate.run(tmp_path)
    metrics = run.load_json("metrics")
    scores = {row["method"]: row for row in metrics["per_method"]}["kmeans"]
    assert metrics["method"] == "kmeans" and metrics["aupr"] == scores["aupr"]
    assert scores["acc"] > 0.9 and 0.9 < scores["aupr"] <= 1.0
