"""A streaming FASTA reader (``.gz`` aware) with labels taken from the header.

``id`` is the first word of the header and ``description`` the rest. The label comes from
``label_regex`` (searched in the header without ``>``: group 1 if the pattern has groups, else
the whole match; no match → None), or ``label_token`` (an int: the n-th whitespace token of
the header, 0 being the id; a str such as ``"OX"``: the value of ``OX=...`` in UniProt-style
headers), or by default the first Pfam accession in the description, version removed
(``>ENTRY/12-140 PF00004`` and Pfam's ``>ENTRY/12-140 A0A0A0.1 PF00004.30;AAA;``).

Sequences keep their letters as written (case, gaps ``-``/``.``, stop ``*``): curation decides
what to do with them. Characters that are never sequence (digits, other punctuation) raise
:class:`~protlab.core.errors.ParseError` naming the file, line and record, as do text before the
first header, an empty header and an empty file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from protlab.core.errors import InputError, ParseError
from protlab.curate.textio import open_text
from protlab.curate.records import SequenceRecord

_PFAM_IN_HEADER = re.compile(r"(?<![A-Za-z0-9])(PF\d{5})(?:\.\d+)?(?![0-9])")
_NOT_SEQUENCE = re.compile(r"[^A-Za-z*.\-]")


def iter_fasta(path: str | Path, *, label_regex: str | re.Pattern | None = None,
               label_token: int | str | None = None) -> Iterator[SequenceRecord]:
    """Yield one :class:`SequenceRecord` per FASTA record."""
    path = Path(path)
    if label_regex is not None and label_token is not None:
        raise InputError("give label_regex or label_token (label_field), not both")
    pattern = re.compile(label_regex) if isinstance(label_regex, str) else label_regex
    labeller = _labeller(pattern, label_token)
    header: str | None = None
    header_line = 0
    chunks: list[str] = []
    seen_text = False
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            if line.startswith(">"):
                if header is not None:
                    yield _record(path, header, header_line, chunks, labeller)
                header, header_line, chunks = line[1:].strip(), line_no, []
                seen_text = True
                if not header:
                    raise ParseError(path, "empty FASTA header ('>' with no id)", line=line_no)
            else:
                stripped = line.strip()
                if not stripped:
                    continue
                if header is None:
                    raise ParseError(path, f"text before the first '>' header: {stripped[:40]!r} "
                                           "(is this a FASTA file?)", line=line_no)
                chunks.append(stripped)
        if header is not None:
            yield _record(path, header, header_line, chunks, labeller)
    if not seen_text:
        raise ParseError(path, "file is empty: no FASTA records")


def read_fasta(path: str | Path, **options) -> list[SequenceRecord]:
    return list(iter_fasta(path, **options))


def _record(path: Path, header: str, header_line: int, chunks: list[str], labeller) -> SequenceRecord:
    seq_id, _, description = header.partition(" ")
    if "\t" in seq_id:
        seq_id, _, rest = seq_id.partition("\t")
        description = f"{rest} {description}".strip()
    sequence = "".join(chunks).replace(" ", "").replace("\t", "")
    bad = _NOT_SEQUENCE.search(sequence)
    if bad is not None:
        offset = bad.start()
        line = header_line + 1
        for chunk in chunks:  # the line holding the bad character
            if offset < len(chunk.replace(" ", "").replace("\t", "")):
                break
            offset -= len(chunk.replace(" ", "").replace("\t", ""))
            line += 1
        raise ParseError(path, f"illegal character {bad.group(0)!r} in the sequence (letters, "
                               "'*', '-' and '.' only)", line=line, record=seq_id)
    return SequenceRecord(id=seq_id, sequence=sequence, label=labeller(header, description),
                          description=description.strip())


def _labeller(pattern: re.Pattern | None, token: int | str | None):
    if pattern is not None:
        def by_regex(header: str, description: str) -> str | None:
            found = pattern.search(header)
            if found is None:
                return None
            return found.group(1) if pattern.groups else found.group(0)
        return by_regex
    if isinstance(token, int):
        def by_index(header: str, description: str) -> str | None:
            tokens = header.split()
            return tokens[token] if -len(tokens) <= token < len(tokens) else None
        return by_index
    if isinstance(token, str):
        key = re.compile(rf"(?:^|\s){re.escape(token)}=(.*?)(?=\s+[A-Za-z_]+=|$)")

        def by_key(header: str, description: str) -> str | None:
            found = key.search(header)
            return found.group(1).strip() if found else None
        return by_key
    if token is not None:
        raise InputError(f"label_token must be an int (header token) or a str (KEY= in the "
                         f"header), not {token!r}")

    def pfam(header: str, description: str) -> str | None:
        found = _PFAM_IN_HEADER.search(description)
        return found.group(1) if found else None
    return pfam
