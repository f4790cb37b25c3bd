"""What 04's graph step leaves behind: one frozen object the heads train on, new proteins are
placed through, and a saved SCAN model restores whole."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

SAVED_PER_CLUSTER_MIN = 50  # a thinned reference set keeps this many of each cluster (all of a smaller one)


@dataclass(frozen=True)
class GraphState:
    """The neighbour graph's lasting output (the graph itself is not kept).

    ``source``: where the neighbours came from (``"mmseqs"`` homology hits or ``"faiss"``
    embedding neighbours); ``kind``: the graph features (``"spectral"``, ``"diffusion"`` or
    ``"none"``); ``reference_embeddings`` (row-normalised), ``reference_features`` and
    ``reference_sequences`` (homology graphs only): the fitted proteins new ones are placed
    against; ``spectral_scale``: the per-coordinate scale of spectral features (else None);
    ``n_clusters``: the clusters the heads learn; ``family_labels``: the homology graph's
    families of the fitted proteins (None off a homology graph); ``reference_rows``: which
    fitted proteins the references are, when a saved model keeps a sample of them (None: all,
    in order).
    """

    source: str
    kind: str
    reference_embeddings: np.ndarray
    reference_features: np.ndarray
    reference_sequences: list[str] | None
    spectral_scale: np.ndarray | None
    n_clusters: int
    family_labels: np.ndarray | None = None
    reference_rows: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> "GraphState":
        """The state with only the references ``rows`` (sorted indices into the current references)."""
        def take(a):
            return None if a is None else a[rows]

        sequences = None if self.reference_sequences is None else [self.reference_sequences[i] for i in rows]
        fitted = rows if self.reference_rows is None else self.reference_rows[rows]
        return replace(self, reference_embeddings=self.reference_embeddings[rows],
                       reference_features=self.reference_features[rows], reference_sequences=sequences,
                       family_labels=take(self.family_labels), reference_rows=np.asarray(fitted, dtype=np.int64))

    def to_checkpoint(self) -> dict:
        """Tensors and plain values for :func:`protlab.core.checkpoint.save_checkpoint`."""
        import torch

        def tensor(a):
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a))

        return {"source": self.source, "graph_kind": self.kind,
                "reference_embeddings": tensor(self.reference_embeddings),
                "reference_features": tensor(self.reference_features),
                "spectral_scale": tensor(self.spectral_scale), "reference_sequences": self.reference_sequences,
                "family_labels": tensor(self.family_labels), "reference_rows": tensor(self.reference_rows)}

    @classmethod
    def from_checkpoint(cls, state: dict, n_clusters: int) -> "GraphState":
        """The state :meth:`to_checkpoint` wrote (models saved before ``family_labels`` and
        ``reference_rows`` were kept have none of them)."""
        def array(t):
            return None if t is None else t.numpy()

        return cls(source=state["source"], kind=state["graph_kind"],
                   reference_embeddings=array(state["reference_embeddings"]),
                   reference_features=array(state["reference_features"]),
                   reference_sequences=state["reference_sequences"], spectral_scale=array(state["spectral_scale"]),
                   n_clusters=int(n_clusters), family_labels=array(state.get("family_labels")),
                   reference_rows=array(state.get("reference_rows")))


def stratified_rows(groups: np.ndarray, limit: int, *, seed: int = 0,
                    floor: int = SAVED_PER_CLUSTER_MIN) -> np.ndarray:
    """Sorted rows to keep of ``len(groups)``: all of them up to ``limit``; above it, each group's
    share of ``limit`` and at least ``floor`` of each group (all of a smaller one), drawn with ``seed``."""
    groups = np.asarray(groups)
    n = len(groups)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    by_group = np.argsort(inverse, kind="stable")  # each group's rows in order, one pass instead of one per group
    keep = []
    for start, count in zip(np.cumsum(counts) - counts, counts):
        members = by_group[start:start + count]
        quota = min(len(members), max(floor, int(round(len(members) * limit / n))))
        keep.append(rng.choice(members, size=quota, replace=False))
    return np.sort(np.concatenate(keep))
