"""SCAN on protein embeddings (:class:`ScanClusterer`): the neighbour graph, its families and
graph features (one :class:`~protlab.cluster.graph_state.GraphState`), the heads trained on
them (:mod:`protlab.cluster.head_training`), and new proteins placed without refitting."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from protlab.cluster.distributed import same_buffers, scan_env, share_from_main
from protlab.cluster.embedding_checks import check_embeddings
from protlab.cluster.families import find_families
from protlab.cluster.family_fit import describe_fit_steps
from protlab.cluster.family_types import FamilyConfig, FamilyPartition
from protlab.cluster.graph_features import (
    DIFFUSION_ALPHA,
    GRAPH_FEATURES,
    SPECTRAL_MAX,
    diffusion_features,
    row_normalize,
    scaled_features,
    spectral_features,
)
from protlab.cluster.graph_state import SAVED_PER_CLUSTER_MIN, GraphState, stratified_rows
from protlab.cluster.head_training import LOG_NAME, HeadTraining
from protlab.cluster.heads import ScanHeads, validation_losses
from protlab.cluster.scan_state import ScanStates, data_fingerprint
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

PREDICT_CHUNK = 20_000  # new proteins placed per homology search / faiss query in predict
# a saved model places new proteins against at most about this many fitted ones, sampled per
# cluster: all of them would make the file grow with the data (embedding, features, sequence each)
SAVED_REFERENCES = 50_000


class ScanClusterer:
    """SCAN on protein embeddings: ``fit`` / ``predict`` / ``predict_proba`` / ``save`` / ``load``.

    Keyword options (defaults are the ones the quality benchmark uses, not tuned per family):
    ``n_clusters``; ``neighbors`` ("auto" | "mmseqs" | "faiss"); ``k`` = 20 neighbours;
    ``entropy_weight`` λ = 5; ``n_heads`` = 5; ``epochs`` = 30 SCAN epochs;
    ``graph_features`` = "auto" ("spectral" for MMseqs2 homology graphs, "none" for faiss
    kNN graphs: spectral coordinates of an embedding kNN graph only blur the embedding; on
    Pfam they score below raw embeddings; "diffusion" is the embeddings diffused over the
    graph); ``self_label_epochs`` = 10; ``min_steps`` = 200 (small data sets get more epochs
    so the heads see at least this many batches); ``max_steps`` = 6000 (large data sets get
    fewer SCAN and self-labelling epochs, at least one, so each pass takes at most this many
    batches; 0: no cap); ``confidence`` = 0.99; ``hidden`` = 256;
    ``batch_size`` = 1024; ``lr`` = 1e-3; on a homology graph ``warm_epochs`` = 5 epochs of
    cross-entropy towards the graph's families before the SCAN epochs, which keep that
    cross-entropy with weight ``anchor_weight`` = 1, as self-labelling does (0: free SCAN and
    self-labelling after the warm start); ``seed``;
    ``device`` for the heads ("auto": CUDA when available).
    ``n_clusters=None`` estimates the number of families (homology graphs only).
    ``state_files``: the two files where a fit saves its graph step and the heads' state after
    every epoch, so that a stopped fit resumes (``resume``; other inputs or settings are refused unless
    ``resume_override``; :mod:`protlab.cluster.scan_state`). ``log_file``: the heads' training
    log, one JSONL record per epoch of every pass (:class:`~protlab.cluster.head_training.HeadTraining`;
    a resumed fit keeps the records up to where it resumes). ``progress``: say what the long steps
    are and show the heads' training as a bar and ``[scan] epoch ...`` lines.

    Under ``torchrun`` (WORLD_SIZE > 1) rank 0 builds the graph and every rank trains the heads
    on its share of each batch (:mod:`protlab.cluster.distributed`).
    """

    def __init__(self, *, n_clusters: int | None, neighbors: str = "auto", k: int = 20, entropy_weight: float = 5.0,
                 n_heads: int = 5, epochs: int = 30, self_label_epochs: int = 10, confidence: float = 0.99,
                 graph_features: str = "auto", spectral_dims: int | None = None, hidden: int = 256,
                 batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 1e-4,
                 min_steps: int = 200, max_steps: int = 6000, val_fraction: float = 0.1, fallback_k: int = 5,
                 warm_epochs: int = 5,
                 anchor_weight: float = 1.0, family_config: dict | None = None, device: str = "auto",
                 seed: int = 0, threads: int = 1, progress: bool = False,
                 state_files: tuple[str | Path, str | Path] | None = None, resume: bool = True,
                 resume_override: bool = False, log_file: str | Path | None = None):
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
                           min_steps=int(min_steps), max_steps=int(max_steps), val_fraction=float(val_fraction),
                           fallback_k=int(fallback_k),
                           warm_epochs=int(warm_epochs), anchor_weight=float(anchor_weight), seed=int(seed),
                           family_config=self.family_config.as_dict())
        self.threads = int(threads)
        self.device = device
        self.progress = progress
        # where a fit saves its graph step and the heads' state after every epoch (None: nowhere),
        # and whether it resumes a saved one (scan_state)
        self.state_files = None if state_files is None else (Path(state_files[0]), Path(state_files[1]))
        self.resume, self.resume_override = bool(resume), bool(resume_override)
        self.log_file = None if log_file is None else Path(log_file)  # the heads' training log (None: none)
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
        states = None
        if self.state_files is not None:
            settings = {**{k: v for k, v in cfg.items() if k != "n_clusters"}, "n_clusters_requested": self.requested_n,
                        "data": data_fingerprint(x, sequences), "world_size": env.world}
            states = ScanStates(self.state_files, settings, env, resume=self.resume, override=self.resume_override,
                                say=self._say_always)
        restored = states.graph() if states is not None else None
        if restored is None:
            restored = share_from_main(env, lambda: self._build_graph(x, sequences))
            if states is not None:
                states.save_graph(*restored)
        graph, self.graph, self.partition, info = restored
        cfg["n_clusters"] = self.graph.n_clusters
        self.info.update(info)
        timings["graph_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with torch_threads(self.threads):
            torch.manual_seed(cfg["seed"])
            self._train(scaled_features(self.graph.reference_features), graph, device=device, env=env,
                        states=states)
        if states is not None:
            states.finish()
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
            self._say_always(what)

    def _say_always(self, what: str) -> None:
        """What a resume does, whatever ``progress`` says (in the heads' log's form, ``[scan] ...``)."""
        print(f"[{LOG_NAME}] {what}", flush=True)

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
               env: DistEnv = DistEnv(), states: ScanStates | None = None) -> None:
        """Warm start, SCAN epochs, head choice, self-labelling. Batches are drawn on the CPU
        from one seeded generator (alike on every rank); each rank moves its share to ``device``.
        With ``states`` the state is saved after every epoch and a saved one is resumed. One
        training log covers the three passes (``log_file``, rank 0; a resumed fit keeps its records
        up to the saved pass and epoch); it draws no random numbers."""
        import torch

        cfg = self.config
        n = len(features)
        gen = torch.Generator().manual_seed(cfg["seed"])
        order = torch.randperm(n, generator=gen)
        n_val = int(round(cfg["val_fraction"] * n)) if n >= 20 else 0
        bare = ScanHeads(features.shape[1], cfg["n_clusters"], n_heads=cfg["n_heads"], hidden=cfg["hidden"]).to(device)
        run = HeadTraining(cfg, self.graph.family_labels, bare, torch.from_numpy(features), graph, gen, order, n_val,
                           device, env, progress=self.progress)
        saved = states.training() if states is not None else None
        where = saved["position"] if saved else {"pass": "warm", "epoch": 0}
        record = dict(saved["record"]) if saved else {}
        run.open_log(self.log_file, where)

        def after_epoch(pass_name, epoch, **so_far):
            record.update(so_far)
            if states is not None:
                states.save_training({"pass": pass_name, "epoch": epoch}, bare, run.opt, gen, **record)

        if where["pass"] != "self_label":
            if saved:
                bare.load_state_dict(saved["model"])
                run.opt.load_state_dict(saved["optimizer"])
                states.restore_rng(saved, gen)
            run.warm_start(first=where["epoch"] if where["pass"] == "warm" else cfg["warm_epochs"],
                           after_epoch=after_epoch)
            history = run.scan_epochs(first=where["epoch"] if where["pass"] == "scan" else 0,
                                      history=record.get("history"), after_epoch=after_epoch)
            # validation loss per head: all neighbours of the held-out anchors (alike on every rank)
            same_buffers(env, bare)
            check = run.val if len(run.val) else run.train
            val_losses = validation_losses(bare, run.x, run.knn, check, entropy_weight=cfg["entropy_weight"],
                                           prior=run.prior, device=device)
            record.update(history=history, val_losses=val_losses, best_head=int(np.argmin(val_losses)))
        self.best_head = record["best_head"]
        self.info["scan_loss_history"], self.info["val_losses"] = record["history"], record["val_losses"]
        # keep only the best head, then self-label
        bare.heads = torch.nn.ModuleList([bare.heads[self.best_head]])
        bare.args["n_heads"] = 1
        resumed = where["pass"] == "self_label"
        if resumed:
            bare.load_state_dict(saved["model"])
            states.restore_rng(saved, gen)
        self.info["self_label_confident_fraction"] = run.self_label(
            first=where["epoch"] if resumed else 0, confident=record.get("confident"),
            optimizer_state=saved["optimizer"] if resumed else None, after_epoch=after_epoch)
        run.close_log()
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
        walked = row_normalize(aff) @ state.reference_features.astype(np.float64)
        if state.kind == "spectral":
            return (walked * state.spectral_scale[None, :]).astype(np.float32)
        return (DIFFUSION_ALPHA * normalize_rows(x) + (1 - DIFFUSION_ALPHA) * walked).astype(np.float32)

    def _probabilities(self, features: np.ndarray) -> np.ndarray:
        """The kept head's cluster probabilities on graph ``features``."""
        import torch

        with torch.no_grad(), torch_threads(self.threads):
            return torch.softmax(self.model(torch.from_numpy(scaled_features(features)))[0], dim=1).numpy()

    def predict_proba(self, embeddings, sequences=None, *, chunk_size: int = PREDICT_CHUNK) -> np.ndarray:
        """Cluster probabilities of new proteins, ``chunk_size`` at a time: the memory and the
        cost per protein do not grow with how many are predicted."""
        x = np.asarray(embeddings)
        seqs = None if sequences is None else list(sequences)
        if chunk_size < 1:
            raise InputError(f"chunk_size={chunk_size}: use at least 1")
        return np.concatenate([self._probabilities(self.transform(x[start:start + chunk_size], None if seqs is None
                                                                  else seqs[start:start + chunk_size]))
                               for start in range(0, max(len(x), 1), chunk_size)], axis=0)

    def predict(self, embeddings, sequences=None, *, chunk_size: int = PREDICT_CHUNK) -> np.ndarray:
        return self.predict_proba(embeddings, sequences, chunk_size=chunk_size).argmax(axis=1).astype(np.int64)

    def fit_predict_proba(self, embeddings, sequences=None) -> np.ndarray:
        """Probabilities of the fitted proteins themselves (their own graph features)."""
        self.fit(embeddings, sequences)
        return self._probabilities(self.graph.reference_features)

    # ------------------------------------------------------------------ save/load
    def fitted_clusters(self, *, chunk_size: int = PREDICT_CHUNK) -> np.ndarray:
        """The kept head's cluster of each reference protein (its argmax on its own graph features)."""
        self._check_fitted()
        features = self.graph.reference_features
        return np.concatenate([self._probabilities(features[start:start + chunk_size]).argmax(axis=1)
                               for start in range(0, len(features), chunk_size)] or [np.zeros(0, np.int64)])

    def save(self, path: str | Path, *, max_references: int = SAVED_REFERENCES,
             per_cluster: int = SAVED_PER_CLUSTER_MIN) -> Path:
        """Write the model to ``path``. Above ``max_references`` fitted proteins it keeps a sample
        of them, each cluster's share and at least ``per_cluster`` of each
        (:func:`~protlab.cluster.graph_state.stratified_rows`), as the references new proteins are
        placed against; ``info["saved_references"]`` says how many."""
        self._check_fitted()
        graph, fitted = self.graph, len(self.graph.reference_embeddings)
        if fitted > max_references:
            graph = graph.subset(stratified_rows(self.fitted_clusters(), max_references, seed=self.config["seed"],
                                                 floor=per_cluster))
            self._say(f"the saved model keeps {len(graph.reference_embeddings)} of {fitted} fitted proteins "
                      "(sampled per cluster) to place new ones against")
        info = {**json.loads(json.dumps(self.info)), "fitted_proteins": fitted,
                "saved_references": len(graph.reference_embeddings)}
        state = {"config": self.config, "model_args": self.model.args, "state_dict": self.model.state_dict(),
                 "info": info, **graph.to_checkpoint()}
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
