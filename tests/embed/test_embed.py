"""Extraction: batching, fair-esm equality, long-sequence windows, the resumable cache, sharding."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from protlab.core.windows import sliding_windows
from protlab.embed.encoders import embed_proteins, get_encoder
from protlab.embed.esm_encoder import STRIDE, WINDOW, ESMEncoder, length_batches
from protlab.embed.sequences import clean_sequences
from protlab.embed.cache import EmbeddingCache
from protlab.core.errors import InputError
from protlab.esm.fused import esm_layer_representation
from protlab.esm.load import new_esm, save_esm

AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def random_seqs(n, lo=5, hi=60, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(AA, rng.integers(lo, hi))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny():
    return new_esm({"num_layers": 2, "embed_dim": 32, "attention_heads": 4}, seed=1)


def encoder(tiny, **opts):
    opts.setdefault("toks_per_batch", 128)
    return ESMEncoder(tiny[0], tiny[1], name="tiny", device="cpu", **opts)


def fair_esm_mean(model, alphabet, seqs, layer):
    """fair-esm's own path: its batch converter, forward and extract.py's mean pooling."""
    _, _, tokens = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(seqs)])
    with torch.no_grad():
        rep = model(tokens, repr_layers=[layer])["representations"][layer]
    return np.stack([rep[i, 1:len(s) + 1].mean(0).numpy() for i, s in enumerate(seqs)])


def test_clean_sequences_and_bad_input():
    assert clean_sequences(["ac-d.e*", " mkv\n"]) == ["ACDE", "MKV"]
    with pytest.raises(InputError, match="input is empty"):
        clean_sequences([])
    with pytest.raises(InputError, match=r"record 'p2' \(row 1\): sequence is missing \(None/NaN\)"):
        clean_sequences(pd.Series(["MKV", np.nan]), ids=["p1", "p2"])
    with pytest.raises(InputError, match="row 0: sequence is missing"):
        clean_sequences([None])
    with pytest.raises(InputError, match=r"'1' at residue 3 is not an amino-acid code"):
        clean_sequences(["MK1V"])
    with pytest.raises(InputError, match="sequence is empty"):
        clean_sequences(["--"])


def test_length_batches_respect_budget():
    lengths = [5, 300, 40, 41, 39, 2000, 8, 100]
    batches = length_batches(lengths, 256)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or max(lengths[i] + 2 for i in b) * len(b) <= 256
    firsts = [max(lengths[i] for i in b) for b in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest first
    assert [5] in [[lengths[i] for i in b] for b in batches] or any(5 in [lengths[i] for i in b] for b in batches)


@pytest.mark.parametrize("length", [1, 1022, 1023, 1500, 3000])
def test_windows_cover_every_residue(length):
    spans = sliding_windows(length, WINDOW, STRIDE)
    covered = np.zeros(length, int)
    for s, e in spans:
        assert 0 <= s < e <= length and e - s <= 1022
        covered[s:e] += 1
    assert covered.min() >= 1
    assert spans[-1][1] == length
    if length > 1022:
        assert all(b[0] - a[0] <= 511 for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_fast_forward_equals_fair_esm(tiny, layer):
    model, alphabet = tiny
    seqs = random_seqs(7, seed=layer)
    _, _, tokens = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(seqs)])
    with torch.inference_mode():
        expected = model(tokens, repr_layers=[layer])["representations"][layer]
        ours = esm_layer_representation(model, tokens, layer)
    assert torch.allclose(ours, expected, atol=1e-5)
    enc = encoder(tiny, repr_layer=layer, toks_per_batch=100)
    emb = enc.embed(seqs, progress=False)
    assert emb.shape == (7, 32) and emb.dtype == np.float32
    assert np.abs(emb - fair_esm_mean(model, alphabet, seqs, layer)).max() < 1e-5
    assert enc.forward_calls > 1  # several length-sorted batches


def test_repr_layer_choice(tiny):
    assert encoder(tiny).layer == 2 and encoder(tiny, repr_layer=-1).layer == 2
    assert encoder(tiny, repr_layer=-3).layer == 0
    with pytest.raises(InputError, match="repr_layer=5 is outside 0..2"):
        encoder(tiny, repr_layer=5)


def test_per_residue_and_long_sequences_use_averaged_windows(tiny):
    model, alphabet = tiny
    seq = random_seqs(1, lo=40, hi=41, seed=3)[0]
    enc = encoder(tiny, window=16, stride=8)
    per_res = enc.embed([seq], per_residue=True, progress=False)[0]
    assert per_res.shape == (40, 32)
    total, count = np.zeros((40, 32)), np.zeros(40)
    for s, e in sliding_windows(40, 16, 8):
        rep = fair_esm_per_residue(model, alphabet, seq[s:e])
        total[s:e] += rep
        count[s:e] += 1
    assert np.abs(per_res - total / count[:, None]).max() < 1e-5
    mean = enc.embed([seq], progress=False)[0]
    assert np.allclose(mean, per_res.mean(0), atol=1e-6)
    # default window: a 1500-residue protein is embedded whole, not truncated, not a crash
    long = random_seqs(1, lo=1500, hi=1501, seed=4)[0]
    enc = encoder(tiny, toks_per_batch=1024)
    out = enc.embed([long, "MKV"], per_residue=True, progress=False)
    assert [o.shape for o in out] == [(1500, 32), (3, 32)]
    assert enc.forward_calls == 3  # windows [0, 1022) and [478, 1500), a batch each (budget 1024), then MKV
    assert np.abs(out[0][:478] - fair_esm_per_residue(model, alphabet, long[:1022])[:478]).max() < 1e-5


def fair_esm_per_residue(model, alphabet, seq):
    _, _, tokens = alphabet.get_batch_converter()([("x", seq)])
    with torch.no_grad():
        rep = model(tokens, repr_layers=[model.num_layers])["representations"][model.num_layers]
    return rep[0, 1:len(seq) + 1].numpy()


def test_cache_rerun_embeds_only_missing(tiny, tmp_path):
    seqs = random_seqs(12, seed=5)
    first = encoder(tiny, toks_per_batch=64)
    a = first.embed(seqs[:8], cache_dir=tmp_path, progress=False)
    assert first.embedded == 8
    second = encoder(tiny, toks_per_batch=64)
    b = second.embed(seqs + [seqs[0]], cache_dir=tmp_path, progress=False)  # 4 new + a duplicate
    assert second.embedded == 4
    assert np.array_equal(b[:8], a) and np.array_equal(b[12], b[0])
    third = encoder(tiny, toks_per_batch=64)
    c = third.embed(list(reversed(seqs)), cache_dir=tmp_path, progress=False)
    assert third.forward_calls == 0 and np.array_equal(c, b[:12][::-1])
    # the key follows the weights and the layer; per-residue results live apart
    other = new_esm({"num_layers": 2, "embed_dim": 32, "attention_heads": 4}, seed=2)
    keys = {encoder(tiny).cache_key, encoder(tiny, repr_layer=1).cache_key,
            ESMEncoder(*other, name="tiny", device="cpu").cache_key}
    assert len(keys) == 3
    per_res = encoder(tiny)
    rows = per_res.embed(seqs[:2], per_residue=True, cache_dir=tmp_path, progress=False)
    assert per_res.embedded == 2 and rows[0].shape == (len(seqs[0]), 32)
    assert np.allclose(rows[0].mean(0), a[0], atol=1e-6)


def test_interrupted_run_keeps_finished_work(tiny, tmp_path, monkeypatch):
    seqs = random_seqs(10, seed=6)
    enc = encoder(tiny, toks_per_batch=40, flush_every=1, cpu_workers=1)  # batches in order: 3 finish, the 4th fails
    real = enc.representations
    calls = {"n": 0}

    def crash_on_fourth(tokens):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(tokens)

    monkeypatch.setattr(enc, "representations", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        enc.embed(seqs, cache_dir=tmp_path, progress=False)
    assert enc.embedded >= 3
    rerun = encoder(tiny, toks_per_batch=40)
    out = rerun.embed(seqs, cache_dir=tmp_path, progress=False)
    assert rerun.embedded == 10 - enc.embedded
    assert np.abs(out - encoder(tiny).embed(seqs, progress=False)).max() < 1e-5


def test_killed_process_loses_nothing_already_flushed(tiny, tmp_path):
    """SIGKILL mid-run (no cleanup code runs): every flushed shard is intact and reused."""
    ckpt = save_esm(tiny[0], tiny[1], tmp_path / "tiny.pt")
    seqs = random_seqs(10, seed=7)
    script = textwrap.dedent(f"""
        import os, signal
        from protlab.embed.encoders import get_encoder
        enc = get_encoder({str(ckpt)!r}, device="cpu", toks_per_batch=40, flush_every=1, cpu_workers=1)
        real = enc.representations
        def kill_after_three(tokens):
            if enc.embedded >= 3:  # three sequences embedded and flushed (flush_every=1)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(tokens)
        enc.representations = kill_after_three
        enc.embed({seqs!r}, cache_dir={str(tmp_path / 'cache')!r}, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    rerun = get_encoder(str(ckpt), device="cpu", toks_per_batch=40)
    out = rerun.embed(seqs, cache_dir=tmp_path / "cache", progress=False)
    assert 0 < rerun.embedded <= 7  # at least the three flushed sequences came from the cache
    assert np.abs(out - rerun.embed(seqs, progress=False)).max() < 1e-5


def test_bad_input_and_broken_weights_leave_cache_valid(tiny, tmp_path):
    seqs = random_seqs(4, seed=8)
    encoder(tiny).embed(seqs, cache_dir=tmp_path, progress=False)
    cache_dir = tmp_path / encoder(tiny).cache_key
    before = sorted(p.name for p in cache_dir.iterdir())
    with pytest.raises(InputError, match="row 2: sequence is missing"):
        encoder(tiny).embed(seqs[:2] + [float("nan")], cache_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="input is empty"):
        encoder(tiny).embed([], cache_dir=tmp_path, progress=False)
    assert sorted(p.name for p in cache_dir.iterdir()) == before
    broken, alphabet = new_esm({"num_layers": 2, "embed_dim": 32, "attention_heads": 4})
    with torch.no_grad():
        broken.layers[0].fc1.weight.fill_(float("nan"))
    bad = ESMEncoder(broken, alphabet, name="broken", device="cpu")
    with pytest.raises(InputError, match="NaN/inf.*broken"):
        bad.embed(seqs, cache_dir=tmp_path, progress=False)
    assert not list((tmp_path / bad.cache_key).glob("shard-*"))
    again = encoder(tiny)
    again.embed(seqs, cache_dir=tmp_path, progress=False)
    assert again.forward_calls == 0


def test_torchrun_ranks_shard_and_rank0_merges(tiny, tmp_path, monkeypatch):
    seqs = random_seqs(9, seed=9)
    expected = encoder(tiny).embed(seqs, progress=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InputError, match="needs a cache_dir"):
        encoder(tiny).embed(seqs, progress=False)
    monkeypatch.setenv("RANK", "1")
    rank1 = encoder(tiny)
    assert rank1.embed(seqs, cache_dir=tmp_path, progress=False) is None
    monkeypatch.setenv("RANK", "0")
    rank0 = encoder(tiny)
    out = rank0.embed(seqs, cache_dir=tmp_path, progress=False)
    assert rank1.embedded + rank0.embedded == 9 and {rank0.embedded, rank1.embedded} == {4, 5}
    assert np.abs(out - expected).max() < 1e-5
    cache_dir = tmp_path / rank0.cache_key
    assert len(list(cache_dir.glob("shard-*.npz"))) == 1  # merged
    assert not list(cache_dir.glob("done-*"))
    assert len(EmbeddingCache(tmp_path, rank0.cache_key)) == 9


def test_embed_proteins_table_with_kmer_and_esm(tiny, tmp_path):
    table = pd.DataFrame({"id": [f"p{i}" for i in range(6)], "sequence": random_seqs(6, lo=20, seed=10)})
    ids, emb, meta = embed_proteins(table, "kmer", dim=8)
    assert ids == list(table["id"]) and emb.shape == (6, 5) and meta["encoder"] == "kmer3" and meta["dim"] == 5
    ckpt = save_esm(tiny[0], tiny[1], tmp_path / "tiny.pt")
    ids, emb, meta = embed_proteins(table, str(ckpt), cache_dir=tmp_path / "cache", device="cpu", progress=False)
    assert emb.shape == (6, 32) and meta["layer"] == 2 and meta["encoder"] == "esm:tiny.pt"
    assert get_encoder(str(ckpt)).cache_key == meta["cache_key"]
    with pytest.raises(InputError, match="columns 'id' and 'sequence'"):
        embed_proteins(table.rename(columns={"sequence": "seq"}))


@pytest.mark.parametrize("workers", [1, 3])
def test_cpu_workers_give_identical_results_and_restore_threads(tiny, workers):
    seqs = random_seqs(15, seed=11)
    threads = torch.get_num_threads()
    serial = encoder(tiny, cpu_workers=1, toks_per_batch=64).embed(seqs, progress=False)
    enc = encoder(tiny, cpu_workers=workers, toks_per_batch=64)
    out = enc.embed(seqs, per_residue=True, progress=False)
    assert torch.get_num_threads() == threads
    assert enc.forward_calls > workers
    assert np.abs(np.stack([o.mean(0) for o in out]) - serial).max() < 1e-6
    assert [o.shape[0] for o in out] == [len(s) for s in seqs]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bf16 autocast path)")
