"""Conservation of alignment columns, the check of residue attributions against biology.

A column's information content is ``(log2 20 - H) * (1 - gap share)``, ``H`` the entropy of
its residues (the height of a sequence-logo column, shrunk by its gaps). An attribution
agrees with conservation when a protein's most attributed residues sit in its family's most
informative columns more often than its residues do at random: :func:`enrichment`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.errors import InputError
from protlab.variants.alignment import read_alignment_records

_CODE = np.full(256, -1, dtype=np.int64)  # residue byte -> index in AMINO_ACIDS; gaps and X: -1
_CODE[np.frombuffer(AMINO_ACIDS.encode(), dtype=np.uint8)] = np.arange(len(AMINO_ACIDS))
_CODE[np.frombuffer(AMINO_ACIDS.lower().encode(), dtype=np.uint8)] = np.arange(len(AMINO_ACIDS))
GAP_CHARACTERS = "-."


def column_information(rows: list[str]) -> np.ndarray:
    """Information content (bits) of each column of equal-length aligned ``rows``."""
    if not rows:
        raise InputError("column_information needs at least one aligned row")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise InputError(f"aligned rows differ in length ({sorted(lengths)[:5]}): not an alignment")
    codes = _CODE[np.array([np.frombuffer(r.encode("ascii", "replace"), dtype=np.uint8) for r in rows])]
    counts = np.stack([(codes == a).sum(0) for a in range(len(AMINO_ACIDS))]).astype(np.float64)
    residues = counts.sum(0)
    p = counts / np.maximum(residues, 1)
    entropy = -(p * np.log2(np.where(p > 0, p, 1))).sum(0)
    information = (math.log2(len(AMINO_ACIDS)) - entropy) * (residues / len(rows))
    return np.where(residues > 0, information, 0.0)


def top_columns(information: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """The most informative ``fraction`` of the columns (at least one), as a boolean mask."""
    k = max(1, int(round(fraction * len(information))))
    mask = np.zeros(len(information), dtype=bool)
    mask[np.argsort(-information, kind="stable")[:k]] = True
    return mask


def residue_columns(row: str) -> np.ndarray:
    """Column index of each residue of an aligned row (gaps skipped)."""
    return np.array([c for c, ch in enumerate(row) if ch not in GAP_CHARACTERS], dtype=np.int64)


class FamilyConservation:
    """Per member of one family alignment: which of its residues sit in top columns."""

    def __init__(self, path: str | Path, *, fraction: float = 0.1):
        self.path = Path(path)
        names, rows, _ = read_alignment_records(self.path)
        self.rows = dict(zip(names, rows))
        self.information = column_information(rows)
        self.top = top_columns(self.information, fraction)

    def residues_in_top(self, name: str, sequence: str | None = None) -> np.ndarray | None:
        """Boolean per residue of member ``name`` (None when absent); with ``sequence``, the
        member's ungapped row must equal it."""
        row = self.rows.get(name)
        if row is None:
            return None
        if sequence is not None:
            ungapped = "".join(ch for ch in row if ch not in GAP_CHARACTERS).upper()
            if ungapped != sequence.upper():
                raise InputError(f"{self.path}: record {name!r} is not the sequence given for it "
                                 f"({len(ungapped)} vs {len(sequence)} residues)")
        return self.top[residue_columns(row)]

    def column_information_of(self, name: str) -> np.ndarray:
        return self.information[residue_columns(self.rows[name])]


def top_share(scores: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Boolean mask of the highest-scoring ``fraction`` of positions (at least one)."""
    k = max(1, int(math.ceil(fraction * len(scores))))
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(-np.asarray(scores), kind="stable")[:k]] = True
    return mask


def enrichment(scores: list[np.ndarray], in_top: list[np.ndarray], fraction: float = 0.1) -> dict:
    """How often the top ``fraction`` of each protein's residues by score fall in top columns,
    against all its residues (random): rates averaged over proteins and their ratio."""
    if len(scores) != len(in_top) or not scores:
        raise InputError("enrichment needs one score array and one top-column mask per protein, at least one")
    hit = [float(t[top_share(s, fraction)].mean()) for s, t in zip(scores, in_top)]
    base = [float(t.mean()) for t in in_top]
    rate, random_rate = float(np.mean(hit)), float(np.mean(base))
    return {"rate": rate, "random_rate": random_rate, "enrichment": rate / random_rate if random_rate else None,
            "n_proteins": len(scores)}
