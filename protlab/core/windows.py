"""The one sliding-window helper: overlapping residue ranges covering a long sequence.

Used by 02 (ESM-2 saw at most 1022 residues: longer proteins are embedded window by window)
and 03 (held-out proteins longer than the crop are encoded window by window).
"""
from __future__ import annotations


def sliding_windows(length: int, window: int, stride: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of ``window`` residues, starts ``stride`` apart (default
    ``window // 2``), the last aligned to the sequence end; one range when it fits."""
    if window < 1:
        raise ValueError(f"window={window}: must be at least 1")
    stride = stride or max(1, window // 2)
    if length <= window:
        return [(0, length)]
    starts = list(range(0, length - window, stride)) + [length - window]
    return [(s, s + window) for s in starts]
