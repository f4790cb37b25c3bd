"""Train the residue-clustering network and measure it (accuracy, Fmax).

:func:`train_residue_model` trains :class:`~protlab.residues.network.ResidueClusterNet` on
structures with family labels (``task="single"``, cross-entropy) or multi-label annotations
such as EC numbers (``task="multi"``, binary cross-entropy; Fmax reported), or fine-tunes a
trained one on new classes (``init``). :func:`predict` gives class probabilities and
:func:`evaluate_network` the accuracy or Fmax of a network on labelled graphs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from protlab.core.errors import InputError
from protlab.core.runtime import pick_device, seed_everything
from protlab.curate.records import Structure
from protlab.residues.graph import UNKNOWN_AA, ResidueGraph, build_graph, collate
from protlab.residues.network import ClusterConfig, ResidueClusterNet


@dataclass
class TrainResult:
    model: ResidueClusterNet
    history: list[dict] = field(default_factory=list)   # one row per epoch: loss, train/val metric
    classes: list[str] = field(default_factory=list)


def _targets(labels: Sequence, task: str, classes: list[str] | None):
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


def featurize(structures: Sequence[Structure], *, esm: dict | None = None, progress: bool = False) -> list[ResidueGraph]:
    """Residue graphs of structures (``esm``: optional id → (L, E) embeddings)."""
    items = tqdm(structures, desc="residue graphs", disable=not progress)
    return [build_graph(s, esm=None if esm is None else esm[s.id]) for s in items]


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Indices ``0..n-1`` in chunks of ``batch_size`` (shuffled by ``rng`` when given)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _initial_model(graphs, task, init, classes, *, hidden, iterations, keep_ratio, config):
    if init is not None and init.config.n_classes == len(classes):
        return init
    cfg = ClusterConfig(n_classes=len(classes), task=task, hidden=hidden, iterations=iterations,
                        keep_ratio=keep_ratio, esm_dim=graphs[0].esm.shape[1] if graphs[0].esm is not None else 0,
                        class_names=list(classes), **config)
    model = ResidueClusterNet(cfg)
    if init is not None:  # fine-tune: reuse everything but the head
        own = model.state_dict()
        own.update({k: v for k, v in init.state_dict().items() if not k.startswith("head.") and k in own
                    and own[k].shape == v.shape})
        model.load_state_dict(own)
    return model


def train_residue_model(structures: Sequence[Structure], labels: Sequence, *, task: str = "single",
                        epochs: int = 30, batch_size: int = 16, lr: float = 3e-3, weight_decay: float = 1e-4,
                        hidden: int = 64, iterations: int = 4, keep_ratio: float = 0.4,
                        val_fraction: float = 0.0, seed: int = 0, device: str | None = None,
                        esm: dict | None = None, init: ResidueClusterNet | None = None,
                        residue_dropout: float = 0.0, progress: bool = True, **config) -> TrainResult:
    """Train (or fine-tune ``init``) on structures with labels; returns the model and history.

    ``residue_dropout`` hides that fraction of residue types (as ``X``) in each training
    batch, so the model cannot lean on any single residue.
    ``labels``: one class name per structure (``task="single"``) or a list of labels per
    structure (``task="multi"``). The history holds the loss and accuracy (single) or Fmax
    (multi) per epoch on the training part and, with ``val_fraction``, a held-out part
    (whose ids the model keeps in ``model.meta["held_out"]``).
    """
    if len(structures) != len(labels):
        raise InputError(f"{len(structures)} structures but {len(labels)} labels")
    if len(structures) < 2:
        raise InputError("training needs at least 2 labelled structures")
    seed_everything(seed)
    device = pick_device(device)
    graphs = featurize(structures, esm=esm)
    classes = None
    if init is not None and init.config.task == task and init.config.class_names:
        wanted = {str(v) for x in labels for v in (x if isinstance(x, (list, tuple, set)) else [x])}
        classes = init.config.class_names if wanted <= set(init.config.class_names) else None
    y, classes = _targets(labels, task, classes)
    model = _initial_model(graphs, task, init, classes, hidden=hidden, iterations=iterations,
                           keep_ratio=keep_ratio, config=config)
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
    for epoch in tqdm(range(epochs), desc="train residue clustering", disable=not progress):
        model.train()
        total = 0.0
        for idx in batches(len(train_idx), batch_size, rng):
            sel = train_idx[idx]
            batch = collate([graphs[i] for i in sel]).to(device)
            if residue_dropout:
                hide = torch.rand(batch.aa.shape, device=device) < residue_dropout
                batch.aa = batch.aa.masked_fill(hide, UNKNOWN_AA)
            loss = model.loss(model(batch), y[sel].to(device))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(sel)
        row = {"epoch": epoch + 1, "loss": total / max(len(train_idx), 1)}
        if epoch == epochs - 1 or n_val:
            row.update({f"train_{k}": v for k, v in evaluate_network(model, [graphs[i] for i in train_idx],
                                                                     y[train_idx], device=device).items()})
            if n_val:
                row.update({f"val_{k}": v for k, v in evaluate_network(model, [graphs[i] for i in val_idx],
                                                                       y[val_idx], device=device).items()})
        history.append(row)
    model.eval()
    model.meta = {"held_out": [structures[i].id for i in sorted(val_idx)]}  # read by inputs.held_out()
    return TrainResult(model=model.cpu(), history=history, classes=list(classes))


@torch.no_grad()
def predict(model: ResidueClusterNet, graphs: Sequence[ResidueGraph], *, batch_size: int = 32,
            device: str = "cpu") -> torch.Tensor:
    """Class probabilities (softmax for single-label, sigmoid for multi-label), (n, C)."""
    model.eval().to(device)
    out = []
    for idx in batches(len(graphs), batch_size):
        logits = model(collate([graphs[i] for i in idx]).to(device)).cpu()
        out.append(logits.softmax(-1) if model.config.task == "single" else logits.sigmoid())
    return torch.cat(out)


def evaluate_network(model: ResidueClusterNet, graphs: Sequence[ResidueGraph], y: torch.Tensor, *,
                     device: str = "cpu") -> dict:
    """``{"accuracy": ...}`` (single-label) or ``{"fmax": ...}`` (multi-label) on labelled
    graphs; ``{}`` when there are none."""
    if not len(graphs):
        return {}
    probs = predict(model, graphs, device=device)
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
