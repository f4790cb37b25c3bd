"""Training curves of the residue-clustering network: loss and the held-out metric per epoch."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def training_figure(history: list[dict], *, title: str = "Residue-clustering network training"):
    """Loss (left) and every ``train_*`` / ``val_*`` metric recorded (right) against epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "metrics"))
    epochs = [r["epoch"] for r in history]
    fig.add_trace(go.Scatter(x=epochs, y=[r["loss"] for r in history], mode="lines", name="training loss"), 1, 1)
    names = sorted({k for r in history for k in r if k.startswith(("train_", "val_"))})
    for name in names:
        points = [(r["epoch"], r[name]) for r in history if name in r]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                 name=name.replace("_", " ")), 1, 2)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title)
    return fig
