"""An on-disk embedding cache that survives a killed run.

Layout: ``cache_dir/<model key>/shard-*.npz``. The model key is a hash of the model's
weights and the extraction settings (layer, windows, precision); inside, each entry is
keyed by the SHA-1 of the (cleaned) sequence. The encoder writes a shard (atomically) after
every batch that finishes a sequence, so a run killed at any moment loses at most the
batches in flight, and a rerun embeds only the sequences no shard holds; SIGTERM first
writes what is finished (:func:`sigterm_as_exit`). A shard is cheap to write (no
fsync, see :meth:`EmbeddingCache.put`) beside a batch of a real model; the encoder
merges many shards into one at the end. A shard that cannot be read (it cannot be
half-written, but a disk can fail) is ignored with a warning: its sequences are embedded
again. :meth:`EmbeddingCache.merge` compacts all shards into one (rank 0 does this after a
``torchrun`` job).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np

from protlab.core.atomic import atomic_path, atomic_write_json
from protlab.core.errors import ProtlabError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def sigterm_as_exit():
    """While the block runs, SIGTERM raises ``SystemExit(143)`` in the main thread, so that
    ``finally`` blocks write the finished embeddings (by default SIGTERM ends the process at
    once). A handler the application installed itself is left alone; a second SIGTERM ends
    the process at once."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is stop:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def sequence_key(sequence: str) -> str:
    return hashlib.sha1(sequence.encode()).hexdigest()


class EmbeddingCache:
    """Per-model cache: ``get(keys)``, ``put(keys, arrays)``, ``merge()``."""

    def __init__(self, cache_dir: str | Path, model_key: str, *, describe: dict | None = None):
        self.dir = Path(cache_dir) / model_key
        self.dir.mkdir(parents=True, exist_ok=True)
        if describe is not None and not (self.dir / "model.json").exists():
            atomic_write_json(self.dir / "model.json", describe)
        self._entries: dict[str, np.ndarray] = {}
        self._seen: set[str] = set()
        self.refresh()

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.npz"))

    def refresh(self) -> None:
        """Read shards written since the last look (e.g. by other ranks)."""
        for shard in self.shards():
            if shard.name in self._seen:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, rows, offsets = data["keys"], data["rows"], data["offsets"]
                for i, key in enumerate(keys):
                    self._entries[str(key)] = rows[offsets[i]:offsets[i + 1]]
            except Exception as exc:  # unreadable shard: recompute its sequences
                log.warning("ignoring unreadable embedding cache shard %s (%s)", shard, exc)
            self._seen.add(shard.name)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> np.ndarray:
        return self._entries[key]

    def put(self, keys: Iterable[str], arrays: Iterable[np.ndarray], *, tag: str = "r0",
            durable: bool = False) -> Path | None:
        """Write one shard holding ``arrays`` (each ``(rows, dim)``) under ``keys``.

        Without ``durable`` there is no fsync: the rename survives a killed process, and a
        shard a power cut garbles fails its zip CRC check on reading and is recomputed."""
        keys, arrays = list(keys), [np.asarray(a, dtype=np.float32) for a in arrays]
        if not keys:
            return None
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([a.shape[0] for a in arrays])
        path = self.dir / f"shard-{tag}-{time.time_ns()}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_path(path, durable=durable) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.array(keys, dtype=str), rows=np.concatenate(arrays, axis=0),
                         offsets=offsets)
        self._seen.add(path.name)
        for key, array in zip(keys, arrays):
            self._entries[key] = array
        return path

    def merge(self) -> Path | None:
        """Compact every shard into one; the old shards are removed only after it is written."""
        self.refresh()
        old = [s for s in self.shards() if s.name in self._seen]
        if len(old) <= 1:
            return old[0] if old else None
        keys = sorted(self._entries)
        merged = self.put(keys, [self._entries[k] for k in keys], tag="merged", durable=True)  # replaces many
        for shard in old:
            if shard != merged:
                shard.unlink(missing_ok=True)
        return merged

    def mark_done(self, job: str, rank: int) -> None:
        atomic_write_json(self.dir / f"done-{job}-rank{rank}.json", {"rank": rank, "time": time.time()})

    def wait_done(self, job: str, world_size: int, *, timeout: float = 24 * 3600, poll: float = 2.0) -> None:
        """Block until every rank of ``job`` has written its marker."""
        deadline = time.monotonic() + timeout
        while True:
            done = {p.name for p in self.dir.glob(f"done-{job}-rank*.json")}
            if all(f"done-{job}-rank{r}.json" in done for r in range(world_size)):
                return
            if time.monotonic() > deadline:
                raise ProtlabError(f"ranks of embedding job {job} did not finish within {timeout:.0f} s "
                                   f"(markers present: {sorted(done)}) in {self.dir}")
            time.sleep(poll)

    def clear_done(self, job: str) -> None:
        for marker in self.dir.glob(f"done-{job}-rank*.json"):
            marker.unlink(missing_ok=True)


def describe_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
