"""Homolog alignments: reading, mapping to the wild type, sequence weights.

Formats: a2m / a3m (uppercase letters and ``-`` are match columns, lowercase letters and
``.`` insertions), Stockholm (the same convention, Pfam's), and aligned FASTA (equal-length
records, no lowercase: every column where the first record has a residue is a match
column). The first record is the wild type or a region of it; ``NAME/start-end`` in its
name gives where the region starts (1-based), else the region is found in the wild type.
Match columns where the first record has a lowercase residue or a gap are not modelled.

Sequences are coded 0..20 (``-ACDEFGHIKLMNPQRSTVWY``, 0 the gap; other letters count as
gaps). Weights follow EVmutation: each sequence counts 1 / (number of sequences, itself
included, at ≥ ``theta`` identity over the modelled columns).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.errors import InputError

STATES = "-" + AMINO_ACIDS  # q = 21, the gap first as in plmc
Q = len(STATES)
_CODE = np.zeros(256, dtype=np.int8)
for _i, _a in enumerate(AMINO_ACIDS):
    _CODE[ord(_a)] = _i + 1
_REGION = re.compile(r"/(\d+)-(\d+)$")
THETA = 0.8             # identity within which homologs share one weight (EVE, DeepSequence)
MAX_GAP_FRACTION = 0.5  # homologs with more gaps than this share of the modelled columns are dropped
MAX_MISMATCHES = 0      # residues in which an alignment's first record may differ from the wild type


@dataclass
class Alignment:
    """Modelled columns of an alignment, mapped to the wild type."""

    path: str
    names: list[str]
    codes: np.ndarray            # (N, L) int8 in 0..20, row 0 the wild type (region)
    positions: np.ndarray        # (L,) 0-based wild-type position of each modelled column
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dropped: dict = field(default_factory=dict)
    mismatches: list = field(default_factory=list)  # first record vs wild type, e.g. 'P72R'

    @property
    def depth(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_eff(self) -> float:
        return float(self.weights.sum())

    def column_of(self) -> dict[int, int]:
        return {int(p): c for c, p in enumerate(self.positions)}


def read_alignment_records(path: Path) -> tuple[list[str], list[str], str]:
    """``(names, aligned strings, format)`` of an a2m / a3m / aligned FASTA or Stockholm file."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"alignment {path}: cannot be read ({exc})") from exc
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.startswith("# STOCKHOLM"):
        order, chunks = [], {}
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#") or line.startswith("//"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise InputError(f"alignment {path}: line {number} is not 'name sequence': {line[:60]!r}")
            if parts[0] not in chunks:
                order.append(parts[0])
                chunks[parts[0]] = []
            chunks[parts[0]].append(parts[1])
        return order, ["".join(chunks[n]) for n in order], "stockholm"
    names, seqs = [], []
    for number, line in enumerate(lines, 1):
        if line.startswith(">"):
            names.append(line[1:].split()[0] if line[1:].strip() else f"record{len(names) + 1}")
            seqs.append([])
        elif line.strip():
            if not names:
                raise InputError(f"alignment {path}: line {number}: text before the first '>' header "
                                 "(use a2m / a3m, aligned FASTA or Stockholm)")
            seqs[-1].append(line.strip())
    if not names:
        raise InputError(f"alignment {path}: no records")
    return names, ["".join(s) for s in seqs], "fasta"


def _match_columns(path: Path, names: list[str], rows: list[str], fmt: str) -> tuple[bool, list[list[str]]]:
    """``(a2m, matched)``: whether lowercase letters and ``.`` mark insertions (always in
    Stockholm), and each record's match columns, refused unless every record has as many."""
    a2m = fmt == "stockholm" or any(c.islower() or c == "." for row in rows[:50] for c in row)
    if a2m:
        matched = [[c for c in row if not (c.islower() or c == ".")] for row in rows]
    else:
        matched = [list(row) for row in rows]
    lengths = {len(m) for m in matched}
    if len(lengths) != 1:
        bad = next(i for i, m in enumerate(matched) if len(m) != len(matched[0]))
        raise InputError(f"alignment {path}: record {bad + 1} ({names[bad]!r}) has {len(matched[bad])} aligned "
                         f"columns, the first record {len(matched[0])}: not an alignment")
    return a2m, matched


def _region_start(path: Path, name: str, residues: str, wildtype: str) -> int:
    """0-based wild-type position where the first record's ``residues`` start: from its
    ``NAME/start-end``, else where they occur in the wild type; refused when they do not fit."""
    region = _REGION.search(name)
    if region:
        start = int(region.group(1)) - 1
        if int(region.group(2)) - start != len(residues):
            raise InputError(f"alignment {path}: record 1 ({name!r}) has {len(residues)} residues, its name says "
                             f"{int(region.group(2)) - start}")
    else:
        start = wildtype.find(residues)
        if start < 0:
            start = 0 if len(residues) == len(wildtype) else -1
        if start < 0:
            raise InputError(f"alignment {path}: record 1 ({name!r}, {len(residues)} residues) is not a region "
                             f"of the wild type ({len(wildtype)} residues); name it NAME/start-end or align to "
                             "the wild type")
    if start + len(residues) > len(wildtype):
        raise InputError(f"alignment {path}: record 1 ({name!r}) ends at position {start + len(residues)}, "
                         f"beyond the wild type's {len(wildtype)} residues")
    return start


