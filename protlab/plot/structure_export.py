"""Per-residue scores for molecular viewers: a PDB copy with the score in the B-factor column,
and colouring scripts for PyMOL (``.pml``) and ChimeraX (``.cxc``), as P2Rank and PocketNet
ship theirs.

The PDB holds the atoms the 3D views draw (the file's atoms of the scored chains, or the Cα
trace of a generated structure). Residues without a score get B = 0 and are listed in a
REMARK; the scripts colour the scored range blue (low) → white → red (high).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from protlab.core.atomic import atomic_write_text
from protlab.plot.structure_atoms import structure_pdb


def scored_pdb(structure, values, *, label: str) -> str:
    """PDB text of ``structure`` with ``values[i]`` (residue i) as every atom's B-factor."""
    values = np.asarray(values, dtype=float)
    pdb, atoms = structure_pdb(structure)
    lines = pdb.splitlines()
    atom_lines = [k for k, line in enumerate(lines) if line.startswith("ATOM")]
    for k, residue in zip(atom_lines, atoms["residue"]):
        value = values[residue]
        b = 0.0 if not np.isfinite(value) else float(value)
        lines[k] = f"{lines[k][:60]}{b:6.2f}{lines[k][66:]}"
    missing = int((~np.isfinite(values)).sum())
    remark = [f"REMARK   1 B-FACTOR: {label}"[:80],
              f"REMARK   1 {missing} RESIDUES WITHOUT A VALUE HAVE B-FACTOR 0"[:80]]
    return "\n".join(remark + lines) + "\n"


def write_structure_exports(structure, values, stem: str | Path, *, label: str) -> dict[str, Path]:
    """``stem.pdb`` (scores as B-factors), ``stem.pml`` and ``stem.cxc`` (colouring scripts that
    load that PDB from their own folder); returns the paths."""
    stem = Path(stem)
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    pdb = stem.with_suffix(".pdb")
    pml = (f"# {label}: blue (low) -> white -> red (high)\nload {pdb.name}\nhide everything\nshow cartoon\n"
           f"spectrum b, blue_white_red, minimum={low:.4g}, maximum={high:.4g}\n")
    cxc = (f"# {label}: blue (low) -> white -> red (high)\nopen {pdb.name}\ncartoon\nhide atoms\n"
           f"color bfactor palette bluered range {low:.4g},{high:.4g}\n")
    return {"pdb": atomic_write_text(pdb, scored_pdb(structure, values, label=label)),
            "pml": atomic_write_text(stem.with_suffix(".pml"), pml),
            "cxc": atomic_write_text(stem.with_suffix(".cxc"), cxc)}
