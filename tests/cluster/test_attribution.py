"""Residue attribution of the clustering network, and the conservation check it is judged by."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import protlab
from protlab.cluster.attribution import attribute, spread_over_residues
from protlab.cluster.scan import ScanClusterer
from protlab.core.errors import InputError
from protlab.core.mmseqs import mmseqs_available
from protlab.core.rundir import RunDir
from protlab.curate.formats import read_proteins
from protlab.embed.kmer import KmerEncoder
from protlab.evaluate.conservation import (FamilyConservation, column_information, enrichment, residue_columns,
                                           top_columns, top_share)

needs_mmseqs = pytest.mark.skipif(not mmseqs_available(), reason="mmseqs (MMseqs2) is not installed")
FAMILIES = ["PF00018", "PF00072", "PF00439", "PF07686"]  # real alignments in pfam/kortemme_natural


def test_alignment_weight_is_spread_by_blosum62_share_at_the_query_positions():
    alignments = {"query": np.array([0, 1]), "qstart": np.array([1, 3]),
                  "qaln": np.array(["ACDE", "W-K"], dtype=object), "taln": np.array(["ACWE", "WLK"], dtype=object)}
    # query 0: A-A 4, C-C 9, D-W -4, E-E 5 (total 14); query 1 starts at its residue 3: W-W 11, K-K 5 (total 16)
    values = spread_over_residues(alignments, np.array([14.0, 32.0]), np.array([0, 4]), 4 + 6)
    np.testing.assert_allclose(values[:4], [4, 9, -4, 5])
    np.testing.assert_allclose(values[4:], [0, 0, 22, 10, 0, 0])


def test_an_alignment_without_positive_score_gives_nothing():
    alignments = {"query": np.array([0]), "qstart": np.array([1]),
                  "qaln": np.array(["DW"], dtype=object), "taln": np.array(["WD"], dtype=object)}
    assert not spread_over_residues(alignments, np.array([5.0]), np.array([0]), 2).any()


def test_information_content_and_top_columns():
    rows = ["AC-W", "AD-W", "AE-Y", "AF-W"]
    info = column_information(rows)
    assert info[0] == pytest.approx(np.log2(20))  # one residue everywhere
    assert info[1] == pytest.approx(np.log2(20) - 2)  # four residues equally often
    assert info[2] == 0.0  # gaps only
    assert info[1] < info[3] < info[0]
    assert top_columns(info, 0.25).tolist() == [True, False, False, False]
    assert residue_columns("-A--CD-").tolist() == [1, 4, 5]
    with pytest.raises(InputError, match="differ in length"):
        column_information(["AC", "A"])


def test_enrichment_is_the_top_share_rate_over_the_random_rate():
    in_top = [np.array([True, False, False, False, False, False, False, False, False, False])]
    assert top_share(np.arange(10.0), 0.1).tolist() == [False] * 9 + [True]
    result = enrichment([np.arange(10.0)[::-1]], in_top)  # the top residue is the conserved one
    assert result["rate"] == 1.0 and result["random_rate"] == 0.1 and result["enrichment"] == pytest.approx(10.0)
    assert enrichment([np.arange(10.0)], in_top)["rate"] == 0.0


def test_family_member_must_be_the_sequence_given(tmp_path):
    path = tmp_path / "fam.fasta"
    path.write_text(">a/1-3\nAC-D\n>b/1-2\nA--D\n")
    family = FamilyConservation(path, fraction=0.25)
    assert family.residues_in_top("a/1-3", "ACD").tolist() == [True, False, False]
    assert family.residues_in_top("missing") is None
    with pytest.raises(InputError, match="fam.fasta: record 'b/1-2'"):
        family.residues_in_top("b/1-2", "AW")


@pytest.fixture(scope="module")
def pfam_run(shared_data, tmp_path_factory):
    """04 with its defaults on 4 real Pfam families (60 domains each), k-mer embeddings."""
    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    frame = frame[frame["label"].isin(FAMILIES)].groupby("label").head(60).reset_index(drop=True)
    run_dir = tmp_path_factory.mktemp("attribution_run")
    run = RunDir(run_dir)
    run.save_proteins(frame[["id", "sequence", "label"]].assign(split="train"))
    run.save_embeddings(frame["id"], KmerEncoder(dim=64).embed(frame["sequence"].tolist()), encoder="kmer3")
    result = protlab.cluster.run(run_dir, n_clusters=4, map_max_points=0, epochs=5, self_label_epochs=2)
    return run_dir, frame, result


def _copy_inputs(run_dir, tmp_path) -> RunDir:
    """A fresh run directory with the fixture run's proteins and embeddings (04 not yet run)."""
    run = RunDir(tmp_path)
    run.save_proteins(RunDir(run_dir).load_proteins())
    ids, emb, _ = RunDir(run_dir).load_embeddings()
    run.save_embeddings(ids, emb, encoder="kmer3")
    return run


