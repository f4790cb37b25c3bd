"""01_curate.ipynb executed by papermill with tiny parameters, asserting on what it writes."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from protlab.notebooks import run_notebook

pytestmark = pytest.mark.slow


def test_curate_notebook_on_toy(tmp_path):
    run_dir = tmp_path / "run"
    run_notebook("01_curate", {"run_dir": str(run_dir), "n_families": 4, "members_per_family": 10,
                               "seed": 2, "split_method": "kmer", "split_identity": 0.9},
                 output_dir=tmp_path / "executed")
    proteins = pd.read_parquet(run_dir / "proteins.parquet")
    assert len(proteins) == 40 and proteins["id"].is_unique
    for column in ("id", "sequence", "label", "split", "length", "cluster", "family", "site", "text",
                   "protein_name", "function", "subcellular_location", "similarity", "existence"):
        assert column in proteins.columns, column
    assert proteins["family"].nunique() == 4
    assert set(proteins["split"]) <= {"train", "valid", "test"}
    assert proteins.groupby("cluster")["split"].nunique().eq(1).all()
    assert (proteins["length"] == proteins["sequence"].str.len()).all()
    site = proteins.iloc[0]["site"]
    assert 3 <= len(site) <= 5
    report = json.loads((run_dir / "curation_report.json").read_text())
    assert report["input"] == 40 and report["kept"] == 40 and report["format"] == "toy"
    assert report["split"]["method"] == "kmer" and "protclip_sampling" not in report
    for name in ("curate_lengths", "curate_family_sizes", "curate_composition"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 1000
        assert (run_dir / "figures" / f"{name}.html").exists()


def test_curate_notebook_on_real_pfam(tmp_path, shared_data):
    run_dir = tmp_path / "run"
    run_notebook("01_curate", {"run_dir": str(run_dir),
                               "source": str(shared_data / "pfam" / "pfam_shared_labeled.fasta"),
                               "max_records": 300, "min_length": 40},
                 output_dir=tmp_path / "executed")
    proteins = pd.read_parquet(run_dir / "proteins.parquet")
    report = json.loads((run_dir / "curation_report.json").read_text())
    assert report["format"] == "fasta" and report["input"] == 300
    assert len(proteins) == report["kept"] and 250 <= len(proteins) <= 300
    assert proteins["label"].str.fullmatch(r"PF\d{5}").all() and proteins["label"].nunique() > 20
    assert (proteins["length"] >= 40).all()
    assert proteins.groupby("cluster")["split"].nunique().eq(1).all()
    assert "family" not in proteins.columns
