"""04_cluster and 05_evaluate run headless (papermill) on a tiny toy run directory."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from protlab.demo import QUICK_PARAMS
from protlab.notebooks import run_notebook


@pytest.fixture(scope="module")
def toy_run(make_toy_run):
    """A run dir as 01 + 02 leave it (their stages' run(), without the notebooks)."""
    return make_toy_run()


def test_04_then_05(toy_run, tmp_path):
    run_notebook("04_cluster", {**QUICK_PARAMS["04_cluster"], "run_dir": str(toy_run)}, output_dir=tmp_path)
    clusters = pd.read_parquet(toy_run / "clusters.parquet")
    assert {"id", "cluster", "confidence", "probabilities"} <= set(clusters.columns)
    assert len(clusters) == 48 and clusters["method"].iloc[0] == "families"
    for method in ("families", "scan"):  # one fit gives the graph's families and the heads' own clusters
        assert (toy_run / "clusters" / f"{method}.parquet").exists()
        info = json.loads((toy_run / "clusters" / f"{method}.json").read_text())
        assert info["method"] == method and info["neighbors"] == "mmseqs" and info["n_clusters"] == 4
    assert (toy_run / "clusters" / "scan_model.pt").exists()
    assert (toy_run / "figures" / "cluster_sizes_families.png").exists()

    run_notebook("05_evaluate", {**QUICK_PARAMS["05_evaluate"], "run_dir": str(toy_run)}, output_dir=tmp_path)
    metrics = json.loads((toy_run / "metrics.json").read_text())
    assert metrics["method"] == "families" and metrics["agreement_heads_families"] >= 0.9
    assert metrics["nmi"] >= 0.9 and metrics["acc"] >= 0.9 and metrics["ari"] >= 0.8
    methods = {row["method"] for row in metrics["per_method"]}
    assert methods == {"families", "scan", "kmeans", "pca_kmeans"}  # baselines computed when missing
    assert sorted(p.name for p in (toy_run / "baselines").glob("*.parquet")) == ["kmeans.parquet", "pca_kmeans.parquet"]
    assert not (toy_run / "clusters" / "kmeans.parquet").exists()  # 05 writes its own folder, not 04's
    table = pd.read_csv(toy_run / "metrics_table.csv")
    assert set(table["method"]) == methods
    assert (toy_run / "figures" / "matched_confusion.html").exists()
    assert (toy_run / "figures" / "matched_confusion.png").exists()


def test_05_without_clusters_says_what_to_run(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="04_cluster"):
        run_notebook("05_evaluate", {"run_dir": str(tmp_path / "empty")}, output_dir=tmp_path)
