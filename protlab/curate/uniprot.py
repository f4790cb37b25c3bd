"""A fast streaming reader of UniProtKB flat files (Swiss-Prot/TrEMBL ``.dat``/``.txt``).

:func:`iter_uniprot` yields one :class:`~protlab.curate.records.UniProtEntry` per entry (``ID``
line to ``//``), ``.gz`` aware. It reads the file in large blocks, cuts entries at the ``//``
lines and pulls out only the line types protlab uses, with C-level string searches instead of
a Python loop over every line; that is what makes it several times faster than
``Bio.SwissProt`` (see ``benchmarks/bench_uniprot_parse.py``).

Fields: ``accession`` (first AC), ``accessions`` (all ACs), ``entry_name`` (ID), ``protein_name``
(``DE RecName: Full=``, else ``SubName: Full=``, else the first ``Full=``; the whole DE text
for pre-2008 entries), ``organism`` (OS), ``sequence`` (SQ block; "" when an entry has none),
``function``/``subcellular_location``/``similarity`` (the ``CC -!-`` topics, continuation lines
joined, several topics of one kind joined with a space, ``{ECO:...}`` evidence tags removed),
``go`` (``DR GO``), ``pfam`` (``DR Pfam``), ``ec`` (``DE EC=`` and ``DR BRENDA``), and
``existence`` (PE level, int 1..5).

Tolerated: blank lines between entries (Biopython 1.88 fails on those, e.g. ``O05204.dat``),
entries without an SQ block, the old ``STANDARD; PRT;`` ID line, internal ``**`` lines.

Errors: every problem with the file raises :class:`protlab.core.errors.ParseError`, whose
``path`` and ``line`` (1-based) say where, and ``record`` the entry name when known: an entry
that does not start with a well-formed ``ID`` line, an entry without AC or with an invalid
accession, a PE line without a level 1..5, a sequence with characters other than letters or
a length that differs from its SQ line, an entry missing its ``//`` terminator (truncated
file), and an empty file. Entries before the bad one have already been yielded.
"""
from __future__ import annotations

import codecs
import re
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from protlab.core.errors import InputError, ParseError
from protlab.curate.textio import open_text
from protlab.curate.records import UniProtEntry

_BLOCK_BYTES = 1 << 22

_ID_LINE = re.compile(
    r"ID   (\S+)\s+(?:Reviewed|Unreviewed|STANDARD|PRELIMINARY);(?:\s*[A-Z]+;)?\s*(\d+)\s+AA\.\s*$")
_ACCESSION = re.compile(
    r"(?:[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})(?:-\d+)?\Z")
_PE_LEVEL = re.compile(r"\s*([1-5])\s*:")
_EC_DE = re.compile(r"EC[= ]([0-9n][0-9n.\-]*[0-9n\-])")
_ECO = re.compile(r"\.?\s*\{ECO:[^}]*\}")
_WRAPPED_HYPHEN = re.compile(r"(?<=[A-Za-z0-9]-)\n\s*")
_SQ_LENGTH = re.compile(r"SQ   SEQUENCE\s+(\d+)\s+AA")
_NOT_RESIDUE = re.compile(r"[^A-Za-z]")
_WANTED_TOPICS = {"FUNCTION": "function", "SUBCELLULAR LOCATION": "subcellular_location",
                  "SIMILARITY": "similarity"}
_WHITESPACE = str.maketrans("", "", " \n\t\r")
# The only lines protlab needs, found by one C-level scan: AC, DE, OS and CC as whole blocks,
# PE, GO/Pfam/BRENDA cross-references, and ID (a second ID line means a missing "//").
_WANTED_LINES = re.compile(
    r"\n(AC   [^\n]*(?:\nAC   [^\n]*)*"
    r"|DE   [^\n]*(?:\nDE   [^\n]*)*"
    r"|OS   [^\n]*(?:\nOS   [^\n]*)*"
    r"|CC   [^\n]*(?:\nCC   [^\n]*)*"
    r"|DR   (?:GO|Pfam|BRENDA); [^;\n]*"
    r"|PE   [^\n]*"
    r"|ID   )")


class _EntryError(Exception):
    """A problem inside one entry; ``line`` counts from the entry's ID line (0)."""

    def __init__(self, reason: str, line: int, record: str | None = None):
        super().__init__(reason)
        self.reason, self.line, self.record = reason, line, record


def iter_uniprot(path: str | Path) -> Iterator[UniProtEntry]:
    """Yield the entries of a UniProtKB flat file (``.gz`` aware) one by one."""
    path = Path(path)
    seen_any = False
    with open_text(path) as handle:
        for text, where in _entries(handle, path):
            try:
                entry = _parse_entry(text)
            except _EntryError as err:
                blank = len(text) - len(text.lstrip())
                line = where() + text.count("\n", 0, blank) + err.line
                raise ParseError(path, err.reason, line=line, record=err.record) from None
            if entry is not None:
                seen_any = True
                yield entry
    if not seen_any:
        raise ParseError(path, "file is empty: no UniProt entries")


