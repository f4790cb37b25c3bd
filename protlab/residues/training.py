"""Train the residue-clustering network and measure it (accuracy, Fmax, precision@k).

:func:`train_residue_model` trains :class:`~protlab.residues.network.ResidueClusterNet` on
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
from protlab.core.progress import progress_bar

from protlab.core.errors import InputError
from protlab.core.runtime import pick_device, seed_everything
from protlab.core.training import (capture_rng, read_training_state, refuse_changed_settings, restore_rng,
                                   save_training_state, settings_changes)
from protlab.curate.records import Structure
from protlab.residues.features import featurize
from protlab.residues.graph import UNKNOWN_AA, ResidueGraph, collate
from protlab.residues.network import ClusterConfig, ResidueClusterNet
from protlab.residues.precision import precision_at_k

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: ResidueClusterNet
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
    cfg = ClusterConfig(n_classes=len(classes), task=task, hidden=hidden, iterations=iterations,
                        keep_ratio=keep_ratio, esm_dim=graphs[0].esm.shape[1] if graphs[0].esm is not None else 0,
                        class_names=list(classes), n_features=graphs[0].feats.shape[1], **config)
    model = ResidueClusterNet(cfg)
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
                        esm: dict | None = None, init: ResidueClusterNet | None = None,
                        residue_dropout: float = 0.0, progress: bool = True, pocket_features: bool = False,
                        cache_dir=None, graphs: Sequence[ResidueGraph] | None = None,
                        log_every: int = 0, length_buckets: bool = False, bf16: bool = False,
                        state_path=None, resume: bool = True, resume_override: bool = False,
                        **config) -> TrainResult:
    """Train (or fine-tune ``init``) on structures with labels; returns the model and history.

    ``residue_dropout`` hides that fraction of residue types (as ``X``) in each training
    batch, so the model cannot lean on any single residue.
    ``labels``: one class name per structure (``task="single"``), a list of labels per
    structure (``task="multi"``) or a 0/1 array over each structure's residues
    (``task="residue"``: site residues). The history holds the loss and accuracy (single),
    Fmax (multi) or precision@k with k = site size (residue) per epoch on the training part
    and, with ``val_fraction``, a held-out part (whose ids the model keeps in
    ``model.meta["held_out"]``). ``pocket_features`` adds :mod:`protlab.residues.pockets`
    columns to the node features; graphs are cached in ``cache_dir`` (or passed as
    ``graphs``). ``log_every`` > 0 prints a line every that many epochs (papermill's log).
    ``length_buckets`` batches proteins of similar length together (:func:`length_batches`).
    ``bf16`` runs forward and loss under bfloat16 autocast (GPU servers). With ``state_path``
    the training state (model, optimiser, schedule, history, random generators) is saved
    after every epoch (:mod:`protlab.core.training`); a rerun (``resume``) with the same data
    and settings resumes after the last saved epoch, with the same result as an uninterrupted
    run, and one with other data or settings is refused, naming them, unless ``resume_override``.
    The file is removed when training ends.
    """
    if len(structures) != len(labels):
        raise InputError(f"{len(structures)} structures but {len(labels)} labels")
    if len(structures) < 2:
        raise InputError("training needs at least 2 labelled structures")
    seed_everything(seed)
    device = pick_device(device)
    if graphs is None:
        graphs = featurize(structures, esm=esm, pockets=pocket_features, cache_dir=cache_dir, progress=progress)
    classes = None
    if init is not None and init.config.task == task and init.config.class_names:
        wanted = {str(v) for x in labels for v in (x if isinstance(x, (list, tuple, set)) else [x])}
        classes = init.config.class_names if wanted <= set(init.config.class_names) else None
    y, classes = _targets(labels, task, classes)
    if task == "residue":
        bad = [structures[i].id for i in range(len(y)) if len(y[i]) != len(graphs[i])]
        if bad:
            raise InputError(f"site labels do not match the residues of {bad[:5]}")
    model = _initial_model(graphs, task, init, classes, hidden=hidden, iterations=iterations,
                           keep_ratio=keep_ratio, config={**config, "pocket_features": pocket_features})
    model.config.class_names = list(classes)
    model.to(device)
    rng = np.random.default_rng(seed)
    n_val = int(round(val_fraction * len(graphs)))
    order = rng.permutation(len(graphs))
    val_idx, train_idx = order[:n_val], order[n_val:]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(train_idx) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    history = []
    settings = {"data": data_fingerprint(structures), "task": task, "epochs": epochs, "batch_size": batch_size,
                "lr": lr, "weight_decay": weight_decay, "seed": seed, "val_fraction": val_fraction,
                "residue_dropout": residue_dropout, "length_buckets": length_buckets,
                "model": json.dumps(model.config.to_dict(), sort_keys=True, default=str)}
    start = 0
    if state_path is not None and resume:
        start = _resume(state_path, settings, resume_override, model, opt, sched, rng, history)
    for epoch in progress_bar(range(start, epochs), desc="train residue clustering", disable=not progress,
                      initial=start, total=epochs):
        model.train()
        total = 0.0
        parts = (length_batches([len(graphs[i]) for i in train_idx], batch_size, rng) if length_buckets
                 else batches(len(train_idx), batch_size, rng))
        for idx in parts:
            sel = train_idx[idx]
            batch = collate([graphs[i] for i in sel]).to(device)
            if residue_dropout:
                hide = torch.rand(batch.aa.shape, device=device) < residue_dropout
                batch.aa = batch.aa.masked_fill(hide, UNKNOWN_AA)
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(batch)
            loss = model.loss(logits.float(), _batch_targets(y, sel, task, batch.mask.shape[1]).to(device))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(sel)
        row = {"epoch": epoch + 1, "loss": total / max(len(train_idx), 1)}
        if epoch == epochs - 1 or n_val:
            pick = lambda idx: [y[i] for i in idx] if task == "residue" else y[idx]  # noqa: E731
            row.update({f"train_{k}": v for k, v in evaluate_network(model, [graphs[i] for i in train_idx],
                                                                     pick(train_idx), device=device).items()})
            if n_val:
                row.update({f"val_{k}": v for k, v in evaluate_network(model, [graphs[i] for i in val_idx],
                                                                       pick(val_idx), device=device).items()})
        history.append(row)
        if log_every and ((epoch + 1) % log_every == 0 or epoch == epochs - 1):
            print(f"epoch {epoch + 1}/{epochs}  " + "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"),
                  flush=True)
        if state_path is not None:
            _save_state(state_path, settings, epoch + 1, model, opt, sched, rng, history)
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    model.eval()
    model.meta = {"held_out": [structures[i].id for i in sorted(val_idx)]}  # read by inputs.held_out()
    return TrainResult(model=model.cpu(), history=history, classes=list(classes))


def data_fingerprint(structures) -> str:
    """The training structures as a resume compares them (ids, chains, lengths)."""
    text = repr([(s.id, s.chain, len(s)) for s in structures])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_state(path, settings: dict, epoch: int, model, opt, sched, rng, history) -> None:
    save_training_state(path, "residue-train", position={"epoch": epoch}, settings=settings, model=model,
                        optimizer=opt, scheduler=sched, rng=[capture_rng(numpy_generators={"batches": rng})],
                        history=history)


def _resume(path, settings: dict, override: bool, model, opt, sched, rng, history) -> int:
    """Load a saved training state into the given objects; returns the epoch to start from.
    A state of other data or settings is refused unless ``override`` (:mod:`protlab.core.training`)."""
    state = read_training_state(path, "residue-train")
    if state is None:
        return 0
    if "settings" not in state:  # written before states recorded their settings: nothing to compare
        refuse_changed_settings(["settings: not recorded (an earlier protlab) -> this run's"], override=override,
                                path=path, say=log.warning)
        return 0
    refuse_changed_settings(settings_changes(state["settings"], settings), override=override, path=path,
                            say=log.warning)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    restore_rng(state["rng_per_rank"][0], numpy_generators={"batches": rng})
    history.extend(state["history"])
    log.info("resuming residue-clustering training after epoch %d (%s)", state["position"]["epoch"], path)
    return int(state["position"]["epoch"])


@torch.no_grad()
def predict(model: ResidueClusterNet, graphs: Sequence[ResidueGraph], *, batch_size: int = 32,
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


def evaluate_network(model: ResidueClusterNet, graphs: Sequence[ResidueGraph], y: torch.Tensor, *,
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
