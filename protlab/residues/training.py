"""Train the residue-clustering network and measure it (accuracy, Fmax, precision@k).

:func:`train_residue_model` trains :class:`~protlab.residues.network.ResidueNet` on
structures with family labels (``task="single"``, cross-entropy), multi-label annotations
such as EC numbers (``task="multi"``, binary cross-entropy; Fmax reported) or site residues
(``task="residue"``, binary cross-entropy per residue; precision@k reported), or fine-tunes a
trained one on new classes (``init``); bf16 autocast and resumable training states.
:func:`predict` gives class (or site) probabilities and :func:`evaluate_network` the accuracy,
Fmax or precision@k of a network on labelled graphs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from protlab.core.errors import InputError
from protlab.core.runtime import bf16_autocast, pick_device, seed_everything
from protlab.core.training import (capture_rng, read_training_state, refuse_changed_settings, restore_rng,
                                   save_training_state, settings_changes)
from protlab.core.training_log import TrainingLog
from protlab.curate.records import Structure
from protlab.residues.features import featurize
from protlab.residues.graph import UNKNOWN_AA, ResidueGraph, collate
from protlab.residues.network import ResidueNet, ResidueNetConfig
from protlab.residues.precision import precision_at_k

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: ResidueNet
    history: list[dict] = field(default_factory=list)   # one row per epoch: loss, train/val metric
    classes: list[str] = field(default_factory=list)


def _targets(labels: Sequence, task: str, classes: list[str] | None):
    if task == "residue":  # one 0/1 array per structure
        return [np.asarray(x, dtype=np.float32) for x in labels], ["site"]
    if task == "single":
        classes = classes or sorted({str(x) for x in labels})
        index = {c: i for i, c in enumerate(classes)}
        missing = sorted({str(x) for x in labels} - set(index))
        if missing:
            raise InputError(f"labels {missing[:5]} are not among the model's classes")
        return torch.tensor([index[str(x)] for x in labels]), classes
    sets = [[str(v) for v in (x if isinstance(x, (list, tuple, set, np.ndarray)) else [x])] for x in labels]
    classes = classes or sorted({v for s in sets for v in s})
    index = {c: i for i, c in enumerate(classes)}
    y = torch.zeros(len(sets), len(classes))
    for i, s in enumerate(sets):  # building targets, not the forward pass
        for v in s:
            if v in index:
                y[i, index[v]] = 1.0
    return y, classes


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Indices ``0..n-1`` in chunks of ``batch_size`` (shuffled by ``rng`` when given)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of proteins of similar length (less padding: the network's cost grows
    with the longest protein of a batch squared); which proteins share a batch varies by epoch."""
    lengths = np.asarray(lengths, dtype=float)
    order = np.lexsort((rng.random(len(lengths)), np.round(lengths * rng.uniform(0.9, 1.1, len(lengths)))))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def _batch_targets(y, sel: np.ndarray, task: str, width: int) -> torch.Tensor:
    """Targets of proteins ``sel``: rows of ``y``, or per-residue arrays padded to ``width``."""
    if task != "residue":
        return y[sel]
    out = torch.zeros(len(sel), width)
    for row, i in enumerate(sel):  # padding, one copy per protein
        out[row, :len(y[i])] = torch.from_numpy(y[i])
    return out


def _initial_model(graphs, task, init, classes, *, hidden, iterations, keep_ratio, config):
    if init is not None and init.config.n_classes == len(classes) and init.config.task == task:
        return init
    cfg = ResidueNetConfig(n_classes=len(classes), task=task, hidden=hidden, iterations=iterations,
                        keep_ratio=keep_ratio, esm_dim=graphs[0].esm.shape[1] if graphs[0].esm is not None else 0,
                        class_names=list(classes), n_features=graphs[0].feats.shape[1], **config)
    model = ResidueNet(cfg)
    if init is not None:  # fine-tune: reuse everything but the head
        own = model.state_dict()
        own.update({k: v for k, v in init.state_dict().items() if not k.startswith("head.") and k in own
                    and own[k].shape == v.shape})
        model.load_state_dict(own)
    return model


