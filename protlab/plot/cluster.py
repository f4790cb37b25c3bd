"""Figures of a clustering: cluster sizes and confidence."""
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
