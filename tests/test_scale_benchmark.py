"""The natural-size Pfam sets and the scale benchmark of issue 12, at a small size."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_cluster_scale as scale  # noqa: E402
import pfam_natural_sets as sets  # noqa: E402
import synthetic_sets  # noqa: E402
import records  # noqa: E402


@pytest.fixture(autouse=True)
def _records_in_tmp(tmp_path, monkeypatch):
    """A benchmark run by a test writes its record under tmp_path, not benchmarks/results/."""
    monkeypatch.setattr(records, "RESULTS", tmp_path / "records")


def test_natural_sets_keep_every_family_at_natural_proportions(shared_data, tmp_path):
    sets.main(["--out", str(tmp_path), "--sizes", "3000"])
    labels = pd.read_csv(tmp_path / "natural_all.labels.tsv", sep="\t")
    fasta = (tmp_path / "natural_all.fasta").read_text().split("\n")
    ids, seqs = [h[1:] for h in fasta[0::2] if h], [s for s in fasta[1::2] if s]
    assert ids == labels["id"].tolist() and len(set(ids)) == len(ids) == len(set(seqs)) >= 100_000
    sizes = labels["label"].value_counts()
    assert len(sizes) == 30 and 45 <= sizes.min() <= 60 and 35_000 <= sizes.max() <= 40_000
    small = pd.read_csv(tmp_path / "natural_3000.labels.tsv", sep="\t")["label"].value_counts()
    assert set(small.index) == set(sizes.index) and small.min() >= 50
    big = sizes.index[:4]  # families above the floor keep their size ratios
    np.testing.assert_allclose(small[big] / small[big[0]], sizes[big] / sizes[big[0]], rtol=0.01)
    assert all(line.count(" ") == 0 for line in fasta[0::2])  # headers carry no label for 01 to read


def test_family_recovery_matches_families_to_clusters():
    labels = np.array(["a"] * 300 + ["b"] * 250 + ["c"] * 10)
    clusters = np.r_[np.zeros(300, int), np.ones(200, int), np.zeros(50, int), np.full(10, 2)]
    table = scale.family_recovery(labels, clusters).set_index("family")
    assert list(table.index) == ["a", "b"]  # families below 200 members are not judged
    assert scale.family_recovery(labels[-10:], clusters[-10:]).empty  # none to judge: an empty table
    assert table.loc["a", "recall"] == 1.0 and table.loc["a", "precision"] == pytest.approx(300 / 350)
    assert table.loc["b", "recall"] == pytest.approx(0.8) and table.loc["b", "precision"] == 1.0


@pytest.mark.slow
def test_scale_benchmark_runs_every_stage_without_labels(shared_data, tmp_path):
    sets.main(["--out", str(tmp_path / "sets"), "--sizes", "600", "--min-family", "10"])
    stem = tmp_path / "sets" / "natural_600"
    scale.main(["--sets", str(stem), "--out", str(tmp_path / "out"), "--estimate", "--spectral-max", "0"])
    row = json.loads((tmp_path / "out" / "scale.json").read_text())[0]
    # families of ~10 members are too small to count reliably; the quality targets are on sets
    # of 10^4 and more
    assert row["n"] >= 550 and row["pfam_families"] == 30 and 5 <= row["families_estimate"] <= 60
    assert row["families_nmi"] > 0.6 and row["families_nmi"] > row["kmeans_nmi"] + 0.1 and row["pfam_200"] == 0
    assert 0 <= row["scan_nmi"] <= 1
    assert 0.5 < row["heads_agreement"] <= 1 and row["heads_agreement_label_count"] == row["pfam_50"]
    for by in ("family", "label"):  # per family of >= 50 members: none such, no minimum
        assert (row[f"heads_agreement_min_{by}"] is None) == (row[f"heads_agreement_{by}_count"] == 0)
        assert 0 <= row[f"heads_agreement_under_90_{by}"] <= row[f"heads_agreement_{by}_count"]
    by_entry = row["artifacts_by_entry_mb"]  # the caches are left out; 04's clusterings are counted
    assert "cache" not in by_entry and 0 < row["clusters_mb"] == by_entry["clusters"] < row["artifacts_mb"]
    assert row["artifacts_mb"] == pytest.approx(sum(by_entry.values()), abs=0.1 * len(by_entry))
    for stage in ("curate", "embed", "cluster", "evaluate"):
        assert row[f"{stage}_s"] > 0 and 0.05 < row[f"{stage}_gb"] < 6
    record = json.loads((tmp_path / "records" / "bench_cluster_scale--natural_600-estimate.json").read_text())
    assert record["table"][0]["families_nmi"] == row["families_nmi"] and record["results"]["peak_rss_gib"] > 0


def test_synthetic_sets_refuse_sizes_that_do_not_fit_and_leave_no_half_set(tmp_path):
    """300 families of at least 50 members do not fit in 10 000 proteins: refused by name before
    any file is written; a set that fits is written whole, every family at least --min-size."""
    with pytest.raises(SystemExit, match="--n 10000 is too small for 300 families"):
        synthetic_sets.main(["--n", "10000", "--families", "300", "--out", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []
    synthetic_sets.main(["--n", "600", "--families", "5", "--min-size", "50", "--max-size", "300", "--out",
                         str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_600.fasta", "synthetic_600.labels.tsv"]
    labels = pd.read_csv(tmp_path / "synthetic_600.labels.tsv", sep="\t")["label"]
    assert len(labels) == 600 and labels.nunique() == 5 and labels.value_counts().min() >= 50