def train_residue_model(structures: Sequence[Structure], labels: Sequence, *, task: str = "single",
                        epochs: int, batch_size: int = 16, lr: float = 3e-3, weight_decay: float = 1e-4,
                        hidden: int = 64, iterations: int = 4, keep_ratio: float = 0.4,
                        val_fraction: float = 0.0, seed: int = 0, device: str | None = None,
                        esm: dict | None = None, init: ResidueNet | None = None,
                        residue_dropout: float = 0.0, progress: bool = True, pocket_features: bool = False,
                        cache_dir=None, graphs: Sequence[ResidueGraph] | None = None,
                        log_every: int = 0, length_buckets: bool = False, bf16: bool = False,
                        state_path=None, log_path=None, resume: bool = True, resume_override: bool = False,
                        **config) -> TrainResult:
    """Train (or fine-tune ``init``) on structures with labels; returns the model and history.

    ``labels``: a class name per structure (``task="single"``), a list of labels per structure
    (``"multi"``) or a 0/1 array over its residues (``"residue"``: site residues). The history
    holds per epoch the loss and accuracy / Fmax / precision@k (k = site size) on the training
    part and the ``val_fraction`` held out (ids in ``model.meta["held_out"]``).
    ``residue_dropout`` hides that fraction of residue types in each batch; ``pocket_features``
    adds :mod:`protlab.residues.pockets` columns; graphs are cached in ``cache_dir`` (or
    passed); ``length_buckets`` batches similar lengths together; ``bf16``: bfloat16 autocast.
    Progress: a bar (``progress``), a line every ``log_every`` epochs (0: none) and a JSONL
    record per epoch at ``log_path`` (:class:`~protlab.core.training_log.TrainingLog`).
    With ``state_path`` the training state is saved after every epoch and a rerun (``resume``)
    continues exactly where it stopped; a state of other data or settings is refused, naming
    them, unless ``resume_override`` (:mod:`protlab.core.training`). The file is removed at the end.
    """
    if len(structures) != len(labels) or len(structures) < 2:
        raise InputError(f"{len(structures)} structures and {len(labels)} labels: training needs as many labels "
                         "as structures, at least 2")
    seed_everything(seed)
    device = pick_device(device)
    if graphs is None:
        graphs = featurize(structures, esm=esm, pockets=pocket_features, cache_dir=cache_dir, progress=progress)
    y, classes = _labelled(structures, labels, task, init, graphs)
    model = _initial_model(graphs, task, init, classes, hidden=hidden, iterations=iterations,
                           keep_ratio=keep_ratio, config={**config, "pocket_features": pocket_features})
    fit = _Fit(model, classes, graphs, y, structures, task=task, epochs=epochs, batch_size=batch_size, lr=lr,
               weight_decay=weight_decay, seed=seed, val_fraction=val_fraction, device=device,
               residue_dropout=residue_dropout, bf16=bf16, length_buckets=length_buckets)
    start = fit.resume(state_path, resume_override) if state_path is not None and resume else 0
    epoch_log = TrainingLog("residues", unit="epoch", total=epochs, path=log_path, start=start, every=log_every,
                            bar=progress)
    for epoch in range(start, epochs):
        row = fit.epoch(epoch)
        epoch_log.record(epoch + 1, {k: v for k, v in row.items() if k != "epoch"})
        epoch_log.advance()
        if state_path is not None:
            fit.save(state_path, epoch + 1)
    epoch_log.close()
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    return fit.result()


def _labelled(structures, labels: Sequence, task: str, init: ResidueNet | None, graphs) -> tuple:
    """(targets, class names): a fine-tuned model's classes when they cover the labels (its head
    is then kept); site labels must match their structures' residues."""
    classes = None
    if init is not None and init.config.task == task and init.config.class_names:
        wanted = {str(v) for x in labels for v in (x if isinstance(x, (list, tuple, set)) else [x])}
        classes = init.config.class_names if wanted <= set(init.config.class_names) else None
    y, classes = _targets(labels, task, classes)
    if task == "residue":
        bad = [structures[i].id for i in range(len(y)) if len(y[i]) != len(graphs[i])]
        if bad:
            raise InputError(f"site labels do not match the residues of {bad[:5]}")
    return y, classes


