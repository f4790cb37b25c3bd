"""Homology transfer: each query protein takes the label of its best MMseqs2 hit among labelled
targets — the baseline a biologist reaches for before any learnt encoder.

A query without a hit (none passes MMseqs2's E-value bound) gets no prediction (None);
:func:`protlab.evaluate.probe.score_predictions` counts it as an error and in
``n_no_prediction``, so the baseline is scored on every query, not only on the easy ones.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from protlab.core.errors import InputError
from protlab.core.mmseqs import chunked_search


def best_hits(query_index, target_index, bits, n_queries: int) -> np.ndarray:
    """Per query (0 .. n_queries-1), the target with the highest bit score, or -1 without a hit.
    Equal scores go to the lower target index, so the answer does not depend on MMseqs2's output order."""
    query_index, target_index = np.asarray(query_index, dtype=np.int64), np.asarray(target_index, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.float64)
    if not len(query_index) == len(target_index) == len(bits):
        raise InputError(f"hits: {len(query_index)} query, {len(target_index)} target and {len(bits)} score entries")
    if len(query_index) and (query_index.min() < 0 or query_index.max() >= n_queries):
        raise InputError(f"hits: query indices outside 0..{n_queries - 1}")
    best = np.full(n_queries, -1, dtype=np.int64)
    order = np.lexsort((target_index, -bits, query_index))  # by query, then score down, then target up
    queries, first = np.unique(query_index[order], return_index=True)
    best[queries] = target_index[order][first]
    return best


def transfer_labels(query_ids, best: np.ndarray, target_labels) -> pd.Series:
    """``query id → label of its best target`` (None where ``best`` is -1)."""
    target_labels = list(target_labels)
    query_ids = [str(i) for i in query_ids]
    if len(query_ids) != len(best):
        raise InputError(f"query_ids: {len(query_ids)} ids for {len(best)} queries")
    return pd.Series([target_labels[b] if b >= 0 else None for b in best], index=query_ids, dtype=object)


def homology_transfer(query_ids, query_sequences, target_sequences, target_labels, *, threads: int | None = None,
                      sensitivity: float = 5.7, evalue: float = 1e-3, max_seqs: int = 300,
                      chunk_size: int = 2000) -> tuple[pd.Series, dict]:
    """``(predictions, counts)``: the label of each query's best hit among the targets
    (``mmseqs search`` with these settings, queries ``chunk_size`` at a time) and how many
    queries had a hit."""
    query_sequences, target_sequences = list(query_sequences), list(target_sequences)
    target_labels = list(target_labels)
    if len(target_labels) != len(target_sequences):
        raise InputError(f"target_labels: {len(target_labels)} labels for {len(target_sequences)} target sequences")
    parts = list(chunked_search(query_sequences, target_sequences, chunk_size=chunk_size, threads=threads,
                                sensitivity=sensitivity, max_seqs=max_seqs, evalue=evalue))
    hits = [np.concatenate([p[k] for p in parts]) for k in range(3)]
    best = best_hits(*hits, n_queries=len(query_sequences))
    with_hit = int((best >= 0).sum())
    counts = {"n_queries": len(query_sequences), "n_with_hit": with_hit,
              "share_without_hit": 1 - with_hit / len(query_sequences) if query_sequences else None}
    return transfer_labels(query_ids, best, target_labels), counts
