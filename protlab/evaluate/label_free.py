"""What can be said of a clustering without any labels: sizes, confidence, how many of each
protein's nearest neighbours (cosine, embeddings) share its cluster, and how many clusters are
tiny (perhaps a family split to fill a count) or far larger than the rest (perhaps families
merged)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from protlab.cluster.neighbors import faiss_knn

TINY_SIZE = 5        # a cluster below this is tiny whatever the others' sizes
TINY_FRACTION = 0.1  # ... or below this share of the median cluster's size
LARGE_FACTOR = 10    # a cluster this many times the median size may hold merged families


def size_flags(sizes) -> dict:
    """Counts of tiny and outsized clusters, with the thresholds used."""
    sizes = np.asarray(sizes, dtype=float)
    median = float(np.median(sizes))
    tiny = max(TINY_SIZE, TINY_FRACTION * median)
    large = LARGE_FACTOR * median
    return {"tiny_clusters": int((sizes < tiny).sum()), "tiny_below": round(tiny, 1),
            "outsized_clusters": int((sizes > large).sum()), "outsized_above": round(large, 1),
            "median_cluster_size": median}


def label_free_report(clusters: pd.DataFrame, embeddings: np.ndarray, *, k: int = 10) -> tuple[dict, pd.DataFrame]:
    """``(summary, per_cluster)`` of a clustering aligned with ``embeddings`` row by row."""
    labels = clusters["cluster"].to_numpy()
    confidence = clusters["confidence"].to_numpy(dtype=float) if "confidence" in clusters.columns \
        else np.full(len(labels), np.nan)
    kk = int(min(k, len(labels) - 1))
    share = np.full(len(labels), np.nan)
    if kk >= 1:
        idx, _ = faiss_knn(embeddings, k=kk)
        found = idx >= 0  # an approximate search on large sets may find fewer
        share = ((labels[idx] == labels[:, None]) & found).sum(axis=1) / np.maximum(found.sum(axis=1), 1)
    per_cluster = (pd.DataFrame({"cluster": labels, "confidence": confidence, "neighbour_share": share})
                   .groupby("cluster").agg(size=("confidence", "size"), median_confidence=("confidence", "median"),
                                           neighbour_share=("neighbour_share", "mean"))
                   .sort_values("size", ascending=False).reset_index())
    summary = {"labelled": False, "n": int(len(labels)), "n_clusters": int(len(per_cluster)),
               "largest_cluster": int(per_cluster["size"].max()), "singletons": int((per_cluster["size"] == 1).sum()),
               "median_confidence": float(np.nanmedian(confidence)) if np.isfinite(confidence).any() else None,
               "neighbour_share": float(np.nanmean(share)) if np.isfinite(share).any() else None,
               "neighbour_k": kk, **size_flags(per_cluster["size"])}
    return summary, per_cluster
