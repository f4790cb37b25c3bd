"""The SCAN clustering head and its losses (Van Gansbeke et al., ECCV 2020), for embeddings.

* :class:`ScanHeads`: a small MLP backbone shared by several linear clustering heads
  (trained at once; the best is picked by validation loss).
* :func:`scan_loss`: ``-mean log <p_i, p_j> - λ·H(mean p)`` over anchor/neighbour pairs.
* :func:`self_label_loss`: class-balanced cross-entropy of the *strong* view against the
  confident (``p > threshold``) predictions of the *weak* view.

Images get crops and colour jitter as augmentations; protein embeddings have none, so the
"strong" view here is the input feature vector with dropout and Gaussian noise
(:func:`strong_view`) and the "weak" view is the clean vector.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-8


class ScanHeads(nn.Module):
    """``forward(x) -> list of (n, n_clusters) logits``, one per head."""

    def __init__(self, in_dim: int, n_clusters: int, *, n_heads: int = 5, hidden: int = 256):
        super().__init__()
        self.args = {"in_dim": int(in_dim), "n_clusters": int(n_clusters), "n_heads": int(n_heads), "hidden": int(hidden)}
        self.backbone = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(hidden, n_clusters) for _ in range(n_heads)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.backbone(x)
        return [head(features) for head in self.heads]


def scan_loss(anchor_logits: torch.Tensor, neighbor_logits: torch.Tensor, *, entropy_weight: float = 5.0,
              prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, consistency, entropy)``.

    Without ``prior``: total = consistency − λ·H(mean p), SCAN's pull towards equal cluster
    sizes. With a ``prior`` (cluster sizes / n): total = consistency + λ·KL(mean p ‖ prior),
    a pull towards those sizes instead (the same loss up to a constant for a uniform prior).
    """
    p_anchor = F.softmax(anchor_logits, dim=1)
    p_neighbor = F.softmax(neighbor_logits, dim=1)
    consistency = -torch.log((p_anchor * p_neighbor).sum(dim=1).clamp_min(EPS)).mean()
    mean_p = p_anchor.mean(dim=0)
    entropy = -(mean_p * torch.log(mean_p.clamp_min(EPS))).sum()
    if prior is None:
        return consistency - entropy_weight * entropy, consistency, entropy
    return consistency + entropy_weight * size_divergence(mean_p, prior), consistency, entropy


def size_divergence(mean_p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(mean p ‖ target): how far the clusters' mean probabilities are from the wanted sizes."""
    return (mean_p * (mean_p.clamp_min(EPS).log() - target.clamp_min(EPS).log())).sum()


def strong_view(x: torch.Tensor, *, dropout: float = 0.1, noise: float = 0.1, generator=None) -> torch.Tensor:
    """The embedding "augmentation": input dropout plus Gaussian noise of relative scale ``noise``."""
    keep = (torch.rand(x.shape, generator=generator) >= dropout).to(x.dtype) / (1.0 - dropout)
    scale = x.norm(dim=1, keepdim=True) / max(x.shape[1], 1) ** 0.5
    return x * keep + noise * scale * torch.randn(x.shape, generator=generator)


def self_label_loss(weak_logits: torch.Tensor, strong_logits: torch.Tensor, *, threshold: float = 0.99,
                    balanced: bool = True) -> tuple[torch.Tensor, int]:
    """CE on confident weak-view predictions, class-balanced unless ``balanced=False`` (when
    clusters are expected to differ in size); ``(loss, n_confident)``."""
    with torch.no_grad():
        prob = F.softmax(weak_logits, dim=1)
        conf, target = prob.max(dim=1)
        mask = conf > threshold
    n_conf = int(mask.sum())
    if n_conf == 0:
        return strong_logits.sum() * 0.0, 0
    target = target[mask]
    if not balanced:
        return F.cross_entropy(strong_logits[mask], target), n_conf
    counts = torch.bincount(target, minlength=weak_logits.shape[1]).float()
    weight = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    weight = weight * (counts > 0).sum() / weight.sum()
    return F.cross_entropy(strong_logits[mask], target, weight=weight), n_conf


@torch.no_grad()
def validation_losses(model: ScanHeads, x: torch.Tensor, knn: torch.Tensor, anchors: torch.Tensor, *,
                      entropy_weight: float, prior: torch.Tensor | None = None, chunk: int = 2048,
                      device: str = "cpu") -> list[float]:
    """Each head's :func:`scan_loss` over ``anchors`` and all their neighbours (``knn`` rows,
    -1 padded), in chunks of anchors: memory grows with ``chunk``, not with the number of
    proteins (all heads' probabilities at once take gigabytes at 10^6 proteins)."""
    model.eval()
    n_heads = len(model.heads)
    disagreement = torch.zeros(n_heads, dtype=torch.float64)
    mass = torch.zeros(n_heads, model.args["n_clusters"], dtype=torch.float64)
    n_pairs = 0
    for start in range(0, len(anchors), chunk):
        rows = anchors[start:start + chunk]
        neighbors = knn[rows]
        valid = (neighbors >= 0).double()
        p_rows = [F.softmax(o.float(), dim=1).cpu() for o in model(x[rows].to(device))]
        p_nbs = [F.softmax(o.float(), dim=1).cpu() for o in model(x[neighbors.clamp_min(0).ravel()].to(device))]
        for h, (p, q) in enumerate(zip(p_rows, p_nbs)):
            agree = (p[:, None, :] * q.view(len(rows), -1, p.shape[1])).sum(-1).clamp_min(EPS).log()
            disagreement[h] -= (agree.double() * valid).sum()
            mass[h] += p.double().sum(0)
        n_pairs += int(valid.sum())
    mean_p = mass / max(len(anchors), 1)
    target = torch.full_like(mean_p[0], 1.0 / mean_p.shape[1]) if prior is None else prior.double().cpu()
    return [float(disagreement[h] / max(n_pairs, 1) + entropy_weight * size_divergence(mean_p[h], target))
            for h in range(n_heads)]
