"""Pretraining configuration: one dataclass, two presets, strict loading.

``make_config("toy-cpu", max_steps=50)`` starts from a preset and overrides fields;
``load_config("cfg.json" | "cfg.yaml")`` reads a file (optionally naming a ``preset``).
A key that is not a field is rejected with an error naming it, so a typo never trains
silently with a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protlab.core.errors import InputError


@dataclass
class PretrainConfig:
    """Every setting of a ProtCLIP pretraining run (see DESIGN.md, ProtCLIP)."""

    run_dir: str = "runs/pretrain"
    # Towers. protein_encoder: fair-esm name, .pt path, HF dir, protlab checkpoint, or "tiny".
    protein_encoder: str = "tiny"
    # The smallest tower that learns the toy's families within the toy-cpu step budget.
    protein_tiny_args: dict = field(default_factory=lambda: {"num_layers": 3, "embed_dim": 96, "attention_heads": 4})
    # text_encoder: HF name or local dir, "minilm" (the offline MiniLM package) or "tiny" (random BERT).
    text_encoder: str = "tiny"
    text_tiny_args: dict = field(default_factory=lambda: {"hidden_size": 64, "num_hidden_layers": 2,
                                                          "num_attention_heads": 4, "intermediate_size": 128})
    proj_dim: int = 64
    decoder_layers: int = 1            # BSR cross-attention decoder depth
    freeze_protein: bool = False
    freeze_text: bool = False
    protein_lr_ratio: float = 1.0      # tower LR = lr * ratio (heads use lr)
    text_lr_ratio: float = 1.0
    temperature_init: float = 0.07     # logit scale starts at 1/0.07
    # Objectives: weight 0 switches one off. L = GC + 0.3 MLM + 0.7 BSR + PDA.
    w_gc: float = 1.0
    w_mlm: float = 0.3
    w_bsr: float = 0.7
    w_pda: float = 1.0
    mlm_prob: float = 0.15
    bsr_ratio: float = 0.15
    bsr_span_min: int = 5
    bsr_span_max: int = 10
    pda_theta: float = 0.3
    # Augmentation (not in ProtCLIP; off in the server preset): probability that a residue of the
    # GC / PDA view becomes a random residue. On the toy, 0.1 lifts held-out zero-shot accuracy
    # from 0.95 / 0.90 / 1.0 to 1.0 on seeds 0 / 1 / 2 (and 3): held-out members are divergent homologs.
    substitution_prob: float = 0.1
    # Data.
    crop_length: int = 128             # residues; longer sequences: random crop (train), windows (eval)
    eval_stride: int | None = None     # window stride in evaluation (default: crop_length // 2)
    max_text_length: int = 64
    max_property_length: int = 32
    train_split: str = "train"
    # Every held-out pair by default: the toy's test split alone is small, and a family's texts
    # differ only by noise, so more pairs give a steadier MRR; benchmarks/quality_pretrain.py
    # reports both. The valid split also picks the exported step (eval_every), which makes its
    # share of the score slightly optimistic; "test" gives an estimate nothing was chosen on.
    eval_split: str = "valid+test"     # a split, or several joined by "+"
    # Class prompt: "ensemble" (mean embedding of the class's distinct training texts), "all" (its most
    # common value of every property, as one text) or a property name (that property's most common value).
    zero_shot_field: str = "ensemble"
    zero_shot_template: str = "{label}"  # used when the field is absent
    # Optimisation.
    batch_size: int = 24               # per device, per micro-step
    grad_accum: int = 1
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    max_steps: int = 600
    min_lr_ratio: float = 0.1
    clip_grad: float = 1.0
    seed: int = 0
    # Runtime.
    device: str = "auto"
    # CPU intra-op threads (None: torch's default). Tiny towers gain little from threads, and on a
    # shared machine oversubscribed threads make a step several times slower, so toy-cpu uses 1.
    cpu_threads: int | None = 1
    # Processes that build batches ahead of the training step (0: built in the training process).
    data_workers: int = 0
    precision: str = "auto"            # "auto" (bf16 on GPU, fp32 on CPU), "bf16", "fp32"
    compile: bool = False
    nproc: int = 1                     # GPUs; > 1 launches torchrun from the notebook
    log_every: int = 5
    ckpt_every: int = 50
    # Steps per validation (valid split retrieval and losses); the best step by valid MRR is
    # the one exported. A twelfth of the toy run: enough points to see where retrieval peaks.
    eval_every: int = 50
    resume: bool = True                # continue from run_dir/checkpoints/last.pt when present
    # Resuming with other optimisation, data or loss settings than the checkpoint's is refused
    # (the run would be neither the old nor the new one) unless this says to go on anyway.
    resume_override: bool = False
    eval_batch_size: int = 32
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # Tiny towers on the toy universe: minutes on CPU.
    "toy-cpu": {},
    # ESM-2 650M + PubMedBERT on GPUs.
    "server": {
        "protein_encoder": "esm2_t33_650M_UR50D",
        "text_encoder": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext",
        "proj_dim": 512, "decoder_layers": 2, "protein_lr_ratio": 0.1, "text_lr_ratio": 0.1,
        "crop_length": 512, "max_text_length": 256, "max_property_length": 128,
        "batch_size": 32, "grad_accum": 4, "lr": 1e-4, "warmup_steps": 1000, "max_steps": 50_000,
        "log_every": 20, "ckpt_every": 1000, "eval_every": 1000, "eval_batch_size": 64, "precision": "auto",
        "cpu_threads": None,
        "data_workers": 4, "substitution_prob": 0.0,
    },
}

FIELDS = {f.name: f for f in dataclasses.fields(PretrainConfig)}


def _check_keys(keys, where: str) -> None:
    for key in keys:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{where}: unknown config key {key!r}{hint}; valid keys: {', '.join(FIELDS)}")


def make_config(preset: str = "toy-cpu", **overrides) -> PretrainConfig:
    """A preset's config with ``overrides`` applied (None values keep the preset's; the tiny
    towers' argument dicts are merged key by key)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _check_keys(overrides, "overrides")
    values = {**PRESETS[preset], **overrides}
    defaults = PretrainConfig(**PRESETS[preset])
    for key in ("protein_tiny_args", "text_tiny_args"):  # a partial dict keeps the other defaults
        if isinstance(overrides.get(key), dict):
            values[key] = {**getattr(defaults, key), **overrides[key]}
    config = PretrainConfig(**values)
    validate(config)
    return config


