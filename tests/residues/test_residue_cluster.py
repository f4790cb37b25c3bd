"""The residue-clustering network: batched = per-protein math, invariances, explanations, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from protlab.curate.records import Structure
from protlab.core.errors import InputError
from protlab.residues.explain import decision, explain_batch, occlusion
from protlab.residues.network import ResidueNet, ResidueNetConfig, load_network, save_network
from protlab.residues.network_reference import forward_per_protein
from protlab.residues.graph import N_NODE_FEATURES, UNKNOWN_AA, build_graph, collate, edges, local_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def chain(L: int, seed: int, *, id: str | None = None) -> Structure:
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(L, 3))
    steps /= np.linalg.norm(steps, axis=1, keepdims=True)
    ca = np.cumsum(3.8 * steps, axis=0).astype(np.float32)
    seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), L))
    return Structure(id=id or f"p{L}_{seed}", chain="A", res_ids=np.arange(1, L + 1), ins_codes=np.array([""] * L),
                     res_names=np.array(["ALA"] * L), sequence=seq, ca=ca, centroid=ca + 1.0)


def model(n_classes=3, **kw) -> ResidueNet:
    torch.manual_seed(0)
    return ResidueNet(ResidueNetConfig(n_classes=n_classes, **kw)).eval()


def test_graph_features_and_edges():
    s = chain(40, 1)
    g = build_graph(s)
    assert g.feats.shape == (40, N_NODE_FEATURES) and np.isfinite(g.feats).all()
    frames = local_frames(s.ca)
    assert np.allclose(np.einsum("lij,lkj->lik", frames, frames), np.eye(3), atol=1e-5)  # orthonormal
    e = edges(s, radius=8.0)
    pairs = set(map(tuple, e.T.tolist()))
    assert all((i, i + 1) in pairs and (i + 1, i) in pairs for i in range(39))  # sequential edges
    d = np.linalg.norm(s.ca[:, None] - s.ca[None], axis=-1)
    far = [(i, j) for i, j in pairs if abs(i - j) > 1]
    assert far and all(d[i, j] < 8.0 for i, j in far)


def test_batched_forward_equals_per_protein_reference():
    m = model()
    batch = collate([build_graph(chain(L, L)) for L in (30, 47, 12, 5)])
    with torch.no_grad():
        assert torch.allclose(m(batch), forward_per_protein(m, batch), atol=1e-5)


def test_padding_and_rigid_motion_do_not_change_logits():
    m = model()
    s = chain(35, 3)
    alone = m(collate([build_graph(s)]))
    padded = m(collate([build_graph(s), build_graph(chain(80, 4))]))[:1]
    rot, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    moved = Structure(**{**s.__dict__, "ca": (s.ca @ rot.T + 7.0).astype(np.float32),
                         "centroid": (s.centroid @ rot.T + 7.0).astype(np.float32)})
    turned = m(collate([build_graph(moved)]))
    assert torch.allclose(alone, padded, atol=1e-5)
    assert torch.allclose(alone, turned, atol=2e-3)  # float32 round-off through 4 iterations


def test_explain_scores_and_clusters():
    m = model(iterations=3, radii=(6, 10, 14), seq_radii=(2, 4, 8))
    batch = collate([build_graph(chain(50, 5)), build_graph(chain(20, 6))])
    ex = explain_batch(m, batch)
    imp = ex["importance"]
    assert imp.shape == (2, 50) and (imp >= 0).all() and (imp <= 1 + 1e-6).all()
    assert torch.allclose(imp.amax(1), torch.ones(2))
    assert (imp[1, 20:] == 0).all() and (ex["iteration"][1, 20:] == -1).all()
    assert len(ex["clusters"]) == 3
    kept = [int(c["mask"][0].sum()) for c in ex["clusters"]]
    assert kept == [20, 8, 4]  # ceil(0.4 n) survive each iteration
    inside = ex["iteration"] >= 0
    assert ((ex["cluster"] >= 0) == inside).all()
    assert not m.training


@pytest.mark.parametrize("task", ["single", "multi"])
def test_occlusion_equals_hiding_one_residue_at_a_time(task):
    m = model(n_classes=4, task=task, iterations=3, radii=(6, 10, 14), seq_radii=(2, 4, 8))
    graphs = [build_graph(chain(23, 11)), build_graph(chain(9, 12))]
    batch = collate(graphs)
    drop = occlusion(m, batch, chunk=5)                  # chunks smaller than a protein
    assert drop.shape == (2, 23) and (drop[1, 9:] == 0).all()
    with torch.no_grad():
        for b, g in enumerate(graphs):
            ref = m(collate([g]))
            for r in range(len(g)):
                hidden = collate([g])
                hidden.aa[0, r] = UNKNOWN_AA
                expected = decision(m, ref, ref) - decision(m, m(hidden), ref)
                assert drop[b, r] == pytest.approx(float(expected[0]), abs=1e-4)
    ref = torch.tensor([[0.0, 2.0, -1.0, 1.5]])
    if task == "single":  # margin of the predicted class over the best other one
        assert float(decision(m, torch.tensor([[1.0, 0.5, 3.0, 0.0]]), ref)[0]) == pytest.approx(-2.5)
    else:                 # summed logits of the labels the reference predicts
        assert float(decision(m, torch.tensor([[1.0, 0.5, 3.0, 0.0]]), ref)[0]) == pytest.approx(0.5)
    ex = explain_batch(m.train(), batch)                       # the default importance is the positive drop, max 1
    assert m.training                                   # (computed in eval mode, training mode restored)
    expected = drop.clamp(min=0)
    expected = expected / expected.amax(1, keepdim=True).clamp(min=1e-12)
    assert torch.allclose(ex["importance"], expected, atol=1e-5)
    with pytest.raises(InputError, match="score"):
        explain_batch(m, batch, score="saliency")


def test_score_gets_gradients_and_multilabel_loss():
    m = model(n_classes=4, task="multi").train()
    batch = collate([build_graph(chain(30, 7)), build_graph(chain(25, 8))])
    logits = m(batch)
    loss = m.loss(logits, torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]]))
    loss.backward()
    assert m.layers[0].w1.weight.grad.abs().sum() > 0   # nomination is trained through the gate
    assert m.layers[-1].att.weight.grad.abs().sum() > 0


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    m = model(class_names=["a", "b", "c"])
    path = tmp_path / "m.pt"
    save_network(m, path, note="x")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "protlab" and raw["kind"] == "residue-cluster" and raw["config"]["class_names"] == ["a", "b", "c"]
    loaded = load_network(path)
    batch = collate([build_graph(chain(30, 9))])
    assert torch.allclose(m(batch), loaded(batch))
    with pytest.raises(InputError, match="does not exist"):
        load_network(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a protlab"):
        load_network(tmp_path / "other.pt")


def test_bad_config_and_inputs():
    with pytest.raises(InputError):
        ResidueNetConfig(n_classes=2, task="regression")
    with pytest.raises(InputError):
        ResidueNetConfig(n_classes=2, iterations=5)  # 4 radii only
    s = chain(10, 1)
    with pytest.raises(InputError, match="at least 3"):
        build_graph(Structure(**{**s.__dict__, "sequence": "A", "ca": s.ca[:1], "centroid": s.ca[:1],
                                 "res_ids": s.res_ids[:1], "ins_codes": s.ins_codes[:1]}))
    bad = s.ca.copy()
    bad[4, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        build_graph(Structure(**{**s.__dict__, "ca": bad}))
    with pytest.raises(InputError, match="does not match"):
        build_graph(Structure(**{**s.__dict__, "ca": s.ca[:5]}))
    with pytest.raises(InputError, match="ESM"):
        build_graph(s, esm=np.zeros((3, 8)))


def test_esm_features_are_used():
    m = model(esm_dim=8)
    s = chain(20, 2)
    a = m(collate([build_graph(s, esm=np.zeros((20, 8)))]))
    b = m(collate([build_graph(s, esm=np.ones((20, 8)))]))
    assert not torch.allclose(a, b)
    with pytest.raises(InputError, match="ESM"):
        m(collate([build_graph(s)]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_and_explain_match_cpu():
    m = model()
    batch = collate([build_graph(chain(L, L)) for L in (30, 47)])
    cpu = m(batch)
    gpu = m.cuda()(batch.to("cuda"))
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)
    assert explain_batch(m, batch.to("cuda"))["importance"].is_cuda
