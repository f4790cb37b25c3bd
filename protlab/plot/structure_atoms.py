"""The atoms a 3D view draws: a structure as PDB text with its atom table, and where residue labels go.

Structures read from a file give all their atoms (biotite, model 1, every chain the structure
holds, waters and ligands left out); generated ones (toy) give Cα + side-chain centroid
pseudo-atoms only, which the views draw as a Cα trace.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def _atoms_from_file(structure) -> dict | None:
    """All atoms of the structure's chain (model 1) from its source file, or None."""
    if not structure.source:
        return None
    try:
        import biotite.structure.io as strucio

        atoms = strucio.load_structure(structure.source, model=1)
    except Exception as exc:  # unreadable here: fall back to the Cα trace
        log.info("drawing %s as a Cα trace (%s)", structure.id, exc)
        return None
    atoms = atoms[np.isin(atoms.chain_id, list(set(structure.residue_chains())))]
    keys = list(zip(atoms.chain_id.tolist(), [f"{r}{i}" for r, i in zip(atoms.res_id.tolist(),
                                                                          atoms.ins_code.tolist())]))
    index = {key: k for k, key in enumerate(structure.residue_keys())}
    residue = np.array([index.get(k, -1) for k in keys], dtype=int)
    names = np.asarray(structure.res_names).astype(str)
    keep = (residue >= 0) & (atoms.res_name == names[np.maximum(residue, 0)])  # no waters/ligands
    if not keep.any():
        return None
    atoms, residue = atoms[keep], residue[keep]
    return {"name": atoms.atom_name, "res_name": atoms.res_name, "res_id": atoms.res_id,
            "ins": atoms.ins_code, "element": atoms.element, "coord": atoms.coord, "residue": residue,
            "full": True}


def _atoms_from_trace(structure) -> dict:
    """Cα and side-chain centroid ('CB' pseudo-atom, not for Gly) per residue."""
    L = len(structure)
    ca = np.asarray(structure.ca, dtype=float)
    cen = np.asarray(structure.centroid, dtype=float) if structure.centroid is not None else ca
    has_side = np.linalg.norm(cen - ca, axis=1) > 0.1
    names, residue, coord = [], [], []
    for i in range(L):  # formatting text, one row per atom
        names.append("CA"), residue.append(i), coord.append(ca[i])
        if has_side[i]:
            names.append("CB"), residue.append(i), coord.append(cen[i])
    residue = np.array(residue)
    return {"name": np.array(names), "res_name": np.asarray(structure.res_names)[residue],
            "res_id": np.asarray(structure.res_ids)[residue], "ins": np.asarray(structure.ins_codes)[residue],
            "element": np.array(["C"] * len(names)), "coord": np.array(coord), "residue": residue, "full": False}


def structure_pdb(structure) -> tuple[str, dict]:
    """PDB text of the structure (serial = atom index + 1) and its atom table."""
    atoms = _atoms_from_file(structure) or _atoms_from_trace(structure)
    chains = np.asarray(structure.residue_chains(), dtype=str)[atoms["residue"]]
    lines = []
    for k, (name, rn, rid, ins, el, xyz, chain) in enumerate(zip(atoms["name"], atoms["res_name"], atoms["res_id"],
                                                                  atoms["ins"], atoms["element"], atoms["coord"],
                                                                  chains)):
        name = f" {name:<3}" if len(name) < 4 else name[:4]
        lines.append(f"ATOM  {(k + 1) % 100000:5d} {name} {str(rn)[:3]:>3} {chain[:1] or 'A'}"
                     f"{int(rid) % 10000:4d}{(str(ins) or ' ')[:1]}   {xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}"
                     f"  1.00  0.00          {str(el)[:2]:>2}")
    return "\n".join(lines) + "\nEND\n", atoms


def label_positions(structure, residues, *, offset: float = 4.0, min_gap: float = 8.0,
                    rounds: int = 50) -> np.ndarray:
    """Where the labels of ``residues`` go: ``offset`` Å out from each Cα (along its side chain,
    or away from the protein's centre), then pushed apart until no two are closer than
    ``min_gap`` Å. Important residues sit side by side in a site; labels on their Cα overlap."""
    residues = np.asarray(list(residues), dtype=int)
    ca = np.asarray(structure.ca, dtype=float)[residues]
    if not len(residues):
        return ca.reshape(0, 3)
    cen = np.asarray(structure.centroid, dtype=float)[residues] if structure.centroid is not None else ca
    out = cen - ca
    away = ca - np.asarray(structure.ca, dtype=float).mean(axis=0)
    short = np.linalg.norm(out, axis=1) < 0.5  # Gly or a trace without side chains
    out[short] = away[short]
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(norm > 1e-6, out / np.maximum(norm, 1e-6), np.array([0.0, 0.0, 1.0]))
    pos = ca + offset * out
    rng = np.random.default_rng(0)  # fixed: exported pages stay reproducible
    for _ in range(rounds):
        diff = pos[:, None, :] - pos[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        np.fill_diagonal(dist, np.inf)
        close = dist < min_gap
        if not close.any():
            break
        same = dist < 1e-6  # coincident labels: a small random nudge gives them a direction
        diff[same] = rng.normal(size=(int(same.sum()), 3))
        dist = np.where(same, 1.0, dist)
        gap = np.where(close, dist, min_gap)  # pairs far enough apart do not move
        push = ((min_gap - gap) / 2 / gap)[..., None] * diff
        pos = pos + push.sum(axis=1)
    return pos
