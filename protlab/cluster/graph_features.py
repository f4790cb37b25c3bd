"""Graph features: what the SCAN heads see of a protein, made from its neighbour graph.

``"spectral"``: the leading eigenvectors of the normalised affinity (with a per-coordinate
scale that places new proteins by a Nyström extension); ``"diffusion"``: the embeddings
diffused over the graph; ``"none"``: the row-normalised embeddings.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.manifold import spectral_embedding

from protlab.cluster.neighbors import normalize_rows

GRAPH_FEATURES = ("auto", "spectral", "diffusion", "none")
SPECTRAL_MAX = 20_000  # "auto" graph features: spectral up to this many proteins, diffusion above (linear cost)
DIFFUSION_ALPHA = 0.1  # the share of a protein's own embedding in its diffusion features


def row_normalize(a: sp.spmatrix) -> sp.csr_matrix:
    deg = np.asarray(a.sum(axis=1)).ravel()
    return (sp.diags(1.0 / np.where(deg == 0, 1.0, deg)) @ a).tocsr()


def spectral_features(affinity: sp.csr_matrix, *, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(features, scale)``: leading eigenvectors of the normalised graph Laplacian.

    ``scale`` (per component) maps the random-walk average of reference features onto
    the eigenvector itself (Nyström extension, fitted by least squares in-sample), so new
    proteins land on the same coordinates.
    """

    n = affinity.shape[0]
    dims = int(max(1, min(dims, n - 2)))

    with warnings.catch_warnings():  # disconnected graphs are expected (well-separated families)
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        emb = spectral_embedding(affinity, n_components=dims, random_state=seed, drop_first=False)
    emb = emb.astype(np.float64)
    walked = row_normalize(affinity) @ emb
    scale = (emb * walked).sum(0) / np.maximum((walked * walked).sum(0), 1e-12)
    return emb.astype(np.float32), scale.astype(np.float32)


DIFFUSION_ALPHA = 0.1  # the share of a protein's own embedding in its diffusion features


def diffusion_features(x: np.ndarray, affinity: sp.csr_matrix, *, alpha: float = DIFFUSION_ALPHA,
                       steps: int = 30) -> np.ndarray:
    """Embeddings diffused over the graph: ``x ← α x₀ + (1 − α) P x``, ``steps`` times.

    In float32 through torch's sparse product, which uses every thread torch has (SciPy's
    is single-threaded, and on large sets this loop is most of the graph features' time)."""
    import torch

    walk = row_normalize(affinity).astype(np.float32)
    walk.sum_duplicates()  # torch's CSR wants each row's columns sorted and distinct
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        step = torch.sparse_csr_tensor(torch.from_numpy(walk.indptr.astype(np.int64)),
                                       torch.from_numpy(walk.indices.astype(np.int64)),
                                       torch.from_numpy(walk.data), size=walk.shape, check_invariants=True)
    x0 = torch.from_numpy(normalize_rows(x).astype(np.float32))
    out = x0.clone()
    for _ in range(steps):
        out = alpha * x0 + (1 - alpha) * (step @ out)
    return out.numpy()


def scaled_features(features: np.ndarray) -> np.ndarray:
    """Rows at unit norm times sqrt(dim): unit-variance-ish inputs for the head."""
    return (normalize_rows(features) * np.sqrt(features.shape[1])).astype(np.float32)
