"""Dataset figures of 01_curate: length histogram, family sizes, residue composition.

Each function takes the curated proteins table and returns a plotly figure.
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px

from protlab.curate.report import composition

SPLIT_COLORS = {"train": "#4C72B0", "valid": "#DD8452", "test": "#55A868"}


def length_histogram(frame: pd.DataFrame, *, bins: int = 40):
    """Sequence lengths, stacked by split when the table has one."""
    data = frame.assign(length=frame["sequence"].str.len())
    color = "split" if "split" in data.columns else None
    fig = px.histogram(data, x="length", color=color, nbins=bins, color_discrete_map=SPLIT_COLORS,
                       category_orders={"split": list(SPLIT_COLORS)},
                       title=f"Sequence length ({len(data)} proteins, median {int(data['length'].median()) if len(data) else 0})")
    fig.update_layout(barmode="stack", xaxis_title="length (residues)", yaxis_title="proteins")
    return fig


def family_sizes(frame: pd.DataFrame, *, top: int = 50):
    """Proteins per label (the ``top`` largest), stacked by split when present."""
    labels = frame["label"].fillna("(none)").astype(str)
    order = labels.value_counts().index[:top].tolist()
    data = frame.assign(label=labels)
    data = data[data["label"].isin(order)]
    by = ["label", "split"] if "split" in data.columns else ["label"]
    counts = data.groupby(by).size().rename("proteins").reset_index()
    n_labels = labels.nunique()
    title = f"Family sizes ({n_labels} labels" + (f", top {top} shown)" if n_labels > top else ")")
    fig = px.bar(counts, x="label", y="proteins", color="split" if "split" in by else None,
                 color_discrete_map=SPLIT_COLORS, category_orders={"label": order, "split": list(SPLIT_COLORS)},
                 title=title)
    fig.update_layout(xaxis_title="label", yaxis_title="proteins", xaxis_tickangle=-45)
    return fig


def residue_composition(frame: pd.DataFrame) -> "object":
    """Residue frequencies (%) over all sequences; any other letters are pooled as ``other``."""
    freq = composition(frame["sequence"])
    fig = px.bar(x=list(freq.index), y=(100 * freq.values).round(3), title="Residue composition",
                 labels={"x": "residue", "y": "frequency (%)"})
    return fig


def dataset_figures(frame: pd.DataFrame) -> dict:
    """The three dataset figures, by the file stem each is saved under."""
    return {"curate_lengths": length_histogram(frame), "curate_family_sizes": family_sizes(frame),
            "curate_composition": residue_composition(frame)}
