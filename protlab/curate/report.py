"""Numbers describing a curated proteins table: residue composition and a summary."""
from __future__ import annotations

import pandas as pd

from protlab.core.alphabet import AMINO_ACIDS

RESIDUE_ORDER = AMINO_ACIDS + "X"


def composition(sequences) -> pd.Series:
    """Fraction of each residue (RESIDUE_ORDER, then ``other``) over all sequences."""
    joined = "".join(sequences)
    total = max(len(joined), 1)
    counts = {aa: joined.count(aa) for aa in RESIDUE_ORDER}
    counts["other"] = len(joined) - sum(counts.values())
    return pd.Series({k: v / total for k, v in counts.items()})


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