class _Fit:
    """One training's objects (model, optimiser, schedule, batch generator, split) and its
    epochs: batches collated, residue types hidden, loss, clipped step, metrics."""

    def __init__(self, model, classes, graphs, y, structures, *, task: str, epochs: int, batch_size: int, lr: float,
                 weight_decay: float, seed: int, val_fraction: float, device: str, residue_dropout: float,
                 bf16: bool, length_buckets: bool):
        model.config.class_names = list(classes)
        self.model, self.classes, self.structures = model.to(device), classes, structures
        self.graphs, self.y = graphs, y
        self.task, self.epochs, self.batch_size, self.device = task, epochs, batch_size, device
        self.residue_dropout, self.bf16, self.length_buckets = residue_dropout, bf16, length_buckets
        self.rng = np.random.default_rng(seed)
        order = self.rng.permutation(len(graphs))
        n_val = int(round(val_fraction * len(graphs)))
        self.val_idx, self.train_idx = order[:n_val], order[n_val:]
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps = epochs * math.ceil(len(self.train_idx) / batch_size)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
        self.history: list[dict] = []
        self.settings = {"data": data_fingerprint(structures), "task": task, "epochs": epochs,
                         "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
                         "val_fraction": val_fraction, "residue_dropout": residue_dropout,
                         "length_buckets": length_buckets,
                         "model": json.dumps(model.config.to_dict(), sort_keys=True, default=str)}

    def epoch(self, epoch: int) -> dict:
        """Train one epoch; its history row (loss, and the metrics at the last epoch or with a
        held-out part)."""
        parts = (length_batches([len(self.graphs[i]) for i in self.train_idx], self.batch_size, self.rng)
                 if self.length_buckets else batches(len(self.train_idx), self.batch_size, self.rng))
        row = {"epoch": epoch + 1, "loss": self._train(parts)}
        if epoch == self.epochs - 1 or len(self.val_idx):
            row.update(_split_metrics(self.model, self.graphs, self.y, self.task,
                                      {"train": self.train_idx, "val": self.val_idx}, self.device))
        self.history.append(row)
        return row

    def _train(self, parts) -> float:
        """The mean training loss over the epoch's batches ``parts`` (positions in ``train_idx``)."""
        model, device = self.model, self.device
        model.train()
        total = 0.0
        for idx in parts:
            sel = self.train_idx[idx]
            batch = collate([self.graphs[i] for i in sel]).to(device)
            if self.residue_dropout:
                hide = torch.rand(batch.aa.shape, device=device) < self.residue_dropout
                batch.aa = batch.aa.masked_fill(hide, UNKNOWN_AA)
            with bf16_autocast(device, self.bf16):
                logits = model(batch)
            target = _batch_targets(self.y, sel, self.task, batch.mask.shape[1]).to(device)
            loss = model.loss(logits.float(), target)
            self.opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            self.opt.step()
            self.sched.step()
            total += float(loss.detach()) * len(sel)
        return total / max(len(self.train_idx), 1)

    def save(self, path, epoch: int) -> None:
        save_training_state(path, "residue-train", position={"epoch": epoch}, settings=self.settings,
                            model=self.model, optimizer=self.opt, scheduler=self.sched,
                            rng=[capture_rng(numpy_generators={"batches": self.rng})], history=self.history)

    def resume(self, path, override: bool) -> int:
        """Load a saved training state; returns the epoch to start from. A state of other data
        or settings is refused unless ``override`` (:mod:`protlab.core.training`)."""
        state = read_training_state(path, "residue-train")
        if state is None:
            return 0
        if "settings" not in state:  # written before states recorded their settings: nothing to compare
            refuse_changed_settings(["settings: not recorded (an earlier protlab) -> this run's"], override=override,
                                    path=path, say=log.warning)
            return 0
        refuse_changed_settings(settings_changes(state["settings"], self.settings), override=override, path=path,
                                say=log.warning)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        restore_rng(state["rng_per_rank"][0], numpy_generators={"batches": self.rng})
        self.history.extend(state["history"])
        log.info("resuming residue-clustering training after epoch %d (%s)", state["position"]["epoch"], path)
        return int(state["position"]["epoch"])

    def result(self) -> TrainResult:
        self.model.eval()
        self.model.meta = {"held_out": [self.structures[i].id for i in sorted(self.val_idx)]}  # inputs.held_out()
        return TrainResult(model=self.model.cpu(), history=self.history, classes=list(self.classes))


