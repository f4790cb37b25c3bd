"""The training loop: config strictness, schedule, exact resume after SIGKILL, checkpoints,
bad input, retrieval metrics, DDP on CPU (gloo) and the GPU paths (skipped on CPU); the
stage: its parameters, validation before any work, its record and its command line."""
from __future__ import annotations

import ast
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import protlab
from protlab import pretrain
from protlab.core.checkpoint import CheckpointError, save_checkpoint
from protlab.core.errors import InputError
from protlab.demo import QUICK_PARAMS
from protlab.notebooks import notebook_parameters
from protlab.pretrain import STAGE
from protlab.pretrain import loop as T
from protlab.pretrain.config import FIELDS, PretrainConfig, load_config, make_config
from protlab.pretrain.data import Collator, PairBatches, load_pairs
from protlab.pretrain.retrieval import class_prompts, encode_proteins, ranking_metrics, zero_shot_accuracy

REPO = Path(__file__).resolve().parents[2]
AA = "ACDEFGHIKLMNPQRSTVWY"
TINY = {"protein_tiny_args": {"num_layers": 1, "embed_dim": 32, "attention_heads": 2},
        "text_tiny_args": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "intermediate_size": 64},
        "proj_dim": 16, "batch_size": 4, "crop_length": 40, "max_text_length": 24, "max_property_length": 12,
        "warmup_steps": 2, "log_every": 1, "progress": False, "eval_batch_size": 16}


