"""ProtCLIP objectives against direct loop computations, masking rules, gathered negatives."""
from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from protlab.pretrain.clip import (BSRDecoder, contrastive_loss, gather_with_local_grad, masked_lm_loss,
                                 pda_loss, property_segments)
from protlab.core.windows import sliding_windows as windows
from protlab.pretrain.data import mlm_mask, random_crop, span_mask


def _log_softmax_row(values, i):
    m = max(values)
    return values[i] - (m + math.log(sum(math.exp(v - m) for v in values)))


def test_contrastive_loss_matches_loops():
    g = torch.Generator().manual_seed(0)
    p = F.normalize(torch.randn(5, 7, generator=g), dim=-1)
    t = F.normalize(torch.randn(5, 7, generator=g), dim=-1)
    scale = torch.tensor(1 / 0.07)
    got = contrastive_loss(p, t, scale).item()
    n = len(p)
    sim = [[float(scale * sum(p[i, d] * t[j, d] for d in range(7))) for j in range(n)] for i in range(n)]
    p2t = -sum(_log_softmax_row(sim[i], i) for i in range(n)) / n
    t2p = -sum(_log_softmax_row([sim[j][i] for j in range(n)], i) for i in range(n)) / n
    assert got == pytest.approx((p2t + t2p) / 2, rel=1e-5)
    # aligned pairs give a lower loss than shuffled ones
    assert contrastive_loss(p, p, scale) < contrastive_loss(p, t, scale)


def test_contrastive_loss_treats_pairs_with_one_text_as_positives_of_each_other():
    g = torch.Generator().manual_seed(2)
    p = F.normalize(torch.randn(5, 7, generator=g), dim=-1)
    t = F.normalize(torch.randn(5, 7, generator=g), dim=-1)
    t[3] = t[1]                                    # pairs 1 and 3 share a caption
    key = torch.tensor([10, 11, 12, 11, 13])
    scale = torch.tensor(1 / 0.07)
    n = len(p)
    sim = [[float(scale * (p[i] @ t[j])) for j in range(n)] for i in range(n)]
    positives = [[j for j in range(n) if key[j] == key[i]] for i in range(n)]
    p2t = -sum(_log_softmax_row(sim[i], j) / len(positives[i]) for i in range(n) for j in positives[i]) / n
    t2p = -sum(_log_softmax_row([sim[k][i] for k in range(n)], j) / len(positives[i])
               for i in range(n) for j in positives[i]) / n
    assert contrastive_loss(p, t, scale, key).item() == pytest.approx((p2t + t2p) / 2, rel=1e-5)
    # distinct keys: plain InfoNCE
    assert contrastive_loss(p, t, scale, torch.arange(n)).item() == pytest.approx(contrastive_loss(p, t, scale).item())
    # two proteins on their shared caption: plain InfoNCE pushes them apart, the keyed loss does not
    q = p.clone().requires_grad_(True)
    contrastive_loss(q, t, scale).backward()
    plain_pull = float(q.grad[3] @ (q[3] - q[1]).detach())
    q.grad = None
    contrastive_loss(q, t, scale, key).backward()
    keyed_pull = float(q.grad[3] @ (q[3] - q[1]).detach())
    assert keyed_pull < plain_pull


def test_masked_lm_loss_matches_loops():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, 5, generator=g)
    targets = torch.full((2, 6), -100)
    targets[0, 1], targets[0, 4], targets[1, 2] = 3, 0, 4
    got = masked_lm_loss(logits, targets).item()
    terms = [-_log_softmax_row(logits[b, i].tolist(), int(targets[b, i]))
             for b in range(2) for i in range(6) if targets[b, i] != -100]
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    assert masked_lm_loss(logits, torch.full((2, 6), -100)).item() == 0.0


def _reference_segments(res, rmask, protos, theta):
    B, L, d = res.shape
    K = protos.shape[1]
    out = torch.zeros(B, K, d, dtype=torch.float64)
    for b in range(B):
        idx = [i for i in range(L) if rmask[b, i]]
        for k in range(K):
            sims = [float(sum(res[b, i, c] * protos[b, k, c] for c in range(d))) for i in idx]
            lo, hi = min(sims), max(sims)
            norm = [(s - lo) / (hi - lo) if hi > lo else 1.0 for s in sims]
            w = [v if v >= theta else 0.0 for v in norm]
            tot = sum(w)
            for i, wi in zip(idx, w):
                out[b, k] += wi / tot * res[b, i].double()
    return out