def _mismatches(path: Path, name: str, residues: str, wildtype: str, start: int,
                max_mismatches: int) -> list[tuple[int, str, str]]:
    """``(position, alignment's residue, wild type's)`` where the first record differs from the
    wild type, refused when more than ``max_mismatches``."""
    mismatch = [(start + i + 1, a, wildtype[start + i]) for i, a in enumerate(residues) if a != wildtype[start + i]]
    if len(mismatch) > max_mismatches:
        pos, a, w = mismatch[0]
        raise InputError(f"alignment {path}: record 1 ({name!r}) does not match the wild type: "
                         f"{len(mismatch)} residue(s) differ, first at position {pos} ({a!r} in the alignment, "
                         f"{w!r} in the wild type)" + (f"; at most {max_mismatches} allowed" if max_mismatches else ""))
    return mismatch


def _column_positions(focus: str, start: int, a2m: bool) -> np.ndarray:
    """The wild-type position of every match column of the first record ``focus`` (-1 where it
    has a gap or, in a2m, a lowercase residue)."""
    positions, wt_index = [], start
    for c in focus:
        if a2m and (c.islower() or c == "."):
            if c.isalpha():
                wt_index += 1
            continue
        if c.isalpha():
            positions.append(wt_index)
            wt_index += 1
        else:
            positions.append(-1)
    return np.asarray(positions)


def read_alignment(path: str | Path, wildtype: str, *, max_gap_fraction: float = MAX_GAP_FRACTION,
                   theta: float = THETA, max_mismatches: int = MAX_MISMATCHES) -> Alignment:
    """The alignment at ``path`` checked against ``wildtype``, its match columns mapped to
    wild-type positions, sequences with more than ``max_gap_fraction`` gaps in them dropped
    (counted in ``dropped``), weights computed. Up to ``max_mismatches`` residues of the first
    record may differ from the wild type (a polymorphism): they are listed in ``mismatches``
    and the first row takes the wild type's residue there."""
    path = Path(path)
    names, rows, fmt = read_alignment_records(path)
    a2m, matched = _match_columns(path, names, rows, fmt)
    focus = rows[0]
    residues = "".join(c for c in focus if c.isalpha()).upper()
    start = _region_start(path, names[0], residues, wildtype)
    mismatch = _mismatches(path, names[0], residues, wildtype, start, max_mismatches)
    positions = _column_positions(focus, start, a2m)
    keep_cols = positions >= 0
    array = np.array([np.frombuffer("".join(m).upper().encode("ascii", "replace"), dtype=np.uint8)
                      for m in matched])
    codes = _CODE[array][:, keep_cols].astype(np.int8)
    wt_codes = _CODE[np.frombuffer(wildtype.encode("ascii"), dtype=np.uint8)]
    codes[0] = wt_codes[positions[keep_cols]]  # the wild type itself, polymorphisms included
    gaps = (codes == 0).mean(1)
    keep = gaps <= max_gap_fraction
    keep[0] = True
    dropped = {"too_many_gaps": int((~keep).sum())}
    aln = Alignment(str(path), [n for n, k in zip(names, keep) if k], codes[keep], positions[keep_cols],
                    dropped=dropped, mismatches=[f"{a}{pos}{w}" for pos, a, w in mismatch])
    aln.weights = sequence_weights(aln.codes, theta)
    return aln


def alignment_from_rows(rows: list[str], names: list[str] | None = None, *, theta: float = THETA,
                        path: str = "<rows>") -> Alignment:
    """An :class:`Alignment` of equal-length rows whose first row is the whole wild type."""
    array = np.array([np.frombuffer(r.upper().encode("ascii", "replace"), dtype=np.uint8) for r in rows])
    codes = _CODE[array].astype(np.int8)
    aln = Alignment(path, list(names or [f"s{i}" for i in range(len(rows))]), codes, np.arange(len(rows[0])))
    aln.weights = sequence_weights(codes, theta)
    return aln


def sequence_weights(codes: np.ndarray, theta: float = THETA, *, chunk: int = 1024) -> np.ndarray:
    """1 / (number of sequences at ≥ ``theta`` identity, itself included); identity is the
    share of identical states (gaps included) over the columns, as plmc computes it."""
    import torch

    n, length = codes.shape
    onehot = torch.nn.functional.one_hot(torch.as_tensor(codes, dtype=torch.long), Q).reshape(n, -1).float()
    counts = torch.zeros(n)
    for lo in range(0, n, chunk):
        same = onehot[lo:lo + chunk] @ onehot.T
        counts[lo:lo + chunk] = (same >= theta * length).sum(1).float()
    return (1.0 / counts).numpy().astype(np.float64)
