"""Figures of a clustering: cluster sizes and confidence, and the evidence for the number of families."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px


def cluster_sizes_figure(labels, confidence, *, method: str):
    """Bars of cluster sizes, largest first; the title gives the median confidence."""
    sizes = pd.Series(np.asarray(labels)).value_counts().sort_values(ascending=False)
    median = float(np.median(np.asarray(confidence))) if len(confidence) else float("nan")
    return px.bar(x=[str(c) for c in sizes.index], y=sizes.values, labels={"x": "cluster", "y": "proteins"},
                  title=f"Cluster sizes ({method}); median confidence {median:.2f}")


def family_count_figure(group_sizes, min_size: int, n_estimated: int, n_used: int):
    """The homology graph's merged groups by size (log-log, largest first): those of at least
    ``min_size`` proteins count as families; the rest are attached to them."""
    import plotly.graph_objects as go

    sizes = np.asarray(group_sizes, dtype=float)
    rank = np.arange(1, len(sizes) + 1)
    counted = sizes >= min_size
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=rank[counted], y=sizes[counted], mode="markers", name=f"families (≥ {min_size})"))
    fig.add_trace(go.Scatter(x=rank[~counted], y=sizes[~counted], mode="markers", name="attached to a family",
                             marker={"color": "lightgray"}))
    fig.add_hline(y=min_size, line_dash="dot")
    fig.update_xaxes(type="log", title="group rank")
    fig.update_yaxes(type="log", title="proteins in the group")
    used = "" if n_used == n_estimated else f"; {n_used} clusters used (n_clusters)"
    fig.update_layout(title=f"Homology-graph groups: {n_estimated} families estimated{used}")
    return fig
