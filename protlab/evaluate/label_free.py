"""What can be said of a clustering without any labels: sizes, confidence, and how many of
each protein's nearest neighbours (cosine, embeddings) share its cluster."""
from __future__ import annotations

import numpy as np
import pandas as pd

from protlab.cluster.neighbors import faiss_knn


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
               "neighbour_k": kk}
    return summary, per_cluster
