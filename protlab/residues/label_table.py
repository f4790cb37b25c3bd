"""Protein-level labels of structures from a table: one label, or several, per structure chain.

:func:`read_label_table` reads either

* a TSV/CSV with a structure column (``structure``, ``file``, ``id`` or ``pdb_id``: a file name
  or PDB id), an optional ``chain`` column and a ``label`` / ``labels`` column (several
  labels separated by ``;`` or ``,``), or
* the DeepFRI annotation format (``nrPDB-EC_*_annot.tsv``) as it is: ``###`` header lines
  (the label vocabulary, then column names), then ``PDBID-CHAIN<TAB>label,label,…`` rows.

:func:`read_split_lists` reads split lists such as DeepFRI's ``*_train.txt`` / ``*_test.txt``
(one ``PDBID-CHAIN`` per line).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from protlab.core.errors import InputError
from protlab.curate.records import Structure
from protlab.curate.structures import pdb_id, structure_id

STRUCTURE_COLUMNS = ("structure", "file", "id", "pdb_id")
LABEL_COLUMNS = ("labels", "label")
_SEPARATORS = re.compile(r"\s*[;,]\s*")


@dataclass
class LabelTable:
    """``rows``: structure key (lower-case file stem or PDB id), chain ("" for any), labels."""

    rows: pd.DataFrame
    vocabulary: list[str]       # every label, in the table's order (DeepFRI: its header line)
    source: str

    def lookup(self, name: str, chain: str) -> list[str] | None:
        """Labels of a structure's chain (rows without a chain match any), or None."""
        rows = self.rows[(self.rows["key"] == name.lower()) & self.rows["chain"].isin(["", chain])]
        if not len(rows):
            return None
        return sorted({v for labels in rows["labels"] for v in labels})

    def rows_naming_none(self, keys) -> list[str]:
        """The rows (``key`` or ``key-chain``) whose structure is none of ``keys``: labels of
        structures not given, which train nothing."""
        rows = self.rows.loc[~self.rows["key"].isin(set(keys)), ["key", "chain"]]
        return [f"{key}-{chain}" if chain else key for key, chain in rows.itertuples(index=False)]

    @property
    def multi_label(self) -> bool:
        return bool((self.rows["labels"].map(len) > 1).any())


def _split_labels(value: str) -> list[str]:
    return [v for v in _SEPARATORS.split(str(value).strip()) if v]


def _read_deepfri(path: Path) -> LabelTable:
    lines = path.read_text().splitlines()
    vocabulary = lines[1].split("\t") if len(lines) > 1 and not lines[1].startswith("#") else []
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("#") or not line.strip() or (number == 2 and vocabulary):
            continue
        name, _, labels = line.partition("\t")
        if "-" not in name:
            raise InputError(f"{path}: line {number}: {name!r} is not PDBID-CHAIN (DeepFRI annotation format)")
        pdb, chain = name.rsplit("-", 1)
        rows.append({"key": pdb.lower(), "chain": chain, "labels": _split_labels(labels)})
    frame = pd.DataFrame(rows, columns=["key", "chain", "labels"])
    return LabelTable(frame, vocabulary or sorted({v for x in frame["labels"] for v in x}), str(path))


def read_label_table(path: str | Path) -> LabelTable:
    """Labels per structure chain (see the module docstring for the formats)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"labels={str(path)!r} is not a file: give a TSV/CSV of structure labels")
    with open(path, errors="replace") as fh:
        first = fh.readline()
    if first.startswith("###"):
        return _read_deepfri(path)
    frame = pd.read_csv(path, sep="," if path.suffix.lower() == ".csv" else "\t", dtype=str, keep_default_na=False)
    structure = next((c for c in STRUCTURE_COLUMNS if c in frame.columns), None)
    label = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    if structure is None or label is None:
        raise InputError(f"{path}: columns {list(frame.columns)}; need a structure column (one of "
                         f"{', '.join(STRUCTURE_COLUMNS)}), optionally chain, and a label column "
                         f"({' or '.join(LABEL_COLUMNS)}; several labels separated by ; or ,)")
    labels = frame[label].map(_split_labels)
    empty = labels.map(len) == 0
    if empty.any():
        row = int(empty.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: row {row + 1} ({frame[structure].iloc[row]!r}) has no label")
    rows = pd.DataFrame({"key": frame[structure].map(lambda v: structure_id(str(v)).lower()),
                         "chain": frame["chain"].str.strip() if "chain" in frame.columns else "",
                         "labels": labels})
    vocabulary = list(dict.fromkeys(v for x in rows["labels"] for v in x))
    return LabelTable(rows, vocabulary, str(path))


def chain_name(structure: Structure) -> str:
    """``PDBID-CHAIN`` as DeepFRI names a chain."""
    return f"{pdb_id(structure.id).upper()}-{structure.chain}"


def read_split_lists(paths: dict[str, str | Path]) -> dict[tuple[str, str], str]:
    """``{(pdb id lower-case, chain): split}`` from lists of ``PDBID-CHAIN`` lines per split."""
    out = {}
    for split, path in paths.items():
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            name = line.strip()
            if not name:
                continue
            if "-" not in name:
                raise InputError(f"{path}: line {number}: {name!r} is not PDBID-CHAIN")
            pdb, chain = name.rsplit("-", 1)
            out[(pdb.lower(), chain)] = split
    return out
