"""The learned peer (PocketNet) measured beside 06: residue mapping, cache, metrics, absence."""
import json
import shutil
import sys
import types

import numpy as np
import pandas as pd
import pytest

from protlab import residues
from protlab.core.errors import InputError
from protlab.curate.records import Structure
from protlab.curate.structures import read_complex, read_structure
from protlab.residues import pocket_peer
from protlab.residues.features import baseline_scores, featurize
from protlab.residues.network import load_network
from protlab.residues.pockets import N_POCKET_FEATURES
from protlab.residues.explain import Explanation
from protlab.residues.sites import site_summary


class FakePredictor:
    """PocketNet's interface (``predict(path, chains=...).residue_scores``: ``"A:52B"`` → score):
    a residue's score is its position in the chain, and the last residue is left unlisted."""

    calls = 0

    def __init__(self, device="cpu"):
        self.device = device

    def predict(self, path, chains=None):
        FakePredictor.calls += 1
        s = read_structure(path, chain=chains[0])
        keys = [f"{c}:{label}" for c, label in zip(s.residue_chains(), s.residue_labels())][:-1]
        return types.SimpleNamespace(residue_scores={np.str_(k): float(i) for i, k in enumerate(keys)})


@pytest.fixture
def fake_pocketnet(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketnet", types.SimpleNamespace(PocketPredictor=FakePredictor,
                                                                        __version__="0.3.0"))
    monkeypatch.setattr(pocket_peer, "peer_available", lambda: True)
    FakePredictor.calls = 0


def test_peer_scores_follow_the_structures_residues_and_are_cached(fake_pocketnet, shared_data, tmp_path):
    structure = read_structure(shared_data / "structures" / "pdb" / "1k6p.pdb", chain="A")
    scores = pocket_peer.peer_scores([structure], tmp_path / "cache", progress=False)[structure.id]
    assert scores.dtype == np.float32 and len(scores) == len(structure)
    assert scores[:5].tolist() == [0, 1, 2, 3, 4] and scores[-1] == 0  # an unlisted residue scores 0
    again = pocket_peer.peer_scores([structure], tmp_path / "cache", progress=False)[structure.id]
    assert FakePredictor.calls == 1 and np.array_equal(again, scores)  # the second run reads the cache
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_without_pocketnet_there_are_no_peer_scores(monkeypatch, tmp_path):
    monkeypatch.setattr(pocket_peer, "peer_available", lambda: False)
    assert pocket_peer.peer_scores([], tmp_path) is None


def test_the_peer_is_measured_on_the_same_proteins_or_its_absence_said():
    def explanation(name, importance):
        n = len(importance)
        structure = Structure(id=name, chain="A", res_ids=np.arange(1, n + 1), ins_codes=np.array([""] * n),
                              res_names=np.array(["ALA"] * n), sequence="A" * n, ca=np.zeros((n, 3), np.float32),
                              centroid=np.zeros((n, 3), np.float32))
        return Explanation(structure=structure, importance=np.asarray(importance, float), iteration=np.zeros(n),
                           cluster=np.zeros(n), clusters=pd.DataFrame(), probabilities=np.asarray(importance),
                           classes=["site"])

    explanations = [explanation("a", [0.9, 0.1, 0.2, 0.8]), explanation("b", [0.1, 0.2, 0.9, 0.3])]
    sites = {"a": [0, 3], "b": [0, 1]}
    peer = {"a": np.array([0.0, 1.0, 1.0, 0.0]), "b": np.array([1.0, 1.0, 0.0, 0.0])}
    summary = site_summary(explanations, sites, peer=peer, peer_name=pocket_peer.PEER)
    assert summary["precision_at_k"] == pytest.approx(0.5) and summary["peer_precision_at_k"] == pytest.approx(0.5)
    assert summary["peer"] == pocket_peer.PEER and summary["peer_n_proteins"] == 2
    absent = site_summary(explanations, sites, peer_note=pocket_peer.ABSENT)
    assert absent["peer_note"] == pocket_peer.ABSENT and "peer_precision_at_k" not in absent


