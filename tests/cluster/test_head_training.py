"""The heads' self-labelling pass stays anchored to the homology graph's families."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from protlab.cluster.head_training import HeadTraining
from protlab.cluster.heads import ScanHeads
from protlab.cluster.neighbors import NeighborGraph
from protlab.core.runtime import DistEnv


def _small_family_after_self_labelling(anchor_weight: float, n_big: int = 1000, n_small: int = 40, dim: int = 32):
    """Heads first taught a wrong partition (the small family inside the giant one), then
    self-labelled with the true families as targets: the small family's share predicted right,
    before and after, and each epoch's confident share."""
    rng = np.random.default_rng(0)
    direction = rng.normal(size=dim)
    x = rng.normal(size=(n_big + n_small, dim)).astype(np.float32)
    x[n_big:] += (4 * direction / np.linalg.norm(direction)).astype(np.float32)
    truth = np.r_[np.zeros(n_big, np.int64), np.ones(n_small, np.int64)]
    wrong = np.zeros_like(truth)
    wrong[:n_small] = 1
    n = len(x)
    knn = np.stack([rng.choice(np.flatnonzero(truth == t), 5) for t in truth]).astype(np.int64)
    graph = NeighborGraph(knn, np.full(n, 5, np.int64), sp.csr_matrix((n, n)), "mmseqs")
    cfg = dict(batch_size=256, lr=1e-2, weight_decay=0.0, n_clusters=2, warm_epochs=5, epochs=0, min_steps=0,
               anchor_weight=anchor_weight, entropy_weight=5.0, self_label_epochs=8, confidence=0.9)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    bare = ScanHeads(dim, 2, n_heads=1, hidden=32)
    HeadTraining(cfg, wrong, bare, torch.from_numpy(x), graph, gen, torch.randperm(n, generator=gen), 0, "cpu",
                 DistEnv()).warm_start()
    run = HeadTraining(cfg, truth, bare, torch.from_numpy(x), graph, gen, torch.randperm(n, generator=gen), 0, "cpu",
                       DistEnv())

    def small_right() -> float:
        bare.eval()
        with torch.no_grad():
            return float((bare(torch.from_numpy(x[n_big:]))[0].argmax(1) == 1).float().mean())

    before = small_right()
    confident = run.self_label()
    return before, small_right(), confident


@pytest.mark.usefixtures("one_torch_thread")
def test_self_labelling_is_pulled_back_to_the_families():
    """Self-labelling alone trains on the heads' own confident labels, so members of a small
    family that the heads place in a giant one stay there; with the families' cross-entropy
    (anchor_weight > 0, as in the SCAN epochs) the pass moves them back towards their family."""
    before, free, confident = _small_family_after_self_labelling(anchor_weight=0.0)
    assert before <= 0.05 and free <= before and min(confident) > 0.4
    before, anchored, confident = _small_family_after_self_labelling(anchor_weight=1.0)
    assert before <= 0.05 and anchored >= 0.3
    assert len(confident) == 8 and all(0 < c <= 1 for c in confident)


@pytest.mark.parametrize("max_steps, rows, expected", [
    (0, 5000, {"warm": 5, "scan": 40, "self_label": 10}),  # no cap: min_steps gives 40 epochs of 5 batches
    (6000, 5000, {"warm": 5, "scan": 40, "self_label": 10}),  # small data: the cap does not bite
    (60, 5000, {"warm": 5, "scan": 12, "self_label": 10}),  # 60 batches: 12 epochs of 5
    (40, 5000, {"warm": 5, "scan": 8, "self_label": 8}),
    (1, 5000, {"warm": 5, "scan": 1, "self_label": 1}),  # at least one epoch of each
])
def test_large_sets_get_fewer_epochs_under_max_steps(max_steps, rows, expected):
    """``max_steps`` caps the batches of the SCAN and self-labelling passes (the warm start keeps
    its epochs); ``min_steps`` still adds epochs on small data, up to the cap."""
    x = torch.zeros(rows, 4)
    n = rows
    graph = NeighborGraph(np.zeros((n, 1), np.int64), np.ones(n, np.int64), sp.csr_matrix((n, n)), "mmseqs")
    cfg = dict(batch_size=1000, lr=1e-3, weight_decay=0.0, n_clusters=2, warm_epochs=5, epochs=30, min_steps=200,
               max_steps=max_steps, anchor_weight=1.0, entropy_weight=5.0, self_label_epochs=10, confidence=0.99)
    run = HeadTraining(cfg, np.r_[np.zeros(n // 2, np.int64), np.ones(n - n // 2, np.int64)], ScanHeads(4, 2),
                       x, graph, torch.Generator().manual_seed(0), torch.arange(n), n // 10, "cpu", DistEnv())
    assert run.pass_epochs() == expected
