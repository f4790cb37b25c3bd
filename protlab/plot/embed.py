"""Pictures of an embedding: a 2-D UMAP map coloured by label."""
from __future__ import annotations

import numpy as np
import pandas as pd

from protlab.core.errors import InputError


UMAP_NEIGHBORS = 15  # UMAP's own default: local structure without shattering families


def project_2d(embeddings, *, n_neighbors: int = UMAP_NEIGHBORS, min_dist: float = 0.1, seed: int = 0,
               metric: str = "cosine") -> tuple[np.ndarray, str]:
    """``(coords (n, 2), method)``: UMAP (umap-learn), or PCA for fewer than 10 proteins."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"embeddings must be a non-empty (n, dim) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise InputError(f"{bad} embedding rows contain NaN/inf; rerun 02_embed (the cache keeps finished work)")
    n = x.shape[0]
    if n < 10:
        centred = x - x.mean(axis=0)
        if n == 1 or not centred.any():
            return np.zeros((n, 2), np.float32), "pca"
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        coords = u[:, :2] * s[:2]
        return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1]))).astype(np.float32), "pca"
    import umap

    reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, random_state=seed,
                        metric=metric, n_components=2, n_jobs=1)
    return reducer.fit_transform(x).astype(np.float32), "umap"


def umap_figure(embeddings, *, labels=None, ids=None, title: str = "Protein embeddings", seed: int = 0,
                n_neighbors: int = UMAP_NEIGHBORS, min_dist: float = 0.1, max_points: int | None = None,
                projected: tuple[np.ndarray, str] | None = None):
    """A plotly scatter of the UMAP map, one colour per label, ids on hover.

    ``max_points``: map a seeded random subset of at most this many proteins (UMAP time
    grows with n; the picture barely changes). ``projected``: ``(coords, method)`` of that
    subset when already computed (:func:`project_2d`), so one projection serves several views.
    """
    import plotly.express as px

    x = np.asarray(embeddings)
    total = x.shape[0] if x.ndim else 0
    rows = np.arange(total)
    if max_points is not None and 0 < max_points < total:
        rows = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
    coords, method = projected or project_2d(x[rows], n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    if len(coords) != len(rows):
        raise InputError(f"projected holds {len(coords)} points for the {len(rows)} proteins mapped")
    n = coords.shape[0]
    ids = [str(ids[i]) for i in rows] if ids is not None else [str(i) for i in rows]
    frame = pd.DataFrame({f"{method.upper()} 1": coords[:, 0], f"{method.upper()} 2": coords[:, 1], "id": ids})
    labels = list(labels) if labels is not None else None
    frame["label"] = ["(none)" if labels[i] is None or (isinstance(labels[i], float) and np.isnan(labels[i]))
                      else str(labels[i]) for i in rows] if labels is not None else "(none)"
    shown = f"n={n}" if n == total else f"{n} of {total} shown"
    fig = px.scatter(frame, x=frame.columns[0], y=frame.columns[1], color="label", hover_name="id",
                     title=f"{title} ({method.upper()}, {shown})", opacity=0.8)
    fig.update_traces(marker={"size": 5})
    fig.update_layout(legend_title_text="label", template="plotly_white")
    return fig
