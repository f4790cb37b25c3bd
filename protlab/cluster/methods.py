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

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import spectral_embedding
from protlab.core.progress import progress_bar

from protlab.cluster.distributed import (
    my_share,
    same_buffers,
    scan_env,
    share_from_main,
    total_over_ranks,
    wrap,
)
from protlab.cluster.families import FamilyConfig, FamilyPartition, describe_fit_steps, find_families
from protlab.cluster.graph_state import GraphState
from protlab.cluster.heads import ScanHeads, scan_loss, self_label_loss, strong_view, validation_losses
from protlab.cluster.neighbors import (
    NeighborGraph,
    knn_index,
    mine_neighbors,
    normalize_rows,
    reference_affinity,
    resolve_source,
)
from protlab.core.checkpoint import read_checkpoint, save_checkpoint
from protlab.core.errors import InputError
from protlab.core.runtime import DistEnv, pick_device, torch_threads

log = logging.getLogger(__name__)

METHODS = ("families", "scan", "kmeans", "pca_kmeans")
GRAPH_METHODS = ("families", "scan")  # one ScanClusterer fit gives both
GRAPH_FEATURES = ("auto", "spectral", "diffusion", "none")
KMEANS_RESTARTS_MAX = 200_000  # k-means baselines restart 10 times up to this many proteins, once above
PREDICT_CHUNK = 20_000  # new proteins placed per homology search / faiss query in predict
SPECTRAL_MAX = 20_000  # "auto" graph features: spectral up to this many proteins, diffusion above (linear cost)


# ----------------------------------------------------------------------------- inputs
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


def kmeans(embeddings, *, n_clusters: int, seed: int = 0, n_init: int | None = None) -> Clustering:
    """k-means on L2-normalised embeddings (``n_init`` None: :func:`kmeans_restarts`)."""

    x = normalize_rows(check_embeddings(embeddings, n_clusters=n_clusters))
    n_init = kmeans_restarts(len(x)) if n_init is None else int(n_init)
    km = KMeans(n_clusters=int(n_clusters), n_init=n_init, random_state=seed).fit(x)
    return Clustering(km.labels_.astype(np.int64), _soft_assign(x, km.cluster_centers_), "kmeans",
                      {"n_clusters": int(n_clusters), "seed": seed, "n_init": n_init})


def pca_kmeans(embeddings, *, n_clusters: int, n_components: int = 50, seed: int = 0,
               n_init: int | None = None) -> Clustering:
    """The published baseline: PCA to ``n_components`` then k-means (``n_init`` as :func:`kmeans`)."""

    x = check_embeddings(embeddings, n_clusters=n_clusters)
    dims = int(min(n_components, x.shape[1], x.shape[0] - 1))
    z = PCA(n_components=dims, random_state=seed).fit_transform(x) if dims >= 1 else x
    n_init = kmeans_restarts(len(x)) if n_init is None else int(n_init)
    km = KMeans(n_clusters=int(n_clusters), n_init=n_init, random_state=seed).fit(z)
    return Clustering(km.labels_.astype(np.int64), _soft_assign(z, km.cluster_centers_), "pca_kmeans",
                      {"n_clusters": int(n_clusters), "n_components": dims, "seed": seed, "n_init": n_init})


# ------------------------------------------------------------------------ graph features
def _row_normalize(a: sp.spmatrix) -> sp.csr_matrix:
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
    walked = _row_normalize(affinity) @ emb
    scale = (emb * walked).sum(0) / np.maximum((walked * walked).sum(0), 1e-12)
    return emb.astype(np.float32), scale.astype(np.float32)


FAMILY_WEIGHT_POWER = 0.5  # heads' cross-entropy towards the families: a family weighs size ** -this
DIFFUSION_ALPHA = 0.1  # the share of a protein's own embedding in its diffusion features


def diffusion_features(x: np.ndarray, affinity: sp.csr_matrix, *, alpha: float = DIFFUSION_ALPHA,
                       steps: int = 30) -> np.ndarray:
    """Embeddings diffused over the graph: ``x ← α x₀ + (1 − α) P x``, ``steps`` times."""
    walk = _row_normalize(affinity)
    x0 = normalize_rows(x).astype(np.float64)
    out = x0.copy()
    for _ in range(steps):
        out = alpha * x0 + (1 - alpha) * (walk @ out)
    return out.astype(np.float32)


