"""Scores for molecular viewers: B-factors of a PDB copy, PyMOL and ChimeraX scripts."""
from __future__ import annotations

import numpy as np

from protlab.curate.structures import read_structure
from protlab.plot.structure_atoms import structure_pdb
from protlab.plot.structure_export import write_structure_exports


def b_factors(pdb_text: str) -> list[float]:
    return [float(line[60:66]) for line in pdb_text.splitlines() if line.startswith("ATOM")]


def test_every_atom_carries_its_residues_score(shared_data, tmp_path):
    structure = read_structure(shared_data / "structures" / "pdb" / "1aki.pdb")
    values = np.linspace(0.0, 1.0, len(structure))
    values[5] = np.nan  # a residue without a score
    paths = write_structure_exports(structure, values, tmp_path / "lysozyme", label="residue importance")
    pdb = paths["pdb"].read_text()
    _, atoms = structure_pdb(structure)
    expected = np.where(np.isfinite(values), values, 0.0)[atoms["residue"]]
    assert np.allclose(b_factors(pdb), np.round(expected, 2))
    assert "REMARK   1 B-FACTOR: residue importance" in pdb and "1 RESIDUES WITHOUT A VALUE" in pdb
    assert all(len(line) <= 80 for line in pdb.splitlines())
    pml, cxc = paths["pml"].read_text(), paths["cxc"].read_text()
    assert "load lysozyme.pdb" in pml and "spectrum b, blue_white_red, minimum=0, maximum=1" in pml
    assert "open lysozyme.pdb" in cxc and "color bfactor palette bluered range 0,1" in cxc
