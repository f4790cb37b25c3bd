"""The embeddings a clustering is given, checked before any work."""
from __future__ import annotations

import numpy as np

from protlab.core.errors import InputError


def check_embeddings(embeddings, *, n_clusters: int | None = None, what: str = "embeddings",
                     predicting: bool = False) -> np.ndarray:
    """The embeddings as float32, or an :class:`InputError` saying what to do.

    ``predicting=True`` (assigning new proteins to a fitted model) accepts a single
    protein and identical rows.
    """
    x = np.asarray(embeddings, dtype=np.float32) if embeddings is not None else None
    if x is None or x.size == 0 or x.ndim != 2 or x.shape[0] == 0:
        shape = None if x is None else x.shape
        raise InputError(f"no proteins to cluster ({what} of shape {shape}): check the proteins table "
                         "and rerun 01_curate / 02_embed")
    n = x.shape[0]
    if predicting:
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if len(bad):
            raise InputError(f"{what} contain NaN or infinite values in rows {bad[:5].tolist()}: re-embed those proteins")
        return x
    if n == 1:
        raise InputError("a single protein cannot be clustered: give at least 2 proteins (and at least n_clusters)")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise InputError(f"{what} contain NaN or infinite values in {len(bad)} rows (first rows {bad[:5].tolist()}): "
                         "rerun 02_embed, or drop those proteins")
    if np.all(np.ptp(x, axis=0) == 0):
        raise InputError(f"all {n} {what} rows are identical (constant embeddings carry no signal): "
                         "check the encoder (02_embed) or the input sequences")
    if n_clusters is not None:
        if int(n_clusters) < 2:
            raise InputError(f"n_clusters={n_clusters}: ask for at least 2 clusters")
        if n < int(n_clusters):
            raise InputError(f"fewer proteins ({n}) than clusters (n_clusters={n_clusters}): "
                             f"lower n_clusters to at most {n} or add proteins")
    return x