def read_uniprot(path: str | Path) -> list[UniProtEntry]:
    return list(iter_uniprot(path))


def uniprot_row(entry: UniProtEntry, *, label_field: str | int | None = None) -> dict:
    """One ``read_proteins`` row: id, sequence, label and every UniProt field."""
    row = {"id": entry.accession, "sequence": entry.sequence, "label": None,
           "accession": entry.accession, "entry_name": entry.entry_name,
           "protein_name": entry.protein_name, "organism": entry.organism,
           "function": entry.function, "subcellular_location": entry.subcellular_location,
           "similarity": entry.similarity, "go": list(entry.go), "pfam": list(entry.pfam),
           "ec": list(entry.ec), "existence": entry.existence}
    if label_field is None:
        row["label"] = entry.pfam[0] if entry.pfam else None
    else:
        if label_field not in row:
            raise InputError(f"label_field={label_field!r} is not a UniProt field; use one of "
                             f"{', '.join(k for k in row if k not in ('id', 'label'))}")
        value = row[label_field]
        row["label"] = (value[0] if value else None) if isinstance(value, list) else value
    return row


def _entries(handle, path: Path) -> Iterator[tuple[str, Callable[[], int]]]:
    """Yield (entry text without its ``//`` line, a function giving the line number it starts).

    Every text starts with the "\n" that ends the line before it (an added "\n" for the first
    entry), so every ``//`` line, the first one included, is found as "\n//". Line numbers
    are counted only when asked for (to report an error).
    """
    buf = "\n"
    base = 0  # line number ended by the first character of buf
    raw = handle.buffer  # decoding big byte blocks ourselves is several times faster than TextIOWrapper
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending_cr = ""
    while True:
        data = raw.read(_BLOCK_BYTES)
        block = decoder.decode(data, final=not data)
        if "\r" in block or pending_cr:
            block = pending_cr + block
            pending_cr = "\r" if block.endswith("\r") and data else ""
            block = block[:len(block) - len(pending_cr)]
            block = block.replace("\r\n", "\n").replace("\r", "\n")
        if not data:  # end of file
            if not block:
                if buf.endswith("\n"):
                    break
                block = "\n"  # the last line lacks its newline
            elif not block.endswith("\n"):
                block += "\n"
        buf += block
        start = 0
        while True:
            cut = buf.find("\n//", start)
            end = buf.find("\n", cut + 3) if cut >= 0 else -1
            if end < 0:
                break
            yield buf[start:cut], partial(_line_at, buf, start, base)
            start = end
        base = _line_at(buf, start, base)
        buf = buf[start:]
    if buf.strip():
        skipped = len(buf) - len(buf.lstrip())
        raise ParseError(path, "entry has no '//' terminator line (truncated file?)",
                         line=base + buf.count("\n", 0, skipped),
                         record=_entry_name(buf.lstrip()))


def _line_at(buf: str, pos: int, base: int) -> int:
    return base + buf.count("\n", 0, pos)


def _entry_name(text: str) -> str | None:
    found = _ID_LINE.match(text.split("\n", 1)[0])
    return found.group(1) if found else None


def _parse_entry(text: str) -> UniProtEntry | None:
    """Parse one entry (``text`` as :func:`_entries` gives it); None for blank text."""
    body = text.lstrip()
    if not body:
        return None  # blank lines between entries (Biopython rejects those)
    name = _checked_id_line(body)
    sq_pos = body.rfind("\nSQ   ")
    head = _head_fields(body, sq_pos if sq_pos >= 0 else len(body), name)
    if not head["accessions"]:
        raise _EntryError("entry has no AC (accession) line", 0, name)
    sequence = _sequence(body, sq_pos, name) if sq_pos >= 0 else ""
    de_text, cc_text, ec_xref = head["de"], head["cc"], head["ec_xref"]
    de_lines = de_text[5:].split("\nDE   ") if de_text else []
    return UniProtEntry(
        accession=head["accessions"][0], entry_name=name, sequence=sequence, accessions=head["accessions"],
        protein_name=_protein_name(de_lines) if de_lines else None,
        organism=" ".join(head["os"][5:].replace("\nOS   ", " ").split()).rstrip(".") or None,
        **(_cc_topics(cc_text) if cc_text else {}),
        go=_unique(head["go"]), pfam=_unique(head["pfam"]),
        ec=_unique(_EC_DE.findall(de_text) + ec_xref) if (de_text or ec_xref) else [],
        existence=head["existence"])


def _checked_id_line(body: str) -> str:
    """The entry name of the ID line that starts ``body``, or an :class:`_EntryError`."""
    id_end = body.find("\n")
    id_line = body[:id_end] if id_end >= 0 else body
    found = _ID_LINE.match(id_line)
    if found is None:
        what = ("malformed ID line (expected 'ID   NAME  Reviewed|Unreviewed;  N AA.')"
                if id_line.startswith("ID ") else "expected an 'ID' line starting the entry")
        raise _EntryError(f"{what}, found {id_line[:80]!r}", 0)
    return found.group(1)


