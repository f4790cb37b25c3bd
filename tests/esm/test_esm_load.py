"""Encoders: every checkpoint format loads into fair-esm's ESM2, the k-mer baseline, errors."""
from __future__ import annotations

import argparse
import shutil
import urllib.error

import numpy as np
import pytest
import torch

from protlab.embed.encoders import get_encoder
from protlab.core.errors import InputError
from protlab.embed.kmer import KmerEncoder
from protlab.esm.load import load_esm, new_esm, save_esm

ARGS = {"num_layers": 2, "embed_dim": 32, "attention_heads": 4}
TOKENS = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 2], [0, 11, 12, 13, 2, 1, 1, 1]])


def reps(model, layer=2):
    with torch.no_grad():
        return model(TOKENS, repr_layers=[layer])["representations"][layer]


@pytest.fixture(scope="module")
def tiny():
    return new_esm(ARGS, seed=3)


def write_fair_esm_pt(model, path, *, regression: bool = False):
    """A checkpoint in the layout fair-esm publishes (cfg Namespace, prefixed keys)."""
    state = model.state_dict()
    weights = {("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
               for k, v in state.items() if not k.startswith("contact_head")}
    cfg = argparse.Namespace(encoder_layers=model.num_layers, encoder_embed_dim=model.embed_dim,
                             encoder_attention_heads=model.attention_heads, token_dropout=True)
    torch.save({"cfg": {"model": cfg}, "model": weights}, path)
    if regression:
        head = {k: v for k, v in state.items() if k.startswith("contact_head")}
        torch.save({"model": head}, str(path.with_suffix("")) + "-contact-regression.pt")
    return path


def test_random_configs_are_seeded_esm2(tiny):
    import esm

    model, alphabet = load_esm("tiny")
    assert isinstance(model, esm.model.esm2.ESM2) and not model.training
    assert (model.num_layers, model.embed_dim) == (2, 32)
    again, _ = load_esm(dict(ARGS))
    assert torch.equal(reps(model), reps(again))  # seed 0 both times
    assert not torch.equal(reps(model), reps(tiny[0]))  # seed 3 differs


@pytest.mark.parametrize("name, regression", [("my_encoder.pt", False), ("esm2_t2_tiny.pt", True)])
def test_fair_esm_checkpoint_roundtrip(tiny, tmp_path, name, regression):
    path = write_fair_esm_pt(tiny[0], tmp_path / name, regression=regression)
    model, alphabet = load_esm(path)
    assert alphabet.all_toks == tiny[1].all_toks
    assert torch.equal(reps(model), reps(tiny[0]))
    if regression:
        assert torch.equal(model.contact_head.regression.weight, tiny[0].contact_head.regression.weight)


def test_pretrained_name_reads_torch_home(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    write_fair_esm_pt(tiny[0], hub / "esm2_t6_8M_UR50D.pt")  # tiny weights under the real name
    model, _ = load_esm("esm2_t6_8M_UR50D")
    assert torch.equal(reps(model), reps(tiny[0]))


def test_pretrained_name_offline_says_where_to_put_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(InputError) as err:
        load_esm("esm2_t12_35M_UR50D")
    message = str(err.value)
    assert "offline" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "local .pt" in message


def test_protlab_checkpoint_and_pretrain_checkpoint(tiny, tmp_path):
    path = save_esm(tiny[0], tiny[1], tmp_path / "protein_encoder.pt", step=7)
    saved = torch.load(path, weights_only=True)
    assert (saved["format"], saved["kind"]) == ("protlab", "esm2") and saved["meta"] == {"step": 7}
    assert saved["esm_args"] == {**ARGS, "token_dropout": True}
    assert torch.equal(reps(load_esm(path)[0]), reps(tiny[0]))
    # a 03_pretrain training checkpoint carrying the protein tower
    torch.save({"step": 7, "optimizer": {}, "protein_encoder": saved}, tmp_path / "ckpt.pt")
    assert torch.equal(reps(load_esm(tmp_path / "ckpt.pt")[0]), reps(tiny[0]))


def small_hf_dir(shared_data, tmp_path, *, masked_lm=False):
    import transformers

    src = shared_data / "weights" / "hf_configs" / "esm2_t6_8M_UR50D"
    config = transformers.EsmConfig.from_pretrained(str(src))
    config.num_hidden_layers, config.hidden_size = 2, 32
    config.num_attention_heads, config.intermediate_size = 4, 128
    torch.manual_seed(1)
    cls = transformers.EsmForMaskedLM if masked_lm else transformers.EsmModel
    hf = cls(config).eval()
    out = tmp_path / ("hf_mlm" if masked_lm else "hf")
    hf.save_pretrained(str(out))
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    return hf, out


def test_hugging_face_directory_matches_transformers(shared_data, tmp_path):
    hf, path = small_hf_dir(shared_data, tmp_path)
    model, _ = load_esm(path)
    assert (model.num_layers, model.embed_dim, model.attention_heads) == (2, 32, 4)
    with torch.no_grad():
        expected = hf(input_ids=TOKENS, attention_mask=(TOKENS != 1).long()).last_hidden_state
    ours = reps(model)
    real = TOKENS != 1
    assert torch.allclose(ours[real], expected[real], atol=1e-5)


def test_hugging_face_masked_lm_keeps_its_lm_head(shared_data, tmp_path):
    hf, path = small_hf_dir(shared_data, tmp_path, masked_lm=True)
    model, _ = load_esm(path)
    with torch.no_grad():
        expected = hf(input_ids=TOKENS[:1]).logits
        ours = model(TOKENS[:1])["logits"]
    assert torch.allclose(ours, expected, atol=1e-4)


def test_wrong_architecture_checkpoints_say_what_was_expected(tmp_path):
    big, alphabet = new_esm({"num_layers": 2, "embed_dim": 64, "attention_heads": 4})
    data = torch.load(save_esm(big, alphabet, tmp_path / "big.pt"), weights_only=True)
    data["esm_args"]["embed_dim"] = 32
    torch.save(data, tmp_path / "wrong_shape.pt")
    with pytest.raises(InputError, match=r"wrong_shape\.pt.*wrong shape.*\(64,\).*\(32,\) expected"):
        load_esm(tmp_path / "wrong_shape.pt")
    torch.save({"bert.embeddings.weight": torch.zeros(3)}, tmp_path / "bert.pt")
    with pytest.raises(InputError, match=r"bert\.pt: unrecognised checkpoint.*expected a fair-esm ESM-2"):
        load_esm(tmp_path / "bert.pt")
    torch.save({"args": argparse.Namespace(arch="roberta_large"), "model": {}}, tmp_path / "esm1b.pt")
    with pytest.raises(InputError, match="ESM-1 checkpoint.*ESM-2 only"):
        load_esm(tmp_path / "esm1b.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a readable checkpoint"):
        load_esm(tmp_path / "junk.pt")
    (tmp_path / "bert_dir").mkdir()
    (tmp_path / "bert_dir" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InputError, match="'bert' model; expected an ESM-2"):
        load_esm(tmp_path / "bert_dir")


def test_unknown_encoder_lists_choices(tmp_path):
    with pytest.raises(InputError, match=r"unknown encoder 'esm3'.*kmer.*tiny.*esm2_t6_8M_UR50D"):
        get_encoder("esm3")
    with pytest.raises(InputError, match="does not exist"):
        get_encoder(str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="unknown ESM2 arguments"):
        get_encoder({"layers": 2})


def test_kmer_encoder_is_deterministic_and_separates_families():
    rng = np.random.default_rng(0)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    families = ["".join(rng.choice(aa, 120)) for _ in range(3)]

    def mutate(seq):
        s = np.array(list(seq))
        where = rng.random(len(s)) < 0.1
        s[where] = rng.choice(aa, where.sum())
        return "".join(s)

    seqs = [mutate(f) for f in families for _ in range(10)]
    emb = KmerEncoder(dim=16).embed(seqs)
    assert emb.shape == (30, 16) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.array_equal(emb, KmerEncoder(dim=16).embed(seqs))
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    assert (nearest // 10 == np.arange(30) // 10).all()
    tiny = KmerEncoder(dim=64).embed(seqs[:5])  # fewer proteins than dimensions
    assert tiny.shape == (5, 4)
    with pytest.raises(InputError, match="per-residue"):
        KmerEncoder().embed(seqs, per_residue=True)
    with pytest.raises(InputError, match="at least 2"):
        KmerEncoder().embed(["ACDEFG"])


def test_pretrain_training_checkpoint_protein_tower(tiny, tmp_path):
    """The layout protlab.pretrain.loop writes: CLIP state dict with the tower under ``protein.``."""
    from protlab.esm.load import esm_args

    state = {"protein." + k: v for k, v in tiny[0].state_dict().items()}
    state["text_proj.weight"] = torch.zeros(2, 2)
    torch.save({"format": "protlab-pretrain", "model_args": {"protein": esm_args(tiny[0])}, "model": state,
                "step": 3, "config": {"protein_encoder": "tiny"}}, tmp_path / "last.pt")
    assert torch.equal(reps(load_esm(tmp_path / "last.pt")[0]), reps(tiny[0]))
