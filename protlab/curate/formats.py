"""Reading any supported file into one proteins table (id, sequence, label, ...)."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from protlab.core.errors import InputError
from protlab.curate.fasta import iter_fasta
from protlab.curate.stockholm import iter_stockholm
from protlab.curate.structures import read_structure
from protlab.curate.tables import iter_table
from protlab.curate.textio import FORMATS, detect_format, supported_formats
from protlab.curate.uniprot import iter_uniprot, uniprot_row


def read_proteins(path: str | Path, *, format: str = "auto", label_regex: str | None = None,
                  label_field: str | int | None = None, id_column: str = "id",
                  sequence_column: str = "sequence", label_column: str | None = "label",
                  text_column: str | None = None):
    """Read proteins from any supported file into a DataFrame (id, sequence, label, ...).

    * fasta: ``label_regex`` (group 1, else the whole match, on the header) or
      ``label_field`` (a header token index, or a ``KEY=value`` key such as ``"OX"``); by
      default the first Pfam accession in the header (``>ENTRY/1-90 PF00004``).
    * stockholm: label = the alignment's family (``#=GF AC``, else ``ID``); ``label_regex``
      on the sequence name overrides it.
    * uniprot: id = primary accession; label = ``label_field`` (a column name such as
      ``"organism"``) or the first Pfam id; all UniProt fields are columns (go/pfam/ec lists).
    * tsv/csv: ``id_column``, ``sequence_column``, ``label_column`` (a ``label_field`` name
      overrides it: 01_curate's label_field names the label column) and ``text_column``
      (None: no text; read into a ``text`` column, runs of whitespace made one space).
    * pdb/mmcif: one row (the default chain), id ``<file stem>_<chain>``.
    """
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise InputError(f"format={format!r} is not one of auto, {supported_formats()}")
    pattern = re.compile(label_regex) if label_regex else None
    if isinstance(label_field, str) and label_field.strip().lstrip("-").isdigit():
        label_field = int(label_field)  # "1" from a notebook parameter means header token 1
    if fmt == "fasta":
        rows = [dict(id=r.id, sequence=r.sequence, label=r.label)
                for r in iter_fasta(path, label_regex=label_regex, label_token=label_field)]
    elif fmt == "stockholm":
        rows = []
        for r in iter_stockholm(path):
            label = r.label
            if pattern is not None:
                found = pattern.search(r.id)
                label = (found.group(1) if found.groups() else found.group(0)) if found else None
            rows.append(dict(id=r.id, sequence=r.sequence, label=label))
    elif fmt == "uniprot":
        rows = [uniprot_row(e, label_field=label_field) for e in iter_uniprot(path)]
    elif fmt in ("tsv", "csv"):
        records = list(iter_table(path, id_column=id_column, sequence_column=sequence_column,
                                  label_column=label_field if isinstance(label_field, str) else label_column,
                                  text_column=text_column, sep="\t" if fmt == "tsv" else ","))
        with_text = any(r.text is not None for r in records)  # the file has the text column
        rows = [dict(id=r.id, sequence=r.sequence, label=r.label, **({"text": r.text} if with_text else {}))
                for r in records]
    else:
        structure = read_structure(path)
        rows = [dict(id=f"{structure.id}_{structure.chain}", sequence=structure.sequence,
                     label=None)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["id", "sequence", "label"])
    return frame