def _head_fields(body: str, head_end: int, name: str) -> dict:
    """The wanted lines before the SQ block: ``accessions``, the ``de``, ``os`` and ``cc`` text
    blocks (tags kept), the ``go``, ``pfam`` and ``ec_xref`` (BRENDA) cross-references and the
    PE level (``existence``)."""
    accessions: list[str] = []
    de_text = os_text = cc_text = ""
    go: list[str] = []
    pfam: list[str] = []
    ec_xref: list[str] = []
    existence = None
    for line in _WANTED_LINES.findall(body, 0, head_end):
        tag = line[:2]
        if tag == "DR":
            kind, _, value = line[5:].partition("; ")
            (go if kind == "GO" else pfam if kind == "Pfam" else ec_xref).append(value)
        elif tag == "CC":
            cc_text = cc_text + "\n" + line if cc_text else line
        elif tag == "AC":
            accessions += _checked_accessions(line, body, name)
        elif tag == "DE":
            de_text = de_text + "\n" + line if de_text else line
        elif tag == "OS":
            os_text = os_text + "\n" + line if os_text else line
        elif tag == "PE":
            level = _PE_LEVEL.match(line, 5)
            if level is None:
                raise _EntryError(f"PE line without a level 1..5: {line[:60]!r}",
                                  _line_in(body, "\n" + line) + 1, name)
            existence = int(level.group(1))
        else:  # "ID   " after the first line
            raise _EntryError("a second ID line inside an entry: the previous entry lacks its "
                              "'//' terminator line", _line_in(body, "\nID   ", 1) + 1, name)
    return {"accessions": accessions, "de": de_text, "os": os_text, "cc": cc_text, "go": go, "pfam": pfam,
            "ec_xref": ec_xref, "existence": existence}


def _checked_accessions(lines: str, body: str, name: str) -> list[str]:
    """The accessions of an AC block, or an :class:`_EntryError` at the first invalid one."""
    tokens = lines.replace("\nAC   ", " ")[5:].replace(";", " ").split()
    for token in tokens:
        if _ACCESSION.match(token) is None:
            raise _EntryError(f"invalid accession {token!r} on the AC line", _line_in(body, token), name)
    return tokens


def _sequence(body: str, sq_pos: int, name: str) -> str:
    """The sequence of the SQ block at ``sq_pos``, checked: letters only, and as long as the SQ
    line declares."""
    sq_end = body.find("\n", sq_pos + 1)
    sq_line = body[sq_pos + 1:sq_end if sq_end >= 0 else len(body)]
    sequence = body[sq_end:].translate(_WHITESPACE) if sq_end >= 0 else ""
    if sequence and not (sequence.isascii() and sequence.isalpha()):
        bad = _NOT_RESIDUE.search(sequence).group(0)
        raise _EntryError(f"illegal character {bad!r} in the sequence (only letters are "
                          "allowed)", _line_in(body, bad, sq_end), name)
    declared = _SQ_LENGTH.match(sq_line)
    if declared is not None and int(declared.group(1)) != len(sequence):
        raise _EntryError(f"sequence has {len(sequence)} residues but the SQ line declares "
                          f"{declared.group(1)} (truncated entry?)",
                          body.count("\n", 0, sq_pos + 1), name)
    return sequence


def _line_in(body: str, needle: str, start: int = 0) -> int:
    """The line (0 = the ID line) of the first ``needle`` at or after ``start``."""
    pos = body.find(needle, start)
    return body.count("\n", 0, max(pos, 0))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _clean(value: str) -> str:
    if "-\n" in value:
        value = _WRAPPED_HYPHEN.sub("", value)
    if "{ECO:" in value:
        value = _ECO.sub("", value)
    return " ".join(value.split()).rstrip(";").strip()


def _protein_name(de_lines: list[str]) -> str | None:
    if not de_lines:
        return None
    for key in ("RecName: Full=", "SubName: Full=", "Full="):
        for line in de_lines:
            pos = line.find(key)
            if pos >= 0:
                return _clean(line[pos + len(key):]) or None
    # Pre-2008 entries: "DE   Name (Alt name) (EC 1.1.1.1) [Includes: ...]."
    text = " ".join(line.strip() for line in de_lines)
    text = re.sub(r"\[(?:Includes|Contains):.*", "", text)
    text = re.sub(r"\s*\(EC [^)]*\)", "", text)
    return _clean(text).rstrip(".").strip() or None


def _cc_topics(cc_text: str) -> dict[str, str]:
    """FUNCTION, SUBCELLULAR LOCATION and SIMILARITY from the CC block (lines with tags)."""
    comments = cc_text.replace("\nCC   ", "\n")[5:]
    copyright_pos = comments.find("\n-----")
    if copyright_pos >= 0:
        comments = comments[:copyright_pos]
    found: dict[str, list[str]] = {}
    for topic in comments.split("-!- ")[1:]:
        title, _, body = topic.partition(":")
        key = _WANTED_TOPICS.get(title.strip())
        if key is not None:
            value = _clean(body)
            if value:
                found.setdefault(key, []).append(value)
    return {key: " ".join(values) for key, values in found.items()}
