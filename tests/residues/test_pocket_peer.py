"""The learned peer (PocketNet) measured beside 06: residue mapping, cache, metrics, absence."""
import sys
import types

import numpy as np
import pandas as pd
import pytest

from protlab.curate.records import Structure
from protlab.curate.structures import read_structure
from protlab.residues import pocket_peer
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
