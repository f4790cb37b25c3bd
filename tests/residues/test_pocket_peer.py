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
from protlab.curate.structures import read_structure
from protlab.residues import pocket_peer
from protlab.residues.explain import Explanation
from protlab.residues.sites import site_summary


class FakePredictor:
    """PocketNet's interface (``predict(path, chains=...).residue_scores``: ``"A:52B"`` → score):
    a residue's score is its position in the first chain / 1000, and the last residue is left unlisted."""

    calls = 0

    def __init__(self, device="cpu"):
        self.device = device

    def predict(self, path, chains=None):
        FakePredictor.calls += 1
        s = read_structure(path, chain=chains[0])
        keys = [f"{c}:{label}" for c, label in s.residue_keys()][:-1]
        pockets = [types.SimpleNamespace(score=2.0, center=[1.0, 2.0, 3.0]),
                   types.SimpleNamespace(score=1.0, center=list(map(float, s.ca[0])))]
        return types.SimpleNamespace(residue_scores={np.str_(k): i / 1000 for i, k in enumerate(keys)},
                                     pockets=pockets)


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
    assert scores[:5] == pytest.approx([0, 0.001, 0.002, 0.003, 0.004]) and scores[-1] == 0  # unlisted: 0
    again = pocket_peer.peer_scores([structure], tmp_path / "cache", progress=False)[structure.id]
    assert FakePredictor.calls == 1 and np.array_equal(again, scores)  # the second run reads the cache
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # its residue scores and its own pockets


def test_pocketnets_own_pockets_are_kept_beside_its_scores(fake_pocketnet, shared_data, tmp_path):
    structure = read_structure(shared_data / "structures" / "pdb" / "1k6p.pdb", chain="A")
    pocket_peer.peer_scores([structure], tmp_path, progress=False)
    pockets = pocket_peer.peer_pockets([structure], tmp_path)[structure.id]
    assert FakePredictor.calls == 1  # read from the cache the scores' prediction filled
    assert pockets.tolist() == [[2.0, 1.0, 2.0, 3.0], [1.0, *map(float, structure.ca[0])]]
    for path in tmp_path.glob("*.pockets.npy"):  # an entry cached before pockets were kept
        path.unlink()
    again = pocket_peer.peer_pockets([structure], tmp_path)[structure.id]
    assert FakePredictor.calls == 2 and np.array_equal(again, pockets)


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


def test_the_ensemble_weighs_the_peer_and_refuses_a_length_mismatch():
    own, peer = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.5])
    assert pocket_peer.ensemble(own, peer) == pytest.approx([1 - pocket_peer.PEER_WEIGHT, pocket_peer.PEER_WEIGHT, 0.5])
    with pytest.raises(InputError, match="2 PocketNet scores for 3 residues"):
        pocket_peer.ensemble(own, peer[:2])


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


def test_the_site_probability_ensembles_the_network_with_the_peer(fake_pocketnet, five_complexes, shared_data,
                                                                  tmp_path, monkeypatch):
    folder, split = five_complexes
    result = _sites_run(tmp_path / "run", folder, split, shared_data)
    assert FakePredictor.calls == 2 and (tmp_path / "graphs" / "pocketnet").is_dir()  # the held-out files, cached
    peer = result.inputs.peer
    for ex in result.explanations:
        assert ex.importance == pytest.approx(pocket_peer.ensemble(ex.own, peer[ex.id]))
        assert ex.probabilities is ex.importance
    metrics = json.loads((tmp_path / "run" / "residue_metrics.json").read_text())
    assert metrics["ensemble"] == pocket_peer.ENSEMBLE and metrics["peer"] == pocket_peer.PEER
    assert metrics["peer_n_proteins"] == 2 and 0 <= metrics["own_precision_at_k"] <= 1
    record = json.loads((tmp_path / "run" / "residues.json").read_text())["results"]
    assert record["own_precision_at_k"] == metrics["own_precision_at_k"]
    table = pd.read_parquet(tmp_path / "run" / "residues" / "critical_residues.parquet")
    first = result.explanations[0]
    assert table[table["id"] == first.id]["score"].max() == pytest.approx(first.importance.max())
    checkpoint = str(tmp_path / "run" / "checkpoints" / "residue_cluster.pt")
    sites = str(shared_data / "structures" / "ligand_sites" / "binding_sites_primary.tsv")
    applied = residues.run(tmp_path / "applied", structures=str(folder), checkpoint=checkpoint, max_views=1,
                           cache_dir=str(tmp_path / "graphs"), sites=sites)
    assert FakePredictor.calls == 5 and applied.metrics["peer_n_proteins"] == 5  # 2 from the cache
    assert all(ex.own is not None for ex in applied.explanations)
    monkeypatch.setattr(pocket_peer, "peer_available", lambda: False)  # applied where PocketNet is absent
    alone = residues.run(tmp_path / "alone", structures=str(folder), checkpoint=checkpoint, max_views=1, sites=sites)
    assert alone.metrics["peer_note"] == pocket_peer.ABSENT and "ensemble" not in alone.metrics
    assert all(ex.own is None for ex in alone.explanations)
    assert alone.explanations[0].importance == pytest.approx(applied.explanations[0].own, abs=1e-6)


def test_measure_only_leaves_the_network_alone_and_off_skips_the_peer(fake_pocketnet, five_complexes, shared_data,
                                                                      tmp_path):
    folder, split = five_complexes
    result = _sites_run(tmp_path / "run", folder, split, shared_data, peer="measure")
    assert FakePredictor.calls == 2 and result.metrics["peer_n_proteins"] == 2
    assert "ensemble" not in result.metrics and all(ex.own is None for ex in result.explanations)
    off = _sites_run(tmp_path / "off", folder, split, shared_data, peer="off")
    assert FakePredictor.calls == 2 and "peer" not in off.metrics and "peer_note" not in off.metrics
    assert off.metrics["precision_at_k"] == result.metrics["precision_at_k"]  # measuring the peer changes nothing


def test_without_pocketnet_the_site_model_stands_alone_and_says_so(monkeypatch, five_complexes, shared_data,
                                                                   tmp_path, caplog):
    monkeypatch.setattr(pocket_peer, "peer_available", lambda: False)
    folder, split = five_complexes
    result = _sites_run(tmp_path / "run", folder, split, shared_data)
    assert result.metrics["peer_note"] == pocket_peer.ABSENT and "ensemble" not in result.metrics
    assert "the site probability is 06's network alone" in caplog.text


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
