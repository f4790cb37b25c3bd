"""What 04's graph step leaves behind: one frozen object the heads train on, new proteins are
placed through, and a saved SCAN model restores whole."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GraphState:
    """The neighbour graph's lasting output (the graph itself is not kept).

    ``source``: where the neighbours came from (``"mmseqs"`` homology hits or ``"faiss"``
    embedding neighbours); ``kind``: the graph features (``"spectral"``, ``"diffusion"`` or
    ``"none"``); ``reference_embeddings`` (row-normalised), ``reference_features`` and
    ``reference_sequences`` (homology graphs only): the fitted proteins new ones are placed
    against; ``spectral_scale``: the per-coordinate scale of spectral features (else None);
    ``n_clusters``: the clusters the heads learn; ``family_labels``: the homology graph's
    families of the fitted proteins (None off a homology graph).
    """

    source: str
    kind: str
    reference_embeddings: np.ndarray
    reference_features: np.ndarray
    reference_sequences: list[str] | None
    spectral_scale: np.ndarray | None
    n_clusters: int
    family_labels: np.ndarray | None = None

    def to_checkpoint(self) -> dict:
        """Tensors and plain values for :func:`protlab.core.checkpoint.save_checkpoint`."""
        import torch

        def tensor(a):
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a))

        return {"source": self.source, "graph_kind": self.kind,
                "reference_embeddings": tensor(self.reference_embeddings),
                "reference_features": tensor(self.reference_features),
                "spectral_scale": tensor(self.spectral_scale), "reference_sequences": self.reference_sequences,
                "family_labels": tensor(self.family_labels)}

    @classmethod
    def from_checkpoint(cls, state: dict, n_clusters: int) -> "GraphState":
        """The state :meth:`to_checkpoint` wrote (models saved before ``family_labels`` was kept have none)."""
        def array(t):
            return None if t is None else t.numpy()

        return cls(source=state["source"], kind=state["graph_kind"],
                   reference_embeddings=array(state["reference_embeddings"]),
                   reference_features=array(state["reference_features"]),
                   reference_sequences=state["reference_sequences"], spectral_scale=array(state["spectral_scale"]),
                   n_clusters=int(n_clusters), family_labels=array(state.get("family_labels")))
