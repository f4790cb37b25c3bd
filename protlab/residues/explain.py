"""Critical residues: score every residue of a structure with a trained network.

:func:`explain_structures` gives each protein's :class:`Explanation` (residue importance,
the surviving clusters of every iteration, the prediction), which the 3D views
(:mod:`protlab.plot.view3d`) draw; :func:`critical_residues` returns one protein's residue
table (chain, residue number with insertion code, residue, score, cluster, iteration),
most important first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from protlab.curate.records import Structure
from protlab.residues.graph import collate
from protlab.residues.network import ResidueClusterNet
from protlab.residues.features import featurize
from protlab.residues.training import batches


@dataclass
class Explanation:
    """One protein's critical residues and surviving clusters: ``importance`` in [0, 1] (max 1
    per protein; a site model's site probability itself) and the clusters of every iteration."""

    structure: Structure
    importance: np.ndarray        # (L,)
    iteration: np.ndarray         # (L,) last iteration whose surviving cluster holds the residue, -1: none
    cluster: np.ndarray           # (L,) that cluster's rank (0 = best) at that iteration, -1: none
    clusters: pd.DataFrame        # iteration, cluster, score, centre, members (list of residue indices)
    probabilities: np.ndarray     # (C,) task prediction; (L,) site probabilities for a site model
    classes: list[str]

    @property
    def id(self) -> str:
        return self.structure.id

    def top(self, k: int) -> np.ndarray:
        """Indices of the k most important residues (ties broken by position)."""
        return np.argsort(-self.importance, kind="stable")[:k]

    def table(self) -> pd.DataFrame:
        s = self.structure
        labels = s.residue_labels()
        frame = pd.DataFrame({
            "chain": s.residue_chains(), "residue_number": labels, "residue": [str(r) for r in s.res_names],
            "score": self.importance.astype(float), "cluster": self.cluster, "iteration": self.iteration,
            "index": np.arange(len(s)),
        })
        frame = frame.sort_values(["score", "index"], ascending=[False, True], kind="stable").reset_index(drop=True)
        frame.insert(0, "rank", np.arange(1, len(frame) + 1))
        return frame


def explain_structures(model: ResidueClusterNet, structures: Sequence[Structure], *, batch_size: int = 16,
                       esm: dict | None = None, device: str = "cpu", score: str = "occlusion",
                       cache_dir=None, graphs=None) -> list[Explanation]:
    """Explanations for structures (batched); ``score`` as in :meth:`ResidueClusterNet.explain`
    (a site model scores residues itself). Graphs get the features the model was trained on
    (cached in ``cache_dir``), unless given as ``graphs``."""
    if isinstance(structures, Structure):
        structures = [structures]
    if graphs is None:
        graphs = featurize(structures, esm=esm, pockets=model.config.pocket_features, cache_dir=cache_dir)
    model.eval().to(device)
    out = []
    for idx in batches(len(graphs), batch_size):
        batch = collate([graphs[i] for i in idx]).to(device)
        ex = model.explain(batch, score=score)
        task = model.config.task
        probs = ex["logits"].softmax(-1) if task == "single" else ex["logits"].sigmoid()
        for j, i in enumerate(idx):
            n = len(graphs[i])
            rows = []
            for t, cl in enumerate(ex["clusters"]):
                valid = cl["mask"][j].cpu().numpy()
                members = cl["members"][j, :, :n].cpu().numpy()
                for r in np.flatnonzero(valid):
                    rows.append({"iteration": t, "cluster": int(r), "score": float(cl["score"][j, r]),
                                 "centre": int(cl["centre"][j, r]), "members": np.flatnonzero(members[r]).tolist()})
            out.append(Explanation(
                structure=structures[i], importance=ex["importance"][j, :n].cpu().numpy(),
                iteration=ex["iteration"][j, :n].cpu().numpy(), cluster=ex["cluster"][j, :n].cpu().numpy(),
                clusters=pd.DataFrame(rows, columns=["iteration", "cluster", "score", "centre", "members"]),
                probabilities=probs[j, :n].cpu().numpy() if task == "residue" else probs[j].cpu().numpy(),
                classes=list(model.config.class_names)))
    return out


def critical_residues(model: ResidueClusterNet, structure: Structure, *, top_k: int | None = None,
                      esm=None) -> pd.DataFrame:
    """One protein's residues, most important first: rank, chain, residue_number (with
    insertion code), residue, score (0..1), cluster, iteration, index (0-based position).
    ``top_k`` keeps the first k rows."""
    ex = explain_structures(model, [structure], esm=None if esm is None else {structure.id: esm})[0]
    table = ex.table()
    return table.head(top_k) if top_k else table


def residue_tables(explanations: Sequence[Explanation]) -> pd.DataFrame:
    """Every explanation's :meth:`Explanation.table`, one after another, with an ``id`` column."""
    tables = []
    for ex in explanations:
        t = ex.table()
        t.insert(0, "id", ex.id)
        tables.append(t)
    if not tables:
        return pd.DataFrame(columns=["id", "rank", "chain", "residue_number", "residue", "score", "cluster",
                                     "iteration", "index"])
    return pd.concat(tables, ignore_index=True)