def from_dict(data: dict[str, Any], *, where: str = "config") -> PretrainConfig:
    data = dict(data)
    preset = data.pop("preset", "toy-cpu")
    _check_keys(data, where)
    return make_config(preset, **data)


def load_config(path: str | Path) -> PretrainConfig:
    """Read a JSON or YAML config file; unknown keys are rejected naming the key."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # both parsers raise many types
        raise InputError(f"{path}: cannot parse config ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config must be a mapping of keys to values")
    return from_dict(data, where=str(path))


# Settings a resumed run must share with its checkpoint (others, e.g. max_steps or log_every, may change).
RESUME_FIXED = ("lr", "seed", "batch_size", "grad_accum", "weight_decay", "warmup_steps", "min_lr_ratio",
                "clip_grad", "protein_lr_ratio", "text_lr_ratio", "freeze_protein", "freeze_text", "w_gc", "w_mlm",
                "w_bsr", "w_pda", "mlm_prob", "bsr_ratio", "bsr_span_min", "bsr_span_max", "pda_theta",
                "substitution_prob", "crop_length", "max_text_length", "max_property_length", "train_split")


def resume_changes(saved: dict, config: PretrainConfig) -> list[str]:
    """``["lr: 0.002 -> 0.001", ...]``: the fixed settings where ``config`` differs from a checkpoint's."""
    return [f"{key}: {saved[key]!r} -> {getattr(config, key)!r}" for key in RESUME_FIXED
            if key in saved and saved[key] != getattr(config, key)]


def validate(config: PretrainConfig) -> None:
    def bad(msg):
        raise InputError(f"config: {msg}")

    if config.batch_size < 2 and config.w_gc > 0:
        bad(f"batch_size={config.batch_size}: contrastive learning needs at least 2 pairs per batch")
    if not 0 < config.mlm_prob < 1:
        bad(f"mlm_prob={config.mlm_prob} must be in (0, 1)")
    if not 0 <= config.substitution_prob < 1:
        bad(f"substitution_prob={config.substitution_prob} must be in [0, 1)")
    if not 0 < config.bsr_ratio < 1:
        bad(f"bsr_ratio={config.bsr_ratio} must be in (0, 1)")
    if not 1 <= config.bsr_span_min <= config.bsr_span_max:
        bad("need 1 <= bsr_span_min <= bsr_span_max")
    if config.crop_length < max(16, config.bsr_span_max * 2):
        bad(f"crop_length={config.crop_length} is too short (>= {max(16, config.bsr_span_max * 2)})")
    if config.max_steps < 1 or config.grad_accum < 1:
        bad("max_steps and grad_accum must be >= 1")
    if config.eval_every < 1:
        bad(f"eval_every={config.eval_every} must be >= 1")
    if config.data_workers < 0:
        bad(f"data_workers={config.data_workers} must be >= 0")
    if all(w == 0 for w in (config.w_gc, config.w_mlm, config.w_bsr, config.w_pda)):
        bad("every objective is switched off (w_gc = w_mlm = w_bsr = w_pda = 0)")
    if min(config.w_gc, config.w_mlm, config.w_bsr, config.w_pda) < 0:
        bad("loss weights must be >= 0")
    if config.precision not in ("auto", "bf16", "fp32"):
        bad(f"precision={config.precision!r} must be 'auto', 'bf16' or 'fp32'")
