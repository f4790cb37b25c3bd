"""Precision@k of residue scores against a known site, and its expectation for random picks."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from protlab.core.errors import InputError


def precision_at_k(scores: np.ndarray, site: Sequence[int], k: int) -> float:
    """Fraction of the k highest-scoring residues that are in ``site``."""
    if k < 1:
        raise InputError(f"k={k}: must be >= 1")
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]
    return float(np.isin(top, np.asarray(list(site), dtype=int)).mean())


def random_precision_at_k(length: int, site: Sequence[int], k: int) -> float:
    """Expected precision@k of k residues drawn at random: |site| / L."""
    return len(set(site)) / float(length)