def test_pda_segments_and_loss_match_loops():
    g = torch.Generator().manual_seed(2)
    B, L, K, d, theta = 3, 6, 4, 5, 0.3
    res = F.normalize(torch.randn(B, L, d, generator=g), dim=-1)
    rmask = torch.ones(B, L, dtype=torch.bool)
    rmask[1, 4:] = False  # a shorter protein
    protos = F.normalize(torch.randn(B, K, d, generator=g), dim=-1)
    pmask = torch.ones(B, K, dtype=torch.bool)
    pmask[0, 2] = pmask[2, 3] = False  # missing properties
    seg, weights = property_segments(res, rmask, protos, theta=theta)
    ref = _reference_segments(res, rmask, protos, theta)
    assert torch.allclose(seg.double(), ref, atol=1e-6)
    assert torch.all(weights[1, :, 4:] == 0)
    # below-threshold residues carry no weight, and the most similar residue always does
    sim = torch.einsum("bld,bkd->bkl", res, protos)
    assert torch.all(weights[0, 0][sim[0, 0].argmax()] > 0)
    scale = torch.tensor(10.0)
    got = pda_loss(res, rmask, protos, pmask, scale, theta=theta).item()
    pairs = [(b, k) for b in range(B) for k in range(K) if pmask[b, k]]
    terms = []
    for m, (b, k) in enumerate(pairs):
        z = ref[b, k] / ref[b, k].norm()
        logits = [float(scale * (z * protos[b2, k2].double()).sum()) for b2, k2 in pairs]
        terms.append(-_log_softmax_row(logits, m))
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_pda_threshold_zeroes_low_similarity():
    res = torch.tensor([[[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]]])
    protos = torch.tensor([[[1.0, 0.0]]])
    _, w = property_segments(res, torch.ones(1, 4, dtype=torch.bool), protos, theta=0.6)
    # sims 1, .8, 0, -1 -> normalised 1, .9, .5, 0 -> theta .6 keeps the first two
    assert torch.allclose(w[0, 0], torch.tensor([1.0, 0.9, 0.0, 0.0]) / 1.9)


@pytest.mark.parametrize("n", [20, 57, 300])
def test_span_mask_contiguous_spans_reach_ratio(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        m = span_mask(n, ratio=0.15, span_min=5, span_max=10, rng=rng)
        assert m.sum() >= math.ceil(0.15 * n)
        assert m.sum() < 0.15 * n + 10  # stops as soon as the ratio is reached
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, m.astype(int), 0])))[::2]
        assert runs.min() >= 5  # every masked stretch is at least one whole span


def test_mlm_mask_rate():
    rng = np.random.default_rng(0)
    frac = np.mean([mlm_mask(200, 0.15, rng).mean() for _ in range(200)])
    assert abs(frac - 0.15) < 0.01
    assert mlm_mask(3, 0.01, rng).sum() >= 1


def test_random_crop_and_windows():
    rng = np.random.default_rng(0)
    seq = "ACDEFGHIKLMNPQRSTVWY" * 5
    crops = {random_crop(seq, 30, rng) for _ in range(20)}
    assert all(len(c) == 30 and c in seq for c in crops) and len(crops) > 5
    assert random_crop("ACD", 30, rng) == "ACD"
    w = windows(100, 30, 15)
    assert w[0] == (0, 30) and w[-1][1] == 100 and all(e - s == 30 for s, e in w)
    assert windows(20, 30) == [(0, 20)]


def test_bsr_decoder_reads_the_text():
    torch.manual_seed(0)
    dec = BSRDecoder(32, 24, 33, layers=1)
    res = torch.randn(2, 9, 32)
    text = torch.randn(2, 5, 24, requires_grad=True)
    pad_r, pad_t = torch.zeros(2, 9, dtype=torch.bool), torch.zeros(2, 5, dtype=torch.bool)
    out = dec(res, pad_r, text, pad_t)
    assert out.shape == (2, 9, 33)
    out2 = dec(res, pad_r, text + 1.0, pad_t)
    assert not torch.allclose(out, out2)
    out.sum().backward()
    assert text.grad.abs().sum() > 0


