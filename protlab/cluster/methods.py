"""Family discovery without labels: homology-graph families, SCAN, k-means, PCA + k-means.

Methods (``cluster(..., method=...)``):

* ``"kmeans"``: k-means on the L2-normalised embeddings.
* ``"pca_kmeans"``: the published baseline, PCA (50 components) then k-means.
* ``"families"``: the families of the MMseqs2 homology graph (:mod:`protlab.cluster.families`);
  the probabilities (confidence, ``predict`` for new proteins) are those of the SCAN heads
  fitted beside them, so the heads' settings change the probabilities, not the labels.
* ``"scan"``: the SCAN heads' own assignment (argmax of the kept head). One fit of
  :class:`ScanClusterer` gives both ``"families"`` and ``"scan"`` (:func:`fit_graph_methods`).

SCAN (:class:`ScanClusterer`): neighbours are mined (MMseqs2 homology hits when
  ``mmseqs`` is installed and sequences are given, faiss cosine kNN on the embeddings
  otherwise; see :mod:`protlab.cluster.neighbors`). On a homology graph the graph's
  families come first (:mod:`protlab.cluster.families`): they give the number of clusters
  when ``n_clusters`` is None, the cluster-size prior and the heads' starting point. The
  neighbour graph turns the embeddings into *graph features* (``"spectral"``: the leading
  eigenvectors of the normalised affinity, the default for homology graphs up to
  ``SPECTRAL_MAX`` proteins; ``"diffusion"``: the embeddings diffused over the graph, the
  default above; ``"none"``: the raw embeddings, the default for faiss graphs), and several
  SCAN heads are trained on those features with the SCAN loss (k = 20 neighbours, λ = 5;
  its size term is KL(mean p ‖ prior): equal sizes, i.e. SCAN's entropy term, without
  families; with them the cross-entropy towards the families holds the sizes instead, since a
  batch's mean p would hold a family rarer than one member per batch near p = prior × batch
  size; the head choice still scores the families' sizes). The head with the lowest
  validation loss is kept and refined by self-labelling (confidence > 0.99, cross-entropy,
  class-balanced only without a prior; the strong view is the features with dropout +
  noise). Over-clustering (``n_clusters`` above the number of families) is supported.

A fitted :class:`ScanClusterer` assigns *new* proteins without refitting: their affinity to
the stored reference proteins (homology hits and/or nearest embeddings) places them in the
graph-feature space (Nyström extension), and the head does the rest; the cost per protein
does not grow with the number of proteins predicted. ``save`` / ``load`` keep everything
needed (weights, reference embeddings, sequences and features).

All methods are deterministic for a ``seed``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from protlab.cluster.embedding_checks import check_embeddings
from protlab.cluster.neighbors import normalize_rows, resolve_source
from protlab.cluster.scan import ScanClusterer
from protlab.core.errors import InputError

log = logging.getLogger(__name__)

METHODS = ("families", "scan", "kmeans", "pca_kmeans")
GRAPH_METHODS = ("families", "scan")  # one ScanClusterer fit gives both
KMEANS_RESTARTS_MAX = 200_000  # k-means baselines restart 10 times up to this many proteins, once above
KMEANS_FIT_MAX = 200_000  # above it, k-means centres are fitted on this many sampled proteins, then every one assigned


def _soft_assign(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Soft k-means probabilities: softmax of −d²/(2σ²), σ² the mean within-cluster d²."""
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1) if len(x) * len(centers) < 5e7 else \
        (x ** 2).sum(1, keepdims=True) - 2 * x @ centers.T + (centers ** 2).sum(1)[None, :]
    d2 = np.maximum(d2, 0)
    sigma2 = max(float(d2.min(axis=1).mean()), 1e-6)
    logits = -d2 / (2 * sigma2)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass
class Clustering:
    """Result of :func:`cluster`: hard labels, probabilities and what made them."""

    labels: np.ndarray
    probabilities: np.ndarray
    method: str
    info: dict = field(default_factory=dict)
    model: object | None = None

    @property
    def confidence(self) -> np.ndarray:
        """The probability of each protein's own cluster."""
        return self.probabilities[np.arange(len(self.labels)), self.labels]


def kmeans_restarts(n: int) -> int:
    """k-means restarts: 10 up to ``KMEANS_RESTARTS_MAX`` proteins, 1 above (each restart is a
    full k-means, and ten of them with hundreds of clusters on 10^6 proteins cost tens of minutes)."""
    return 10 if n <= KMEANS_RESTARTS_MAX else 1