def _split_metrics(model, graphs, y, task: str, parts: dict, device: str) -> dict:
    """``{part_metric: value}`` of :func:`evaluate_network` on each non-empty part (indices)."""
    row = {}
    for name, idx in parts.items():
        if len(idx):
            targets = [y[i] for i in idx] if task == "residue" else y[idx]
            row.update({f"{name}_{k}": v for k, v in evaluate_network(model, [graphs[i] for i in idx], targets,
                                                                     device=device).items()})
    return row


def data_fingerprint(structures) -> str:
    """The training structures as a resume compares them (ids, chains, lengths)."""
    text = repr([(s.id, s.chain, len(s)) for s in structures])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@torch.no_grad()
def predict(model: ResidueNet, graphs: Sequence[ResidueGraph], *, batch_size: int = 32,
            device: str = "cpu") -> torch.Tensor:
    """Class probabilities (softmax for single-label, sigmoid for multi-label), (n, C); for
    ``task="residue"`` a list of (L,) site probabilities."""
    model.eval().to(device)
    out = []
    for idx in batches(len(graphs), batch_size):
        logits = model(collate([graphs[i] for i in idx]).to(device)).cpu()
        if model.config.task == "residue":
            out += [logits[j, :len(graphs[i])].sigmoid() for j, i in enumerate(idx)]
        else:
            out.append(logits.softmax(-1) if model.config.task == "single" else logits.sigmoid())
    return out if model.config.task == "residue" else torch.cat(out)


def evaluate_network(model: ResidueNet, graphs: Sequence[ResidueGraph], y: torch.Tensor, *,
                     device: str = "cpu") -> dict:
    """``{"accuracy": ...}`` (single-label), ``{"fmax": ...}`` (multi-label) or
    ``{"precision_at_k": ...}`` (residue: mean over proteins with a site, k = site size) on
    labelled graphs; ``{}`` when there are none."""
    if not len(graphs):
        return {}
    probs = predict(model, graphs, device=device)
    if model.config.task == "residue":
        scores = [precision_at_k(p.numpy(), np.flatnonzero(t), int(t.sum())) for p, t in zip(probs, y) if t.sum()]
        return {"precision_at_k": float(np.mean(scores))} if scores else {}
    if model.config.task == "single":
        return {"accuracy": float((probs.argmax(-1) == y).float().mean())}
    return {"fmax": fmax(probs.numpy(), y.numpy())}


def fmax(probs: np.ndarray, targets: np.ndarray, *, thresholds: np.ndarray | None = None) -> float:
    """Protein-centric Fmax (CAFA): max over thresholds of the F1 of mean precision and recall.

    Precision is averaged over proteins with at least one prediction above the threshold,
    recall over proteins with at least one true label.
    """
    probs, targets = np.asarray(probs, dtype=float), np.asarray(targets) > 0.5
    thresholds = np.linspace(0.01, 0.99, 99) if thresholds is None else thresholds
    has_true = targets.any(1)
    best = 0.0
    for t in thresholds:  # 99 thresholds, vectorised over proteins and labels
        pred = probs >= t
        tp = (pred & targets).sum(1)
        covered = pred.any(1)
        if not covered.any() or not has_true.any():
            continue
        precision = (tp[covered] / pred[covered].sum(1)).mean()
        recall = (tp[has_true] / targets[has_true].sum(1)).mean()
        if precision + recall > 0:
            best = max(best, 2 * precision * recall / (precision + recall))
    return float(best)