@needs_mmseqs
def test_04_writes_one_attribution_per_residue(pfam_run):
    run_dir, frame, result = pfam_run
    table = pd.read_parquet(RunDir(run_dir).path("attribution"))
    assert list(table.columns) == ["id", "position", "residue", "attribution"]
    assert len(table) == frame["sequence"].str.len().sum()
    first = table[table["id"] == frame["id"].iloc[0]]
    assert first["position"].tolist() == list(range(1, len(frame["sequence"].iloc[0]) + 1))
    assert "".join(first["residue"]) == frame["sequence"].iloc[0]
    assert np.isfinite(table["attribution"]).all() and table["attribution"].std() > 0
    info = json.loads(RunDir(run_dir).path("attribution_meta").read_text())
    assert info["head_agrees_with_clusters"] >= 0.95 and info["clusters_method"] == "families"
    assert result.record.results["attribution"]["written"] is True
    assert RunDir(run_dir).clustering_methods() == ["families", "scan"]  # 05 scores clusterings, not these tables


@needs_mmseqs
def test_attribution_finds_the_conserved_columns_of_real_families(pfam_run, shared_data):
    """The top tenth of each domain's residues by attribution sits in its family's most
    informative tenth of columns at over twice the rate of its residues at random."""
    run_dir, frame, _ = pfam_run
    table = pd.read_parquet(RunDir(run_dir).path("attribution"))
    ratios = []
    for family, members in frame.groupby("label"):
        conservation = FamilyConservation(shared_data / "pfam" / "kortemme_natural" / f"{family}.align.80.fasta")
        scores, masks = [], []
        for pid, seq in zip(members["id"], members["sequence"]):
            mask = conservation.residues_in_top(pid, seq)
            if mask is not None:
                scores.append(table.loc[table["id"] == pid, "attribution"].to_numpy())
                masks.append(mask)
        ratios.append(enrichment(scores, masks)["enrichment"])
    assert np.mean(ratios) >= 2.5, ratios


@needs_mmseqs
def test_a_new_protein_is_attributed_without_itself_in_the_reference(pfam_run):
    run_dir, frame, _ = pfam_run
    model = ScanClusterer.load(RunDir(run_dir).path("scan_model"))
    clusters = pd.read_parquet(RunDir(run_dir).path("clusters"))["cluster"].to_numpy()
    emb = RunDir(run_dir).load_embeddings()[1]
    seqs = frame["sequence"].tolist()
    as_member, _ = attribute(model, frame["id"][:3], seqs[:3], clusters[:3], emb[:3], reference_index=[0, 1, 2])
    as_new, _ = attribute(model, frame["id"][:3], seqs[:3], clusters[:3], emb[:3])
    # as a new protein it also aligns to itself: its evidence differs from a member's
    assert not np.allclose(as_member["attribution"], as_new["attribution"])
    with pytest.raises(InputError, match="clusters must lie in 0..3"):
        attribute(model, frame["id"][:1], seqs[:1], [7], emb[:1])


@needs_mmseqs
def test_attribution_max_switches_it_off_and_kmeans_refuses_it(pfam_run, tmp_path):
    run_dir, frame, _ = pfam_run
    run = _copy_inputs(run_dir, tmp_path)
    result = protlab.cluster.run(tmp_path, n_clusters=4, map_max_points=0, epochs=2, self_label_epochs=0,
                                 attribution_max=10)
    assert result.record.results["attribution"] == {"written": False,
                                                    "why": f"{len(frame)} proteins > attribution_max=10"}
    assert not run.path("attribution").exists()
    with pytest.raises(InputError, match="attribution_max only act"):
        protlab.cluster.run(tmp_path, method="kmeans", n_clusters=4, attribution_max=10)


