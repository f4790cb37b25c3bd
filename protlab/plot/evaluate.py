"""Figures of an evaluation: the matched confusion heatmap."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def confusion_figure(confusion, *, title: str = "Matched confusion (families × clusters)"):
    """Plotly heatmap of :func:`matched_confusion` (row-normalised shares, counts on hover)."""
    counts = confusion.to_numpy()
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(z=share, x=[f"c{c}" for c in confusion.columns], y=list(confusion.index),
                               customdata=counts, colorscale="Blues", zmin=0, zmax=1,
                               colorbar={"title": {"text": "share of the<br>family's proteins", "side": "right"},
                                         "tickformat": ".0%"},
                               hovertemplate="family %{y}<br>cluster %{x}<br>%{customdata} proteins (%{z:.0%})<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="cluster (matched order)", yaxis_title="family",
                      yaxis_autorange="reversed", height=max(400, 16 * len(confusion.index) + 150))
    return fig
