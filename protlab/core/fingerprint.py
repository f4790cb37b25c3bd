"""Fingerprints that tie an artifact to the inputs it was made from (SHA-256)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of a directory's files (relative names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def proteins_fingerprint(ids: Iterable, sequences: Iterable) -> str:
    """SHA-256 of (id, sequence) pairs in order: what every later artifact depends on."""
    h = hashlib.sha256()
    for pid, seq in zip(ids, sequences):
        h.update(f"{pid}\t{seq}\n".encode())
    return h.hexdigest()
