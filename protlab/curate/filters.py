"""Curation: clean residues, filter by length and ambiguity, drop exact duplicates.

``curate(frame)`` takes the table a reader returns (columns ``id``, ``sequence``, ``label``
and anything else) and returns ``(kept, report)``: the cleaned table and a JSON-able
report of how many records were dropped or changed, and why.

Residue policy (applied in this order):

=============================  =====================================================
input                          what happens
=============================  =====================================================
lowercase letters              uppercased (soft-masking / A2M inserts are residues)
whitespace                     removed
gaps ``-`` and ``.``           removed (alignment columns, not residues)
trailing ``*``                 removed (stop codon)
internal ``*``                 record dropped (``internal_stop``: a translated ORF
                               read through a stop codon, not a protein)
U (selenocysteine)             ``replace_x``: → C (its canonical parent)
O (pyrrolysine)                ``replace_x``: → K (its canonical parent)
B (D/N), Z (E/Q), J (I/L)      ``replace_x``: → X (ambiguous)
X (unknown)                    kept
any of B Z J U O X             ``drop``: record dropped (``nonstandard``)
                               ``keep``: kept as is (ESM's alphabet has B Z U O X);
                               J, which no protein alphabet has, still becomes X
X fraction > max_x_fraction    record dropped (``too_many_x``), after the above
other characters (digits, …)   ``InputError`` naming the record (readers already
                               reject these with the file and line)
=============================  =====================================================

Then: missing/empty sequence → ``empty``; with ``require_text``, blank text (a table's
text column, read for protein–text pairs) → ``no_text``; length below ``min_length`` or
above ``max_length`` (None: no bound) → ``too_short`` / ``too_long``; a sequence identical
to an earlier kept one → ``duplicate`` (the first occurrence is kept; ``report["duplicate_label_conflicts"]``
counts duplicates whose labels differ); an id seen before with another sequence →
``duplicate_id``.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from protlab.core.alphabet import NONSTANDARD
from protlab.core.errors import InputError
from protlab.curate.formats import read_proteins
from protlab.curate.textio import detect_format
from protlab.curate.toy import make_universe

POLICIES = ("replace_x", "drop", "keep")
_REPLACE = {"replace_x": str.maketrans({"U": "C", "O": "K", "B": "X", "Z": "X", "J": "X"}),
            "keep": str.maketrans({"J": "X"}),
            "drop": str.maketrans({})}
_STRIP = str.maketrans("", "", "-. \t\r\n")
_VALID = re.compile(r"^[A-Z]*$")
REASONS = ("empty", "internal_stop", "invalid", "nonstandard", "too_many_x", "too_short", "too_long",
           "duplicate", "duplicate_id", "no_text")
MAX_EXAMPLES = 20  # dropped ids listed per reason in the report


def clean_sequence(sequence: str, *, nonstandard: str = "replace_x") -> tuple[str, str | None]:
    """``(cleaned, reason)``: the cleaned sequence and a drop reason (or None) for one record.

    Lengths and duplicates are not judged here; the X fraction is not either.
    """
    if nonstandard not in POLICIES:
        raise InputError(f"nonstandard={nonstandard!r}: choose one of {POLICIES}")
    if sequence is None or (isinstance(sequence, float) and np.isnan(sequence)):
        return "", "empty"
    seq = str(sequence).upper().translate(_STRIP).rstrip("*")
    if not seq:
        return "", "empty"
    if "*" in seq:
        return seq, "internal_stop"
    if not _VALID.match(seq):
        return seq, "invalid"
    if nonstandard == "drop" and not NONSTANDARD.isdisjoint(seq):
        return seq, "nonstandard"
    return seq.translate(_REPLACE[nonstandard]), None


def _check_settings(frame: pd.DataFrame, *, min_length: int, max_length: int | None, nonstandard: str,
                    max_x_fraction: float, on_invalid: str) -> None:
    """An :class:`InputError` for a setting out of range or a table without ``id`` and ``sequence``."""
    if nonstandard not in POLICIES:
        raise InputError(f"nonstandard={nonstandard!r}: choose one of {POLICIES}")
    if on_invalid not in ("raise", "drop"):
        raise InputError(f"on_invalid={on_invalid!r}: choose 'raise' or 'drop'")
    if not (0 <= min_length <= (max_length if max_length is not None else min_length)):
        raise InputError(f"need 0 ≤ min_length ({min_length}) ≤ max_length ({max_length})")
    if not 0.0 <= max_x_fraction <= 1.0:
        raise InputError(f"max_x_fraction={max_x_fraction} must be within [0, 1]")
    for column in ("id", "sequence"):
        if column not in frame.columns:
            raise InputError(f"the table to curate has no {column!r} column (columns: {list(frame.columns)})")


def _clean_sequences(ids: list, sequences: list, *, nonstandard: str,
                     on_invalid: str) -> tuple[list[str], list[str | None]]:
    """``(cleaned, reasons)``: :func:`clean_sequence` of every record; with ``on_invalid="raise"``
    an :class:`InputError` naming the first record with characters that are never residues."""
    cleaned, reasons = [], []
    for rid, seq in zip(ids, sequences):
        new, reason = clean_sequence(seq, nonstandard=nonstandard)
        if reason == "invalid" and on_invalid == "raise":
            bad = sorted(set(new) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
            raise InputError(f"record {rid!r}: sequence holds characters that are not residues {bad}; "
                             "fix the input or pass on_invalid='drop'")
        cleaned.append(new)
        reasons.append(reason)
    return cleaned, reasons


def _without_text(frame: pd.DataFrame, reasons: list[str | None]) -> list[str | None]:
    """``reasons`` with ``no_text`` for each record not yet dropped whose ``text`` is blank."""
    if "text" not in frame.columns:
        raise InputError(f"require_text=True but the table has no 'text' column (columns: {list(frame.columns)})")
    texts = [t if isinstance(t, str) else "" for t in frame["text"].tolist()]
    return [r if r is not None or t.strip() else "no_text" for r, t in zip(reasons, texts)]


def _judge_records(frame: pd.DataFrame, cleaned: list[str], lengths: np.ndarray, reasons: list[str | None], *,
                   min_length: int, max_length: int | None, max_x_fraction: float, dedup: bool) -> int:
    """Fills in (in place) the reasons of the X-fraction, length and duplicate filters for the
    records still kept, in order; returns how many duplicates carry another label than the
    record they duplicate."""
    x_frac = np.array([s.count("X") / len(s) if s else 0.0 for s in cleaned])
    seen_seq: dict[str, int] = {}
    seen_id: dict[str, str] = {}
    labels = frame["label"].tolist() if "label" in frame.columns else [None] * len(frame)
    conflicts = 0
    for i, (rid, seq) in enumerate(zip(frame["id"].astype(str).tolist(), cleaned)):
        if reasons[i] is not None:
            continue
        if x_frac[i] > max_x_fraction:
            reasons[i] = "too_many_x"
        elif lengths[i] < min_length:
            reasons[i] = "too_short"
        elif max_length is not None and lengths[i] > max_length:
            reasons[i] = "too_long"
        elif dedup and seq in seen_seq:
            reasons[i] = "duplicate"
            conflicts += labels[seen_seq[seq]] != labels[i]
        elif rid in seen_id and seen_id[rid] != seq:
            reasons[i] = "duplicate_id"
        else:
            seen_seq.setdefault(seq, i)
            seen_id[rid] = seq
    return conflicts


def _curation_report(frame: pd.DataFrame, reasons: pd.Series, changed: list[bool], conflicts: int,
                     settings: dict) -> dict:
    """The JSON-able report: records in and kept, drops by reason with example ids, and more."""
    return {
        "input": int(len(frame)),
        "kept": int(reasons.isna().sum()),
        "dropped": {r: int((reasons == r).sum()) for r in REASONS},
        "examples": {r: frame.loc[reasons == r, "id"].astype(str).head(MAX_EXAMPLES).tolist()
                     for r in REASONS if (reasons == r).any()},
        "modified": int(sum(changed)),
        "duplicate_label_conflicts": int(conflicts),
        "settings": settings,
    }


def curate(frame: pd.DataFrame, *, min_length: int = 20, max_length: int | None = None,
           nonstandard: str = "replace_x", max_x_fraction: float = 0.1, dedup: bool = True,
           on_invalid: str = "raise", require_text: bool = False) -> tuple[pd.DataFrame, dict]:
    """Apply the residue policy and filters of the module docstring.

    ``on_invalid="raise"`` (default) raises :class:`InputError` for a sequence holding
    characters that are never residues; ``"drop"`` drops such records (reason ``invalid``).
    ``require_text=True`` drops records whose ``text`` is blank (reason ``no_text``): a pair
    without text gives 03 nothing to align.
    Returns ``(kept, report)``; ``kept`` has a fresh index and a ``length`` column.
    """
    _check_settings(frame, min_length=min_length, max_length=max_length, nonstandard=nonstandard,
                    max_x_fraction=max_x_fraction, on_invalid=on_invalid)
    original = frame["sequence"].tolist()
    cleaned, reasons = _clean_sequences(frame["id"].tolist(), original, nonstandard=nonstandard,
                                        on_invalid=on_invalid)
    lengths = np.fromiter((len(s) for s in cleaned), dtype=int, count=len(cleaned))
    if require_text:
        reasons = _without_text(frame, reasons)
    conflicts = _judge_records(frame, cleaned, lengths, reasons, min_length=min_length, max_length=max_length,
                               max_x_fraction=max_x_fraction, dedup=dedup)

    reasons_s = pd.Series(reasons, index=frame.index, dtype=object)
    keep = reasons_s.isna().to_numpy()
    kept = frame.loc[keep].copy()
    kept["sequence"] = [s for s, k in zip(cleaned, keep) if k]
    kept["length"] = lengths[keep]
    kept = kept.reset_index(drop=True)
    changed = [str(o) != c for o, c, k in zip(original, cleaned, keep) if k]
    settings = {"min_length": min_length, "max_length": max_length, "nonstandard": nonstandard,
                "max_x_fraction": max_x_fraction, "dedup": dedup, "on_invalid": on_invalid}
    return kept, _curation_report(frame, reasons_s, changed, conflicts, settings)


def load_source(source: str, *, n_families: int = 8, members_per_family: int = 40, seed: int = 0,
                label_regex: str | None = None, label_field: str | int | None = None,
                max_records: int | None = None, format: str = "auto", id_column: str = "id",
                sequence_column: str = "sequence", text_column: str | None = None) -> tuple[pd.DataFrame, str]:
    """The raw proteins table of ``source`` and its kind (``"toy"`` or the file format).

    ``source="toy"`` draws the toy universe (``n_families``, ``members_per_family``,
    ``seed``); anything else is a file path read by
    :func:`protlab.curate.formats.read_proteins` (format auto-detected; the ``*_column``
    options name a table's columns). ``max_records``
    keeps a seeded random subset of at most that many records.
    """
    if str(source) == "toy":
        frame, kind = make_universe(n_families, members_per_family, seed=seed).proteins, "toy"
    else:
        kind = detect_format(source) if format == "auto" else format
        frame = read_proteins(source, format=kind, label_regex=label_regex, label_field=label_field,
                              id_column=id_column, sequence_column=sequence_column, text_column=text_column)
        if frame.empty:
            raise InputError(f"{source}: no proteins were read; check the file and its format ({kind})")
    if max_records is not None:
        if int(max_records) < 1:
            raise InputError(f"max_records={max_records} must be ≥ 1 (or None for all)")
        if len(frame) > max_records:
            frame = frame.sample(n=int(max_records), random_state=seed).sort_index()
    return frame.reset_index(drop=True), kind


def require_proteins(frame: pd.DataFrame, report: dict, *, source: str, step: str) -> pd.DataFrame:
    """``frame`` unchanged, or an :class:`InputError` saying which step left no proteins."""
    if len(frame) == 0:
        dropped = {k: v for k, v in report.get("dropped", report).items() if isinstance(v, int) and v}
        raise InputError(f"{source}: no proteins left after {step} (dropped: {dropped}); "
                         "loosen the filters (min_length, max_length, nonstandard, max_x_fraction) "
                         "or turn protclip_sampling off")
    return frame