def test_gpu_bf16_autocast_close_to_cpu_float32(tiny):
    seqs = random_seqs(20, seed=12)
    cpu = encoder(tiny).embed(seqs, progress=False)
    gpu_enc = ESMEncoder(*new_esm({"num_layers": 2, "embed_dim": 32, "attention_heads": 4}, seed=1),
                         name="tiny", device="cuda")
    assert gpu_enc.autocast and gpu_enc.toks_per_batch == 16384 and gpu_enc.cache_key.endswith("bf16")
    gpu = gpu_enc.embed(seqs, progress=False)
    cos = (gpu * cpu).sum(1) / np.linalg.norm(gpu, axis=1) / np.linalg.norm(cpu, axis=1)
    assert cos.min() > 0.99


def test_command_line_writes_run_dir_embeddings(tiny, tmp_path):
    from protlab.core.rundir import RunDir
    from protlab.embed.stage import STAGE, run

    table = pd.DataFrame({"id": ["a", "b", "c"], "sequence": random_seqs(3, lo=20, seed=13),
                          "label": ["x", "x", "y"], "split": "train"})
    RunDir(tmp_path).save_proteins(table)
    ckpt = save_esm(tiny[0], tiny[1], tmp_path / "tiny.pt")
    assert STAGE.main(run, ["--run-dir", str(tmp_path), "--encoder", str(ckpt), "--repr-layer", "1",
                            "--device", "cpu"]) == 0
    ids, emb, meta = RunDir(tmp_path).load_embeddings()
    assert ids == ["a", "b", "c"] and emb.shape == (3, 32) and meta["layer"] == 1
    assert (tmp_path / "cache" / "embeddings" / meta["cache_key"]).is_dir()
