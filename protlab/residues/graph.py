"""Residue graphs from structures: node features, local frames and padded batches.

A protein chain becomes a graph whose nodes are residues (Cα atoms). Edges are
sequential (``|i - j| == 1``) and spatial (Cα–Cα distance within ``radius`` Å);
:func:`edges` lists them. The clustering network (:mod:`protlab.residues.network`)
works on padded dense tensors, so a :class:`ResidueBatch` carries, per protein:

* ``aa`` residue type index (20 standard + ``X``),
* ``feats`` invariant node features: sequence position (relative + sinusoidal), local
  geometry (virtual bond angle and dihedral, Cα(i±1)/Cα(i±2) distances, neighbour counts
  within 8/12 Å, side-chain centroid offset in the local frame),
* ``ca`` Cα coordinates and ``frames`` local orthonormal frames (rows = axes), from
  which the network computes relative coordinates, orientations and distances between
  a cluster centre and its members,
* optionally ``esm`` per-residue embeddings (any encoder; ``esm_dim`` columns).

Bad input raises :class:`protlab.core.errors.InputError`: fewer than ``MIN_RESIDUES``
residues, NaN/inf coordinates, arrays whose lengths disagree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.errors import InputError
from protlab.curate.records import Structure

AA_INDEX = {a: i for i, a in enumerate(AMINO_ACIDS)}
UNKNOWN_AA = len(AMINO_ACIDS)  # 'X' and anything else
N_AA = UNKNOWN_AA + 1
MIN_RESIDUES = 3
N_SINUSOIDS = 8
N_NODE_FEATURES = 2 + 2 * N_SINUSOIDS + 1 + 2 + 4 + 2 + 4  # see node_features()


def encode_sequence(sequence: str) -> np.ndarray:
    return np.array([AA_INDEX.get(a, UNKNOWN_AA) for a in sequence.upper()], dtype=np.int64)


def check_structure(structure: Structure) -> None:
    """Raise InputError when a structure cannot become a residue graph."""
    where = f"structure {structure.id!r}" + (f" chain {structure.chain!r}" if structure.chain else "")
    if structure.source:
        where += f" ({structure.source})"
    n = len(structure.sequence)
    ca = np.asarray(structure.ca)
    if ca.ndim != 2 or ca.shape != (n, 3):
        raise InputError(f"{where}: Cα array of shape {ca.shape} does not match {n} residues")
    if n < MIN_RESIDUES:
        raise InputError(f"{where}: {n} residue(s) with a Cα atom; residue clustering needs at least "
                         f"{MIN_RESIDUES} (choose another chain or structure)")
    bad = ~np.isfinite(ca).all(axis=1)
    if bad.any():
        labels = structure.residue_labels() if len(structure.res_ids) == n else [str(i) for i in range(n)]
        shown = ", ".join(labels[i] for i in np.flatnonzero(bad)[:5])
        raise InputError(f"{where}: {int(bad.sum())} residue(s) have NaN/inf Cα coordinates (residues {shown}"
                         f"{', …' if bad.sum() > 5 else ''}); fix or remove them before clustering")


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-6)


def local_frames(ca: np.ndarray) -> np.ndarray:
    """(L, 3, 3) orthonormal frames from Cα(i-1), Cα(i), Cα(i+1); ends copy their neighbour's."""
    ca = np.asarray(ca, dtype=np.float64)
    L = len(ca)
    frames = np.zeros((L, 3, 3))
    u = _unit(ca[1:-1] - ca[:-2])      # incoming bond
    v = _unit(ca[2:] - ca[1:-1])       # outgoing bond
    e1 = _unit(u - v)                  # bisector, points "outwards"
    e2 = _unit(np.cross(u, v))
    # straight segments (u ∥ v) have no normal: fall back to any vector orthogonal to e1
    straight = np.linalg.norm(np.cross(u, v), axis=-1) < 1e-4
    if straight.any():
        helper = np.where(np.abs(u[straight, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        e1[straight] = _unit(np.cross(u[straight], helper))
        e2[straight] = _unit(np.cross(u[straight], e1[straight]))
    e3 = np.cross(e1, e2)
    frames[1:-1] = np.stack([e1, e2, e3], axis=1)
    frames[0], frames[-1] = frames[1], frames[-2]
    return frames.astype(np.float32)


def node_features(structure: Structure) -> np.ndarray:
    """(L, N_NODE_FEATURES) float32 rotation/translation-invariant features."""
    ca = np.asarray(structure.ca, dtype=np.float64)
    L = len(ca)
    idx = np.arange(L, dtype=np.float64)
    # sequence position: relative, termini distance, sinusoids of the absolute index
    rel = idx / max(L - 1, 1)
    ends = np.minimum(idx, L - 1 - idx) / 50.0
    freqs = 1.0 / (10000 ** (np.arange(N_SINUSOIDS) / N_SINUSOIDS))
    sin = np.sin(idx[:, None] * freqs)
    cos = np.cos(idx[:, None] * freqs)
    # virtual bond angle (cos) at i and virtual dihedral (sin, cos) around bond i→i+1
    angle = np.zeros((L, 1))
    u = _unit(ca[1:-1] - ca[:-2])
    v = _unit(ca[2:] - ca[1:-1])
    angle[1:-1, 0] = (-u * v).sum(-1)
    dihedral = np.zeros((L, 2))
    if L >= 4:
        b1, b2, b3 = ca[1:-2] - ca[:-3], ca[2:-1] - ca[1:-2], ca[3:] - ca[2:-1]
        n1, n2 = _unit(np.cross(b1, b2)), _unit(np.cross(b2, b3))
        m1 = np.cross(n1, _unit(b2))
        dihedral[1:-2, 0] = (m1 * n2).sum(-1)
        dihedral[1:-2, 1] = (n1 * n2).sum(-1)
    # distances to i±1, i±2 (scaled; 0 where absent) and presence flags
    dists = np.zeros((L, 4))
    for col, off in enumerate((-2, -1, 1, 2)):
        lo, hi = max(0, -off), min(L, L - off)
        dists[lo:hi, col] = np.linalg.norm(ca[lo:hi] - ca[lo + off:hi + off], axis=-1) / 10.0
    # burial: neighbour counts within 8 and 12 Å
    pair = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    counts = np.stack([(pair < 8).sum(1) - 1, (pair < 12).sum(1) - 1], axis=1) / 20.0
    # side-chain centroid offset in the local frame, and its length
    frames = local_frames(ca).astype(np.float64)
    centroid = np.asarray(structure.centroid, dtype=np.float64) if structure.centroid is not None else ca
    if centroid.shape != ca.shape or not np.isfinite(centroid).all():
        centroid = ca
    offset = np.einsum("lij,lj->li", frames, centroid - ca)
    side = np.concatenate([offset / 3.0, np.linalg.norm(offset, axis=-1, keepdims=True) / 3.0], axis=1)
    feats = np.concatenate([rel[:, None], ends[:, None], sin, cos, angle, dihedral, dists, counts, side], axis=1)
    assert feats.shape[1] == N_NODE_FEATURES, feats.shape
    return feats.astype(np.float32)


def edges(structure: Structure, *, radius: float = 8.0) -> np.ndarray:
    """(2, E) directed edges: sequential neighbours and Cα pairs closer than ``radius`` Å."""
    ca = np.asarray(structure.ca, dtype=np.float64)
    pair = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    idx = np.arange(len(ca))
    adj = (pair < radius) | (np.abs(idx[:, None] - idx[None]) == 1)
    np.fill_diagonal(adj, False)
    return np.stack(np.nonzero(adj)).astype(np.int64)


@dataclass
class ResidueGraph:
    """One protein's residue graph (unpadded numpy arrays)."""

    id: str
    aa: np.ndarray        # (L,) int64
    feats: np.ndarray     # (L, F) float32
    ca: np.ndarray        # (L, 3) float32
    frames: np.ndarray    # (L, 3, 3) float32
    esm: np.ndarray | None = None  # (L, E) float32

    def __len__(self) -> int:
        return len(self.aa)


def checked_esm(structure_id: str, esm, n_residues: int) -> np.ndarray:
    """(L, E) float32 per-residue embeddings, or InputError when they do not fit L residues."""
    esm = np.asarray(esm, dtype=np.float32)
    if esm.ndim != 2 or esm.shape[0] != n_residues:
        raise InputError(f"structure {structure_id!r}: ESM embeddings of shape {esm.shape} do not match "
                         f"{n_residues} residues")
    return esm


def build_graph(structure: Structure, *, esm: np.ndarray | None = None,
                extra: np.ndarray | None = None) -> ResidueGraph:
    """Featurise one structure; ``esm`` optionally adds (L, E) per-residue embeddings, ``extra``
    (L, P) further node features (e.g. :mod:`protlab.residues.pockets`) after the invariant ones."""
    check_structure(structure)
    ca = np.asarray(structure.ca, dtype=np.float32)
    ca = ca - ca.mean(axis=0, keepdims=True)
    if esm is not None:
        esm = checked_esm(structure.id, esm, len(ca))
    feats = node_features(structure)
    if extra is not None:
        if extra.shape[0] != len(ca):
            raise InputError(f"structure {structure.id!r}: {extra.shape[0]} rows of extra features for "
                             f"{len(ca)} residues")
        feats = np.concatenate([feats, np.asarray(extra, dtype=np.float32)], axis=1)
    return ResidueGraph(id=structure.id, aa=encode_sequence(structure.sequence), feats=feats,
                        ca=ca, frames=local_frames(ca), esm=esm)


@dataclass
class ResidueBatch:
    """Padded tensors for B proteins of at most L residues; ``mask`` marks real residues."""

    ids: list[str]
    aa: torch.Tensor       # (B, L) long
    feats: torch.Tensor    # (B, L, F)
    ca: torch.Tensor       # (B, L, 3)
    frames: torch.Tensor   # (B, L, 3, 3)
    mask: torch.Tensor     # (B, L) bool
    esm: torch.Tensor | None = None  # (B, L, E)

    def to(self, device) -> "ResidueBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ResidueBatch(self.ids, move(self.aa), move(self.feats), move(self.ca), move(self.frames),
                            move(self.mask), move(self.esm))

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)

    def select(self, index: torch.Tensor) -> "ResidueBatch":
        """Proteins ``index`` (repeats allowed), padded only to the longest of them."""
        index = torch.as_tensor(index, dtype=torch.long)
        L = max(1, int(self.mask[index].sum(1).max()))
        pick = lambda t: None if t is None else t[index, :L].clone()  # noqa: E731
        return ResidueBatch([self.ids[i] for i in index.tolist()], pick(self.aa), pick(self.feats),
                            pick(self.ca), pick(self.frames), pick(self.mask), pick(self.esm))


def collate(graphs: list[ResidueGraph]) -> ResidueBatch:
    """Pad graphs into one :class:`ResidueBatch`."""
    if not graphs:
        raise InputError("collate() needs at least one residue graph")
    B, L = len(graphs), max(len(g) for g in graphs)
    F = graphs[0].feats.shape[1]
    aa = np.full((B, L), UNKNOWN_AA, dtype=np.int64)
    feats = np.zeros((B, L, F), dtype=np.float32)
    ca = np.zeros((B, L, 3), dtype=np.float32)
    frames = np.tile(np.eye(3, dtype=np.float32), (B, L, 1, 1))
    mask = np.zeros((B, L), dtype=bool)
    with_esm = [g.esm is not None for g in graphs]
    if any(with_esm) and not all(with_esm):
        raise InputError("either every graph in a batch has ESM embeddings or none has")
    esm = np.zeros((B, L, graphs[0].esm.shape[1]), dtype=np.float32) if all(with_esm) else None
    for b, g in enumerate(graphs):  # loop over proteins while padding (numpy copies), not residues
        n = len(g)
        aa[b, :n], feats[b, :n], ca[b, :n], frames[b, :n], mask[b, :n] = g.aa, g.feats, g.ca, g.frames, True
        if esm is not None:
            esm[b, :n] = g.esm
    return ResidueBatch([g.id for g in graphs], torch.from_numpy(aa), torch.from_numpy(feats),
                        torch.from_numpy(ca), torch.from_numpy(frames), torch.from_numpy(mask),
                        None if esm is None else torch.from_numpy(esm))
