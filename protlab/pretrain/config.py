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
from protlab.core.runtime import check_device
from protlab.core.stage import MAX_SEED, Param
from protlab.core.training import settings_changes
from protlab.curate.records import TEXT_FIELDS


def _below(limit: float):
    def check(value):
        if value >= limit:
            raise ValueError(f"use a number < {limit:g}")
    return check


def _template(value: str):
    try:
        value.format(label="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"a text with '{{label}}' as its only field ({exc})") from exc


def setting(default: Any, help: str, kind: str, **bounds) -> Any:
    """A config field whose default, help, kind and bounds (:class:`~protlab.core.stage.Param`'s
    ``low``, ``high``, ``low_open``, ``choices``, ``check``, ``none``) are written once: the stage's
    parameter table, its CLI and :func:`validate` are built from them."""
    meta = {"help": help, "kind": kind, "bounds": bounds}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class PretrainConfig:
    """Every setting of a ProtCLIP pretraining run (see DESIGN.md, ProtCLIP)."""

    run_dir: str = "runs/pretrain"
    # Towers.
    protein_encoder: str = setting("tiny", "protein tower: a fair-esm name, a .pt / Hugging Face dir / protlab "
                                   "checkpoint path, or 'tiny' (random ESM-2 of protein_tiny_args)", "str")
    # The smallest tower that learns the toy's families within the toy-cpu step budget.
    protein_tiny_args: dict = setting({"num_layers": 3, "embed_dim": 96, "attention_heads": 4},
                                      "ESM-2 arguments of the 'tiny' protein tower (num_layers, embed_dim, "
                                      "attention_heads); missing keys keep the preset's", "dict")
    text_encoder: str = setting("tiny", "text tower: a Hugging Face name or dir, 'minilm' (offline MiniLM) or "
                                "'tiny' (random BERT)", "str")
    text_tiny_args: dict = setting({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                    "intermediate_size": 128},
                                   "BERT settings of the 'tiny' text tower; missing keys keep the preset's", "dict")
    proj_dim: int = setting(64, "dimension of the shared protein-text space", "int", low=1)
    decoder_layers: int = setting(1, "depth of the BSR cross-attention decoder", "int", low=1)
    freeze_protein: bool = setting(False, "keep the protein tower's weights fixed", "bool")
    freeze_text: bool = setting(False, "keep the text tower's weights fixed", "bool")
    protein_lr_ratio: float = setting(1.0, "protein tower learning rate = lr x this", "float", low=0)
    text_lr_ratio: float = setting(1.0, "text tower learning rate = lr x this", "float", low=0)
    temperature_init: float = setting(0.07, "initial contrastive temperature", "float", low=0, low_open=True)
    # Objectives: weight 0 switches one off. L = GC + 0.3 MLM + 0.7 BSR + PDA.
    w_gc: float = setting(1.0, "weight of global contrast (0: off)", "float", low=0)
    w_mlm: float = setting(0.3, "weight of masked-residue prediction (0: off)", "float", low=0)
    w_bsr: float = setting(0.7, "weight of biology-aware segment reconstruction (0: off)", "float", low=0)
    w_pda: float = setting(1.0, "weight of property-driven alignment (0: off)", "float", low=0)
    mlm_prob: float = setting(0.15, "share of residues masked for MLM, in (0, 1)", "float", low=0, low_open=True,
                              check=_below(1))
    bsr_ratio: float = setting(0.15, "share of residues masked in BSR spans, in (0, 1)", "float", low=0,
                               low_open=True, check=_below(1))
    bsr_span_min: int = setting(5, "shortest BSR span (residues)", "int", low=1)
    bsr_span_max: int = setting(10, "longest BSR span (residues)", "int", low=1)
    pda_theta: float = setting(0.3, "PDA threshold on normalised residue-property similarity", "float", low=0,
                               high=1)
    # Augmentation (not in ProtCLIP; off in the server preset). On the toy, 0.1 lifts held-out
    # zero-shot accuracy from 0.95 / 0.90 / 1.0 to 1.0 on seeds 0 / 1 / 2 (and 3): held-out
    # members are divergent homologs.
    substitution_prob: float = setting(0.1, "augmentation: chance, in [0, 1), that a GC / PDA residue becomes a "
                                       "random one", "float", low=0, check=_below(1))
    # Data.
    crop_length: int = setting(128, "residues per training crop; longer proteins are windowed in evaluation",
                               "int", low=16)
    eval_stride: int | None = setting(None, "window stride in evaluation (None: crop_length // 2)", "int", low=1,
                                      none=True)
    max_text_length: int = setting(64, "text tokens kept per pair", "int", low=2)
    max_property_length: int = setting(32, "text tokens kept per property sub-text (PDA)", "int", low=2)
    train_split: str = setting("train", "split trained on", "str")
    # Every held-out pair by default: the toy's test split alone is small, and a family's texts
    # differ only by noise, so more pairs give a steadier MRR; benchmarks/quality_pretrain.py
    # reports both. The valid split also picks the exported step (eval_every), which makes its
    # share of the score slightly optimistic; "test" gives an estimate nothing was chosen on.
    eval_split: str = setting("valid+test", "held-out split(s) scored, joined by '+'", "str")
    zero_shot_field: str = setting("ensemble", "class prompt: 'ensemble' (mean of the class's training texts), "
                                   "'all' (its most common value of every property) or one property", "str",
                                   choices=("ensemble", "all", *TEXT_FIELDS))
    zero_shot_template: str = setting("{label}", "prompt when a class has no text, with '{label}'", "str",
                                      check=_template)
    # Optimisation.
    batch_size: int = setting(24, "pairs per device per micro-step (>= 2 while w_gc > 0)", "int", low=1)
    grad_accum: int = setting(1, "micro-steps per optimiser step", "int", low=1)
    lr: float = setting(2e-3, "peak learning rate (AdamW)", "float", low=0, low_open=True)
    weight_decay: float = setting(0.01, "AdamW weight decay", "float", low=0)
    warmup_steps: int = setting(20, "linear warmup steps", "int", low=0)
    max_steps: int = setting(600, "optimiser steps", "int", low=1)
    min_lr_ratio: float = setting(0.1, "final learning rate / lr after cosine decay", "float", low=0, high=1)
    clip_grad: float = setting(1.0, "gradient-norm clipping (0: off)", "float", low=0)
    seed: int = setting(0, "random seed (initialisation, batches, masks)", "int", low=0, high=MAX_SEED)
    # Runtime.
    device: str = setting("auto", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", "str", check=check_device)
    # Tiny towers gain little from threads, and on a shared machine oversubscribed threads make
    # a step several times slower, so toy-cpu uses 1 (None: torch's default).
    cpu_threads: int | None = setting(1, "torch CPU threads while training on the CPU (None: torch's default)",
                                      "int", low=1, none=True)
    data_workers: int = setting(0, "processes building batches ahead of the training step (0: in the training "
                                "process)", "int", low=0)
    precision: str = setting("auto", "'auto' (bf16 on GPU, fp32 on CPU), 'bf16' or 'fp32'", "str",
                             choices=("auto", "bf16", "fp32"))
    compile: bool = setting(False, "torch.compile the training step", "bool")
    nproc: int = setting(1, "processes (GPUs); > 1 launches torchrun", "int", low=1)
    log_every: int = setting(5, "steps per log record", "int", low=1)
    ckpt_every: int = setting(50, "steps per checkpoint", "int", low=1)
    # A twelfth of the toy run: enough points to see where retrieval peaks.
    eval_every: int = setting(50, "steps per validation: the valid split's retrieval MRR and losses are logged "
                              "and the best step by valid MRR is kept (checkpoints/best.pt) and exported", "int",
                              low=1)
    resume: bool = setting(True, "continue from the run's last checkpoint when there is one", "bool")
    # Resuming with other optimisation, data or loss settings would train neither the old run nor the new one.
    resume_override: bool = setting(False, "resume even when optimisation, data or loss settings differ from the "
                                    "checkpoint's", "bool")
    eval_batch_size: int = setting(32, "proteins / texts per evaluation batch", "int", low=1)
    progress: bool = setting(True, "show a progress bar", "bool")

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


def field_param(name: str, default: Any, *, none: bool = False, help_suffix: str = "") -> Param:
    """The :class:`~protlab.core.stage.Param` of a config field, from its metadata (``none``:
    None is allowed even where the field does not allow it, e.g. a stage's "keep the preset's")."""
    meta = FIELDS[name].metadata
    bounds = {**meta["bounds"], "none": none or meta["bounds"].get("none", False)}
    return Param(name, default, meta["help"] + help_suffix, meta["kind"], **bounds)


def setting_names() -> list[str]:
    """The fields a stage parameter sets (every field but ``run_dir``)."""
    return [name for name, f in FIELDS.items() if "help" in f.metadata]


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
    """``["lr: 0.002 -> 0.001", ...]``: the fixed settings where ``config`` differs from a checkpoint's
    (those the checkpoint records)."""
    return settings_changes(saved, {key: getattr(config, key) for key in RESUME_FIXED if key in saved})


def validate(config: PretrainConfig) -> None:
    """Every field within its bounds (its :func:`setting`), then the rules between fields."""
    def bad(msg):
        raise InputError(f"config: {msg}")

    for name in setting_names():
        value = getattr(config, name)
        param = field_param(name, None)
        try:
            setattr(config, name, param.coerce(value))
        except InputError as exc:
            bad(str(exc))
    if config.batch_size < 2 and config.w_gc > 0:
        bad(f"batch_size={config.batch_size}: contrastive learning needs at least 2 pairs per batch")
    if not config.bsr_span_min <= config.bsr_span_max:
        bad("need bsr_span_min <= bsr_span_max")
    if config.crop_length < max(16, config.bsr_span_max * 2):
        bad(f"crop_length={config.crop_length} is too short (>= {max(16, config.bsr_span_max * 2)})")
    if all(w == 0 for w in (config.w_gc, config.w_mlm, config.w_bsr, config.w_pda)):
        bad("every objective is switched off (w_gc = w_mlm = w_bsr = w_pda = 0)")
