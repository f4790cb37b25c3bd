"""Stage 07 end to end: the toy default, files given by path, the command line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import protlab
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.variants import stage as variants_stage
from protlab.variants.__main__ import main

WT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, one_torch_thread):
    run_dir = tmp_path_factory.mktemp("variants")
    return run_dir, protlab.variants.run(run_dir)


def test_toy_default_writes_table_metrics_figures_and_record(toy_run):
    run_dir, result = toy_run
    run = RunDir(run_dir)
    table = pd.read_parquet(run.path("variants"))
    assert list(table.columns) == ["mutant", "DMS_score", "independent", "potts", "score"]
    assert len(table) == 19 * len(result.wildtype) and table["score"].notna().all()
    metrics = json.loads(run.path("variant_metrics").read_text())
    assert metrics["alignment"]["depth"] == 100 and metrics["n_outside_alignment"] == 0
    for name in ("independent", "potts", "score"):
        entry = metrics["scorers"][name]
        assert entry["n"] == len(table) and entry["spearman"] > 0.5 and 0 < entry["ndcg"] <= 1
        assert 0 <= entry["top10_recall"] <= 1
    record = json.loads(run.stage_record("variants").read_text())
    assert record["stage"] == "variants" and "variants.parquet" in record["outputs"]
    assert set(result.figures) == {"effect_map", "mean_effect", "score_vs_dms"}
    assert (run_dir / "figures" / "variants_effect_map.png").is_file()


def write_inputs(tmp_path):
    (tmp_path / "wt.fasta").write_text(f">WT test protein\n{WT}\n")
    rng = np.random.default_rng(0)
    region = WT[5:30]  # positions 6..30 are modelled; 1..5 and 31..33 are outside the alignment
    rows = [f">WT/6-30\n{region}\n"]
    for k in range(40):
        seq = "".join(a if rng.random() < 0.8 else str(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"))) for a in region)
        rows.append(f">h{k}\n{seq}\n")
    (tmp_path / "homologs.fasta").write_text("".join(rows))
    (tmp_path / "dms.csv").write_text("mutant,DMS_score\nI6V,0.1\nA7G,-1.0\nK8R,0.3\nM1A,-0.5\nQ33E,0.0\n"
                                      "I6V:K8R,0.2\nF14W,-2.0\nR21K,0.4\n")
    return tmp_path


@pytest.fixture
def no_figure_files(monkeypatch):
    """Figures built but not exported (the toy test exports them): PNG export is slow."""
    monkeypatch.setattr(variants_stage, "save_figure", lambda fig, stem: {})


def test_files_masked_marginal_and_coverage(tmp_path, one_torch_thread, no_figure_files):
    inputs = write_inputs(tmp_path)
    result = protlab.variants.run(tmp_path / "run", wildtype=str(inputs / "wt.fasta"), variants=str(inputs / "dms.csv"),
                                  alignment=str(inputs / "homologs.fasta"), encoder="tiny",
                                  scorers=["independent", "potts", "masked_marginal"], potts_iterations=5,
                                  device="cpu")
    table, metrics = result.table, result.metrics
    assert metrics["n_outside_alignment"] == 2 and metrics["n_multiple"] == 1
    outside = table["mutant"].isin(["M1A", "Q33E"])
    assert table.loc[outside, ["independent", "potts"]].isna().all().all()
    assert table["masked_marginal"].notna().all() and table["score"].notna().all()  # another scorer covers them
    assert metrics["scorers"]["independent"]["n_scored"] == 6 and metrics["scorers"]["score"]["n"] == 8
    assert metrics["alignment"]["columns"] == 25 and metrics["alignment"]["n_eff"] > 1


@pytest.mark.parametrize("params, message", [
    ({"scorers": ["masked_marginal"]}, r"encoder=None"),
    ({"scorers": ["independent"], "wildtype": WT}, r"need homologs"),
    ({"score": "potts", "scorers": ["independent"]}, r"score='potts' is not among"),
    ({"wildtype": "MKXT"}, r"wildtype='MKXT' is not allowed.*'X' at position 3"),
    ({"scorers": ["dca"]}, r"scorers=\['dca'\]"),
])
def test_bad_parameters_are_refused_before_any_work(tmp_path, params, message):
    with pytest.raises(InputError, match=message):
        protlab.variants.run(tmp_path / "run", **params)
    assert not (tmp_path / "run").exists()


def test_alignment_of_another_protein_is_refused(tmp_path):
    inputs = write_inputs(tmp_path)
    with pytest.raises(InputError, match=r"homologs.fasta: record 1 \('WT/6-30'\) does not match the wild type"):
        protlab.variants.run(tmp_path / "run", wildtype="A" + WT[1:8] + "W" + WT[9:],
                             alignment=str(inputs / "homologs.fasta"), scorers=["independent"])


def test_command_line_prints_the_summary(tmp_path, capsys, no_figure_files):
    inputs = write_inputs(tmp_path)
    code = main(["--run-dir", str(tmp_path / "run"), "--wildtype", str(inputs / "wt.fasta"), "--variants",
                 str(inputs / "dms.csv"), "--alignment", str(inputs / "homologs.fasta"), "--scorers", "independent"])
    out = capsys.readouterr().out
    assert code == 0 and "variants: 8 variants scored; 2 unscored; alignment 41 sequences" in out
    assert "Spearman independent" in out and "record" in out
    assert main(["--run-dir", str(tmp_path / "run"), "--variants", str(inputs / "missing.csv")]) == 2


def test_structure_shows_the_mean_effect_on_the_wild_types_chain(tmp_path, shared_data, one_torch_thread,
                                                                 no_figure_files):
    from protlab.curate.structures import read_structure

    path = shared_data / "structures" / "pdb" / "1k6p.pdb"  # two chains of one protein
    wildtype = read_structure(path, chain="B").sequence
    result = protlab.variants.run(tmp_path, wildtype=wildtype, scorers=["masked_marginal"], encoder="tiny",
                                  structure=str(path), structure_chain="B")
    entry = result.metrics["structure"]
    assert entry["chain"] == "B" and entry["identity"] == 1.0 and entry["residues_mapped"] == len(wildtype)
    page = result.structure_view.read_text()
    assert result.structure_view.name == "variants_structure.html" and "chain B" in page
    assert page.count("viewer_protlab_1k6p.addLabel(") == 10 and "intolerant" in page
    pdb = result.structure_view.with_suffix(".pdb").read_text()
    assert "B-FACTOR: minus the mean score" in pdb and " B " in pdb  # chain B's atoms, scored
    assert result.structure_view.with_suffix(".pml").is_file() and result.structure_view.with_suffix(".cxc").is_file()


def test_a_structure_of_another_protein_is_refused_before_scoring(tmp_path, shared_data):
    path = shared_data / "structures" / "pdb" / "1aki.pdb"
    with pytest.raises(InputError, match=r"structure .*1aki.pdb: no chain is this wild type"):
        protlab.variants.run(tmp_path, wildtype=WT, scorers=["masked_marginal"], encoder="tiny", structure=str(path))
    assert not RunDir(tmp_path).path("variants").exists()


def test_family_lm_learns_the_toy_family(tmp_path, one_torch_thread, no_figure_files):
    """A language model trained on the toy family's members alone ranks the toy's profile
    fitness: it learnt which residues the family takes at each position."""
    result = protlab.variants.run(tmp_path, scorers=["family_lm"], family_lm_steps=300)
    entry = result.metrics["scorers"]["family_lm"]
    assert entry["n_scored"] == len(result.table) and entry["spearman"] > 0.2
    fit = entry["fit"]
    assert fit["steps"] == 300 and fit["last_loss"] < 0.6 * fit["first_loss"]
