"""Pockets from residue scores, and the pocket-level metrics users compare site predictors on.

Any residue scores (06's site probabilities, PocketNet's, the cavity baseline's) become ranked
pockets the same way (:func:`score_pockets`): the top-scoring residues are grouped by
average linkage of their side-chain centroids, a group of at least three is a pocket, ranked
by the summed scores of its members, with the score-weighted centroid as its centre. The
settings are fixed a priori, not fitted to a benchmark.

Metrics (:func:`pocket_metrics`), as pocket predictors are compared (P2Rank, PocketNet):

* DCA success: a predicted pocket centre within 4 Å of any atom of the ligand, among the top
  n (n = ligands of the file) and the top n + 2 pockets;
* residue recall, precision and MCC of the top pocket's residues against the site residues.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from protlab.core.errors import InputError

KEEP_FRACTION = 0.1   # residues considered for pockets: the top tenth by score ...
MIN_KEPT = 10         # ... but at least this many
LINK = 8.0            # Å, average-linkage cut between side-chain centroids
MIN_MEMBERS = 3       # residues a pocket needs
DCA_THRESHOLD = 4.0   # Å between a pocket centre and the nearest ligand atom


@dataclass(frozen=True)
class Pocket:
    rank: int              # 1 for the best
    score: float           # summed residue scores
    centre: np.ndarray     # (3,) Å
    residues: np.ndarray   # indices into the structure's residues


def score_pockets(centroids: np.ndarray, scores: np.ndarray, *, keep_fraction: float = KEEP_FRACTION,
                  link: float = LINK, min_members: int = MIN_MEMBERS) -> list[Pocket]:
    """Ranked pockets of one structure from its residues' side-chain ``centroids`` and ``scores``."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(centroids):
        raise InputError(f"{len(scores)} scores for {len(centroids)} residues")
    k = min(len(scores), max(MIN_KEPT, int(round(keep_fraction * len(scores)))))
    kept = np.argsort(-scores, kind="stable")[:k]
    kept = kept[scores[kept] > 0]  # a residue scored 0 is in no pocket
    if len(kept) < min_members:
        return []
    points = np.asarray(centroids, dtype=np.float64)[kept]
    groups = fcluster(linkage(points, "average"), link, "distance")
    pockets = []
    for g in np.unique(groups):
        members = kept[groups == g]
        if len(members) < min_members:
            continue
        w = scores[members]
        centre = (np.asarray(centroids, dtype=np.float64)[members] * w[:, None]).sum(0) / w.sum()
        pockets.append((float(w.sum()), centre, np.sort(members)))
    pockets.sort(key=lambda p: (-p[0], int(p[2][0])))
    return [Pocket(rank, score, centre, members) for rank, (score, centre, members) in enumerate(pockets, 1)]


def pocket_ranks(n_residues: int, pockets: Sequence[Pocket]) -> np.ndarray:
    """Per residue, the rank of the pocket it belongs to (0: none)."""
    out = np.zeros(n_residues, dtype=np.int64)
    for p in pockets:
        out[p.residues] = p.rank
    return out


def dca_success(pockets: Sequence[Pocket], ligand_atoms: np.ndarray, *, n_ligands: int = 1,
                threshold: float = DCA_THRESHOLD) -> dict[str, float]:
    """``dca_top_n`` / ``dca_top_n2``: 1.0 when one of the top n / n + 2 pocket centres lies
    within ``threshold`` Å of a ligand atom, else 0.0."""
    if not pockets:
        return {"dca_top_n": 0.0, "dca_top_n2": 0.0}
    centres = np.stack([p.centre for p in pockets])
    nearest = np.linalg.norm(centres[:, None] - np.asarray(ligand_atoms, float)[None], axis=-1).min(1)
    return {"dca_top_n": float(nearest[:n_ligands].min() <= threshold),
            "dca_top_n2": float(nearest[:n_ligands + 2].min() <= threshold)}


def residue_agreement(predicted: Sequence[int], site: Sequence[int], n_residues: int) -> dict[str, float]:
    """Recall, precision and Matthews correlation of ``predicted`` residues against the ``site``."""
    pred, true = np.zeros(n_residues, bool), np.zeros(n_residues, bool)
    pred[list(predicted)], true[list(site)] = True, True
    tp, fp = float((pred & true).sum()), float((pred & ~true).sum())
    fn, tn = float((~pred & true).sum()), float((~pred & ~true).sum())
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {"recall": tp / max(tp + fn, 1.0), "precision": tp / max(tp + fp, 1.0),
            "mcc": float((tp * tn - fp * fn) / denominator) if denominator else 0.0}


def pocket_metrics(centroids: np.ndarray, scores: np.ndarray, site: Sequence[int],
                   ligands: Sequence[np.ndarray]) -> dict[str, float]:
    """DCA success (top n, top n + 2; n = ``len(ligands)``, each an (A, 3) array of atoms) and the
    top pocket's residue recall / precision / MCC of one structure's residue scores
    (:func:`score_pockets`)."""
    pockets = score_pockets(centroids, scores)
    top = pockets[0].residues if pockets else []
    return {**dca_success(pockets, np.concatenate(list(ligands)), n_ligands=len(ligands)),
            **residue_agreement(top, site, len(scores)), "n_pockets": float(len(pockets))}


def pocket_summary(structures: Sequence, scores: dict, sites: dict, ligands: dict) -> dict[str, float]:
    """Means of :func:`pocket_metrics` over the ``structures`` that have ``scores``, a site and
    ``ligands`` (each by structure id), with their number (``n_pocket_proteins``)."""
    rows = [pocket_metrics(s.centroid, scores[s.id], sites[s.id], ligands[s.id]) for s in structures
            if s.id in scores and s.id in sites and s.id in ligands]
    if not rows:
        return {"n_pocket_proteins": 0}
    return {**{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}, "n_pocket_proteins": len(rows)}


def read_ligands(path: str | Path) -> list[np.ndarray]:
    """The heavy atoms, (A, 3) each, of every molecule in an SDF / MOL file."""
    import biotite.structure.io.mol as mol

    try:
        frame = mol.SDFile.read(str(path))
        molecules = [mol.get_structure(frame, record_name=name) for name in frame.keys()]
    except Exception as err:  # biotite raises several types for a damaged file
        raise InputError(f"{path}: not a readable SDF/MOL file ({err})") from err
    out = [m.coord[m.element != "H"].astype(np.float64) for m in molecules]
    if not out or not all(len(c) for c in out):
        raise InputError(f"{path}: a molecule without heavy atoms (or none at all)")
    return out
