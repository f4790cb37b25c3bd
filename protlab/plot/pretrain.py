"""Figures of a ProtCLIP pretraining run: loss curves and held-out retrieval / zero-shot bars."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def loss_figure(history: list[dict], weights: dict[str, float]):
    """One line per enabled loss (weight > 0, unweighted) and the weighted total, against step.

    ``history``: the records of ``pretrain_log.jsonl`` (:func:`protlab.pretrain.loss_log.read_log`);
    ``weights``: ``{loss name: weight}`` (:func:`protlab.pretrain.model.loss_weights`), in plot order.
    """
    fig = go.Figure()
    steps = [r["step"] for r in history]
    for name in ("loss", *(k for k, w in weights.items() if w > 0)):
        fig.add_trace(go.Scatter(x=steps, y=[r.get(name) for r in history], mode="lines",
                                 name="total (weighted)" if name == "loss" else name.upper()))
    fig.update_layout(title="ProtCLIP pretraining losses", xaxis_title="step", yaxis_title="loss")
    return fig


def mark_best_step(fig, history: list[dict], best_step: int | None, *, selected: bool):
    """The loss figure with the valid split's total loss (when validated) and a line at the exported step."""
    valid = [r for r in history if "valid_loss" in r]
    if valid:
        fig.add_trace(go.Scatter(x=[r["step"] for r in valid], y=[r["valid_loss"] for r in valid],
                                 mode="lines+markers", line={"dash": "dot"}, name="valid total (weighted)"))
    if best_step is not None:
        fig.add_vline(x=best_step, line_dash="dash", line_color="grey",
                      annotation_text=f"{'best' if selected else 'last'} step {best_step} (exported)")
    return fig


def metrics_figure(table: pd.DataFrame, *, n_pairs: int | None = None):
    """Grouped bars, untrained beside trained, for every row of
    :func:`protlab.pretrain.retrieval.metrics_table` (retrieval both ways, zero-shot accuracy)."""
    fig = go.Figure([go.Bar(name=col, x=list(table.index), y=table[col].astype(float).tolist())
                     for col in ("untrained", "trained")])
    fig.update_layout(barmode="group", title=f"Held-out retrieval and zero-shot ({n_pairs} pairs)",
                      yaxis_title="score", yaxis_range=[0, 1])
    return fig
