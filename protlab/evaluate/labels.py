"""Family labels for evaluation: from ``proteins.parquet``, or from a file given later.

A labels file is a TSV/CSV with ``id`` and ``label`` columns (or exactly two columns, id
first), or a FASTA file whose headers carry the label (a Pfam accession such as
``PF00004``, or what ``label_regex`` captures), read without re-running 01-04.

Labels too sparse to score are refused (:func:`require_enough_labels`): on a handful of
proteins, or on one family, any clustering looks perfect.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from protlab.core.errors import InputError, ParseError
from protlab.core.rundir import RunDir
from protlab.curate.formats import read_proteins
from protlab.curate.textio import detect_format

# Scores need labels on at least this share of the proteins, of at least this many families.
MIN_LABELLED_SHARE = 0.25
MIN_FAMILIES = 2


def read_labels(path: str | Path, *, label_regex: str | None = None) -> pd.Series:
    """``{id: label}`` of a labels file (see the module docstring)."""
    path = Path(path)
    kind = detect_format(path)
    if kind in ("fasta", "stockholm", "uniprot"):
        frame = read_proteins(path, format=kind, label_regex=label_regex)
    elif kind in ("tsv", "csv"):
        frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False)
        if not {"id", "label"} <= set(frame.columns):
            if frame.shape[1] != 2:
                raise ParseError(path, f"a labels table needs 'id' and 'label' columns (or exactly two columns, "
                                       f"id first); found {list(frame.columns)}")
            frame.columns = ["id", "label"]
    else:
        raise InputError(f"{path}: a {kind} file holds no labels; give a TSV/CSV (id, label) or a FASTA file")
    frame = frame.assign(id=frame["id"].astype(str))
    duplicated = frame.loc[frame["id"].duplicated(), "id"].unique().tolist()
    if duplicated:
        raise ParseError(path, f"ids {duplicated[:5]} appear more than once")
    return frame.set_index("id")["label"]


def labels_for(run: RunDir, ids, labels_file: str | Path | None = None,
               label_regex: str | None = None) -> tuple[pd.Series, np.ndarray]:
    """The family label of each id (NaN where unknown) and the mask of known labels; the
    labels come from ``labels_file`` when given, else from ``proteins.parquet`` (either may
    have none: then the mask is all False)."""
    ids = [str(i) for i in ids]
    if labels_file is not None:
        labels = read_labels(labels_file, label_regex=label_regex).reindex(ids)
        if labels.notna().sum() == 0:
            raise InputError(f"{labels_file}: none of its ids is a protein of {run.path('proteins')} "
                             f"(e.g. ours: {ids[:3]}); check the id column")
    else:
        proteins = run.load_proteins()
        column = proteins["label"] if "label" in proteins.columns else pd.Series(None, index=proteins.index)
        labels = pd.Series(column.to_numpy(), index=proteins["id"].astype(str)).reindex(ids)
    known = labels.notna() & (labels.astype(str).str.len() > 0) & (labels.astype(str) != "None")
    return labels, known.to_numpy()


def require_enough_labels(labels: pd.Series, known: np.ndarray, source: str | Path) -> None:
    """An :class:`InputError` unless the known labels cover at least ``MIN_LABELLED_SHARE`` of
    the proteins and at least ``MIN_FAMILIES`` families (``source``: where they came from)."""
    n, n_known = len(known), int(known.sum())
    families = int(labels[known].astype(str).nunique())
    if n_known < MIN_LABELLED_SHARE * n or families < MIN_FAMILIES:
        raise InputError(f"{source}: its labels cover {n_known} of {n} proteins in {families} "
                         f"famil{'y' if families == 1 else 'ies'}; scores need labels on at least "
                         f"{MIN_LABELLED_SHARE:.0%} of the proteins, of at least {MIN_FAMILIES} families (on fewer "
                         "any clustering can look perfect): give a labels file covering more (labels=...)")
