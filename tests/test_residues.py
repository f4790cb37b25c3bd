"""Critical-residue tables, metrics, the conservation baseline, SITE records and bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from protlab.residues import analysis as residues
from protlab.curate.records import Structure
from protlab.core.errors import InputError, ProtlabError
from protlab.residues.network import ClusterConfig, ResidueClusterNet, load_network



pytestmark = pytest.mark.usefixtures("one_torch_thread")

def tiny_model(n_classes=2) -> ResidueClusterNet:
    torch.manual_seed(0)
    return ResidueClusterNet(ClusterConfig(n_classes=n_classes, hidden=16,
                                           class_names=[f"c{i}" for i in range(n_classes)])).eval()


def test_precision_at_k_and_random_expectation():
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.0, 0.2])
    assert residues.precision_at_k(scores, [0, 2, 5], 2) == 1.0
    assert residues.precision_at_k(scores, [0, 2, 5], 3) == pytest.approx(2 / 3)
    assert residues.precision_at_k(scores, [1, 4], 2) == 0.0
    assert residues.random_precision_at_k(6, [0, 2, 5], 3) == 0.5
    with pytest.raises(InputError):
        residues.precision_at_k(scores, [0], 0)


def test_fmax_on_known_predictions():
    targets = np.array([[1, 0, 1], [0, 1, 0]])
    assert residues.fmax(targets.astype(float), targets) == pytest.approx(1.0)
    probs = np.array([[0.9, 0.8, 0.2], [0.1, 0.7, 0.6]])
    # at t in (0.6, 0.7]: predictions {0,1} and {1}: precision (0.5 + 1)/2, recall (0.5 + 1)/2 -> F = 0.75
    assert residues.fmax(probs, targets) == pytest.approx(0.75)


def test_conservation_with_alignment_and_alignment_free():
    seqs = ["ACDE", "ACDF", "WCDG"]
    align = {"a": np.array([0, 1, 2, 3]), "b": np.array([0, 1, 2, 3]), "c": np.array([0, 1, 2, -1])}
    out = residues.conservation_scores(seqs, [0, 0, 0], alignment=align, ids=["a", "b", "c"])
    assert out[0][1] == pytest.approx(1.0) and out[0][2] == pytest.approx(1.0)  # fully conserved columns
    assert out[0][0] < 1.0 and out[2][3] == 0.0                                 # mixed column; unaligned
    free = residues.conservation_scores(["AACDEK", "GACDEW", "TTTTTT"], ["x", "x", "y"])
    assert free[0][2] == 1.0 and free[0][0] == 0.0  # 'ACD' shared with the other family member
    assert (free[2] == 1.0).all()                   # alone in its family: compared with itself


def test_critical_residue_table_and_toy_metrics():
    inputs = residues.toy_inputs(n_families=2, members_per_family=3, length_range=(50, 60))
    m = tiny_model()
    table = residues.critical_residues(m, inputs.structures[0])
    assert list(table.columns) == ["rank", "chain", "residue_number", "residue", "score", "cluster", "iteration",
                                   "index"]
    assert len(table) == len(inputs.structures[0])
    assert table["score"].is_monotonic_decreasing and table["score"].iloc[0] == pytest.approx(1.0)
    assert residues.critical_residues(m, inputs.structures[0], top_k=5).shape[0] == 5
    ex = residues.explain_structures(m, inputs.structures)
    ids = [e.id for e in ex]
    metrics = residues.site_metrics(ex, [inputs.sites[i] for i in ids], baseline=[inputs.baseline[i] for i in ids])
    assert metrics["n_proteins"] == 6
    site = inputs.sites[ids[0]]
    assert metrics["random_precision_at_k"] == pytest.approx(
        np.mean([len(inputs.sites[i]) / len(e.importance) for i, e in zip(ids, ex)]))
    # the toy's site residues are invariant in their family: conservation ranks them at the top
    assert metrics["baseline_precision_at_k"] > 0.3
    assert all(0 <= r["precision_at_k"] <= 1 for r in metrics["per_protein"]) and len(site) >= 3


def test_held_out_restricts_toy_inputs_to_unseen_proteins(tmp_path):
    kw = dict(n_families=2, members_per_family=5, length_range=(50, 60))
    model, _ = residues.get_model(None, tmp_path, epochs=1, hidden=16, progress=False, **kw)
    loaded = load_network(tmp_path / "checkpoints" / "residue_cluster.pt")
    assert loaded.meta["held_out"] == model.meta["held_out"] and len(model.meta["held_out"]) == 2
    inputs = residues.toy_inputs(**kw)
    kept = residues.held_out(inputs, loaded)
    assert [s.id for s in kept.structures] == [s.id for s in inputs.structures if s.id in model.meta["held_out"]]
    assert set(kept.sites) == set(kept.baseline) == set(kept.labels) == set(model.meta["held_out"])
    loaded.meta = {}                                   # a model without the record: inputs unchanged
    assert residues.held_out(inputs, loaded) is inputs


def test_training_learns_toy_families():
    inputs = residues.toy_inputs(n_families=3, members_per_family=5, length_range=(50, 60), families_per_superfamily=1)
    labels = [inputs.labels[s.id] for s in inputs.structures]
    result = residues.train_residue_model(inputs.structures, labels, epochs=10, batch_size=4, hidden=32, lr=5e-3,
                                          progress=False)
    assert result.history[-1]["train_accuracy"] >= 0.9
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.classes == sorted(set(labels)) and result.model.config.class_names == result.classes


def test_multilabel_training_reports_fmax():
    inputs = residues.toy_inputs(n_families=2, members_per_family=3, length_range=(50, 60))
    labels = [["1.1.1.1", "2.7.11.1"] if inputs.labels[s.id].startswith("F00") else ["3.4.21.4"]
              for s in inputs.structures]
    result = residues.train_residue_model(inputs.structures, labels, task="multi", epochs=2, hidden=16,
                                          progress=False)
    assert result.classes == ["1.1.1.1", "2.7.11.1", "3.4.21.4"]
    assert 0.0 <= result.history[-1]["train_fmax"] <= 1.0


def test_site_records_protein_residues_only(shared_data):
    records = residues.load_site_records(shared_data / "structures" / "site_records.tsv")
    assert not records["resname"].isin(["HOH", "DT", "NA", "CA"]).any()
    raw = pd.read_csv(shared_data / "structures" / "site_records.tsv", sep="\t", dtype=str)
    assert (raw["resname"] == "HOH").any() and len(records) < len(raw)
    from protlab.curate.structures import read_structure

    s = read_structure(shared_data / "structures" / "pdb" / "1k6p.pdb", chain="A")
    idx = residues.site_indices(s, records)
    labels = s.residue_labels()
    assert {"20", "21", "83"} <= {labels[i] for i in idx}       # LYS20, GLU21, ASN83 of site AC1
    assert all(s.res_names[i] != "HOH" for i in idx)


@pytest.mark.parametrize("case", ["no_protein_chain", "missing_chain", "single_residue", "nan"])
def test_bad_structures_give_clear_errors(tmp_path, case):
    from protlab.curate.structures import read_structure

    m = tiny_model()
    atom = "ATOM  {n:5d}  CA  ALA A{r:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C\n"
    if case == "no_protein_chain":
        path = tmp_path / "water.pdb"
        path.write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\nEND\n")
        with pytest.raises(ProtlabError, match="protein"):
            residues.critical_residues(m, read_structure(path))
    elif case == "missing_chain":
        path = tmp_path / "three.pdb"
        path.write_text("".join(atom.format(n=i, r=i, x=3.8 * i, y=0, z=0) for i in range(1, 4)) + "END\n")
        with pytest.raises(ProtlabError, match="chain 'Q'"):
            read_structure(path, chain="Q")
    elif case == "single_residue":
        path = tmp_path / "one.pdb"
        path.write_text(atom.format(n=1, r=1, x=0, y=0, z=0) + "END\n")
        with pytest.raises(InputError, match="at least 3"):
            residues.critical_residues(m, read_structure(path))
    else:
        ca = np.array([[0, 0, 0], [3.8, 0, 0], [np.nan, 1, 0], [7, 3, 0]], dtype=np.float32)
        s = Structure(id="nan", chain="A", res_ids=np.arange(1, 5), ins_codes=np.array(["", "", "A", ""]),
                      res_names=np.array(["ALA"] * 4), sequence="AAAA", ca=ca, centroid=ca)
        with pytest.raises(InputError, match="NaN.*residues 3A"):
            residues.critical_residues(m, s)


def test_nmr_ensemble_uses_model_one(shared_data):
    from protlab.curate.structures import read_structure

    s = read_structure(shared_data / "structures" / "pdb" / "1LCD.pdb")
    assert any("model 1" in n for n in s.notes)
    table = residues.critical_residues(tiny_model(), s)
    assert len(table) == len(s) and table["score"].max() == pytest.approx(1.0)


def test_fine_tune_on_new_classes_reuses_the_encoder():
    inputs = residues.toy_inputs(n_families=2, members_per_family=2, length_range=(50, 60))
    init = tiny_model(2)
    new_labels = ["x", "y", "z", "x"]
    result = residues.train_residue_model(inputs.structures, new_labels, epochs=0, init=init, hidden=16,
                                          progress=False)
    assert result.classes == ["x", "y", "z"] and result.model.config.n_classes == 3
    assert torch.equal(result.model.aa_embed.weight, init.aa_embed.weight)
    assert torch.equal(result.model.layers[2].w1.weight, init.layers[2].w1.weight)


def test_pfam_domain_structures_carry_family_labels(shared_data):
    structures, labels = residues.pfam_domain_inputs(shared_data / "structures" / "pfam_domains")
    assert len(structures) == 20 and len(set(labels)) == 20 and all(lab.startswith("PF") for lab in labels)
    assert all(len(s) >= 40 and s.chain == "A" for s in structures)


def test_directory_input_skips_files_without_protein(tmp_path):
    atom = "ATOM  {n:5d}  CA  ALA A{r:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C\n"
    (tmp_path / "good.pdb").write_text("".join(atom.format(n=i, r=i, x=3.8 * i, y=(i % 2) * 1.5, z=0)
                                               for i in range(1, 8)) + "END\n")
    (tmp_path / "water.pdb").write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\n")
    inputs = residues.load_inputs(tmp_path)
    assert [s.id for s in inputs.structures] == ["good"] and list(inputs.skipped) == [str(tmp_path / "water.pdb")]
    (tmp_path / "good.pdb").unlink()
    with pytest.raises(InputError, match="no usable protein structure.*water.pdb"):
        residues.load_inputs(tmp_path)