def _fit_kmeans(x: np.ndarray, n_clusters: int, seed: int, n_init: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(labels, centres, info)``: k-means on ``x``, its centres fitted on a seeded sample of
    ``KMEANS_FIT_MAX`` rows above that size (each Lloyd pass costs rows × centres, and
    k-means makes many passes; assigning every row to its nearest centre is one)."""
    fit_on = x
    info = {"n_init": n_init}
    if len(x) > KMEANS_FIT_MAX:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), KMEANS_FIT_MAX, replace=False))
        fit_on = x[rows]
        info["fitted_on"] = KMEANS_FIT_MAX
    km = KMeans(n_clusters=int(n_clusters), n_init=n_init, random_state=seed).fit(fit_on)
    labels = km.labels_ if fit_on is x else km.predict(x)
    return labels.astype(np.int64), km.cluster_centers_, info


def kmeans(embeddings, *, n_clusters: int, seed: int = 0, n_init: int | None = None) -> Clustering:
    """k-means on L2-normalised embeddings (``n_init`` None: :func:`kmeans_restarts`)."""

    x = normalize_rows(check_embeddings(embeddings, n_clusters=n_clusters))
    n_init = kmeans_restarts(len(x)) if n_init is None else int(n_init)
    labels, centres, info = _fit_kmeans(x, n_clusters, seed, n_init)
    return Clustering(labels, _soft_assign(x, centres), "kmeans",
                      {"n_clusters": int(n_clusters), "seed": seed, **info})


def pca_kmeans(embeddings, *, n_clusters: int, n_components: int = 50, seed: int = 0,
               n_init: int | None = None) -> Clustering:
    """The published baseline: PCA to ``n_components`` then k-means (``n_init`` as :func:`kmeans`)."""

    x = check_embeddings(embeddings, n_clusters=n_clusters)
    dims = int(min(n_components, x.shape[1], x.shape[0] - 1))
    z = PCA(n_components=dims, random_state=seed).fit_transform(x) if dims >= 1 else x
    n_init = kmeans_restarts(len(x)) if n_init is None else int(n_init)
    labels, centres, info = _fit_kmeans(z, n_clusters, seed, n_init)
    return Clustering(labels, _soft_assign(z, centres), "pca_kmeans",
                      {"n_clusters": int(n_clusters), "n_components": dims, "seed": seed, **info})


def fit_graph_methods(embeddings, sequences=None, *, n_clusters: int | None, **options) -> dict[str, Clustering]:
    """Fit :class:`ScanClusterer` once: ``{"scan": the heads' argmax, "families": the homology
    graph's families}`` of the fitted proteins (``"families"`` only on a homology graph). Both
    carry the heads' probabilities and the same model (``predict`` places new proteins)."""
    model = ScanClusterer(n_clusters=n_clusters, **options)
    prob = model.fit_predict_proba(embeddings, sequences).astype(np.float32)
    heads = prob.argmax(axis=1).astype(np.int64)
    info = {**model.config, **{k: v for k, v in model.info.items() if not isinstance(v, list)}}
    out = {"scan": Clustering(heads, prob, "scan", dict(info), model)}
    if model.partition is not None:
        families = model.partition.labels.astype(np.int64)
        shared = {"family_group_sizes": model.info["family_group_sizes"],
                  "families_fit_steps": model.info["families_fit_steps"],
                  "families_passes": model.info["families_passes"],
                  "agreement_heads_families": float((heads == families).mean())}
        out["scan"].info.update(shared)
        out["families"] = Clustering(families, prob, "families", {**info, **shared}, model)
    return out


def refuse_families_without_graph(neighbors: str, *, have_sequences: bool) -> None:
    """method='families' is refused before any fit when the neighbours will not be homology hits."""
    if resolve_source(neighbors, have_sequences=have_sequences) == "faiss":
        raise no_families_error()


def no_families_error() -> InputError:
    return InputError("method='families' needs the homology graph (MMseqs2 and the sequences, neighbors='mmseqs' "
                      "or 'auto' with MMseqs2 installed); with embedding neighbours use method='scan'")


def scan(embeddings, sequences=None, *, n_clusters: int | None, **options) -> Clustering:
    """The SCAN heads' own clustering (:func:`fit_graph_methods`)."""
    return fit_graph_methods(embeddings, sequences, n_clusters=n_clusters, **options)["scan"]


def families(embeddings, sequences=None, *, n_clusters: int | None, **options) -> Clustering:
    """The homology graph's families, with the SCAN heads' probabilities (:func:`fit_graph_methods`)."""
    out = fit_graph_methods(embeddings, sequences, n_clusters=n_clusters, **options)
    if "families" not in out:
        raise no_families_error()
    return out["families"]


def cluster(embeddings, sequences=None, *, method: str = "families", n_clusters: int | None, seed: int = 0,
            **options) -> Clustering:
    """Cluster proteins with ``method`` (one of :data:`METHODS`); only ``"families"`` and
    ``"scan"`` estimate ``n_clusters`` when it is None (from the homology graph)."""
    if n_clusters is None and method in ("kmeans", "pca_kmeans"):
        raise InputError(f"method={method!r} needs n_clusters; only method='families' or 'scan' estimate it "
                         "(n_clusters=None)")
    if method == "kmeans":
        return kmeans(embeddings, n_clusters=n_clusters, seed=seed, **options)
    if method == "pca_kmeans":
        return pca_kmeans(embeddings, n_clusters=n_clusters, seed=seed, **options)
    if method == "scan":
        return scan(embeddings, sequences, n_clusters=n_clusters, seed=seed, **options)
    if method == "families":
        refuse_families_without_graph(options.get("neighbors", "auto"), have_sequences=sequences is not None)
        return families(embeddings, sequences, n_clusters=n_clusters, seed=seed, **options)
    raise InputError(f"method={method!r} is unknown; use one of {METHODS}")
