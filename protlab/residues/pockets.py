"""Pocket geometry per residue: burial, half-sphere exposure and cavities (pyKVFinder).

Ligands bind in pockets, and a residue-level site model needs to see them. From the
structure's file, every chain (a pocket between chains counts):

* burial: protein heavy atoms within 6, 8, 10, 12 and 16 Å of the residue's side-chain centroid;
* half-sphere exposure: Cα atoms within 13 Å on the side-chain side of the residue;
* cavities found by pyKVFinder (grid 0.6 Å, probes 1.4 / 4.0 Å) among all atoms of the file
  but water, as pyKVFinder's own workflow reads it (cofactors left in a file shape its
  pockets; the burial counts use protein heavy atoms only): whether the residue lines
  one, the volume, depth (max, mean) and volume rank of the largest cavity it lines, how
  many cavities it lines, and how much cavity space lies within 4 Å of its heavy atoms (grid
  points, and their largest and mean depth): residues that line a pocket's deep core, not
  only its rim.

:func:`cavity_scores` is the cavity-detection baseline: residues lining the largest cavity
first, then the next-largest, and so on; residues lining none come last.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from protlab.core.errors import InputError
from protlab.core.extras import require
from protlab.curate.records import Structure
from protlab.curate.structures import _amino_acid_mask, load_atoms
from protlab.residues.file_sites import WATER

BURIAL_RADII = (6.0, 8.0, 10.0, 12.0, 16.0)
HSE_RADIUS = 13.0
CONTEXT_RADIUS = 10.0
LINING = 4.0  # Å between a residue heavy atom and a cavity grid point it lines
POCKET_FEATURES = tuple(f"atoms_within_{int(r)}A" for r in BURIAL_RADII) + (
    "half_sphere_exposure", "in_cavity", "cavity_log_volume", "cavity_max_depth", "cavity_mean_depth",
    "cavity_volume_rank", "cavities_lined", "cavity_points_near", "cavity_points_max_depth",
    "cavity_points_mean_depth")
N_POCKET_FEATURES = len(POCKET_FEATURES)  # the model sees these and their 10 Å means (pocket_context)
N_CAVITY_COLUMNS = 9  # the last of them: cavity_features()
CAVITY_BASELINE = "cavity detection (pyKVFinder): residues lining the largest cavities first"


@dataclass
class Cavities:
    """pyKVFinder's cavities of one file: residue key → cavity names, cavity → properties."""

    lining: dict[tuple[str, str], list[str]]
    volume: dict[str, float]
    max_depth: dict[str, float]
    mean_depth: dict[str, float]
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))   # cavity grid points, Å
    point_depth: np.ndarray = field(default_factory=lambda: np.zeros(0))   # their depth, Å

    def rank(self) -> dict[str, int]:
        """0 for the largest cavity, 1 for the next, …"""
        return {c: r for r, c in enumerate(sorted(self.volume, key=lambda c: (-self.volume[c], c)))}


def _file_atoms(structure: Structure):
    """All atoms of the structure's file (model 1) but water."""
    if not structure.source or not Path(structure.source).is_file():
        raise InputError(f"structure {structure.id!r}: pocket features need its PDB/mmCIF file "
                         "(structures generated without atoms, like the toy universe, have none)")
    atoms, _, _ = load_atoms(Path(structure.source), 1)
    return atoms[~np.isin(atoms.res_name, list(WATER))]


def _protein_heavy(atoms):
    return atoms[_amino_acid_mask(atoms) & ~np.isin(atoms.element, ["H", "D"])]


def find_cavities(structure: Structure, *, step: float = 0.6, atoms=None) -> Cavities:
    """pyKVFinder cavities of ``structure``'s file, water left out (``atoms``: those atoms when
    the caller has read them)."""
    pyKVFinder = require("pyKVFinder", "structures", "pocket features (cavity detection)")
    atoms = _file_atoms(structure) if atoms is None else atoms
    vdw = pyKVFinder.read_vdw()
    generic = vdw["GEN"]
    radius = [vdw.get(str(r), {}).get(str(a), generic.get(str(e).upper(), 1.8))
              for r, a, e in zip(atoms.res_name, atoms.atom_name, atoms.element)]
    labels = np.char.add(atoms.res_id.astype(str), atoms.ins_code.astype(str))
    atomic = np.column_stack([labels, atoms.chain_id.astype(str), atoms.res_name.astype(str),
                              atoms.atom_name.astype(str), atoms.coord.astype(str),
                              np.asarray(radius).astype(str)]).astype("<U32")
    quiet = logging.getLogger().manager.disable
    logging.disable(logging.WARNING)  # pyKVFinder logs each atom it has no radius for
    try:
        vertices = pyKVFinder.get_vertices(atomic, step=step)
        ncav, grid = pyKVFinder.detect(atomic, vertices, step=step, nthreads=1)
        if ncav == 0:
            return Cavities({}, {}, {}, {})
        _, volume, _ = pyKVFinder.spatial(grid, step=step, nthreads=1)
        depth_grid, max_depth, mean_depth = pyKVFinder.depth(grid, step=step, nthreads=1)
        residues = pyKVFinder.constitutional(grid, atomic, vertices, step=step, nthreads=1)
    finally:
        logging.disable(quiet)
    lining: dict[tuple[str, str], list[str]] = {}
    for cavity, members in residues.items():
        for label, chain, _name in members:
            lining.setdefault((chain, label), []).append(cavity)
    index = np.argwhere(grid >= 2)  # cavity points; without a box the grid is axis-aligned from vertices[0]
    points = vertices[0] + index * step
    return Cavities(lining, dict(volume), dict(max_depth), dict(mean_depth), points,
                    depth_grid[tuple(index.T)].astype(np.float64))