# ---------------------------------------------------------------- gathered negatives
def _ddp_worker(rank, world, init_file, x, y, key, result_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    fp, ft = torch.nn.Linear(x.shape[1], 4), torch.nn.Linear(y.shape[1], 4)
    n = x.shape[0] // world
    xs, ys = x[rank * n:(rank + 1) * n], y[rank * n:(rank + 1) * n]
    p = gather_with_local_grad(F.normalize(fp(xs), dim=-1))
    t = gather_with_local_grad(F.normalize(ft(ys), dim=-1))
    loss = contrastive_loss(p, t, torch.tensor(5.0), gather_with_local_grad(key[rank * n:(rank + 1) * n]))
    (loss * world).backward()
    grads = torch.cat([q.grad.flatten() for q in (*fp.parameters(), *ft.parameters())])
    dist.all_reduce(grads)
    torch.save({"loss": loss.detach(), "grads": grads / world}, os.path.join(result_dir, f"{rank}.pt"))
    dist.destroy_process_group()


def test_gathered_negatives_give_the_full_batch_gradient():
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 6, generator=g), torch.randn(8, 5, generator=g)
    key = torch.tensor([0, 1, 2, 0, 3, 4, 1, 5])  # shared captions within and across the two ranks
    torch.manual_seed(0)
    fp, ft = torch.nn.Linear(6, 4), torch.nn.Linear(5, 4)
    loss = contrastive_loss(F.normalize(fp(x), dim=-1), F.normalize(ft(y), dim=-1), torch.tensor(5.0), key)
    loss.backward()
    want = torch.cat([q.grad.flatten() for q in (*fp.parameters(), *ft.parameters())])
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_ddp_worker, args=(2, os.path.join(tmp, "init"), x, y, key, tmp), nprocs=2, join=True)
        for rank in range(2):
            got = torch.load(os.path.join(tmp, f"{rank}.pt"), weights_only=True)
            assert got["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
            assert torch.allclose(got["grads"], want, atol=1e-6)
    assert gather_with_local_grad(x) is x  # no process group: identity


def test_text_towers_tiny_local_dir_and_offline_minilm(tmp_path):
    from protlab.core.errors import InputError
    from protlab.pretrain.text import load_text_encoder, save_text_encoder

    enc, tok = load_text_encoder("tiny", tiny_args={"hidden_size": 32, "num_hidden_layers": 1,
                                                   "num_attention_heads": 2, "intermediate_size": 64})
    save_text_encoder(enc, tok, tmp_path / "bert")
    again, tok2 = load_text_encoder(str(tmp_path / "bert"))
    batch = tok(["Belongs to the kinase family.", "Cytoplasm"], padding=True, return_tensors="pt")
    enc.eval(), again.eval()
    with torch.no_grad():
        s1, p1 = enc(batch["input_ids"], batch["attention_mask"])
        s2, p2 = again(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(p1, p2) and p1.shape == (2, 32)
    # padding does not change a sentence's pooled vector
    alone = tok(["Cytoplasm"], return_tensors="pt")
    with torch.no_grad():
        _, p_alone = enc(alone["input_ids"], alone["attention_mask"])
    assert torch.allclose(p_alone[0], p1[1], atol=1e-5)
    minilm, mtok = load_text_encoder("minilm")  # the offline package's real weights
    assert minilm.hidden_size == 384 and minilm.backbone.config.num_hidden_layers == 6
    with pytest.raises(InputError, match="no config.json"):
        load_text_encoder(str(tmp_path))


def test_losses_without_targets_are_zero_with_zero_gradients():
    """MLM with every target ignored and PDA with no property present: 0, and no NaN gradients
    (both are written without data-dependent branches so torch.compile captures them)."""
    logits = torch.randn(2, 5, 7, requires_grad=True)
    mlm = masked_lm_loss(logits, torch.full((2, 5), -100))
    res = F.normalize(torch.randn(2, 6, 4), dim=-1).requires_grad_()
    protos = F.normalize(torch.randn(2, 3, 4), dim=-1)
    pda = pda_loss(res, torch.ones(2, 6, dtype=torch.bool), protos, torch.zeros(2, 3, dtype=torch.bool),
                   torch.tensor(10.0))
    (mlm + pda).backward()
    assert mlm.item() == 0.0 and pda.item() == 0.0
    assert torch.all(logits.grad == 0) and torch.all(res.grad == 0)
    # an absent property is neither a positive nor a negative: its prototype does not matter
    pmask = torch.tensor([[True, False, True], [True, True, False]])
    other = protos.clone()
    other[0, 1] = F.normalize(torch.randn(4), dim=0)
    other[1, 2] = -protos[1, 2]
    args = (res.detach(), torch.ones(2, 6, dtype=torch.bool))
    assert pda_loss(*args, protos, pmask, torch.tensor(10.0)).item() == pytest.approx(
        pda_loss(*args, other, pmask, torch.tensor(10.0)).item(), rel=1e-6)


def test_fused_esm_forward_matches_fair_esm():
    """esm2_states (scaled_dot_product_attention) gives ESM2.forward's last layer, logits and gradients,
    with padding and <mask> tokens (token dropout rescaling) in the batch."""
    from protlab.esm.fused import esm2_states
    from protlab.esm.load import load_esm

    model, alphabet = load_esm({"num_layers": 2, "embed_dim": 32, "attention_heads": 4}, seed=3)
    model.train()
    _, _, tokens = alphabet.get_batch_converter()([("a", "MKTAYIAKQRQISFVKSHFSRQ"), ("b", "MKTAYIAK")])
    tokens[0, 5] = tokens[1, 3] = alphabet.mask_idx
    assert (tokens == alphabet.padding_idx).any()
    ref = model(tokens, repr_layers=[2])
    (ref["representations"][2].sum() + ref["logits"].square().mean()).backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    states, logits = esm2_states(model, tokens)
    (states.sum() + logits.square().mean()).backward()
    assert torch.allclose(states, ref["representations"][2], atol=1e-5)
    assert torch.allclose(logits, ref["logits"], atol=1e-4)
    for name, grad in ref_grads.items():
        assert torch.allclose(model.get_parameter(name).grad, grad, atol=1e-4), name
