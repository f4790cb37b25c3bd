"""Landmark search for large sets: linclust representatives search each other and hand their
hits to their members (real Pfam domains)."""
from __future__ import annotations

import numpy as np
import pytest

import protlab.cluster.neighbors as nb
from protlab.cluster.families import find_families
from protlab.core.mmseqs import linclust_representatives, mmseqs_available
from protlab.curate.formats import read_proteins
from protlab.evaluate.metrics import evaluate

pytestmark = pytest.mark.skipif(not mmseqs_available(), reason="mmseqs (MMseqs2) is not installed")


@pytest.fixture(scope="module")
def domains(shared_data):
    """Four Pfam families, 60 domains each, plus exact copies of the first 40 (redundancy)."""
    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    frame = frame[frame["label"].isin(["PF00072", "PF00595", "PF00018", "PF00069"])].groupby("label").head(60)
    seqs = frame["sequence"].tolist()
    labels = frame["label"].to_numpy()
    return seqs + seqs[:40], np.concatenate([labels, labels[:40]])


def test_linclust_representatives_are_members_of_their_own_family(domains):
    seqs, labels = domains
    rep = linclust_representatives(seqs, identity=nb.LANDMARK_IDENTITY)
    reps = np.unique(rep)
    assert np.array_equal(rep[reps], reps)  # a representative stands for itself
    assert len(reps) <= len(seqs) - 40  # every exact copy joins a cluster
    assert (labels[rep] == labels).mean() >= 0.99


def test_members_inherit_their_representatives_hits(domains):
    seqs, _ = domains
    rep = linclust_representatives(seqs, identity=nb.LANDMARK_IDENTITY)
    qi, ti, bits = nb.landmark_hits(seqs, rep)
    reps = np.unique(rep)
    assert np.isin(ti, reps).all() and not (qi == ti).any()
    assert np.bincount(qi, minlength=len(seqs)).max() <= nb.MAX_HITS + 1
    own = {}
    for q, t, b in zip(qi.tolist(), ti.tolist(), bits.tolist()):
        own.setdefault(q, {})[t] = b
    members = np.flatnonzero(rep != np.arange(len(seqs)))
    assert len(members) >= 40
    for m in members:
        a = int(rep[m])
        inherited = {t: b for t, b in own.get(int(m), {}).items() if t != a}
        assert inherited == own.get(a, {})  # the representative's hits, same scores
        assert a in own[int(m)]  # and a hit to the representative itself
        assert own[int(m)][a] == pytest.approx(max(own[a].values()) if a in own else np.median(bits))


def test_landmark_graph_finds_the_same_families(domains, monkeypatch):
    """Above LANDMARK_MIN mine_neighbors searches landmarks only; the families it finds agree
    with the labels as well as those of the full search."""
    seqs, labels = domains
    emb = np.random.default_rng(0).normal(size=(len(seqs), 8)).astype(np.float32)
    full = nb.mine_neighbors(emb, seqs, source="mmseqs")
    monkeypatch.setattr(nb, "LANDMARK_MIN", len(seqs) - 1)
    landmark = nb.mine_neighbors(emb, seqs, source="mmseqs")
    assert full.representatives is None and landmark.representatives < len(seqs) - 40
    assert landmark.purity(labels) >= 0.98 and landmark.homologous.mean() >= 0.95
    members = np.flatnonzero(landmark.rep != np.arange(len(seqs)))
    for m in members:  # hits keep what was searched: a member's only hit is its representative
        assert landmark.hits[m].indices.tolist() == [landmark.rep[m]]
    assert (landmark.knn[members, 1] >= 0).all()  # while its neighbours are its representative's
    scores = []
    for graph in (full, landmark):
        part = find_families(graph, emb, n_clusters=4)  # a landmark graph counts only those that searched
        scores.append(evaluate(labels, part.labels)["nmi"])
    assert scores[1] >= 0.9 and scores[1] >= scores[0] - 0.05, scores