def cavity_features(structure: Structure, cavities: Cavities, *, atoms=None) -> np.ndarray:
    """(L, 9) cavity columns of :data:`POCKET_FEATURES` for ``structure``'s residues (``atoms``:
    the file's atoms when the caller has read them)."""
    rank = cavities.rank()
    out = np.zeros((len(structure), N_CAVITY_COLUMNS), dtype=np.float32)
    out[:, 6:] = _lining_points(structure, cavities, atoms)
    for i, key in enumerate(structure.residue_keys()):
        lined = cavities.lining.get(key)
        if lined:
            c = min(lined, key=rank.__getitem__)
            out[i, :6] = [1.0, np.log1p(cavities.volume[c]) / 7.0, cavities.max_depth[c] / 10.0,
                          cavities.mean_depth[c] / 10.0, 1.0 / (1.0 + rank[c]), len(lined) / 3.0]
    return out


def _lining_points(structure: Structure, cavities: Cavities, atoms) -> np.ndarray:
    """(L, 3): cavity points within :data:`LINING` Å of each residue's heavy atoms / 50, and
    their largest and mean depth / 10."""
    out = np.zeros((len(structure), 3))
    if not len(cavities.points):
        return out
    heavy = _protein_heavy(_file_atoms(structure) if atoms is None else atoms)
    index = {key: i for i, key in enumerate(structure.residue_keys())}
    labels = np.char.add(heavy.res_id.astype(str), heavy.ins_code.astype(str))
    residue = np.array([index.get(k, -1) for k in zip(heavy.chain_id.tolist(), labels.tolist())])
    near = cKDTree(cavities.points).query_ball_point(heavy.coord, LINING)
    hits: dict[int, set] = {}
    for r, pts in zip(residue.tolist(), near):  # one small list per atom
        if r >= 0 and pts:
            hits.setdefault(r, set()).update(pts)
    for r, pts in hits.items():
        depth = cavities.point_depth[list(pts)]
        out[r] = [len(pts) / 50.0, depth.max() / 10.0, depth.mean() / 10.0]
    return out


def burial_features(structure: Structure, *, atoms=None) -> np.ndarray:
    """(L, 6) burial and half-sphere-exposure columns of :data:`POCKET_FEATURES`."""
    atoms = _protein_heavy(_file_atoms(structure) if atoms is None else atoms)
    if not len(atoms):
        raise InputError(f"{structure.source}: no protein heavy atoms")
    centroid = np.asarray(structure.centroid, dtype=np.float64)
    ca = np.asarray(structure.ca, dtype=np.float64)
    tree = cKDTree(atoms.coord)
    burial = [tree.query_ball_point(centroid, r, return_length=True) / 100.0 for r in BURIAL_RADII]
    all_ca = atoms.coord[atoms.atom_name == "CA"].astype(np.float64)
    side = centroid - ca
    side /= np.linalg.norm(side, axis=1, keepdims=True).clip(min=1e-6)
    hse = np.zeros(len(ca))
    for i, near in enumerate(cKDTree(all_ca).query_ball_point(ca, HSE_RADIUS)):  # L small lists
        d = all_ca[near] - ca[i]
        hse[i] = ((d @ side[i]) > 1e-3).sum()
    return np.column_stack([*burial, hse / 20.0]).astype(np.float32)


def pocket_features(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """(L, N_POCKET_FEATURES) features and the (L,) cavity baseline scores."""
    atoms = _file_atoms(structure)
    cav = cavity_features(structure, find_cavities(structure, atoms=atoms), atoms=atoms)
    feats = np.concatenate([burial_features(structure, atoms=atoms), cav], axis=1)
    return feats, cavity_baseline(cav)


def pocket_context(ca: np.ndarray, columns: np.ndarray, *, radius: float = CONTEXT_RADIUS) -> np.ndarray:
    """(L, P) mean of the pocket columns over the residues within ``radius`` Å (Cα), the residue
    included: whether a residue's neighbourhood is a pocket, not only the residue itself."""
    near = cKDTree(np.asarray(ca, dtype=np.float64)).query_ball_point(np.asarray(ca, dtype=np.float64), radius)
    return np.stack([columns[n].mean(axis=0) for n in near]).astype(np.float32)  # one small list per residue


def cavity_baseline(cavity_columns: np.ndarray) -> np.ndarray:
    """Baseline scores from the cavity columns: 1/(1 + volume rank) of the largest cavity a
    residue lines, 0 for residues lining none (ties keep residue order when ranked)."""
    return np.where(cavity_columns[:, 0] > 0, cavity_columns[:, 4], 0.0).astype(np.float32)


def cavity_scores(structure: Structure) -> np.ndarray:
    """The cavity-detection baseline's score per residue (:data:`CAVITY_BASELINE`)."""
    atoms = _file_atoms(structure)
    return cavity_baseline(cavity_features(structure, find_cavities(structure, atoms=atoms), atoms=atoms))