def test_peer_columns_are_the_score_its_rank_in_the_protein_and_its_10A_mean():
    ca = np.array([[0, 0, 0], [5, 0, 0], [30, 0, 0], [34, 0, 0]], dtype=np.float32)
    columns = pocket_peer.peer_columns(np.array([0.2, 0.8, 0.2, 0.0]), ca)
    assert columns.shape == (4, pocket_peer.N_PEER_FEATURES)
    assert columns[:, 0] == pytest.approx([0.2, 0.8, 0.2, 0.0])
    assert columns[:, 1] == pytest.approx([0.5, 1.0, 0.5, 0.0])  # tied scores share their rank
    assert columns[:, 2] == pytest.approx([0.5, 0.5, 0.1, 0.1])  # residues 0-1 and 2-3 are within 10 A
    with pytest.raises(InputError, match="3 PocketNet scores for 4 residues"):
        pocket_peer.peer_columns(np.zeros(3), ca)


def test_peer_columns_go_before_the_pocket_block(ligand_structures, tmp_path):
    structure = read_complex(ligand_structures / "1G9V_RQ3_protein.pdb")
    scores = {structure.id: np.linspace(0, 1, len(structure), dtype=np.float32)}
    plain, = featurize([structure], pockets=True, cache_dir=tmp_path)
    with_peer, = featurize([structure], pockets=True, cache_dir=tmp_path, peer=scores)
    assert with_peer.feats.shape[1] == plain.feats.shape[1] + pocket_peer.N_PEER_FEATURES
    assert np.array_equal(baseline_scores(with_peer), baseline_scores(plain))  # the pocket block is still last
    cut = plain.feats.shape[1] - 2 * N_POCKET_FEATURES
    columns = pocket_peer.peer_columns(scores[structure.id], plain.ca)
    assert np.array_equal(with_peer.feats[:, cut:cut + pocket_peer.N_PEER_FEATURES], columns)
    assert np.array_equal(np.delete(with_peer.feats, np.s_[cut:cut + pocket_peer.N_PEER_FEATURES], 1), plain.feats)


@pytest.fixture
def ligand_structures(shared_data):
    return shared_data / "structures" / "ligand_sites" / "structures"


@pytest.fixture
def five_complexes(ligand_structures, tmp_path):
    folder = tmp_path / "structures"
    folder.mkdir()
    for name in ("1G9V_RQ3", "1GKC_NFH", "1HNN_SKF", "1HQ2_PH2", "1IG3_VIB"):
        shutil.copy(ligand_structures / f"{name}_protein.pdb", folder)
    split = tmp_path / "split.tsv"
    split.write_text("id\tsplit\n" + "".join(f"{p.stem}\t{'test' if n >= 3 else 'train'}\n"
                                             for n, p in enumerate(sorted(folder.glob("*.pdb")))))
    return folder, split


def _sites_run(run_dir, folder, split, shared_data, **params):
    return residues.run(run_dir, structures=str(folder), split=str(split), epochs=1, hidden=16, max_views=1, top_k=5,
                        sites=str(shared_data / "structures" / "ligand_sites" / "binding_sites_primary.tsv"),
                        cache_dir=str(run_dir.parent / "graphs"), **params)


def test_a_site_model_learns_from_the_peer_and_needs_it_where_it_is_applied(fake_pocketnet, five_complexes,
                                                                              shared_data, tmp_path, monkeypatch):
    folder, split = five_complexes
    result = _sites_run(tmp_path / "run", folder, split, shared_data)
    assert result.model.config.peer_features and FakePredictor.calls == 5  # every structure, trained on or not
    record = json.loads((tmp_path / "run" / "residues.json").read_text())["results"]
    metrics = json.loads((tmp_path / "run" / "residue_metrics.json").read_text())
    assert record["peer_features"] is True and metrics["peer"] == pocket_peer.PEER and metrics["peer_n_proteins"] == 2
    assert (tmp_path / "graphs" / "pocketnet").is_dir()  # beside the graphs: other runs on these files reuse them
    checkpoint = str(tmp_path / "run" / "checkpoints" / "residue_cluster.pt")
    assert load_network(checkpoint).config.peer_features
    applied = residues.run(tmp_path / "applied", structures=str(folder), checkpoint=checkpoint, max_views=1,
                           cache_dir=str(tmp_path / "graphs"),
                           sites=str(shared_data / "structures" / "ligand_sites" / "binding_sites_primary.tsv"))
    assert FakePredictor.calls == 5 and applied.metrics["peer_n_proteins"] == 5  # from the cache, measured there too
    monkeypatch.setattr(pocket_peer, "peer_available", lambda: False)
    with pytest.raises(InputError, match="trained with PocketNet's residue scores as input features"):
        residues.run(tmp_path / "elsewhere", structures=str(folder), checkpoint=checkpoint, max_views=1)


