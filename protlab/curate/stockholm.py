"""A streaming Stockholm reader (Pfam seed alignments; ``.gz`` aware).

Each alignment (``# STOCKHOLM 1.0`` ... ``//``) yields one :class:`SequenceRecord` per sequence,
in order of first appearance, once its ``//`` line is read; a file may hold several
alignments, and sequences may be split over interleaved blocks. Sequences are ungapped
(``-`` and ``.`` removed) and uppercased. The label is the alignment's family: ``#=GF AC``
without its version (``PF00041.20`` → ``PF00041``), else ``#=GF ID``, else None. Lines
starting with ``#`` (``#=GS``, ``#=GR``, ``#=GC``, comments) are skipped.

Errors (:class:`~protlab.core.errors.ParseError` with file, line and record): no ``# STOCKHOLM``
header, a sequence line without a sequence, characters that are never sequence, an alignment
missing its ``//`` (truncated file), an alignment without sequences, an empty file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from protlab.core.errors import ParseError
from protlab.curate.textio import open_text
from protlab.curate.records import SequenceRecord

_NOT_SEQUENCE = re.compile(r"[^A-Za-z*.\-]")
_VERSION = re.compile(r"\.\d+$")
_GAPS = str.maketrans("", "", "-.")


def iter_stockholm(path: str | Path) -> Iterator[SequenceRecord]:
    """Yield the (ungapped, uppercased) sequences of every alignment in ``path``."""
    path = Path(path)
    inside = False
    seen_alignment = False
    start_line = 0
    chunks: dict[str, list[str]] = {}
    accession = family_id = None
    line_no = 0
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            stripped = line.strip()
            if not stripped:
                continue
            if not inside:
                if not stripped.startswith("# STOCKHOLM"):
                    raise ParseError(path, f"expected '# STOCKHOLM 1.0' to start an alignment, "
                                           f"found {stripped[:40]!r}", line=line_no)
                inside, seen_alignment, start_line = True, True, line_no
                chunks, accession, family_id = {}, None, None
                continue
            if stripped.startswith("//"):
                yield from _alignment_records(path, chunks, accession or family_id, start_line)
                inside = False
                continue
            if stripped.startswith("#"):
                if stripped.startswith("#=GF"):
                    parts = stripped.split(None, 2)
                    if len(parts) == 3 and parts[1] == "AC":
                        accession = _VERSION.sub("", parts[2].strip())
                    elif len(parts) == 3 and parts[1] == "ID":
                        family_id = parts[2].strip()
                continue
            parts = stripped.split()
            if len(parts) != 2:
                raise ParseError(path, "a sequence line must be 'NAME SEQUENCE' (two fields), "
                                       f"found {len(parts)} field(s)", line=line_no,
                                 record=parts[0])
            name, aligned = parts
            bad = _NOT_SEQUENCE.search(aligned)
            if bad is not None:
                raise ParseError(path, f"illegal character {bad.group(0)!r} in the sequence "
                                       "(letters, '*', '-' and '.' only)", line=line_no, record=name)
            chunks.setdefault(name, []).append(aligned)
    if inside:
        raise ParseError(path, f"the alignment that starts at line {start_line} has no '//' terminator: "
                               f"the file ends at line {line_no} (truncated?)", line=line_no)
    if not seen_alignment:
        raise ParseError(path, "file is empty: no Stockholm alignment")


def read_stockholm(path: str | Path) -> list[SequenceRecord]:
    return list(iter_stockholm(path))


def _alignment_records(path: Path, chunks: dict[str, list[str]], family: str | None,
                       start_line: int) -> Iterator[SequenceRecord]:
    if not chunks:
        raise ParseError(path, "alignment holds no sequences", line=start_line)
    for name, parts in chunks.items():
        yield SequenceRecord(id=name, sequence="".join(parts).translate(_GAPS).upper(),
                             label=family)
