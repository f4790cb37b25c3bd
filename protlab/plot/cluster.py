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


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 tick values covering [low, high] on a log axis, finer where that gives fewer than
    three (plotly's own minor-digit labels crowd a short log axis and label the edge below 1
    with a stray 9)."""
    for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7)):  # finer steps when the axis spans about a decade
        ticks = []
        decade = 10.0 ** np.floor(np.log10(max(low, 1e-12)))
        while decade <= high * 10:
            ticks += [float(m * decade) for m in steps if low <= m * decade <= high]
            decade *= 10
        if len(ticks) >= 3:
            break
    return ticks


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
    # both axes span the data and the threshold with room to spare, so the threshold line is
    # never drawn on the axis itself
    y_low = min(float(min_size), float(sizes.min()) if len(sizes) else float(min_size)) / 1.6
    y_high = max(float(min_size), float(sizes.max()) if len(sizes) else float(min_size)) * 1.6
    x_high = max(len(sizes), 1) * 1.3
    fig.add_hline(y=min_size, line_dash="dot", line_color="firebrick")
    # placed by hand: add_hline's own annotation takes a log axis' value as an exponent
    fig.add_annotation(x=1, xref="paper", xanchor="right", y=np.log10(min_size), yref="y", yanchor="bottom",
                       text=f"family threshold: {min_size} proteins", showarrow=False, font={"color": "firebrick"})
    x_ticks = [float(r) for r in rank] if len(sizes) <= 10 else log_ticks(1, x_high)
    y_ticks = log_ticks(y_low, y_high)
    fig.update_xaxes(type="log", title="group rank (largest first)", range=[np.log10(0.8), np.log10(x_high)],
                     tickmode="array", tickvals=x_ticks, ticktext=[f"{v:g}" for v in x_ticks])
    fig.update_yaxes(type="log", title="proteins in the group", range=[np.log10(y_low), np.log10(y_high)],
                     tickmode="array", tickvals=y_ticks, ticktext=[f"{v:g}" for v in y_ticks])
    used = "" if n_used == n_estimated else f"; {n_used} clusters used (n_clusters)"
    fig.update_layout(title=f"Homology-graph groups: {n_estimated} families estimated{used}", showlegend=True)
    return fig


def family_profiles_figure(summary: pd.DataFrame, strips: pd.DataFrame, *, max_families: int = 30):
    """One row per family (largest first): the mean attribution along its representative,
    scaled to the row's largest magnitude, so each family shows where the network looks."""
    import plotly.graph_objects as go

    shown = summary.sort_values(["size", "cluster"], ascending=[False, True]).head(max_families)
    width = int(strips["position"].max()) if len(strips) else 1
    z = np.full((len(shown), width), np.nan)
    text = np.full((len(shown), width), "", dtype=object)
    for row, (cluster, rep) in enumerate(zip(shown["cluster"], shown["representative"])):
        strip = strips[strips["cluster"] == cluster]
        values = strip["mean_attribution"].to_numpy(dtype=float)
        peak = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0.0
        z[row, :len(values)] = values / peak if peak > 0 else values
        text[row, :len(values)] = [f"{rep}<br>{r}{p}: mean attribution {v:.3g} over {m} members"
                                   for r, p, v, m in zip(strip["residue"], strip["position"], values,
                                                         strip["members"])]
    names = [f"cluster {c} ({s})" for c, s in zip(shown["cluster"], shown["size"])]
    fig = go.Figure(go.Heatmap(z=z, x=np.arange(1, width + 1), y=names, text=text, hoverinfo="text",
                               colorscale="RdBu", reversescale=True, zmid=0, zmin=-1, zmax=1,
                               colorbar={"title": {"text": "attribution<br>(row max = 1)"}}))
    fig.update_yaxes(autorange="reversed", title="family (members)")
    fig.update_xaxes(title="position along the family's representative")
    fig.update_layout(title="Where the clustering network looks: mean residue attribution per family",
                      height=max(320, 22 * len(shown) + 140))
    return fig