def synthetic_proteins(n_families=3, members=8, *, seed=0, length=(30, 60)) -> pd.DataFrame:
    """Families of mutated consensus sequences with UniProt-style texts and a split column."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_families):
        consensus = "".join(rng.choice(list(AA), int(rng.integers(*length))))
        for m in range(members):
            seq = "".join(c if rng.random() > 0.1 else rng.choice(list(AA)) for c in consensus)
            split = "test" if m < 2 else "train"
            rows.append({"id": f"s{f}_{m}", "sequence": seq, "label": f"fam{f}",
                         "protein_name": f"Enzyme {f}", "function": f"Catalyses reaction number {f}.",
                         "subcellular_location": ["Cytoplasm", "Nucleus"][f % 2] if m % 3 else None,
                         "similarity": f"Belongs to the fam{f} family.", "split": split})
    return pd.DataFrame(rows)


def tiny_run(tmp_path, name="run", frame=None, **over) -> PretrainConfig:
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else synthetic_proteins()).to_parquet(run_dir / "proteins.parquet", index=False)
    return make_config("toy-cpu", run_dir=str(run_dir), **{**TINY, **over})


# ----------------------------------------------------------------------------- config
def test_unknown_config_key_is_rejected_by_name(tmp_path):
    with pytest.raises(InputError, match="'max_step'.*did you mean 'max_steps'"):
        make_config("toy-cpu", max_step=3)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("preset: toy-cpu\nmax_steps: 3\nlearning_rate: 0.1\n")
    with pytest.raises(InputError, match=r"cfg\.yaml.*'learning_rate'"):
        load_config(cfg)
    cfg.write_text("preset: server\nmax_steps: 3\n")
    loaded = load_config(cfg)
    assert loaded.max_steps == 3 and loaded.protein_encoder == "esm2_t33_650M_UR50D"
    with pytest.raises(InputError, match="unknown preset"):
        make_config("laptop")
    with pytest.raises(InputError, match="every objective is switched off"):
        make_config(w_gc=0, w_mlm=0, w_bsr=0, w_pda=0)


def test_partial_tiny_tower_args_keep_the_other_defaults():
    cfg = make_config(protein_tiny_args={"num_layers": 1}, text_tiny_args={"hidden_size": 32})
    assert cfg.protein_tiny_args == {"num_layers": 1, "embed_dim": 96, "attention_heads": 4}
    assert cfg.text_tiny_args == {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                                  "intermediate_size": 128}
    assert make_config().protein_tiny_args == {"num_layers": 3, "embed_dim": 96, "attention_heads": 4}


def test_warmup_then_cosine_schedule():
    cfg = make_config(warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    f = [T.lr_factor(s, cfg) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.5)))
    assert all(a >= b for a, b in zip(f[9:], f[10:])) and f[-1] > 0.1


def test_freezing_and_lr_ratio():
    model, _ = T.build_model(make_config(freeze_protein=True, text_lr_ratio=0.5, **{k: v for k, v in TINY.items()
                                                                                     if k.endswith("args")}))
    groups = T.param_groups(model, make_config(freeze_protein=True, text_lr_ratio=0.5, lr=1e-3))
    names = {g["name"]: g["lr"] for g in groups}
    assert not any(n.startswith("protein") for n in names)
    assert names["text"] == pytest.approx(5e-4) and names["heads"] == pytest.approx(1e-3)
    assert not any(p.requires_grad for p in model.protein.parameters())


# ------------------------------------------------------------------------------- data
def test_empty_text_is_a_clear_error(tmp_path):
    frame = synthetic_proteins()
    frame.loc[3, ["protein_name", "function", "subcellular_location", "similarity"]] = None
    with pytest.raises(InputError, match=r"empty text.*s0_3"):
        load_pairs(frame)
    frame.to_parquet(tmp_path / "proteins.parquet")
    with pytest.raises(InputError, match="proteins.parquet"):
        load_pairs(tmp_path, split="train")
    with pytest.raises(InputError, match="01_curate"):
        load_pairs(tmp_path / "nowhere")


def test_several_splits_joined_by_plus():
    frame = synthetic_proteins()
    frame.loc[frame["id"].str.endswith("_2"), "split"] = "valid"
    both = load_pairs(frame, split="valid+test")
    assert sorted(both["id"]) == sorted(frame.loc[frame["split"] != "train", "id"]) and len(both) == 9
    assert len(load_pairs(frame, split="test")) == 6
    with pytest.raises(InputError, match=r"'dev\+holdout' is empty"):
        load_pairs(frame, split="dev+holdout")


def test_long_sequences_cropped_in_training_windowed_in_eval():
    cfg = make_config(**TINY)
    model, tok = T.build_model(cfg)
    frame = synthetic_proteins(length=(150, 151))
    pairs = load_pairs(frame, split="train")
    col = Collator(model.alphabet, tok, crop_length=40)
    batch = PairBatches(pairs, col, batch_size=4).batch(0)
    assert batch["tokens"].shape[1] == 42  # 40 residues + cls + eos
    model.eval()
    seq = pairs["sequence"].iloc[0]
    whole = encode_proteins(model, [seq], col, crop_length=40, stride=20)
    first = encode_proteins(model, [seq[:40]], col, crop_length=40)
    assert whole.shape == (1, 16) and np.isfinite(whole).all()
    assert np.linalg.norm(whole - first) > 1e-3  # every window counts, not just the first


def test_batches_key_each_pair_by_its_text_input():
    cfg = make_config(**TINY)
    model, tok = T.build_model(cfg)
    rows = pd.DataFrame({"sequence": ["MKTAYIAKQR", "MKVLAAGIVG", "MSTNPKPQRK", "MAHHHHHHVG"],
                         "text": ["a kinase", "a long text about a ligase", "a kinase", "a kinase too"]})
    key = Collator(model.alphabet, tok)(rows, np.random.default_rng(0))["text_key"]
    assert key.dtype == torch.long and key.shape == (4,)
    assert key[0] == key[2] and len({int(k) for k in key}) == 3
    # texts cut to the same tokens are one input, hence one key
    cut = Collator(model.alphabet, tok, max_text_length=3)(
        pd.DataFrame({"sequence": ["MKTAYIAKQR"] * 2, "text": ["a long text", "a long story"]}),
        np.random.default_rng(0))["text_key"]
    assert cut[0] == cut[1]


def test_batches_are_deterministic_per_step():
    cfg = make_config(**TINY)
    model, tok = T.build_model(cfg)
    pairs = load_pairs(synthetic_proteins(), split="train")
    b1 = PairBatches(pairs, Collator(model.alphabet, tok), batch_size=4, seed=1)
    b2 = PairBatches(pairs, Collator(model.alphabet, tok), batch_size=4, seed=1)
    x, y = b1.batch(7), b2.batch(7)
    assert all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(b1.batch(8)["mlm_targets"], x["mlm_targets"])  # each step draws new masks
    ranks = [PairBatches(pairs, Collator(model.alphabet, tok), batch_size=4, rank=r, world=2).indices(0) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])  # ranks see disjoint pairs


# ------------------------------------------------------------------------ retrieval
def test_loss_window_means_and_weighted_total():
    log = T.LossWindow({"gc": 1.0, "mlm": 0.5, "bsr": 0.0, "pda": 2.0})
    assert log.names == ["gc", "mlm", "pda"]
    log.add(torch.tensor([1.0, 4.0, 0.5]), torch.tensor(3.0))
    log.add(torch.tensor([3.0, 2.0, 1.5]), torch.tensor(1.0))
    rec = log.record()
    assert rec == {"gc": 2.0, "mlm": 3.0, "pda": 1.0, "loss": 2.0 + 1.5 + 2.0, "grad_norm": 1.0,
                   "last_loss": 3.0 + 1.0 + 3.0}
    log.add(torch.tensor([5.0, 0.0, 0.0]), torch.tensor(0.0))
    log.drain()  # a checkpoint: the open window is saved and restored
    assert log.window["_n"] == 1
    again = T.LossWindow(log.weights, window=log.window)
    again.add(torch.tensor([1.0, 0.0, 0.0]), torch.tensor(0.0))
    assert again.record()["gc"] == 3.0


def test_substitution_augments_only_the_clean_view():
    model, tok = T.build_model(make_config(**TINY))
    rows = load_pairs(synthetic_proteins(), split="train").iloc[:4]
    plain = Collator(model.alphabet, tok)(rows, np.random.default_rng(5))
    mutated = Collator(model.alphabet, tok, substitution_prob=0.3)(rows, np.random.default_rng(5))
    for key in ("mlm_tokens", "mlm_targets", "bsr_tokens", "bsr_targets", "text_ids", "prop_ids"):
        assert torch.equal(plain[key], mutated[key]), key  # drawn last: the other views are unchanged
    residues = (plain["tokens"] != model.alphabet.padding_idx) & (plain["tokens"] != model.alphabet.cls_idx) \
        & (plain["tokens"] != model.alphabet.eos_idx)
    changed = (plain["tokens"] != mutated["tokens"])
    assert not (changed & ~residues).any()  # specials and padding untouched
    rate = changed.sum().item() / residues.sum().item()
    assert 0.3 * 19 / 20 * 0.7 < rate < 0.3 * 19 / 20 * 1.3  # a random residue is the same one 1 time in 20
    assert set(mutated["tokens"][changed].tolist()) <= {model.alphabet.get_idx(a) for a in AA}


def test_data_workers_build_the_same_micro_batches():
    model, tok = T.build_model(make_config(**TINY))
    batches = PairBatches(load_pairs(synthetic_proteins(), split="train"), Collator(model.alphabet, tok),
                          batch_size=4)
    inline = list(T.micro_batch_stream(batches, 3, 9, workers=0, pin=False))
    ahead = list(T.micro_batch_stream(batches, 3, 9, workers=2, pin=False))
    assert len(inline) == len(ahead) == 6
    for a, b in zip(inline, ahead):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(inline[0]["tokens"], batches.batch(3)["tokens"])


def test_ranking_metrics_with_ties_are_expectations():
    scores = np.array([[0.9, 0.1, 0.2], [0.5, 0.5, 0.0], [0.3, 0.8, 0.1]])
    m = ranking_metrics(scores, np.arange(3), ks=(1, 2))
    # query 0: rank 1; query 1: tied with one other -> rank 1 or 2; query 2: rank 3
    assert m["mrr"] == pytest.approx((1 + (1 + 0.5) / 2 + 1 / 3) / 3)
    assert m["recall_at_1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["recall_at_2"] == pytest.approx((1 + 1 + 0) / 3)


def test_zero_shot_prompts_and_accuracy():
    pairs = load_pairs(synthetic_proteins(), split="train")
    prompts = class_prompts(pairs, field="similarity")
    assert prompts == {f"fam{f}": f"Belongs to the fam{f} family." for f in range(3)}
    full = class_prompts(pairs)  # every property's most common value, in the pretraining text format
    assert full["fam1"] == ("PROTEIN NAME: Enzyme 1; FUNCTION: Catalyses reaction number 1.; "
                            "SUBCELLULAR LOCATION: Nucleus; SIMILARITY: Belongs to the fam1 family.")
    assert class_prompts(pairs.assign(similarity=None), field="similarity", template="a {label} protein")["fam0"] == "a fam0 protein"
    emb = np.eye(3)[[0, 1, 2, 2]]
    assert zero_shot_accuracy(emb, np.eye(3), ["a", "b", "c", "a"], ["a", "b", "c"])[0] == 0.75
    # real collections: labels only in held-out splits, and missing labels, are left out and counted
    acc, coverage = zero_shot_accuracy(emb, np.eye(3), ["a", "b", float("nan"), "z"], ["a", "b", "c"])
    assert acc == 1.0 and coverage == {"scored": 2, "labelled": 3, "proteins": 4, "labels_without_prompt": ["z"]}
    assert zero_shot_accuracy(emb, np.eye(3), [None, "", float("nan"), "z"], ["a", "b", "c"])[0] is None
    unlabelled = pairs.assign(label=[None if i % 2 else lab for i, lab in enumerate(pairs["label"])])
    assert set(class_prompts(unlabelled)) <= {"fam0", "fam1", "fam2"}


def test_ensemble_prompts_average_the_class_training_texts(monkeypatch):
    import protlab.pretrain.retrieval as R

    pairs = load_pairs(synthetic_proteins(), split="train")
    prompts = class_prompts(pairs, field="ensemble")
    assert sorted(prompts) == ["fam0", "fam1", "fam2"]
    for label, texts in prompts.items():  # every distinct training text of the class, no other class's
        assert texts == list(dict.fromkeys(pairs.loc[pairs["label"] == label, "text"]))
    vectors = {"a1": [1.0, 0.0], "a2": [0.0, 1.0], "b": [3.0, 4.0]}
    monkeypatch.setattr(R, "embed_texts", lambda model, texts, collator, **kw: np.array([vectors[t] for t in texts]))
    emb = R.prompt_embeddings(None, {"A": ["a1", "a2"], "B": "b"}, ["B", "A"], None, max_length=8)
    np.testing.assert_allclose(emb, [[0.6, 0.8], [2 ** -0.5, 2 ** -0.5]])  # mean, renormalised; class order kept


# --------------------------------------------------------------------- checkpoints
def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, "pretrain", {"step": 1, "w": torch.ones(3)})
    real_save = torch.save

    def failing_save(obj, f, *a, **k):
        real_save({"partial": torch.zeros(1000)}, f)  # half-written bytes, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointError, match="No space left.*previous file .* is intact"):
        save_checkpoint(path, "pretrain", {"step": 2, "w": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)
    kept = torch.load(path, weights_only=False)
    assert kept["step"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_training_artifacts_and_wrong_architecture(tmp_path):
    cfg = tiny_run(tmp_path, max_steps=4, ckpt_every=2)
    run_dir = Path(cfg.run_dir)
    result = pretrain.run(run_dir, **TINY, max_steps=4, ckpt_every=2)  # the stage: train, then figures
    assert result.config == cfg  # parameters that are not None override the preset, as make_config does
    summary = result.summary
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    assert result.metrics == metrics and list(result.table.columns) == ["trained", "untrained"]
    assert result.table.loc["zero-shot family accuracy", "trained"] == metrics["zero_shot_acc"]
    for key in ("mrr", "recall_at_1", "recall_at_10", "zero_shot_acc"):
        assert 0 <= metrics[key] <= 1 and 0 <= metrics["untrained"][key] <= 1
    assert set(metrics["text_to_protein"]) == {"mrr", "recall_at_1", "recall_at_10"}
    assert metrics["n_pairs"] == 6 and metrics["n_classes"] == 3 and metrics["split"] == "valid+test"
    again = T.evaluate_checkpoint(run_dir, metrics["split"])  # the finished run, re-scored from its checkpoint
    assert again["mrr"] == pytest.approx(metrics["mrr"])
    assert again["untrained"]["mrr"] == pytest.approx(metrics["untrained"]["mrr"])
    assert again["zero_shot_acc"] == metrics["zero_shot_acc"] and again["mrr_ratio"] == pytest.approx(metrics["mrr_ratio"])
    history = T.read_log(run_dir)
    assert [r["step"] for r in history] == [1, 2, 3, 4] and summary["final_loss"] == history[-1]["last_loss"]
    assert all(k in history[0] for k in ("gc", "mlm", "bsr", "pda", "lr", "temperature"))
    assert history[0]["temperature"] == pytest.approx(0.07, rel=0.05)
    assert result.history == history and set(result.figures) == {"losses", "retrieval"}
    for name in ("pretrain_losses", "pretrain_retrieval"):
        assert (run_dir / "figures" / f"{name}.png").is_file() and (run_dir / "figures" / f"{name}.html").is_file()
    # the exported protein tower loads as a plain fair-esm ESM-2, and by path through load_esm (02 / 04)
    import esm

    exported = torch.load(run_dir / "checkpoints" / "protein_encoder.pt", weights_only=False)
    assert (exported["format"], exported["kind"]) == ("protlab", "esm2") and exported["esm_args"]["embed_dim"] == 32
    tower = esm.model.esm2.ESM2(alphabet=esm.data.Alphabet.from_architecture("ESM-1b"), **exported["esm_args"])
    tower.load_state_dict(exported["state_dict"])
    from protlab.esm.load import load_esm

    loaded, _ = load_esm(str(run_dir / "checkpoints" / "protein_encoder.pt"))
    from_training, _ = load_esm(str(run_dir / "checkpoints" / "last.pt"))  # the training checkpoint works too
    assert torch.equal(from_training.state_dict()["embed_tokens.weight"], loaded.state_dict()["embed_tokens.weight"])
    trained = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert torch.equal(loaded.state_dict()["embed_tokens.weight"], trained["protein.embed_tokens.weight"])
    # a checkpoint from another architecture is refused, naming the difference
    other = make_config("toy-cpu", **{**cfg.to_dict(), "max_steps": 6,
                                      "protein_tiny_args": {"num_layers": 2, "embed_dim": 32, "attention_heads": 2}})
    with pytest.raises(InputError, match=r"another architecture.*num_layers"):
        T.run_training(other)
    assert json.loads((run_dir / "pretrain_metrics.json").read_text()) == metrics  # a refused run leaves them
    ckpt = run_dir / "checkpoints" / "last.pt"
    reloaded, _, reloaded_cfg = T.load_trained(ckpt)
    assert reloaded_cfg.max_steps == 4 and torch.equal(reloaded.logit_scale, torch.load(ckpt, weights_only=False)["model"]["logit_scale"])
    torch.save({"something": 1}, ckpt)
    with pytest.raises(InputError, match="expected a protlab 'pretrain' checkpoint"):
        pretrain.run(run_dir, **TINY, max_steps=4, ckpt_every=2)


def _train_cmd(cfg_path):
    return [sys.executable, "-m", "protlab.pretrain.train_config", "--config", str(cfg_path)]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    over = {"max_steps": 14, "ckpt_every": 4, "w_mlm": 0.3}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    results = {}
    for name in ("straight", "killed"):
        cfg = tiny_run(tmp_path, name, **over)
        cfg_path = Path(cfg.run_dir) / "cfg.json"
        cfg_path.write_text(json.dumps(cfg.to_dict()))
        results[name] = cfg
    subprocess.run(_train_cmd(Path(results["straight"].run_dir) / "cfg.json"), check=True, env=env,
                   capture_output=True, cwd=REPO)
    killed_dir = Path(results["killed"].run_dir)
    proc = subprocess.Popen(_train_cmd(killed_dir / "cfg.json"), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once a checkpoint exists and training has moved past it
        log = T.read_log(killed_dir) if (killed_dir / "pretrain_log.jsonl").is_file() else []
        if log and 5 <= log[-1]["step"] < 14 and (killed_dir / "checkpoints" / "last.pt").is_file():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    interrupted_at = T.read_log(killed_dir)[-1]["step"]
    assert interrupted_at < 14, "the run finished before it could be killed"
    subprocess.run(_train_cmd(killed_dir / "cfg.json"), check=True, env=env, capture_output=True, cwd=REPO)
    straight, resumed = T.read_log(results["straight"].run_dir), T.read_log(killed_dir)
    assert [r["step"] for r in resumed] == list(range(1, 15))
    for a, b in zip(straight, resumed):
        for key in ("loss", "gc", "mlm", "bsr", "pda", "last_loss", "lr"):
            assert a[key] == b[key], (a["step"], key)
    sa = torch.load(Path(results["straight"].run_dir) / "checkpoints" / "last.pt", weights_only=True)["model"]
    sb = torch.load(killed_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cli_rejects_unknown_key(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"run_dir": str(tmp_path), "batchsize": 4}))
    proc = subprocess.run(_train_cmd(cfg), capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "'batchsize'" in proc.stderr


@pytest.mark.slow
def test_torchrun_ddp_on_cpu_only_rank0_writes(tmp_path, capfd, monkeypatch):
    """nproc=2 makes run() launch torchrun (gloo on CPU); rank 0 alone logs and checkpoints."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = tiny_run(tmp_path, "ddp", max_steps=3, ckpt_every=3, nproc=2)  # every loss on: no unused parameters
    out = T.run_training(cfg)
    assert out["metrics"]["steps"] == 3 and out["step"] == 3
    captured = capfd.readouterr()
    assert "torch.distributed.run" in captured.out and "--nproc_per_node=2" in captured.out
    log = T.read_log(cfg.run_dir)
    assert [r["step"] for r in log] == [1, 2, 3]  # one writer
    ckpt = torch.load(Path(cfg.run_dir) / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["step"] == 3 and ckpt["data_position"]["micro_step"] == 3
    assert ckpt["config"]["nproc"] == 1  # the workers train; they do not launch again


@pytest.mark.slow
def test_ddp_resume_after_sigkill_matches_uninterrupted_run(tmp_path, monkeypatch, capfd):
    """torchrun with 2 ranks (gloo), killed as a whole after a checkpoint and resumed: the same
    log and weights as a run never stopped (every rank restores its own RNG streams)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    over = {"max_steps": 24, "ckpt_every": 4, "nproc": 2}
    straight, killed = tiny_run(tmp_path, "straight", **over), tiny_run(tmp_path, "killed", **over)
    T.run_training(straight)
    killed_dir = Path(killed.run_dir)
    cfg_path = killed_dir / "cfg.json"
    cfg_path.write_text(json.dumps({**killed.to_dict(), "nproc": 1}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "protlab.pretrain.train_config", "--config", str(cfg_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        log = T.read_log(killed_dir) if (killed_dir / "pretrain_log.jsonl").is_file() else []
        if log and 5 <= log[-1]["step"] < 24 and (killed_dir / "checkpoints" / "last.pt").is_file():
            break
        time.sleep(0.01)
    import psutil  # (ipykernel's dependency)

    launcher = psutil.Process(proc.pid)
    job = [launcher, *launcher.children(recursive=True)]
    for p in job:  # the launcher and both ranks (torchrun starts them in their own sessions)
        p.kill()
    proc.wait()
    _, alive = psutil.wait_procs(job[1:], timeout=30)
    assert len(job) >= 3 and not alive
    assert T.read_log(killed_dir)[-1]["step"] < 24, "the run finished before it could be killed"
    ckpt = torch.load(killed_dir / "checkpoints" / "last.pt", weights_only=True)
    assert len(ckpt["rng_per_rank"]) == 2
    T.run_training(killed)
    assert f"resumed from {killed_dir / 'checkpoints' / 'last.pt'} at step {ckpt['step']}" in capfd.readouterr().out
    a, b = T.read_log(straight.run_dir), T.read_log(killed_dir)
    assert [r["step"] for r in b] == list(range(1, 25))
    for ra, rb in zip(a, b):
        for key in ("loss", "gc", "mlm", "bsr", "pda", "last_loss", "grad_norm", "lr"):
            assert ra[key] == rb[key], (ra["step"], key)
    sa = torch.load(Path(straight.run_dir) / "checkpoints" / "last.pt", weights_only=True)["model"]
    sb = torch.load(killed_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------ GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bf16 autocast, torch.compile)")
@pytest.mark.parametrize("compile_model", [False, True])
def test_gpu_bf16_training_step(tmp_path, compile_model):
    cfg = tiny_run(tmp_path, max_steps=3, ckpt_every=3, device="cuda", precision="auto", compile=compile_model)
    summary = T.run_training(cfg)
    assert np.isfinite(summary["final_loss"])
    assert T._autocast_factory("cuda", cfg) is not None


def test_cpu_bf16_autocast_training(tmp_path):
    """precision='bf16' runs the GPU's autocast path on the CPU: every loss finite, logged as float."""
    cfg = tiny_run(tmp_path, max_steps=2, ckpt_every=2, precision="bf16")
    assert T._autocast_factory("cpu", cfg) is not None
    T.run_training(cfg)
    log = T.read_log(cfg.run_dir)
    assert [r["step"] for r in log] == [1, 2]
    assert all(np.isfinite(r[k]) for r in log for k in ("gc", "mlm", "bsr", "pda", "grad_norm"))


def _fixed_shape_batch(cfg, model, tok, step=1):
    pairs = load_pairs(synthetic_proteins(), split="train")
    collator = Collator(model.alphabet, tok, crop_length=cfg.crop_length, max_text_length=cfg.max_text_length,
                        max_property_length=cfg.max_property_length, fixed_shapes=True,
                        weights=T.loss_weights(cfg))
    return PairBatches(pairs, collator, batch_size=4).batch(step)


def test_forward_on_fixed_shape_batches_is_one_compiled_graph():
    """With compile=True the whole ProtCLIP step (4 losses, 3 protein passes) is one graph: no
    data-dependent shapes or branches (torch.compile would split it and run the pieces eagerly)."""
    import torch._dynamo as dynamo

    cfg = make_config(**TINY)
    model, tok = T.build_model(cfg)
    batch = _fixed_shape_batch(cfg, model, tok)
    assert not batch["prop_valid"].all()  # absent properties are in the batch
    weights = T.loss_weights(cfg)
    explained = dynamo.explain(lambda b: model(b, weights=weights))(batch)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1


@pytest.mark.slow
def test_compiled_training_matches_eager_on_cpu(tmp_path):
    """compile=True (inductor, CPU) trains to the eager run's losses (dropout off: compiled
    kernels draw their own random numbers)."""
    no_dropout = {**TINY["text_tiny_args"], "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    runs = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        cfg = tiny_run(tmp_path, name, max_steps=3, ckpt_every=3, compile=compiled, text_tiny_args=no_dropout)
        T.run_training(cfg)
        runs[name] = T.read_log(cfg.run_dir)
    for a, b in zip(runs["eager"], runs["compiled"]):
        for key in ("gc", "mlm", "bsr", "pda"):
            assert b[key] == pytest.approx(a[key], rel=2e-3), (a["step"], key)


def test_notebook_parameters_cover_every_config_field():
    import nbformat

    from protlab.pretrain.config import FIELDS

    nb = nbformat.read(REPO / "notebooks" / "03_pretrain.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line and line[0] != "#"}
    assert set(FIELDS) <= names, sorted(set(FIELDS) - names)


def test_fixed_shape_batches_give_the_same_losses():
    """compile=True pads every batch to the crop / max lengths; the losses must not change."""
    cfg = make_config(**TINY)
    model, tok = T.build_model(cfg)
    model.eval()
    pairs = load_pairs(synthetic_proteins(), split="train")
    kw = dict(crop_length=cfg.crop_length, max_text_length=cfg.max_text_length,
              max_property_length=cfg.max_property_length)
    loose_b = PairBatches(pairs, Collator(model.alphabet, tok, **kw), batch_size=4)
    step = next(i for i in range(20) if not loose_b.batch(i)["prop_valid"].all())  # a batch lacking a property
    loose = loose_b.batch(step)
    fixed = PairBatches(pairs, Collator(model.alphabet, tok, fixed_shapes=True, **kw), batch_size=4).batch(step)
    assert fixed["tokens"].shape == (4, cfg.crop_length + 2) and fixed["text_ids"].shape == (4, cfg.max_text_length)
    assert fixed["prop_ids"].shape[0] == 16 and loose["prop_ids"].shape[0] == int(loose["prop_valid"].sum()) < 16
    with torch.no_grad():
        a, b = model(loose, weights=T.loss_weights(cfg)), model(fixed, weights=T.loss_weights(cfg))
    for k in a:
        assert a[k].item() == pytest.approx(b[k].item(), rel=1e-4, abs=1e-5), k


# ---------------------------------------------------------------------------- stage
def test_stage_parameters_are_the_preset_and_every_config_field():
    assert list(STAGE.by_name) == ["preset", *(name for name in FIELDS if name != "run_dir")]
    assert STAGE.defaults() == {"preset": "toy-cpu", **{name: None for name in FIELDS if name != "run_dir"}}
    # the notebook's parameters cell: the same names and defaults, and the run directory
    cell = {name: ast.literal_eval(source) for name, source in notebook_parameters("03_pretrain").items()}
    assert cell == {"run_dir": "runs/demo", **STAGE.defaults()}
    assert "``max_steps`` = ``None``" in pretrain.run.__doc__


def test_run_rejects_an_unknown_parameter_by_name(tmp_path):
    with pytest.raises(InputError, match=r"unknown parameter 'max_step' for pretrain \(did you mean 'max_steps'\?\)"):
        pretrain.run(tmp_path, max_step=3)
    with pytest.raises(InputError, match=r"'batchsize'.*did you mean 'batch_size'"):
        pretrain.run(tmp_path, batchsize=4)


@pytest.mark.parametrize("name, value", [
    ("log_every", 0), ("ckpt_every", 0), ("batch_size", 0), ("temperature_init", 0), ("lr", "abc"),
    ("device", "tpu"), ("proj_dim", 0), ("max_steps", "ten"), ("mlm_prob", 1.0), ("preset", "laptop"),
    ("zero_shot_field", "colour"), ("zero_shot_template", "a {family} protein"), ("resume", "yes"),
    ("protein_tiny_args", [1, 2]), ("nproc", 0), ("precision", "fp16"), ("min_lr_ratio", 1.5),
])
def test_bad_values_are_refused_by_name_before_any_work(tmp_path, name, value):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    synthetic_proteins().to_parquet(run_dir / "proteins.parquet", index=False)
    with pytest.raises(InputError, match=rf"^{name}=.* is not allowed: "):
        pretrain.run(run_dir, **{name: value})
    assert [p.name for p in run_dir.iterdir()] == ["proteins.parquet"]  # nothing written, nothing trained


def test_config_checks_across_parameters_come_before_any_work(tmp_path):
    with pytest.raises(InputError, match=r"batch_size=1: contrastive learning needs at least 2"):
        pretrain.run(tmp_path, batch_size=1)
    with pytest.raises(InputError, match=r"bsr_span_min <= bsr_span_max"):
        pretrain.run(tmp_path, bsr_span_min=8, bsr_span_max=6)
    with pytest.raises(InputError, match=r"proteins.parquet does not exist: run 01_curate"):
        pretrain.run(tmp_path / "empty", max_steps=2)
    assert not (tmp_path / "empty").exists()


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """proteins.parquet written by 01_curate's stage on the quick toy universe (4 families x 12)."""
    run_dir = tmp_path_factory.mktemp("curated")
    protlab.curate.run(run_dir, **QUICK_PARAMS["01_curate"])
    return run_dir / "proteins.parquet"


def test_run_writes_its_stage_record(tmp_path, curated):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "proteins.parquet").write_bytes(curated.read_bytes())
    result = pretrain.run(run_dir, **TINY, max_steps=2, ckpt_every=2)
    record = json.loads((run_dir / "pretrain.json").read_text())
    assert (record["stage"], record["notebook"], record["protlab_version"]) == ("pretrain", "03_pretrain",
                                                                               protlab.__version__)
    assert record["params"] == {**STAGE.defaults(), **TINY, "max_steps": 2, "ckpt_every": 2}
    sha = hashlib.sha256(curated.read_bytes()).hexdigest()
    assert record["inputs"] == {"proteins.parquet": {"sha256": sha}}  # a fresh run: no checkpoint read
    for name in ("checkpoints/last.pt", "checkpoints/protein_encoder.pt", "pretrain_log.jsonl",
                 "pretrain_metrics.json", "pretrain_untrained_metrics.json", "figures/pretrain_losses.html",
                 "figures/pretrain_losses.png", "figures/pretrain_retrieval.html", "figures/pretrain_retrieval.png"):
        assert record["outputs"][name]["bytes"] == (run_dir / name).stat().st_size > 0, name
    assert "pretrain_config.json" not in record["outputs"]  # written only to launch torchrun
    assert set(record["timings"]) == {"train", "figures", "total"} and record["timings"]["total"] > 0
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    held_out = int((pd.read_parquet(curated)["split"] != "train").sum())
    results = record["results"]
    assert results["steps"] == 2 and results["n_pairs"] == metrics["n_pairs"] == held_out
    for key in ("zero_shot_acc", "mrr", "mrr_ratio"):
        assert results[key] == metrics[key] and np.isfinite(results[key])
    assert results["untrained_mrr"] == metrics["untrained"]["mrr"]
    assert set(results["loss_trends"]) == {"gc", "mlm", "bsr", "pda"} and results["final_loss"] == result.summary["final_loss"]
    assert result.results == results and result.protein_encoder == run_dir / "checkpoints" / "protein_encoder.pt"
    # run again (resume): the checkpoint it continues from is an input
    pretrain.run(run_dir, **TINY, max_steps=3, ckpt_every=2)
    again = json.loads((run_dir / "pretrain.json").read_text())
    assert set(again["inputs"]) == {"proteins.parquet", "checkpoints/last.pt"} and again["results"]["steps"] == 3


def test_stage_command_line(tmp_path):
    env = {**os.environ, "COLUMNS": "300"}  # argparse wraps help at the terminal width
    proc = subprocess.run([sys.executable, "-m", "protlab.pretrain", "--help"], capture_output=True, text=True,
                          cwd=REPO, env=env)
    assert proc.returncode == 0
    help_text = " ".join(proc.stdout.split())  # argparse wraps lines
    for p in STAGE.params:
        assert f"--{p.name.replace('_', '-')} " in help_text, p.name
    assert "--max-steps INT optimiser steps [preset: toy-cpu 600, server 50000] (default: None; int >= 1 or None)" \
        in help_text
    proc = subprocess.run([sys.executable, "-m", "protlab.pretrain", "--run-dir", str(tmp_path), "--max-steps", "ten"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "max_steps='ten' is not allowed" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_resume_with_changed_settings_is_refused_unless_overridden(tmp_path, capsys):
    cfg = tiny_run(tmp_path, max_steps=2, ckpt_every=2)
    T.run_training(cfg)
    longer = make_config("toy-cpu", **{**cfg.to_dict(), "max_steps": 3})  # more steps: allowed
    changed = make_config("toy-cpu", **{**cfg.to_dict(), "max_steps": 3, "lr": 1e-3, "seed": 5, "batch_size": 3})
    with pytest.raises(InputError, match=r"other settings or data \(lr: 0.002 -> 0.001; seed: 0 -> 5; batch_size: 4 -> 3\)"
                                         r".*resume_override=True"):
        T.run_training(changed)
    assert T.run_training(longer)["step"] == 3
    overridden = make_config("toy-cpu", **{**changed.to_dict(), "max_steps": 4, "resume_override": True})
    assert T.run_training(overridden)["step"] == 4
    assert "with changed settings (resume_override): lr: 0.002 -> 0.001" in capsys.readouterr().out


def test_cut_last_log_line_does_not_block_resume(tmp_path):
    cfg = tiny_run(tmp_path, max_steps=2, ckpt_every=2)
    T.run_training(cfg)
    log = Path(cfg.run_dir) / "pretrain_log.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "loss": 1.2')  # a killed run's half-written record
    assert [r["step"] for r in T.read_log(cfg.run_dir)] == [1, 2]
    assert T.run_training(make_config("toy-cpu", **{**cfg.to_dict(), "max_steps": 3}))["step"] == 3
    assert [r["step"] for r in T.read_log(cfg.run_dir)] == [1, 2, 3]
    log.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(InputError, match=r"pretrain_log.jsonl, line 2: not a JSON record"):
        T.read_log(cfg.run_dir)
