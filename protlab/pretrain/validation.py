"""Validation while training and the choice of the step that is exported.

Every ``eval_every`` steps (and at the last step) the valid split's protein→text retrieval
(:mod:`protlab.pretrain.retrieval`) and its losses are measured; the step with the highest
valid MRR so far is kept as ``checkpoints/best.pt`` (model weights, config, step and its
valid metrics, in the ``pretrain`` checkpoint envelope) and its protein tower is what 03
exports. Ties keep the earlier step.

Valid losses use fixed crops and masks (one seeded generator per evaluation) and no
substitution augmentation, so successive evaluations differ only by the weights.
Without a valid split, or with fewer than 2 valid pairs (retrieval and the contrastive
loss need two), nothing is selected and the last step is exported.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from protlab.core.checkpoint import read_checkpoint, save_checkpoint
from protlab.core.errors import InputError
from protlab.core.training import capture_rng, restore_rng
from protlab.pretrain.data import Collator, load_pairs
from protlab.pretrain.retrieval import embed_texts, encode_proteins, retrieval_metrics

VALID_SPLIT = "valid"
BEST_METRIC = "valid MRR protein→text"
MIN_VALID_PAIRS = 2
BEST_FILE = "best.pt"


def load_valid_pairs(run_dir: str | Path) -> tuple[pd.DataFrame | None, str | None]:
    """``(pairs, None)``, or ``(None, why)`` when the valid split cannot select a step."""
    try:
        pairs = load_pairs(run_dir, split=VALID_SPLIT)
    except InputError as exc:
        return None, f"no usable valid split ({exc})"
    if len(pairs) < MIN_VALID_PAIRS:
        return None, f"{len(pairs)} valid pair(s); choosing a step needs at least {MIN_VALID_PAIRS}"
    return pairs, None


def no_selection_note(reason: str) -> str:
    return f"no step selection: {reason}; protein_encoder.pt is the last step"


def is_eval_step(step: int, eval_every: int, max_steps: int) -> bool:
    return step % eval_every == 0 or step == max_steps


@torch.no_grad()
def valid_losses(model, pairs: pd.DataFrame, collator: Collator, weights: dict[str, float], *, batch_size: int,
                 seed: int, device: str = "cpu", autocast=None) -> dict[str, float]:
    """Every enabled loss (unweighted, pair-weighted mean over batches) and the weighted total."""
    bounds = list(range(0, len(pairs), batch_size)) + [len(pairs)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:  # a lone last pair has no contrastive partner
        del bounds[-2]
    rng = np.random.default_rng([seed, 17])
    sums: dict[str, float] = {}
    for start, stop in zip(bounds[:-1], bounds[1:]):
        batch = {k: v.to(device) for k, v in collator(pairs.iloc[start:stop], rng).items()}
        with autocast() if autocast else contextlib.nullcontext():
            # this process alone: no gathering across DDP ranks
            losses = model(batch, weights=weights, gather=lambda x: x)
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + float(value) * (stop - start)
    means = {name: total / len(pairs) for name, total in sums.items()}
    means["loss"] = sum(weights[name] * value for name, value in means.items())
    return means


class Validator:
    """``validator()``: the valid metrics of ``model`` as it is now, as flat log keys
    (``valid_mrr``, ``valid_recall_at_1``, ``valid_recall_at_10``, ``valid_loss``, ``valid_gc``, ...)."""

    def __init__(self, model, pairs: pd.DataFrame, collator: Collator, config, weights: dict[str, float], *,
                 device: str = "cpu", autocast=None):
        self.model, self.pairs, self.config, self.weights = model, pairs, config, weights
        self.device, self.autocast = device, autocast
        # the training collator's settings without augmentation or fixed shapes
        self.collator = Collator(collator.alphabet, collator.tokenizer, crop_length=config.crop_length,
                                 max_text_length=config.max_text_length,
                                 max_property_length=config.max_property_length, mlm_prob=config.mlm_prob,
                                 bsr_ratio=config.bsr_ratio, bsr_span=(config.bsr_span_min, config.bsr_span_max),
                                 weights=weights)

    def __call__(self) -> dict[str, float]:
        config, model = self.config, self.model
        was_training = model.training
        model.eval()
        try:
            proteins = encode_proteins(model, list(self.pairs["sequence"]), self.collator,
                                       crop_length=config.crop_length, stride=config.eval_stride,
                                       batch_size=config.eval_batch_size, device=self.device, autocast=self.autocast)
            texts = embed_texts(model, list(self.pairs["text"]), self.collator, max_length=config.max_text_length,
                                batch_size=config.eval_batch_size, device=self.device, autocast=self.autocast)
            losses = valid_losses(model, self.pairs, self.collator, self.weights,
                                  batch_size=max(MIN_VALID_PAIRS, config.batch_size), seed=config.seed,
                                  device=self.device, autocast=self.autocast)
        finally:
            model.train(was_training)
        retrieval = retrieval_metrics(proteins, texts)
        out = {f"valid_{key}": retrieval[key] for key in ("mrr", "recall_at_1", "recall_at_10")}
        out.update({f"valid_{name}": value for name, value in losses.items()})
        return out


class BestStep:
    """The best step by valid MRR and its checkpoint (``checkpoints/best.pt``).

    On resume the file itself is the record: a killed run may have written it after the
    checkpoint it resumes from, and replaying those steps gives the same scores, so keeping
    it gives what an uninterrupted run would have kept.
    """

    def __init__(self, checkpoints: str | Path):
        self.path = Path(checkpoints) / BEST_FILE
        self.step: int | None = None
        self.valid: dict[str, float] = {}

    @property
    def mrr(self) -> float:
        return self.valid.get("valid_mrr", -math.inf)

    def forget(self) -> None:
        """A fresh run: an earlier run's best step is not a candidate."""
        self.path.unlink(missing_ok=True)
        self.step, self.valid = None, {}

    def restore(self) -> None:
        if self.path.is_file():
            saved = read_checkpoint(self.path, "pretrain")
            self.step, self.valid = int(saved["step"]), dict(saved.get("valid", {}))

    def offer(self, step: int, valid: dict[str, float], payload) -> bool:
        """Keep ``step`` when its valid MRR beats the best so far; ``payload()`` gives the
        checkpoint's contents (model weights, model arguments, config)."""
        if not valid["valid_mrr"] > self.mrr:
            return False
        save_checkpoint(self.path, "pretrain", {**payload(), "step": step, "valid": valid, "best_metric": BEST_METRIC})
        self.step, self.valid = step, dict(valid)
        return True

    def weights(self) -> dict:
        return read_checkpoint(self.path, "pretrain")["model"]


def validated(validate) -> dict:
    """``validate()`` with every RNG state put back: scoring changes nothing a resumed run replays."""
    states = capture_rng()
    try:
        return validate()
    finally:
        restore_rng(states)


def select_exported(model, best: BestStep, validating: bool, step: int, note: str | None) -> dict:
    """Load the best step's weights into ``model`` (the last step's stay without a selection);
    returns what was chosen and by what (``best_step``, ``best_metric``, ``best_valid``)."""
    if validating and best.step is None:
        note = no_selection_note("no validation was recorded for this run")
    if best.step is None or not validating:
        return {"best_step": step, "best_metric": "none: the last step", "best_valid": None,
                "selection_note": note}
    if best.step != step:
        model.load_state_dict(best.weights())
    return {"best_step": best.step, "best_metric": BEST_METRIC, "best_valid": best.valid, "selection_note": None}
