"""A SCAN fit that can be stopped and resumed: the graph step's output saved once, the heads'
training state after every epoch (:mod:`protlab.core.training`).

Two files (04 puts them in the run's ``checkpoints/``): the graph step (the neighbours the
heads sample, the :class:`~protlab.cluster.graph_state.GraphState`, the families and the
step's record) and the heads' training state (heads, optimiser, pass and epoch, every rank's
random states, the record so far). A rerun with the same inputs and settings resumes after the last saved epoch
and ends as an uninterrupted fit would; one with other inputs or settings is refused, naming
them, unless ``resume_override``. Both files are removed when the fit ends.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from protlab.cluster.family_types import FamilyPartition
from protlab.cluster.graph_state import GraphState
from protlab.cluster.neighbors import NeighborGraph
from protlab.core.atomic import jsonable
from protlab.core.checkpoint import save_checkpoint
from protlab.core.runtime import DistEnv
from protlab.core.training import (capture_rng, gather_rng, read_training_state, refuse_changed_settings,
                                   restore_rank_rng, save_training_state, settings_changes)

KIND = "scan-train"


def data_fingerprint(x: np.ndarray, sequences) -> str:
    """The embeddings and sequences a fit is given, as a resume compares them."""
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update("\n".join(sequences or []).encode())
    return digest.hexdigest()[:16]


class ScanStates:
    """The state files of one fit; ``settings`` (inputs and settings) must match to resume."""

    def __init__(self, files: tuple[str | Path, str | Path], settings: dict, env: DistEnv, *, resume: bool = True,
                 override: bool = False, say=print):
        self.graph_path, self.training_path = Path(files[0]), Path(files[1])
        self.settings, self.env, self.resume, self.override, self.say = settings, env, resume, override, say

    def _read(self, path: Path) -> dict | None:
        if not self.resume:
            return None
        state = read_training_state(path, KIND)
        if state is not None:
            refuse_changed_settings(settings_changes(state.get("settings", {}), self.settings),
                                    override=self.override, path=path, say=self.say)
        return state

    # ------------------------------------------------------------------ the graph step
    def save_graph(self, graph: NeighborGraph, state: GraphState, partition: FamilyPartition | None,
                   info: dict) -> None:
        if not self.env.is_main:
            return
        import torch

        def tensor(a):
            return torch.from_numpy(np.ascontiguousarray(a))

        self.graph_path.parent.mkdir(parents=True, exist_ok=True)
        self.training_path.unlink(missing_ok=True)  # a training state belongs to the graph before it
        save_checkpoint(self.graph_path, KIND, {
            "settings": self.settings, "knn": tensor(graph.knn), "counts": tensor(graph.counts), "source": graph.source,
            "rep": None if graph.rep is None else tensor(graph.rep), "graph": state.to_checkpoint(),
            "n_clusters": state.n_clusters, "info": json.dumps(info, default=jsonable),
            "partition": None if partition is None else {
                "labels": tensor(partition.labels), "n_estimated": int(partition.n_estimated),
                "group_sizes": tensor(partition.group_sizes), "min_size": int(partition.min_size),
                "info": json.dumps(partition.info, default=jsonable)}})

    def graph(self) -> tuple[NeighborGraph, GraphState, FamilyPartition | None, dict] | None:
        """The saved graph step, or None (no file, or ``resume=False``)."""
        saved = self._read(self.graph_path)
        if saved is None:
            return None
        knn, counts = saved["knn"].numpy(), saved["counts"].numpy()
        graph = NeighborGraph(knn=knn, counts=counts, affinity=sp.csr_matrix((len(knn), len(knn))),
                              source=saved["source"], rep=None if saved["rep"] is None else saved["rep"].numpy())
        part = saved["partition"]
        partition = None if part is None else FamilyPartition(
            part["labels"].numpy(), part["n_estimated"], part["group_sizes"].numpy(), part["min_size"],
            json.loads(part["info"]))
        self.say(f"resuming from the graph step saved in {self.graph_path}")
        return graph, GraphState.from_checkpoint(saved["graph"], saved["n_clusters"]), partition, \
            json.loads(saved["info"])

    # ------------------------------------------------------------------ the heads
    def save_training(self, position: dict, model, optimizer, generator, **record) -> None:
        """After an epoch (every rank calls it: the random states are gathered)."""
        rng = gather_rng(self.env, capture_rng(torch_generators={"batches": generator}))
        if self.env.is_main:
            save_training_state(self.training_path, KIND, position=position, settings=self.settings, model=model,
                                optimizer=optimizer, rng=rng, record=json.dumps(record, default=jsonable))

    def training(self) -> dict | None:
        """The saved training state (``record`` decoded), or None."""
        saved = self._read(self.training_path)
        if saved is not None:
            saved["record"] = json.loads(saved["record"])
            self.say(f"resuming the heads' training after {saved['position']['pass']} epoch "
                     f"{saved['position']['epoch']} ({self.training_path})")
        return saved

    def restore_rng(self, saved: dict, generator) -> None:
        restore_rank_rng(saved["rng_per_rank"], self.env, torch_generators={"batches": generator})

    def finish(self) -> None:
        if self.env.is_main:
            self.training_path.unlink(missing_ok=True)
            self.graph_path.unlink(missing_ok=True)
