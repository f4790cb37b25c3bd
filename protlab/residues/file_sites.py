"""Known sites read from structure files themselves, when no site table is given.

Two sources, united: the file's SITE records (PDB ``SITE`` lines: the residues of each
annotated binding / active site), and ligand contacts: protein residues of the chain with a
heavy atom within 4 Å of a bound ligand (a non-water HETATM group of at least 6 heavy atoms
that is not a common buffer, cryoprotectant or ion).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from protlab.core.alphabet import MODIFIED_THREE, STANDARD_THREE
from protlab.curate.records import Structure
from protlab.curate.structures import load_atoms

CONTACT = 4.0          # Å between a ligand heavy atom and a residue heavy atom
MIN_LIGAND_ATOMS = 6   # heavy atoms; smaller groups are ions and fragments
WATER = frozenset({"HOH", "WAT", "DOD", "H2O"})
# Crystallisation additives and buffers that sit on proteins without being their ligands.
ADDITIVES = frozenset({"GOL", "EDO", "PEG", "PGE", "PG4", "1PE", "P6G", "MPD", "DMS", "ACT", "ACY", "FMT", "TRS",
                       "MES", "EPE", "BME", "DTT", "CIT", "FLC", "TAR", "IMD", "SO4", "PO4", "NO3", "BU3", "IPA",
                       "EOH", "MOH", "PEO", "CAC", "MLI", "SCN", "BCT", "NH4", "IOD", "BR", "CL", "NA", "K", "MG",
                       "CA", "ZN", "MN", "FE", "CU", "NI", "CO", "CD", "HG"})
_AMINO = STANDARD_THREE | MODIFIED_THREE


def site_record_residues(structure: Structure) -> set[tuple[str, str]]:
    """(chain, number + insertion code) of ``structure``'s residues named by SITE lines."""
    path = Path(structure.source) if structure.source else None
    if path is None or not path.is_file() or path.suffix.lower() not in (".pdb", ".ent"):
        return set()
    found = set()
    chains = set(structure.residue_chains())
    with open(path, errors="replace") as fh:
        for line in fh:
            if not line.startswith("SITE  "):
                continue
            for start in (18, 29, 40, 51):  # resName chain resSeq iCode, four per line
                field = line[start:start + 10]
                name, chain, number = field[0:3].strip(), field[4:5], field[5:9].strip()
                if name in _AMINO and chain in chains and number.lstrip("-").isdigit():
                    found.add((chain, number + field[9:10].strip()))
    return found


def ligand_contact_residues(structure: Structure) -> set[tuple[str, str]]:
    """(chain, label) of ``structure``'s residues with a heavy atom within 4 Å of a bound ligand."""
    path = Path(structure.source) if structure.source else None
    if path is None or not path.is_file():
        return set()
    atoms, _, _ = load_atoms(path, 1)
    heavy = atoms[atoms.element != "H"]
    names = heavy.res_name.astype(str)
    ligand = heavy.hetero & ~np.isin(names, list(WATER | ADDITIVES | _AMINO))
    if not ligand.any():
        return set()
    groups = np.char.add(np.char.add(heavy.chain_id.astype(str), ":"), heavy.res_id.astype(str))
    group_ids, counts = np.unique(groups[ligand], return_counts=True)
    big = set(group_ids[counts >= MIN_LIGAND_ATOMS])
    ligand &= np.isin(groups, list(big))
    protein = np.isin(heavy.chain_id, list(set(structure.residue_chains()))) & np.isin(names, list(_AMINO))
    if not ligand.any() or not protein.any():
        return set()
    near = cKDTree(heavy.coord[ligand]).query_ball_point(heavy.coord[protein], r=CONTACT)
    hit = np.array([len(n) > 0 for n in near])
    residues = heavy[protein][hit]
    return {(c, f"{r}{i}") for c, r, i in zip(residues.chain_id.tolist(), residues.res_id.tolist(),
                                               residues.ins_code.astype(str).tolist())}


def file_site_indices(structure: Structure) -> list[int]:
    """0-based residue indices of ``structure`` in its SITE records or ligand contacts."""
    wanted = site_record_residues(structure) | ligand_contact_residues(structure)
    return [i for i, key in enumerate(structure.residue_keys()) if key in wanted]
