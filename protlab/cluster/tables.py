"""The clustering table (``clusters.parquet``, ``clusters/<method>.parquet``): one row per
protein with ``id``, ``cluster``, ``confidence``, ``method`` and its probabilities, whole or,
for large runs, each protein's top few; how it is written, checked and read back."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from protlab.cluster.methods import Clustering


DENSE_MAX = 20_000_000  # probabilities stored whole up to this many values (proteins x clusters) ...
TOP_K = 5                # ... above, each protein's TOP_K largest (top_clusters, top_probabilities)


def clusters_frame(ids, result: Clustering, *, dense_max: int | None = None) -> pd.DataFrame:
    """The table of a clustering: ``id``, ``cluster``, ``confidence``, ``method`` and the
    probabilities, whole (``probabilities``) or, above ``dense_max`` values, each protein's
    ``TOP_K`` largest (``top_clusters``, ``top_probabilities``, largest first)."""
    p = result.probabilities.astype(np.float32)
    dense_max = DENSE_MAX if dense_max is None else dense_max
    frame = {"id": [str(i) for i in ids], "cluster": result.labels.astype(np.int64),
             "confidence": result.confidence.astype(np.float32)}
    if p.size <= dense_max:
        frame["probabilities"] = list(p)
    else:
        k = min(TOP_K, p.shape[1])
        top = np.argpartition(-p, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(p, top, 1), axis=1, kind="stable"), 1)
        frame["top_clusters"] = list(top.astype(np.int32))
        frame["top_probabilities"] = list(np.take_along_axis(p, top, 1))
    return pd.DataFrame({**frame, "method": result.method})


def cluster_count(frame: pd.DataFrame) -> int:
    """The number of clusters of a clustering table: its probability vectors' length; with
    each protein's top few stored, the highest cluster id seen + 1; without probabilities,
    the distinct clusters."""
    if not len(frame):
        return 0
    if "probabilities" in frame.columns:
        return int(len(frame["probabilities"].iloc[0]))
    if "top_clusters" in frame.columns:
        return max(int(frame["cluster"].max()), int(max(np.max(t) for t in frame["top_clusters"]))) + 1
    return int(frame["cluster"].nunique())


def probability_matrix(frame: pd.DataFrame, n_clusters: int | None = None):
    """The probabilities of a clustering table (:func:`clusters_frame`): a dense ``(n, K)``
    array, a sparse one holding each protein's top few, or None when the table has none."""
    if "probabilities" in frame.columns:
        return np.stack(frame["probabilities"].to_numpy()) if len(frame) else None
    if "top_clusters" not in frame.columns or not len(frame):
        return None
    cols = np.concatenate(frame["top_clusters"].to_numpy()).astype(np.int64)
    values = np.concatenate(frame["top_probabilities"].to_numpy()).astype(np.float64)
    rows = np.repeat(np.arange(len(frame)), frame["top_clusters"].map(len).to_numpy())
    return sp.csr_matrix((values, (rows, cols)), shape=(len(frame), max(cluster_count(frame), n_clusters or 0)))


def clustering_problem(frame: pd.DataFrame, protein_ids: pd.Series | None) -> str | None:
    """What makes ``frame`` no clustering of the proteins ``protein_ids`` (None: not known), or
    None: it needs an id and an integer cluster >= 0 per row, each protein exactly once, and
    numeric confidence / equal-length probabilities where it has them."""
    missing = [c for c in ("id", "cluster") if c not in frame.columns]
    if missing:
        return f"it has no column {missing} (columns: {list(frame.columns)})"
    cluster = frame["cluster"]
    if not pd.api.types.is_numeric_dtype(cluster) or pd.api.types.is_bool_dtype(cluster):
        example = f" (e.g. {cluster.iloc[0]!r})" if len(cluster) else ""
        return f"column 'cluster' holds {cluster.dtype} values{example}, not integer cluster ids"
    bad = cluster.isna() | (cluster < 0) | (cluster % 1 != 0)
    if bad.any():
        return (f"{int(bad.sum())} row(s) have no integer cluster id >= 0 (e.g. {cluster[bad].iloc[0]} for id "
                f"{frame['id'][bad].iloc[0]!r})")
    if "confidence" in frame.columns and not pd.api.types.is_numeric_dtype(frame["confidence"]):
        return f"column 'confidence' holds {frame['confidence'].dtype} values, not numbers"
    for column in ("probabilities", "top_clusters", "top_probabilities"):
        if column not in frame.columns:
            continue
        sizes = frame[column].map(lambda p: -1 if isinstance(p, (str, bytes)) or not hasattr(p, "__len__")
                                  else len(p))
        if len(frame) and ((sizes < 1).any() or sizes.nunique() > 1
                           or np.asarray(frame[column].iloc[0]).dtype.kind not in "fiu"):
            return f"column {column!r} does not hold one equal-length list of numbers per row"
    ids = frame["id"].astype(str)
    repeated = ids[ids.duplicated()].unique().tolist()
    if repeated:
        return f"{len(repeated)} id(s) appear more than once (e.g. {repeated[:3]}); a clustering lists a protein once"
    if protein_ids is not None:
        lacking = sorted(set(protein_ids) - set(ids))
        if lacking:
            return f"it lacks {len(lacking)} of the {len(protein_ids)} proteins (e.g. {lacking[:3]})"
    return None
