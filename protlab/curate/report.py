"""Dataset figures for 01_curate: length histogram, family sizes, residue composition.

Each function takes the curated proteins table and returns a plotly figure;
:func:`dataset_figures` saves all three under ``run_dir/figures/`` (HTML + PNG).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from protlab.core.alphabet import AMINO_ACIDS

RESIDUE_ORDER = AMINO_ACIDS + "X"
SPLIT_COLORS = {"train": "#4C72B0", "valid": "#DD8452", "test": "#55A868"}


def length_histogram(frame: pd.DataFrame, *, bins: int = 40):
    """Sequence lengths, stacked by split when the table has one."""
    import plotly.express as px

    data = frame.assign(length=frame["sequence"].str.len())
    color = "split" if "split" in data.columns else None
    fig = px.histogram(data, x="length", color=color, nbins=bins, color_discrete_map=SPLIT_COLORS,
                       category_orders={"split": list(SPLIT_COLORS)},
                       title=f"Sequence length ({len(data)} proteins, median {int(data['length'].median()) if len(data) else 0})")
    fig.update_layout(barmode="stack", xaxis_title="length (residues)", yaxis_title="proteins")
    return fig


def family_sizes(frame: pd.DataFrame, *, top: int = 50):
    """Proteins per label (the ``top`` largest), stacked by split when present."""
    import plotly.express as px

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
    import plotly.express as px

    freq = composition(frame["sequence"])
    fig = px.bar(x=list(freq.index), y=(100 * freq.values).round(3), title="Residue composition",
                 labels={"x": "residue", "y": "frequency (%)"})
    return fig


def composition(sequences) -> pd.Series:
    """Fraction of each residue (RESIDUE_ORDER, then ``other``) over all sequences."""
    joined = "".join(sequences)
    total = max(len(joined), 1)
    counts = {aa: joined.count(aa) for aa in RESIDUE_ORDER}
    counts["other"] = len(joined) - sum(counts.values())
    return pd.Series({k: v / total for k, v in counts.items()})


def dataset_figures(frame: pd.DataFrame, run_dir: str | Path) -> dict[str, dict[str, Path]]:
    """Save the three dataset figures under ``run_dir/figures/``; returns the paths written."""
    from protlab.core.rundir import figures_dir
    from protlab.plot.export import save_figure

    out = figures_dir(run_dir)
    figures = {"curate_lengths": length_histogram(frame), "curate_family_sizes": family_sizes(frame),
               "curate_composition": residue_composition(frame)}
    return {name: save_figure(fig, out / name) for name, fig in figures.items()}


def summary(frame: pd.DataFrame) -> dict:
    """Small JSON-able numbers describing the curated table."""
    lengths = frame["sequence"].str.len()
    out = {"proteins": int(len(frame)), "labels": int(frame["label"].nunique()),
           "length_min": int(lengths.min()) if len(frame) else 0,
           "length_median": float(lengths.median()) if len(frame) else 0.0,
           "length_max": int(lengths.max()) if len(frame) else 0}
    if "split" in frame.columns:
        out["splits"] = {k: int(v) for k, v in frame["split"].value_counts().items()}
        if "cluster" in frame.columns:
            out["clusters"] = int(frame["cluster"].nunique())
    return out

