"""Sequences as the encoders take them: gaps and whitespace removed, upper case, checked."""
from __future__ import annotations

import math
from typing import Sequence

from protlab.core.alphabet import EXTENDED
from protlab.core.errors import InputError

_GAPS = str.maketrans("", "", "-.*\n\r\t ")
_VALID = EXTENDED - {"J"}


def clean_sequences(sequences, ids: Sequence | None = None) -> list[str]:
    """Upper-cased residue strings; alignment gaps (``-``, ``.``), ``*`` and whitespace removed.

    Raises :class:`InputError` naming the record for empty input, missing values (None/NaN),
    non-strings, empty sequences and characters that are not amino-acid codes.
    """
    if sequences is None:
        raise InputError("no sequences to embed: got None")
    seqs = list(sequences)
    if not seqs:
        raise InputError("no sequences to embed: the input is empty (check the proteins table / "
                         "FASTA file and any filters applied before embedding)")
    ids = [str(i) for i in ids] if ids is not None else None

    def where(i: int) -> str:
        return f"record {ids[i]!r} (row {i})" if ids is not None else f"row {i}"

    out = []
    for i, seq in enumerate(seqs):
        if seq is None or (isinstance(seq, float) and math.isnan(seq)):
            raise InputError(f"{where(i)}: sequence is missing (None/NaN); drop the row or fill in the sequence")
        if isinstance(seq, bytes):
            seq = seq.decode("ascii", "replace")
        if not isinstance(seq, str):
            raise InputError(f"{where(i)}: sequence is a {type(seq).__name__}, not a string")
        clean = seq.translate(_GAPS).upper()
        if not clean:
            raise InputError(f"{where(i)}: sequence is empty; drop the row")
        bad = set(clean) - _VALID
        if bad:
            pos = min(clean.index(c) for c in bad)
            raise InputError(f"{where(i)}: character {clean[pos]!r} at residue {pos + 1} is not an amino-acid "
                             f"code (allowed: {''.join(sorted(_VALID))} and gaps -.); fix or drop the record")
        out.append(clean)
    return out
