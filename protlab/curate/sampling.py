"""ProtCLIP property-driven sampling and the protein text built from UniProt properties.

The text of an entry joins the four properties DESIGN.md names, in this order, over the
fields that are occupied (not missing, not blank)::

    PROTEIN NAME: …; FUNCTION: …; SUBCELLULAR LOCATION: …; SIMILARITY: …

Property-driven sampling (ProtCLIP, AAAI 2025) keeps an entry with probability

    p = sqrt(occupied_fields / 4) / C**3

where ``C`` is the UniProt protein-existence level (1 = evidence at protein level …
5 = uncertain). Entries with fewer than 3 occupied fields, with ``C > 3`` or with no
existence level are dropped outright (p = 0). The draw is seeded.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from protlab.core.errors import InputError
from protlab.curate.records import TEXT_FIELDS

TEXT_TITLES = {"protein_name": "PROTEIN NAME", "function": "FUNCTION",
               "subcellular_location": "SUBCELLULAR LOCATION", "similarity": "SIMILARITY"}
MIN_FIELDS = 3
MAX_EXISTENCE = 3


def occupied(value) -> bool:
    """True for a non-missing, non-blank field value."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if value is pd.NA:
        return False
    return bool(str(value).strip())


def build_text(fields) -> str:
    """``PROTEIN NAME: …; FUNCTION: …; …`` over the occupied fields of a mapping/row."""
    return "; ".join(f"{TEXT_TITLES[key]}: {str(fields.get(key)).strip()}"
                     for key in TEXT_FIELDS if occupied(fields.get(key)))


def occupied_fields(frame: pd.DataFrame) -> np.ndarray:
    """Number of the four text fields occupied in each row (absent columns count as empty)."""
    counts = np.zeros(len(frame), dtype=int)
    for key in TEXT_FIELDS:
        if key in frame.columns:
            counts += np.fromiter((occupied(v) for v in frame[key]), dtype=bool, count=len(frame))
    return counts


def keep_probability(n_fields, existence) -> np.ndarray:
    """ProtCLIP keep probability ``sqrt(n_fields/4) / C**3``; 0 when n_fields < 3 or C > 3.

    Works on scalars and arrays; a missing existence level (NaN/None) gives 0.
    """
    n = np.asarray(n_fields, dtype=float)
    c = np.asarray(pd.to_numeric(pd.Series(np.atleast_1d(existence)), errors="coerce"), dtype=float)
    c = c.reshape(np.shape(existence)) if np.ndim(existence) else c[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.sqrt(n / 4.0) / np.power(c, 3)
    ok = (n >= MIN_FIELDS) & (c >= 1) & (c <= MAX_EXISTENCE) & np.isfinite(c)
    return np.where(ok, p, 0.0)


def protclip_annotate(frame: pd.DataFrame, *, seed: int = 0, existence_column: str = "existence"):
    """ProtCLIP property-driven sampling as columns, nothing deleted: ``(frame, report)``.

    The frame gains ``text`` (rebuilt from the fields), ``n_fields``, ``keep_p`` and
    ``protclip_selected`` (the seeded draw ``random < keep_p``); 03 pretrains on the selected
    pairs, while 02 / 04 / 05 see every protein. The report counts entries unselected for too
    few fields, for existence > 3 or missing, and by the random draw.
    """
    if existence_column not in frame.columns:
        raise InputError(f"ProtCLIP sampling needs an {existence_column!r} column (UniProt 'PE' line); "
                         "turn protclip_sampling off for inputs without one")
    frame = frame.copy()
    n_fields = occupied_fields(frame)
    existence = pd.to_numeric(frame[existence_column], errors="coerce").to_numpy(dtype=float)
    p = keep_probability(n_fields, existence)
    draw = np.random.default_rng(seed).random(len(frame))
    keep = draw < p
    frame["text"] = [build_text(row) for row in frame[list(c for c in TEXT_FIELDS if c in frame.columns)]
                     .to_dict("records")]
    frame["n_fields"] = n_fields
    frame["keep_p"] = p
    frame["protclip_selected"] = keep
    few = n_fields < MIN_FIELDS
    bad_c = ~few & ~((existence >= 1) & (existence <= MAX_EXISTENCE))
    report = {
        "input": int(len(frame)),
        "kept": int(keep.sum()),
        "dropped_fewer_than_3_fields": int(few.sum()),
        "dropped_existence_above_3_or_missing": int(bad_c.sum()),
        "dropped_by_draw": int((~keep & ~few & ~bad_c).sum()),
        "expected_kept": float(p.sum()),
        "seed": seed,
    }
    return frame, report


def protclip_sample(frame: pd.DataFrame, *, seed: int = 0, existence_column: str = "existence"):
    """The entries :func:`protclip_annotate` selects: ``(kept_frame, report)``."""
    annotated, report = protclip_annotate(frame, seed=seed, existence_column=existence_column)
    return annotated.loc[annotated["protclip_selected"]].reset_index(drop=True), report