@needs_mmseqs
def test_family_profiles_name_typical_members_and_strip_the_representative(pfam_run):
    run_dir, frame, result = pfam_run
    run = RunDir(run_dir)
    summary = pd.read_parquet(run.path("family_profiles"))
    clusters = pd.read_parquet(run.path("clusters"))
    assert summary["size"].sum() == len(frame) and len(summary) == 4
    for row in summary.itertuples():
        members = clusters[clusters["cluster"] == row.cluster]
        assert row.representative == row.most_typical[0]
        assert members.set_index("id").loc[row.representative, "confidence"] == members["confidence"].max()
        assert members.set_index("id").loc[row.least_typical[0], "confidence"] == members["confidence"].min()
    strips = pd.read_parquet(run.path("family_strips"))
    by_id = frame.set_index("id")["sequence"]
    covered = []
    for row in summary.itertuples():
        strip = strips[strips["cluster"] == row.cluster]
        assert "".join(strip["residue"]) == by_id[row.representative]
        assert strip["members"].max() <= row.size
        covered.append(strip["members"].median() / row.size)
    # members too distant to align to the representative (V-set domains) leave gaps
    assert max(covered) >= 0.8 and min(covered) >= 0.15, covered
    assert "family_profiles" in result.figures


@needs_mmseqs
def test_kmeans_rerun_removes_the_attribution_of_other_clusters(pfam_run, tmp_path):
    run_dir, _, _ = pfam_run
    run = _copy_inputs(run_dir, tmp_path)
    protlab.cluster.run(tmp_path, n_clusters=4, map_max_points=0, epochs=2, self_label_epochs=0)
    assert run.path("attribution").exists() and run.path("family_strips").exists()
    result = protlab.cluster.run(tmp_path, method="kmeans", n_clusters=4, map_max_points=0)
    assert result.record.results["attribution"]["written"] is False
    assert not run.path("attribution").exists() and not run.path("family_strips").exists()
    assert len(pd.read_parquet(run.path("family_profiles"))) == 4


def test_attribution_on_the_protein_structure_as_b_factors(shared_data, tmp_path):
    from protlab.cluster.views import export_attribution
    from protlab.curate.structures import read_structure

    path = shared_data / "structures" / "pfam_domains" / "PF00018_2O9S_A.pdb"
    sequence = read_structure(path).sequence
    domain = sequence[3:-3]  # the protein is a part of the chain
    run = RunDir(tmp_path)
    pd.DataFrame({"id": "SH3|x", "position": np.arange(1, len(domain) + 1), "residue": list(domain),
                  "attribution": np.arange(1, len(domain) + 1, dtype=np.float32)}).to_parquet(run.writable("attribution"))
    paths = export_attribution(tmp_path, "SH3|x", path)
    assert paths["html"].name == "attribution_SH3_x.html" and "3Dmol" in paths["html"].read_text()
    ca = [line for line in paths["pdb"].read_text().splitlines() if line.startswith("ATOM") and line[12:16] == " CA "]
    b = [float(line[60:66]) for line in ca]
    assert b[:3] == [0.0, 0.0, 0.0] and b[3:3 + len(domain)] == list(range(1, len(domain) + 1))
    assert "spectrum b" in paths["pml"].read_text() and "color bfactor" in paths["cxc"].read_text()
    with pytest.raises(InputError, match="no residue of protein 'other'"):
        export_attribution(tmp_path, "other", path)


@needs_mmseqs
def test_the_merges_that_meet_n_clusters_are_recorded(pfam_run, tmp_path):
    run_dir, frame, _ = pfam_run
    run = _copy_inputs(run_dir, tmp_path)
    result = protlab.cluster.run(tmp_path, n_clusters=3, map_max_points=0, epochs=2, self_label_epochs=0,
                                 attribution_max=0)
    steps = result.record.results["fit_steps"]
    assert [list(step) for step in steps] == [["merged"]] and steps[0]["merged"]["why"] == "smallest"
    assert json.loads(run.clustering("families", ".json").read_text())["families_fit_steps"] == steps
    assert len(pd.read_parquet(run.path("clusters"))["cluster"].unique()) == 3
