"""Figures of 07_variants: the effect map, the mean effect along the sequence, score vs measurement."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from protlab.core.alphabet import AMINO_ACIDS


def effect_map_figure(wildtype: str, positions, residues, scores, *, title: str = "Predicted effect of every "
                      "single substitution"):
    """Heatmap amino acid × position of single-substitution scores (blank: not scored)."""
    grid = np.full((len(AMINO_ACIDS), len(wildtype)), np.nan)
    row = {a: i for i, a in enumerate(AMINO_ACIDS)}
    for pos, aa, value in zip(positions, residues, scores):
        grid[row[aa], pos] = value
    finite = grid[np.isfinite(grid)]
    bound = float(np.percentile(np.abs(finite), 98)) if finite.size else 1.0
    fig = go.Figure(go.Heatmap(z=grid, x=np.arange(1, len(wildtype) + 1), y=list(AMINO_ACIDS),
                               customdata=np.array([[wildtype[i] for i in range(len(wildtype))]] * len(AMINO_ACIDS)),
                               colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound,
                               colorbar={"title": "score"},
                               hovertemplate="%{customdata}%{x}%{y}: %{z:.2f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="position (1-based)", yaxis_title="mutant amino acid",
                      template="plotly_white")
    return fig


def mean_by_position(length: int, positions, scores) -> np.ndarray:
    """``(length,)`` mean of the finite ``scores`` at each 0-based position (NaN where none)."""
    positions, scores = np.asarray(positions, dtype=int), np.asarray(scores, dtype=float)
    finite = np.isfinite(scores)
    sums = np.bincount(positions[finite], weights=scores[finite], minlength=length)
    counts = np.bincount(positions[finite], minlength=length)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def mean_effect_figure(length: int, positions, scores, *, title: str = "Mean predicted effect along the sequence"):
    """Mean single-substitution score per position (lower: less tolerant)."""
    mean = mean_by_position(length, positions, scores)
    fig = go.Figure(go.Scatter(x=np.arange(1, length + 1), y=mean, mode="lines", connectgaps=False,
                               hovertemplate="position %{x}: %{y:.2f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="position (1-based)", yaxis_title="mean score of substitutions",
                      template="plotly_white")
    return fig


def score_vs_dms_figure(score, dms, mutants, *, spearman: float | None = None, name: str = "score",
                        max_points: int = 20000, seed: int = 0):
    """Predicted score against the measured DMS_score (a seeded subset beyond ``max_points``)."""
    score, dms, mutants = np.asarray(score, float), np.asarray(dms, float), np.asarray(mutants, dtype=object)
    both = np.flatnonzero(np.isfinite(score) & np.isfinite(dms))
    if len(both) > max_points:
        both = np.sort(np.random.default_rng(seed).choice(both, max_points, replace=False))
    fig = go.Figure(go.Scattergl(x=score[both], y=dms[both], mode="markers", text=mutants[both],
                                 marker={"size": 4, "opacity": 0.5},
                                 hovertemplate="%{text}: score %{x:.2f}, DMS %{y:.2f}<extra></extra>"))
    rho = "" if spearman is None else f" (Spearman {spearman:.3f})"
    fig.update_layout(title=f"{name} against the measured DMS_score{rho}", xaxis_title=name,
                      yaxis_title="DMS_score", template="plotly_white")
    return fig
