"""Wild type and mutants: reading, parsing ProteinGym mutant strings, validation.

A mutant is written as ProteinGym writes it: ``A24C`` (wild-type residue, 1-based position,
mutant residue), several substitutions joined by ``:`` (``A24C:D30K``). Every refusal is an
:class:`~protlab.core.errors.InputError` naming the file, the row and the position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.errors import InputError

_MUTATION = re.compile(r"^([A-Za-z])(\d+)([A-Za-z])$")
_SEQUENCE = re.compile(r"^[A-Za-z]+$")


@dataclass(frozen=True)
class Mutant:
    """One variant: its text and its substitutions ``(0-based position, wt, mut)``."""

    text: str
    substitutions: tuple[tuple[int, str, str], ...]


def read_wildtype(value: str) -> tuple[str, str]:
    """``(name, sequence)`` of a FASTA file (its first record) or of a sequence given as text."""
    path = Path(str(value)).expanduser()
    if path.is_file():
        name, chunks = None, []
        for line in path.read_text().splitlines():
            if line.startswith(">"):
                if name is not None:
                    break
                name = line[1:].split()[0] if line[1:].strip() else path.stem
            elif line.strip():
                if name is None:
                    raise InputError(f"wildtype {path}: text before the first '>' header (is this a FASTA file?)")
                chunks.append(line.strip())
        sequence = "".join(chunks).upper()
        if not sequence:
            raise InputError(f"wildtype {path}: no sequence in its first record")
        where = f"wildtype {path}"
    else:
        text = str(value).strip().upper()
        if not _SEQUENCE.match(text) or ("/" in str(value) or str(value).endswith((".fasta", ".fa", ".faa"))):
            raise InputError(f"wildtype={value!r} is neither an existing FASTA file nor a protein sequence")
        name, sequence, where = "wildtype", text, "wildtype"
    unknown = [(i + 1, a) for i, a in enumerate(sequence) if a not in AMINO_ACIDS]
    if unknown:
        raise InputError(f"{where}: {len(unknown)} residue(s) outside the 20 standard amino acids, first "
                         f"{unknown[0][1]!r} at position {unknown[0][0]}")
    return name, sequence


def parse_mutant(text: str, wildtype: str, *, where: str = "mutant") -> Mutant:
    """``A24C`` / ``A24C:D30K`` checked against ``wildtype`` (1-based positions)."""
    parts = [p.strip() for p in str(text).strip().split(":")]
    if not parts or any(not p for p in parts):
        raise InputError(f"{where}: empty mutant {text!r} (expected e.g. 'A24C' or 'A24C:D30K')")
    subs, seen = [], set()
    for part in parts:
        match = _MUTATION.match(part)
        if not match:
            raise InputError(f"{where}: {part!r} is not a substitution like 'A24C' (wild type, 1-based position, "
                             "mutant residue)")
        wt, pos, mut = match.group(1).upper(), int(match.group(2)), match.group(3).upper()
        for residue in (wt, mut):
            if residue not in AMINO_ACIDS:
                raise InputError(f"{where}: {part!r} has unknown amino acid {residue!r} at position {pos} "
                                 f"(use one of {AMINO_ACIDS})")
        if not 1 <= pos <= len(wildtype):
            raise InputError(f"{where}: {part!r}: position {pos} is out of range (the wild type has "
                             f"{len(wildtype)} residues, positions 1..{len(wildtype)})")
        if wildtype[pos - 1] != wt:
            raise InputError(f"{where}: {part!r}: the wild type has {wildtype[pos - 1]!r} at position {pos}, "
                             f"not {wt!r}")
        if pos in seen:
            raise InputError(f"{where}: {text!r} substitutes position {pos} twice")
        seen.add(pos)
        subs.append((pos - 1, wt, mut))
    return Mutant(str(text).strip(), tuple(subs))


def read_variants(path: str | Path, wildtype: str) -> tuple[list[Mutant], pd.DataFrame]:
    """The mutants of a CSV with a ``mutant`` column (and optionally ``DMS_score``), each
    checked against ``wildtype``; returns the mutants and the table (same row order)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep=None, engine="python") if path.suffix.lower() in (".tsv", ".txt") \
            else pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"variants {path}: cannot be read as CSV ({exc})") from exc
    if "mutant" not in table.columns:
        raise InputError(f"variants {path}: no 'mutant' column (columns: {list(table.columns)})")
    if "DMS_score" in table.columns and not pd.api.types.is_numeric_dtype(table["DMS_score"]):
        bad = pd.to_numeric(table["DMS_score"], errors="coerce").isna() & table["DMS_score"].notna()
        row = int(bad.to_numpy().argmax())
        raise InputError(f"variants {path}: row {row + 2} (line {row + 2}): DMS_score "
                         f"{table['DMS_score'].iloc[row]!r} is not a number")
    mutants = []
    for row, text in enumerate(table["mutant"].tolist()):
        if not isinstance(text, str):
            raise InputError(f"variants {path}: row {row + 2} (line {row + 2}): no mutant ({text!r})")
        mutants.append(parse_mutant(text, wildtype, where=f"variants {path}: row {row + 2} (line {row + 2})"))
    repeated = table["mutant"][table["mutant"].duplicated()].tolist()
    if repeated:
        raise InputError(f"variants {path}: {len(repeated)} mutant(s) listed more than once (e.g. {repeated[0]!r} "
                         f"at line {int(table['mutant'].duplicated().to_numpy().argmax()) + 2})")
    return mutants, table


def all_singles(wildtype: str) -> list[Mutant]:
    """Every single substitution of ``wildtype`` (19 per position), position-major."""
    return [Mutant(f"{wt}{i + 1}{mut}", ((i, wt, mut),))
            for i, wt in enumerate(wildtype) for mut in AMINO_ACIDS if mut != wt]
