"""Figures of 06_critical_residues: residue importance along the sequence."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def importance_figure(explanations: Sequence, *, sites: dict | None = None, max_proteins: int = 12):
    """Plotly figure: residue importance along the sequence, one line per protein; known
    site residues (``sites``: id → indices) marked."""
    import plotly.colors
    import plotly.graph_objects as go

    shown = list(explanations)[:max_proteins]
    palette = plotly.colors.qualitative.Plotly if len(shown) <= 10 else plotly.colors.qualitative.Dark24
    fig = go.Figure()
    for n, ex in enumerate(shown):
        colour = palette[n % len(palette)]  # a protein's line and its site stars share one colour
        x = np.arange(1, len(ex.importance) + 1)
        fig.add_trace(go.Scatter(x=x, y=ex.importance, mode="lines", name=ex.id, legendgroup=ex.id,
                                 line={"color": colour}))
        site = (sites or {}).get(ex.id)
        if site:
            site = np.asarray(site, dtype=int)
            fig.add_trace(go.Scatter(x=site + 1, y=ex.importance[site], mode="markers", name=f"{ex.id} site",
                                     legendgroup=ex.id, marker={"symbol": "star", "size": 11, "color": colour,
                                                                "line": {"width": 1, "color": "white"}}))
    fig.update_layout(title="Residue importance along the sequence", xaxis_title="residue position",
                      yaxis_title="importance (0..1)", template="plotly_white")
    return fig
