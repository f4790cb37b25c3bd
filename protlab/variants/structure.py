"""The wild type on a structure: which residue of which chain each wild-type position is.

The chain is the protein chain whose sequence aligns best to the wild type (or the one
named); positions map through a local alignment (BLOSUM62), so a structure of a domain, or
one with missing loops or a tag, still maps the residues it has. A chain that is clearly
another protein (under ``MIN_IDENTITY`` over the aligned residues) is refused by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protlab.core.errors import InputError
from protlab.curate.records import Structure
from protlab.curate.structures import read_complex, read_structure

MIN_IDENTITY = 0.9  # a point mutant or a homologue's structure is no structure of this protein


@dataclass
class MappedStructure:
    structure: Structure
    residue_of: np.ndarray    # (len(wildtype),) structure residue index per wild-type position, −1 if none
    identity: float           # identical residues / aligned residue pairs
    n_mapped: int

    def on_structure(self, values) -> np.ndarray:
        """Per-position ``values`` of the sequence as one value per structure residue (NaN where
        no position maps or the value is not finite)."""
        values = np.asarray(values, dtype=float)
        out = np.full(len(self.structure), np.nan)
        mapped = np.isfinite(values) & (self.residue_of >= 0)
        out[self.residue_of[mapped]] = values[mapped]
        return out


def _local_alignment(wildtype: str, chain_sequence: str):
    from biotite.sequence import ProteinSequence
    from biotite.sequence.align import SubstitutionMatrix, align_optimal

    clean = lambda s: "".join(c if c in ProteinSequence.alphabet.get_symbols() else "X" for c in s)  # noqa: E731
    matrix = SubstitutionMatrix.std_protein_matrix()
    return align_optimal(ProteinSequence(clean(wildtype)), ProteinSequence(clean(chain_sequence)), matrix,
                         local=True, gap_penalty=(-10, -1), max_number=1)[0]


def map_structure(path: str | Path, wildtype: str, *, chain: str | None = None) -> MappedStructure:
    """The chain of ``path`` (named, or the best-aligning one) with each wild-type position's residue."""
    path = Path(path)
    chains = [chain] if chain else read_complex(path).chain.split(",")
    best = None
    for name in chains:
        structure = read_structure(path, chain=name)
        trace = _local_alignment(wildtype, structure.sequence).trace
        pairs = trace[(trace[:, 0] >= 0) & (trace[:, 1] >= 0)]
        same = sum(wildtype[i] == structure.sequence[j] for i, j in pairs)
        if best is None or same > best[0]:
            best = (same, structure, pairs)
    same, structure, pairs = best
    identity = same / max(len(pairs), 1)
    if len(pairs) == 0 or identity < MIN_IDENTITY:
        raise InputError(f"structure {path}: no chain is this wild type (best: chain {structure.chain}, "
                         f"{identity:.0%} identical over {len(pairs)} aligned residues; at least "
                         f"{MIN_IDENTITY:.0%} needed); give the structure of this protein or name its chain")
    residue_of = np.full(len(wildtype), -1, dtype=int)
    residue_of[pairs[:, 0]] = pairs[:, 1]
    return MappedStructure(structure, residue_of, round(float(identity), 4), int(len(pairs)))
