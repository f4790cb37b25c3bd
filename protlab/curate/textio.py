"""Opening input files and detecting their format (the readers' shared first step).

* :func:`open_text` opens a text file for the readers: ``.gz`` aware (gzip is recognised by its
  magic bytes), UTF-8. A missing path or a directory raises :class:`~protlab.core.errors.InputError`;
  binary content (NUL bytes, text that is not UTF-8) and a truncated or corrupt gzip raise
  :class:`~protlab.core.errors.ParseError`. Every message names the file.
* :func:`detect_format` says which reader a file needs (content first, then the extension).

:func:`protlab.curate.formats.read_proteins` reads any of them into one table.
"""
from __future__ import annotations

import gzip
import io
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from protlab.core.errors import InputError, ParseError

FORMATS = ("fasta", "stockholm", "uniprot", "tsv", "csv", "pdb", "mmcif")
SEQUENCE_FORMATS = FORMATS[:5]
STRUCTURE_FORMATS = ("pdb", "mmcif")

# Extension (after removing ".gz") -> format. ".txt"/".dat" are sniffed first (UniProt flat
# files and Pfam "*.seed.txt" Stockholm files both use them).
EXTENSIONS = {
    ".fasta": "fasta", ".fa": "fasta", ".faa": "fasta", ".fas": "fasta", ".fna": "fasta",
    ".mfa": "fasta", ".afa": "fasta", ".aln.fasta": "fasta",
    ".sto": "stockholm", ".sth": "stockholm", ".stk": "stockholm", ".stockholm": "stockholm",
    ".seed": "stockholm",
    ".dat": "uniprot", ".txl": "uniprot", ".sp": "uniprot", ".swiss": "uniprot", ".embl": "uniprot",
    ".tsv": "tsv", ".tab": "tsv",
    ".csv": "csv",
    ".pdb": "pdb", ".ent": "pdb",
    ".cif": "mmcif", ".mmcif": "mmcif",
}

_PDB_RECORDS = ("HEADER", "TITLE ", "COMPND", "SOURCE", "REMARK", "ATOM  ", "HETATM", "CRYST1",
                "MODEL ", "EXPDTA", "KEYWDS", "AUTHOR", "REVDAT", "JRNL  ", "SEQRES", "DBREF ",
                "OBSLTE", "SPLIT ", "CAVEAT", "NUMMDL", "MDLTYP", "SPRSDE", "HELIX ", "SHEET ",
                "ORIGX1", "SCALE1", "HET   ", "HETNAM", "FORMUL", "SITE  ")
_NUL_SNIFF_BYTES = 1 << 16


def supported_formats() -> str:
    return ", ".join(FORMATS)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path (formats read: {supported_formats()})")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file (formats read: {supported_formats()})")


@contextmanager
def open_text(path: str | Path) -> Iterator[io.TextIOBase]:
    """Open ``path`` as UTF-8 text (gunzipping when gzip-compressed), with clear errors.

    Errors raised while the ``with`` block reads (truncated gzip, bytes that are not UTF-8)
    are turned into :class:`ParseError` naming the file.
    """
    path = Path(path)
    _check_path(path)
    try:
        raw = open(path, "rb")
    except OSError as err:
        raise InputError(f"{path}: cannot open ({err.strerror or err})") from None
    try:
        try:
            compressed = raw.peek(2)[:2] == b"\x1f\x8b"
            if path.suffix.lower() == ".gz" and not compressed and raw.peek(1):
                raise ParseError(path, "has a .gz extension but is not gzip-compressed; "
                                       "rename it without .gz")
            binary = io.BufferedReader(gzip.GzipFile(fileobj=raw), 1 << 20) if compressed else raw
            if b"\x00" in binary.peek(_NUL_SNIFF_BYTES)[:_NUL_SNIFF_BYTES]:
                raise ParseError(path, "is a binary file (contains NUL bytes), not a text format "
                                       f"protlab reads ({supported_formats()})")
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=None)  # a byte-order mark is dropped
            yield text
        except UnicodeDecodeError as err:
            line, byte = _first_undecodable_line(path)
            raise ParseError(path, f"is not UTF-8 text: byte 0x{byte:02x} cannot be decoded ({err.reason}; "
                                   "Latin-1 or another encoding?); convert the file to UTF-8",
                             line=line) from None
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise ParseError(path, f"truncated or corrupt gzip file ({err}); re-download or "
                                   "re-compress it") from None
        except OSError as err:
            raise ParseError(path, f"read failed: {err}") from None
    finally:
        raw.close()


def _first_undecodable_line(path: Path) -> tuple[int | None, int]:
    """``(1-based line, offending byte)`` of the first line that is not UTF-8."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as fh:
        try:
            for number, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as err:
                    return number, line[err.start]
        except (EOFError, OSError, zlib.error):
            pass
    return None, 0


def _head(path: Path, n_chars: int = 4096) -> str:
    with open_text(path) as handle:
        return handle.read(n_chars)


def _strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _format_from_extension(path: Path) -> str | None:
    name = _strip_gz(path.name).lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return EXTENSIONS[ext]
    return None


def _format_from_content(head: str) -> str | None:
    lines = [line for line in head.splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0]
    if first.startswith(">"):
        return "fasta"
    if first.startswith("# STOCKHOLM"):
        return "stockholm"
    if first.startswith("ID   "):
        return "uniprot"
    if first.startswith("data_"):
        return "mmcif"
    if first.startswith(_PDB_RECORDS) or first.rstrip() in ("END", "ENDMDL", "TER"):
        return "pdb"
    return None


def _table_delimiter(head: str) -> str | None:
    first = next((line for line in head.splitlines() if line.strip()), "")
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    return None


def detect_format(path: str | Path) -> str:
    """The format of ``path``: one of :data:`FORMATS`.

    Distinctive content wins (``>`` → fasta, ``# STOCKHOLM`` → stockholm, ``ID   `` →
    uniprot, ``data_`` → mmcif, PDB record names → pdb), then the extension (``.gz`` removed),
    then a tab or comma in the first line (tsv/csv). An empty file raises ParseError
    ("empty"); anything else unrecognised raises InputError naming the supported formats.
    """
    path = Path(path)
    head = _head(path)
    if not head.strip():
        raise ParseError(path, "file is empty; nothing to read")
    fmt = _format_from_content(head) or _format_from_extension(path) or _table_delimiter(head)
    if fmt is None:
        raise InputError(f"{path}: unknown format; protlab reads {supported_formats()} "
                         "(name the file with a matching extension or pass format=...)")
    return fmt
