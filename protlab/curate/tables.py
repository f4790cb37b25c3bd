"""A streaming reader of TSV/CSV protein tables with configurable column names (``.gz`` aware).

The first row holds column names. ``id_column`` and ``sequence_column`` must exist, or an
:class:`~protlab.core.errors.InputError` names the file and the available columns. ``label_column``
is optional only under its default name ``"label"`` (missing → labels are None); a label
column named explicitly must exist; ``label_column=None`` reads no labels. ``text_column``
(a protein's description, the text of a protein–text pair) follows the same rule under its
name ``"text"``; its default here, None, reads no text. The separator is
``sep``, else taken from the extension (``.tsv``/``.tab`` tab, ``.csv`` comma), else from the
header line (a tab if it has one, else a comma).

Rows with a different number of fields than the header, an empty id or sequence, or a
sequence holding characters that are never sequence raise
:class:`~protlab.core.errors.ParseError` naming the file, line and record. Blank lines are skipped.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

from protlab.core.errors import InputError, ParseError
from protlab.curate.textio import open_text
from protlab.curate.records import SequenceRecord

_NOT_SEQUENCE = re.compile(r"[^A-Za-z*.\-]")
DEFAULT_LABEL_COLUMN = "label"
DEFAULT_TEXT_COLUMN = "text"


def iter_table(path: str | Path, *, id_column: str = "id", sequence_column: str = "sequence",
               label_column: str | None = DEFAULT_LABEL_COLUMN, text_column: str | None = None,
               sep: str | None = None) -> Iterator[SequenceRecord]:
    """Yield one :class:`SequenceRecord` per table row."""
    path = Path(path)
    with open_text(path) as handle:
        header_line = ""
        line_no = 0
        for line_no, header_line in enumerate(handle, 1):
            if header_line.strip():
                break
        if not header_line.strip():
            raise ParseError(path, "file is empty: no header row")
        sep = sep or _separator(path, header_line)
        columns = [name.strip() for name in next(csv.reader([header_line], delimiter=sep))]
        index = {name: i for i, name in enumerate(columns)}
        for wanted, option in ((id_column, "id_column"), (sequence_column, "sequence_column")):
            if wanted not in index:
                raise InputError(f"{path}: no column {wanted!r}; the columns are {columns}: 01_curate reads the "
                                 f"columns 'id' and 'sequence' unless id_column / sequence_column name others "
                                 f"(01_curate's parameters, or read_proteins({option}=...)); name one of them "
                                 f"or rename one to {wanted!r}")
        label_at = _optional_column(path, columns, index, label_column, DEFAULT_LABEL_COLUMN, "label",
                                    "label_field in 01_curate, label_column in read_proteins / iter_table")
        text_at = _optional_column(path, columns, index, text_column, DEFAULT_TEXT_COLUMN, "text",
                                   "text_column in 01_curate, read_proteins and iter_table")
        id_at, seq_at = index[id_column], index[sequence_column]
        reader = csv.reader(handle, delimiter=sep)
        for row in _rows(reader, path, line_no):
            here = line_no + reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise ParseError(path, f"row has {len(row)} fields but the header has "
                                       f"{len(columns)}", line=here,
                                 record=row[id_at].strip() if id_at < len(row) else None)
            seq_id = row[id_at].strip()
            sequence = row[seq_at].strip()
            if not seq_id:
                raise ParseError(path, f"empty {id_column!r}", line=here)
            if not sequence:
                raise ParseError(path, f"empty {sequence_column!r}", line=here, record=seq_id)
            bad = _NOT_SEQUENCE.search(sequence)
            if bad is not None:
                raise ParseError(path, f"illegal character {bad.group(0)!r} in the sequence "
                                       "(letters, '*', '-' and '.' only)", line=here, record=seq_id)
            label = (row[label_at].strip() or None) if label_at is not None else None
            text = " ".join(row[text_at].split()) if text_at is not None else None  # "" when blank
            yield SequenceRecord(id=seq_id, sequence=sequence, label=label, text=text)


def _optional_column(path: Path, columns: list[str], index: dict[str, int], name: str | None, default: str,
                     what: str, option: str) -> int | None:
    """The index of an optional column: absent under its default name → None; absent when
    named explicitly → an error naming the file and the columns it has."""
    if name is None:
        return None
    if name in index:
        return index[name]
    if name != default:
        raise InputError(f"{path}: no {what} column {name!r}; the columns are {columns}: name one of them "
                         f"({option}) or None")
    return None


def read_table(path: str | Path, **options) -> list[SequenceRecord]:
    return list(iter_table(path, **options))


def _rows(reader, path: Path, line_no: int) -> Iterator[list[str]]:
    try:
        yield from reader
    except csv.Error as err:
        raise ParseError(path, f"not a valid table row ({err})",
                         line=line_no + reader.line_num) from None


def _separator(path: Path, header_line: str) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    return "\t" if "\t" in header_line else ","