def _scaled(features: np.ndarray) -> np.ndarray:
    """Rows at unit norm times sqrt(dim): unit-variance-ish inputs for the head."""
    return (normalize_rows(features) * np.sqrt(features.shape[1])).astype(np.float32)


# ------------------------------------------------------------------------------- SCAN
def batches(perm, batch_size: int, smallest: int):
    """Consecutive batches of ``perm``; a last batch under ``smallest`` rows (batch norm needs
    2 on every rank) is left out."""
    for start in range(0, len(perm), batch_size):
        idx = perm[start:start + batch_size]
        if len(idx) >= smallest:
            yield idx


class _HeadTraining:
    """The three passes of the heads' training (warm start, SCAN epochs, self-labelling) over
    one seeded generator, each drawing its batches from :func:`batches`."""

    def __init__(self, owner: "ScanClusterer", bare, x, graph: NeighborGraph, gen, order, n_val: int, device: str,
                 env: DistEnv):
        import torch

        self.owner, self.cfg, self.bare, self.x, self.gen, self.order = owner, owner.config, bare, x, gen, order
        self.device, self.env = device, env
        self.knn, self.counts = torch.from_numpy(graph.knn), torch.from_numpy(graph.counts)
        self.val, self.train = order[:n_val], order[n_val:]
        self.n = len(x)
        self.bs = max(2 * env.world, min(self.cfg["batch_size"], len(self.train)))
        self.smallest = 2 * env.world  # every rank needs 2 rows for batch norm
        self.model = wrap(bare, env, device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])
        labels = owner.graph.family_labels
        self.targets = self.prior = self.balance = None
        if labels is not None:  # cluster sizes pulled towards the families', not equal
            self.targets = torch.from_numpy(labels)
            sizes = torch.bincount(self.targets, minlength=self.cfg["n_clusters"]).float()
            self.prior = self.on(sizes / self.n)
            # rare families weigh more in the cross-entropy towards the families: with equal
            # weights the big families' gradients leave the heads unsure of the small ones
            balance = sizes.clamp_min(1.0) ** -FAMILY_WEIGHT_POWER
            self.balance = self.on(balance * self.n / (balance * sizes).sum())

    def on(self, t):
        return t.to(self.device, non_blocking=True)

    def step(self, loss) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def family_loss(self, outputs, idx):
        import torch

        goal = self.on(self.targets[idx])
        return sum(torch.nn.functional.cross_entropy(o[:len(idx)], goal, weight=self.balance) for o in outputs)

    def warm_start(self) -> None:
        """Cross-entropy towards the graph's families for ``warm_epochs`` (homology graphs only)."""
        import torch

        if self.targets is None:
            return
        for _ in range(self.cfg["warm_epochs"]):  # heads start from the graph's families
            for idx in batches(self.order[torch.randperm(self.n, generator=self.gen)], self.bs, self.smallest):
                idx = my_share(self.env, idx)
                self.step(self.family_loss(self.model(self.on(self.x[idx])), idx))

    def scan_epochs(self) -> list[float]:
        """SCAN's loss over anchors and a sampled neighbour each; on a homology graph it keeps the
        cross-entropy towards the families (``anchor_weight``). Returns each epoch's summed loss."""
        import torch

        cfg, env = self.cfg, self.env
        anchored = self.targets is not None and cfg["anchor_weight"] > 0
        # the size pull: none when the cross-entropy towards the families holds the sizes (a
        # batch's mean p caps a family rarer than 1 / batch_size near prior x batch_size, so such
        # families would never be learnt)
        pull = 0.0 if anchored else cfg["entropy_weight"]
        steps_per_epoch = max(1, -(-len(self.train) // self.bs))
        n_epochs = max(cfg["epochs"], -(-cfg["min_steps"] // steps_per_epoch)) if cfg["epochs"] > 0 else 0
        epochs = range(n_epochs)
        if self.owner.progress and env.is_main:
            epochs = progress_bar(epochs, desc="SCAN", leave=False)
        history = []
        for _ in epochs:
            self.model.train()
            total = 0.0
            for anchors in batches(self.train[torch.randperm(len(self.train), generator=self.gen)], self.bs,
                                   self.smallest):
                pick = (torch.rand(len(anchors), generator=self.gen) * self.counts[anchors]).long()
                neighbors = self.knn[anchors, pick]  # drawn for the whole batch: generators stay alike
                anchors, neighbors = my_share(env, anchors), my_share(env, neighbors)
                out = self.model(self.on(torch.cat([self.x[anchors], self.x[neighbors]])))
                loss = sum(scan_loss(o[:len(anchors)], o[len(anchors):], entropy_weight=pull, prior=self.prior)[0]
                           for o in out)
                if anchored:  # stay near the graph's families
                    loss = loss + cfg["anchor_weight"] * self.family_loss(out, anchors)
                self.step(loss)
                total += float(loss.detach())
            history.append(total)
        return history

    def self_label(self) -> list[float]:
        """Self-labelling of the kept head on its confident proteins; each epoch's confident share."""
        import torch

        cfg, env, bare = self.cfg, self.env, self.bare
        self.model = wrap(bare, env, self.device)
        confident = []
        if cfg["self_label_epochs"] <= 0:
            return confident
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg["lr"] * 0.1, weight_decay=cfg["weight_decay"])
        for _ in range(cfg["self_label_epochs"]):
            n_conf = 0
            for idx in batches(self.order[torch.randperm(self.n, generator=self.gen)], self.bs, self.smallest):
                views = strong_view(self.x[idx], generator=self.gen)  # the whole batch's noise: generators stay alike
                idx, views = my_share(env, idx), my_share(env, views)
                bare.eval()
                with torch.no_grad():
                    weak = bare(self.on(self.x[idx]))[0]
                self.model.train()
                strong = self.model(self.on(views))[0]
                loss, c = self_label_loss(weak, strong, threshold=cfg["confidence"], balanced=self.prior is None)
                c = total_over_ranks(env, c)  # every rank steps, or none does
                n_conf += c
                if c:
                    self.step(loss)
            confident.append(n_conf / self.n)
        return confident


class ScanClusterer:
    """SCAN on protein embeddings: ``fit`` / ``predict`` / ``predict_proba`` / ``save`` / ``load``.

    Keyword options (defaults are the ones the quality benchmark uses, not tuned per family):
    ``n_clusters``; ``neighbors`` ("auto" | "mmseqs" | "faiss"); ``k`` = 20 neighbours;
    ``entropy_weight`` λ = 5; ``n_heads`` = 5; ``epochs`` = 30 SCAN epochs;
    ``graph_features`` = "auto" ("spectral" for MMseqs2 homology graphs, "none" for faiss
    kNN graphs: spectral coordinates of an embedding kNN graph only blur the embedding; on
    Pfam they score below raw embeddings; "diffusion" is the embeddings diffused over the
    graph); ``self_label_epochs`` = 10; ``min_steps`` = 200 (small data sets get more epochs
    so the heads see at least this many batches); ``confidence`` = 0.99; ``hidden`` = 256;
    ``batch_size`` = 1024; ``lr`` = 1e-3; on a homology graph ``warm_epochs`` = 5 epochs of
    cross-entropy towards the graph's families before the SCAN epochs, which keep that
    cross-entropy with weight ``anchor_weight`` = 1 (0: free SCAN after the warm start); ``seed``;
    ``device`` for the heads ("auto": CUDA when available).
    ``n_clusters=None`` estimates the number of families (homology graphs only).

    Under ``torchrun`` (WORLD_SIZE > 1) rank 0 builds the graph and every rank trains the heads
    on its share of each batch (:mod:`protlab.cluster.distributed`).
    """

    def __init__(self, *, n_clusters: int | None, neighbors: str = "auto", k: int = 20, entropy_weight: float = 5.0,
                 n_heads: int = 5, epochs: int = 30, self_label_epochs: int = 10, confidence: float = 0.99,
                 graph_features: str = "auto", spectral_dims: int | None = None, hidden: int = 256,
                 batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 1e-4,
                 min_steps: int = 200, val_fraction: float = 0.1, fallback_k: int = 5, warm_epochs: int = 5,
                 anchor_weight: float = 1.0, family_config: dict | None = None, device: str = "auto",
                 seed: int = 0, threads: int = 1, progress: bool = False):
        if graph_features not in GRAPH_FEATURES:
            raise InputError(f"graph_features={graph_features!r} is unknown; use one of {GRAPH_FEATURES}")
        if n_clusters is not None and int(n_clusters) < 2:
            raise InputError(f"n_clusters={n_clusters}: ask for at least 2 clusters (or None to estimate)")
        self.requested_n = None if n_clusters is None else int(n_clusters)
        self.family_config = FamilyConfig.from_dict(family_config)
        self.config = dict(n_clusters=self.requested_n, neighbors=neighbors, k=int(k), entropy_weight=float(entropy_weight),
                           n_heads=int(n_heads), epochs=int(epochs), self_label_epochs=int(self_label_epochs),
                           confidence=float(confidence), graph_features=graph_features,
                           spectral_dims=None if spectral_dims is None else int(spectral_dims), hidden=int(hidden),
                           batch_size=int(batch_size), lr=float(lr), weight_decay=float(weight_decay),
                           min_steps=int(min_steps), val_fraction=float(val_fraction), fallback_k=int(fallback_k),
                           warm_epochs=int(warm_epochs), anchor_weight=float(anchor_weight), seed=int(seed),
                           family_config=self.family_config.as_dict())
        self.threads = int(threads)
        self.device = device
        self.progress = progress
        self.model = None
        self.best_head: int | None = None
        self.info: dict = {}
        self.graph: GraphState | None = None  # the graph step's output (fit, or load)
        self.partition: FamilyPartition | None = None  # the homology graph's families of the last fit

    # ---------------------------------------------------------------- fitting
    def fit(self, embeddings, sequences=None) -> "ScanClusterer":
        """Mine neighbours, build graph features, train the heads, self-label."""
        import torch

        cfg = self.config
        x = check_embeddings(embeddings, n_clusters=self.requested_n)
        if sequences is not None:
            sequences = [str(s) for s in sequences]
        device = pick_device(None if self.device == "auto" else self.device)
        env = scan_env(device)
        if env.world > 1 and device.startswith("cuda"):
            device = f"cuda:{env.local_rank}"
        timings = {}
        start = time.perf_counter()
        graph, self.graph, self.partition, info = share_from_main(env, lambda: self._build_graph(x, sequences))
        cfg["n_clusters"] = self.graph.n_clusters
        self.info.update(info)
        timings["graph_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with torch_threads(self.threads):
            torch.manual_seed(cfg["seed"])
            self._train(_scaled(self.graph.reference_features), graph, device=device, env=env)
        timings["train_s"] = time.perf_counter() - start
        self.info.update({"neighbors": graph.source, "graph_features": self.graph.kind, "n_proteins": int(len(x)),
                          **timings, "mean_neighbors": float(graph.counts.mean()),
                          "searched_representatives": graph.representatives, "device": device,
                          "world_size": env.world})
        log.info("SCAN fitted: neighbours from %s, best head %s", graph.source, self.best_head)
        return self

    def _build_graph(self, x: np.ndarray, sequences) -> tuple[NeighborGraph, GraphState, FamilyPartition | None,
                                                                dict]:
        """``(graph, state, partition, info)``: the neighbours, what lasts of them, the homology
        graph's families and the step's record (rank 0's work under torchrun; all of it travels
        to the other ranks)."""
        cfg = self.config
        info = {}
        start = time.perf_counter()
        source = resolve_source(cfg["neighbors"], have_sequences=sequences is not None)
        self._say(f"neighbours of {len(x)} proteins ({'MMseqs2 homology search' if source == 'mmseqs' else 'faiss'})")
        graph = mine_neighbors(x, sequences, source=source, k=cfg["k"], fallback_k=cfg["fallback_k"])
        info["neighbors_s"] = time.perf_counter() - start
        partition = self._find_families(x, graph, sequences, info)
        n_clusters = self.requested_n if partition is None else int(partition.labels.max()) + 1
        if partition is not None:
            self._say(f"homology graph: {info['n_clusters_estimated']} families estimated, {n_clusters} kept")
            for line in describe_fit_steps(partition.info["fit_steps"]).splitlines():
                self._say(f"  to meet n_clusters: {line}")
        start = time.perf_counter()
        self._say("graph features")
        kind, features, scale = self._graph_features(x, graph, n_clusters)
        info["features_s"] = time.perf_counter() - start
        state = GraphState(source=graph.source, kind=kind, reference_embeddings=normalize_rows(x),
                           reference_features=features, spectral_scale=scale, n_clusters=n_clusters,
                           reference_sequences=list(sequences) if (sequences is not None and graph.source == "mmseqs")
                           else None, family_labels=None if partition is None else partition.labels)
        return graph, state, partition, info

    def _say(self, what: str) -> None:
        if self.progress:  # the stages' command lines and notebooks say what the long steps are
            print(f"SCAN: {what}", flush=True)

    def _find_families(self, x: np.ndarray, graph: NeighborGraph, sequences, info: dict) -> FamilyPartition | None:
        """The homology graph's families (:mod:`protlab.cluster.families`): they count the
        families when ``n_clusters`` is None, set the cluster-size prior and warm-start the heads."""
        if graph.source != "mmseqs":
            if self.requested_n is None:
                raise InputError("n_clusters=None: estimating the number of families needs homology neighbours "
                                 "(MMseqs2 and the sequences, neighbors='mmseqs'); give n_clusters instead")
            return None
        start = time.perf_counter()
        partition = find_families(graph, x, n_clusters=self.requested_n, seed=self.config["seed"],
                                  sequences=sequences, config=self.family_config)
        if int(partition.labels.max()) + 1 < 2:
            raise InputError("the homology graph holds a single family: there is nothing to cluster "
                             "(give n_clusters to split it anyway)")
        info.update({"n_clusters_requested": self.requested_n, "n_clusters_estimated": partition.n_estimated,
                     "families_s": time.perf_counter() - start, "family_min_size": partition.min_size,
                     "family_group_sizes": partition.group_sizes[:500].tolist(),
                     **{f"families_{k}": v for k, v in partition.info.items()}})
        return partition

    def _graph_features(self, x: np.ndarray, graph: NeighborGraph,
                        n_clusters: int) -> tuple[str, np.ndarray, np.ndarray | None]:
        """``(kind, features, spectral scale or None)`` of the fitted proteins."""
        cfg = self.config
        kind = cfg["graph_features"]
        if kind == "auto":
            kind = ("spectral" if len(x) <= SPECTRAL_MAX else "diffusion") if graph.source == "mmseqs" else "none"
        if kind == "spectral":
            dims = cfg["spectral_dims"] or min(max(n_clusters, 8), 128)
            return (kind, *spectral_features(graph.affinity, dims=dims, seed=cfg["seed"]))
        if kind == "diffusion":
            return kind, diffusion_features(x, graph.affinity), None
        return kind, normalize_rows(x), None

    def _train(self, features: np.ndarray, graph: NeighborGraph, *, device: str = "cpu",
               env: DistEnv = DistEnv()) -> None:
        """Warm start, SCAN epochs, head choice, self-labelling. Batches are drawn on the CPU
        from one seeded generator (alike on every rank); each rank moves its share to ``device``."""
        import torch

        cfg = self.config
        n = len(features)
        gen = torch.Generator().manual_seed(cfg["seed"])
        order = torch.randperm(n, generator=gen)
        n_val = int(round(cfg["val_fraction"] * n)) if n >= 20 else 0
        bare = ScanHeads(features.shape[1], cfg["n_clusters"], n_heads=cfg["n_heads"], hidden=cfg["hidden"]).to(device)
        run = _HeadTraining(self, bare, torch.from_numpy(features), graph, gen, order, n_val, device, env)
        run.warm_start()
        self.info["scan_loss_history"] = run.scan_epochs()
        # validation loss per head: all neighbours of the held-out anchors (alike on every rank)
        same_buffers(env, bare)
        check = run.val if len(run.val) else run.train
        val_losses = validation_losses(bare, run.x, run.knn, check, entropy_weight=cfg["entropy_weight"],
                                       prior=run.prior, device=device)
        self.best_head = int(np.argmin(val_losses))
        self.info["val_losses"] = val_losses
        # keep only the best head, then self-label
        bare.heads = torch.nn.ModuleList([bare.heads[self.best_head]])
        bare.args["n_heads"] = 1
        self.info["self_label_confident_fraction"] = run.self_label()
        same_buffers(env, bare)
        bare.eval()
        self.model = bare.cpu()

    # -------------------------------------------------------------- prediction
    def _check_fitted(self):
        if self.model is None:
            raise InputError("this ScanClusterer is not fitted: call fit(...) or ScanClusterer.load(path) first")

    def _reference_index(self):
        """The kNN index of the reference embeddings, built once per model (an IVF index of a
        large reference set costs a k-means)."""
        if getattr(self, "_index", None) is None:
            self._index = knn_index(self.graph.reference_embeddings)
        return self._index

    def transform(self, embeddings, sequences=None) -> np.ndarray:
        """Graph features of new proteins (Nyström extension through the reference set)."""
        self._check_fitted()
        cfg = self.config
        x = check_embeddings(embeddings, predicting=True)
        state = self.graph
        if x.shape[1] != state.reference_embeddings.shape[1]:
            raise InputError(f"embeddings have {x.shape[1]} dimensions but the model was fitted on "
                             f"{state.reference_embeddings.shape[1]}: embed with the same encoder")
        if state.kind == "none":
            return normalize_rows(x)
        use_homology = state.source == "mmseqs" and sequences is not None and state.reference_sequences is not None
        if state.source == "mmseqs" and not use_homology:
            log.warning("model fitted with MMseqs2 neighbours but no sequences given: placing proteins by embedding "
                        "neighbours only (pass sequences= for homology placement)")
        aff = reference_affinity(x, state.reference_embeddings, list(sequences) if use_homology else None,
                                 state.reference_sequences, source="mmseqs" if use_homology else "faiss",
                                 k=cfg["k"], fallback_k=cfg["fallback_k"], index=self._reference_index())
        walked = _row_normalize(aff) @ state.reference_features.astype(np.float64)
        if state.kind == "spectral":
            return (walked * state.spectral_scale[None, :]).astype(np.float32)
        return (DIFFUSION_ALPHA * normalize_rows(x) + (1 - DIFFUSION_ALPHA) * walked).astype(np.float32)

    def predict_proba(self, embeddings, sequences=None, *, chunk_size: int = PREDICT_CHUNK) -> np.ndarray:
        """Cluster probabilities of new proteins, ``chunk_size`` at a time: the memory and the
        cost per protein do not grow with how many are predicted."""
        import torch

        x = np.asarray(embeddings)
        seqs = None if sequences is None else list(sequences)
        if chunk_size < 1:
            raise InputError(f"chunk_size={chunk_size}: use at least 1")
        parts = []
        for start in range(0, max(len(x), 1), chunk_size):
            stop = start + chunk_size
            features = self.transform(x[start:stop], None if seqs is None else seqs[start:stop])
            with torch.no_grad(), torch_threads(self.threads):
                logits = self.model(torch.from_numpy(_scaled(features)))[0]
                parts.append(torch.softmax(logits, dim=1).numpy())
        return np.concatenate(parts, axis=0)

    def predict(self, embeddings, sequences=None, *, chunk_size: int = PREDICT_CHUNK) -> np.ndarray:
        return self.predict_proba(embeddings, sequences, chunk_size=chunk_size).argmax(axis=1).astype(np.int64)

    def fit_predict_proba(self, embeddings, sequences=None) -> np.ndarray:
        """Probabilities of the fitted proteins themselves (their own graph features)."""
        import torch

        self.fit(embeddings, sequences)
        with torch.no_grad(), torch_threads(self.threads):
            logits = self.model(torch.from_numpy(_scaled(self.graph.reference_features)))[0]
            return torch.softmax(logits, dim=1).numpy()

    # ------------------------------------------------------------------ save/load
    def save(self, path: str | Path) -> Path:
        import torch

        self._check_fitted()
        state = {"config": self.config, "model_args": self.model.args, "state_dict": self.model.state_dict(),
                 "info": json.loads(json.dumps(self.info)), **self.graph.to_checkpoint()}
        return save_checkpoint(path, "scan", state)

    @classmethod
    def load(cls, path: str | Path) -> "ScanClusterer":
        """The model :meth:`save` wrote to ``path``."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path} does not exist: fit a SCAN model first (04_cluster with method='families' "
                             "or 'scan')")
        state = read_checkpoint(path, "scan")
        self = cls(**state["config"])
        args = state["model_args"]
        self.model = ScanHeads(args["in_dim"], args["n_clusters"], n_heads=args["n_heads"], hidden=args["hidden"])
        self.model.load_state_dict(state["state_dict"])
        self.model.eval()
        self.best_head = 0
        self.info = state["info"]
        self.graph = GraphState.from_checkpoint(state, args["n_clusters"])
        return self


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