def test_measure_only_scores_the_held_out_structures_and_trains_without_them(fake_pocketnet, five_complexes,
                                                                           shared_data, tmp_path):
    folder, split = five_complexes
    result = _sites_run(tmp_path / "run", folder, split, shared_data, peer="measure")
    assert not result.model.config.peer_features and FakePredictor.calls == 2
    assert result.metrics["peer_n_proteins"] == 2
    off = _sites_run(tmp_path / "off", folder, split, shared_data, peer="off")
    assert FakePredictor.calls == 2 and "peer" not in off.metrics and "peer_note" not in off.metrics
    assert off.metrics["precision_at_k"] == result.metrics["precision_at_k"]  # measuring the peer changes nothing


def test_without_pocketnet_the_site_model_trains_on_its_own_and_says_so(monkeypatch, five_complexes, shared_data,
                                                                        tmp_path, caplog):
    monkeypatch.setattr(pocket_peer, "peer_available", lambda: False)
    folder, split = five_complexes
    result = _sites_run(tmp_path / "run", folder, split, shared_data)
    assert not result.model.config.peer_features and result.metrics["peer_note"] == pocket_peer.ABSENT
    assert "trained without its features" in caplog.text


def test_a_site_model_ranks_the_pockets_of_new_structures_in_tables_per_structure(fake_pocketnet, five_complexes,
                                                                                 shared_data, tmp_path):
    folder, split = five_complexes
    _sites_run(tmp_path / "run", folder, split, shared_data, peer="off")
    new = tmp_path / "new"
    new.mkdir()
    for p in sorted(folder.glob("*.pdb"))[:2]:
        shutil.copy(p, new)
    applied = residues.run(tmp_path / "applied", structures=str(new), max_views=2,
                           checkpoint=str(tmp_path / "run" / "checkpoints" / "residue_cluster.pt"))
    tables = sorted((tmp_path / "applied" / "residues" / "by_structure").glob("*.tsv"))
    assert [t.stem for t in tables] == sorted(p.stem for p in new.glob("*.pdb"))
    table = pd.read_csv(tables[0], sep="\t")
    assert list(table.columns[:6]) == ["rank", "chain", "residue_number", "residue", "score", "pocket"]
    assert table["score"].is_monotonic_decreasing and (table["pocket"] == 1).any()
    pockets = pd.read_csv(tmp_path / "applied" / "residues" / "pockets.tsv", sep="\t")
    first = pockets[(pockets["id"] == tables[0].stem) & (pockets["pocket"] == 1)].iloc[0]
    assert first["n_residues"] == (table["pocket"] == 1).sum()
    assert set(first["residues"].split()) == {f"{c}:{n}" for c, n in
                                              table.loc[table["pocket"] == 1, ["chain", "residue_number"]].values}
    figures = {p.name for p in (tmp_path / "applied" / "figures").iterdir()}
    for stem in (t.stem for t in tables):  # the 3D view and the B-factor / PyMOL / ChimeraX exports of each
        assert {f"residues_3d_{stem}.html", f"residues_3d_{stem}.pdb"} <= figures
        assert any(n.startswith(f"residues_3d_{stem}") and n.endswith(".pml") for n in figures)
    assert applied.outputs["pockets"].name == "pockets.tsv"
    residues.run(tmp_path / "applied", structures=str(next(new.glob("*.pdb"))), max_views=1,
                 checkpoint=str(tmp_path / "run" / "checkpoints" / "residue_cluster.pt"))
    assert len(list((tmp_path / "applied" / "residues" / "by_structure").glob("*.tsv"))) == 1  # no stale table
