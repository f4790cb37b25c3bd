"""ESM-2 embedding extraction (:class:`ESMEncoder`): length-sorted batches, windows for long
sequences, a resumable cache, torchrun shards.

* Per-protein embedding = mean over residue positions (BOS, EOS and padding excluded) of the
  chosen representation layer (``repr_layer``, default the last, after the final layer norm
  exactly as fair-esm returns it); ``per_residue=True`` returns one ``(L, dim)`` array each.
* Sequences are sorted by length and packed into batches of at most ``toks_per_batch``
  padded tokens (fair-esm's rule). Defaults per device: :data:`DEFAULT_TOKS_PER_BATCH`.
* The forward pass runs under ``torch.inference_mode``, stops at ``repr_layer``, skips the
  LM head and attention-weight averaging, and uses fused scaled-dot-product attention
  (:mod:`protlab.esm.fused`, shared with 03's training step); on
  CUDA it runs under bf16 autocast. Results equal fair-esm's own forward within 1e-5 in
  float32 (tested). On the CPU, ``cpu_workers`` batches (default: the usable cores) run
  concurrently, each single-threaded: small matrix products scale badly across threads.
* **Long sequences.** ESM-2 saw at most 1022 residues (+BOS/EOS). A longer sequence is cut
  into windows of ``window`` (1022) residues whose starts are ``stride`` (511) apart, the
  last window aligned to the sequence end; each window gets its own BOS/EOS and is embedded
  like a short protein; a residue's representation is the mean over every window covering
  it (equal weights); the per-protein embedding is the mean of those residue vectors.
  Nothing is truncated.
* **Cache.** With ``cache_dir``, results are stored per model (hash of the weights and the
  extraction settings) and per sequence (SHA-1) in atomically written shards, flushed after
  every batch that finishes a sequence (``flush_every`` sequences or ``flush_seconds``, when
  raised, write fewer shards), when a run stops on an exception and on SIGTERM; a kill loses
  at most the batches in flight and a rerun embeds only what is missing (see
  :mod:`protlab.embed.cache`).
* **torchrun.** When ``WORLD_SIZE > 1``, rank r embeds every WORLD_SIZE-th missing sequence
  (length-sorted, so ranks get similar work) on ``cuda:LOCAL_RANK`` and writes its shards
  into the shared cache; rank 0 waits for every rank's marker, merges the shards and returns
  the embeddings; the other ranks return ``None``. Ranks coordinate through files only (no
  process group). ``python -m protlab.embed`` is the command-line entry
  (``torchrun --nproc-per-node 4 -m protlab.embed --run-dir RUN --encoder esm2_t33_650M_UR50D``).
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from protlab.core.errors import InputError
from protlab.core.progress import progress_bar
from protlab.core.runtime import bf16_autocast, dist_env, pick_device
from protlab.core.windows import sliding_windows
from protlab.embed.cache import EmbeddingCache, sequence_key, sigterm_as_exit
from protlab.embed.sequences import clean_sequences
from protlab.esm.fused import esm_layer_representation

# Padded tokens per batch. On the CPU small batches, run concurrently on single-threaded
# workers, are fastest (benchmarks/bench_embed_speed.py --sweep measures it); a GPU wants
# large batches.
DEFAULT_TOKS_PER_BATCH = {"cpu": 512, "cuda": 16384, "mps": 4096}
WINDOW = 1022
STRIDE = 511


def length_batches(lengths: Sequence[int], toks_per_batch: int, *, extra_toks: int = 2) -> list[list[int]]:
    """Indices grouped by length (longest first) so ``max_len * n_seqs <= toks_per_batch``.

    A sequence longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, buf, max_len = [], [], 0
    for i in order:
        size = lengths[i] + extra_toks
        if buf and max(max_len, size) * (len(buf) + 1) > toks_per_batch:
            batches.append(buf)
            buf, max_len = [], 0
        buf.append(i)
        max_len = max(max_len, size)
    if buf:
        batches.append(buf)
    return batches


def default_cpu_workers() -> int:
    """Batches embedded concurrently on the CPU: the usable cores (shared among local ranks), at most 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(16, cores // max(1, local_world)))


class ESMEncoder:
    """Batched, cached ESM-2 embedding extraction (see the module docstring)."""

    per_residue_supported = True

    def __init__(self, model, alphabet, *, name: str = "esm2", spec: Any = None, repr_layer: int | None = None,
                 device: str | None = None, toks_per_batch: int | None = None, window: int = WINDOW,
                 stride: int = STRIDE, autocast: bool | None = None, flush_every: int = 1,
                 flush_seconds: float = 10.0, cpu_workers: int | None = None):
        import torch

        self.name, self.spec = name, spec
        self.num_layers = int(model.num_layers)
        self.layer = self._resolve_layer(repr_layer)
        self.dim = int(model.embed_dim)
        self.device = pick_device(device)
        env = dist_env()
        if env.world > 1 and self.device == "cuda":
            self.device = f"cuda:{env.local_rank}"
        kind = self.device.split(":")[0]
        self.toks_per_batch = int(toks_per_batch or DEFAULT_TOKS_PER_BATCH.get(kind, 1024))
        if self.toks_per_batch < 3:
            raise InputError(f"toks_per_batch={toks_per_batch} is too small; use at least a few hundred")
        if not 1 <= stride <= window or window > 1022 or window < 1:
            raise InputError(f"need 1 <= stride <= window <= 1022 (got window={window}, stride={stride})")
        self.window, self.stride = int(window), int(stride)
        self.autocast = (kind == "cuda") if autocast is None else bool(autocast)
        self.flush_every, self.flush_seconds = int(flush_every), float(flush_seconds)
        self.cpu_workers = (default_cpu_workers() if cpu_workers is None else max(1, int(cpu_workers))) \
            if kind == "cpu" else 1
        self._count_lock = threading.Lock()
        self.model = model.eval().to(self.device)
        self.alphabet = alphabet
        self._lut = self._token_table(alphabet)
        self.forward_calls = 0
        self.embedded = 0
        self._cache_key: str | None = None
        self._torch = torch

    def __repr__(self) -> str:
        return (f"ESMEncoder({self.name!r}, layers={self.num_layers}, dim={self.dim}, layer={self.layer}, "
                f"device={self.device!r}, toks_per_batch={self.toks_per_batch})")

    def _resolve_layer(self, repr_layer):
        if repr_layer is None:
            return self.num_layers
        layer = int(repr_layer)
        if layer < 0:
            layer += self.num_layers + 1
        if not 0 <= layer <= self.num_layers:
            raise InputError(f"repr_layer={repr_layer} is outside 0..{self.num_layers} (or -1..-{self.num_layers + 1}) "
                             f"for this {self.num_layers}-layer model")
        return layer

    @staticmethod
    def _token_table(alphabet) -> np.ndarray:
        lut = np.full(256, -1, dtype=np.int64)
        for tok, idx in alphabet.tok_to_idx.items():
            if len(tok) == 1:
                lut[ord(tok)] = idx
        return lut

    @property
    def cache_key(self) -> str:
        """Hash of the weights plus everything that changes the numbers (layer, windows, precision)."""
        if self._cache_key is None:
            torch = self._torch
            h = hashlib.sha256()
            for key, tensor in sorted(self.model.state_dict().items()):
                h.update(key.encode())
                h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            slug = "".join(c if c.isalnum() else "_" for c in self.name)[:40]
            precision = "bf16" if self.autocast else "fp32"
            self._cache_key = f"{slug}-{h.hexdigest()[:16]}-L{self.layer}-w{self.window}s{self.stride}-{precision}"
        return self._cache_key

    def meta(self) -> dict:
        return {"encoder": self.name, "dim": self.dim, "layer": self.layer, "num_layers": self.num_layers,
                "window": self.window, "stride": self.stride, "cache_key": self.cache_key,
                "precision": "bf16" if self.autocast else "fp32"}

    # ---------------------------------------------------------------- forward
    def tokens(self, residues: Sequence[str]):
        """``(B, T)`` token tensor: BOS + residues + EOS, padded."""
        torch = self._torch
        a = self.alphabet
        width = max(len(s) for s in residues) + 2
        out = np.full((len(residues), width), a.padding_idx, dtype=np.int64)
        for i, s in enumerate(residues):
            out[i, 0] = a.cls_idx
            out[i, 1:len(s) + 1] = self._lut[np.frombuffer(s.encode("ascii"), dtype=np.uint8)]
            out[i, len(s) + 1] = a.eos_idx
        return torch.from_numpy(out)

    def representations(self, tokens):
        """Layer ``self.layer`` for a token batch, ``(B, T, dim)`` float32 on the CPU."""
        torch = self._torch
        with self._count_lock:
            self.forward_calls += 1
        tokens = tokens.to(self.device, non_blocking=True)
        with torch.inference_mode():
            with bf16_autocast(self.device, self.autocast):
                reps = esm_layer_representation(self.model, tokens, self.layer)
            return reps.float().cpu()

    # ------------------------------------------------------------------ embed
    def embed(self, sequences, *, per_residue: bool = False, ids: Sequence | None = None,
              cache_dir: str | Path | None = None, progress: bool = True):
        """Embeddings of ``sequences``: ``(n, dim)`` float32, or a list of ``(L, dim)`` arrays.

        Under torchrun (``WORLD_SIZE > 1``) only rank 0 returns them; other ranks return None.
        """
        seqs = clean_sequences(sequences, ids)
        keys = [sequence_key(s) for s in seqs]
        env = dist_env()
        rank, world = env.rank, env.world
        if world > 1 and cache_dir is None:
            raise InputError(f"WORLD_SIZE={world}: sharded embedding needs a cache_dir on a filesystem all ranks share")
        cache = None
        if cache_dir is not None:
            key = self.cache_key + ("-residue" if per_residue else "")
            cache = EmbeddingCache(cache_dir, key, describe={"encoder": self.name, "spec": str(self.spec),
                                                            **self.meta(), "per_residue": per_residue})
        results: dict[str, np.ndarray] = {}
        unique = dict(zip(keys, seqs))
        mine = sorted(unique, key=lambda k: (-len(unique[k]), k))
        job = None
        if world > 1:  # the split depends only on the input, never on what a rank finds cached
            job = hashlib.sha1(("\n".join(sorted(unique)) + f"|{world}").encode()).hexdigest()[:12]
            mine = mine[rank::world]
        needed = {row for row, k in enumerate(mine) if cache is None or k not in cache}
        if needed:
            with sigterm_as_exit():  # SIGTERM ends the run through _embed_missing's flush
                self._embed_missing([unique[k] for k in mine], mine, needed, per_residue, cache, results,
                                    progress=progress, tag=f"r{rank}")
        if world > 1:
            cache.mark_done(job, rank)
            if rank != 0:
                return None
            cache.wait_done(job, world)
            cache.refresh()
            cache.merge()
            cache.clear_done(job)
        elif cache is not None and len(cache.shards()) > 16:
            cache.merge()
        rows = [results[k] if k in results else cache.get(k) for k in keys]
        if per_residue:
            return [np.array(r, dtype=np.float32) for r in rows]
        return np.stack([r[0] for r in rows]).astype(np.float32, copy=False)

    def _embed_missing(self, seqs: list[str], keys: list[str], needed: set[int], per_residue: bool, cache,
                       results: dict, *, progress: bool, tag: str) -> None:
        """Embed the ``needed`` rows of ``seqs``. Batches are planned over every row, and a batch
        holding a needed row is computed whole, so a resumed run pads and batches each sequence
        as an uninterrupted one does and gives the same bits."""
        n_chunks, batches = self._plan_batches(seqs, needed)
        partial: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        ready_keys, ready_rows = [], []
        last_flush = time.monotonic()

        def finish(i: int, rows: np.ndarray) -> None:
            out = rows if per_residue else rows.mean(axis=0, keepdims=True)
            if not np.isfinite(out).all():
                raise InputError(f"the encoder produced NaN/inf for sequence {keys[i][:10]} (length {len(seqs[i])}); "
                                 f"the checkpoint's weights are probably broken (nothing was cached for it)")
            results[keys[i]] = out
            ready_keys.append(keys[i])
            ready_rows.append(out)

        def flush() -> None:
            nonlocal last_flush
            if cache is not None and ready_keys:
                cache.put(ready_keys, ready_rows, tag=tag)
            ready_keys.clear()
            ready_rows.clear()
            last_flush = time.monotonic()

        def compute(members):
            return self.representations(self.tokens([seqs[i][s:e] for i, s, e in members])).numpy()

        bar = progress_bar(total=len(needed), desc=f"embed {self.name}", unit="seq", disable=not progress,
                           leave=False)
        try:
            for members, reps in zip(batches, self._map_batches(compute, batches)):
                done = 0
                for row, (i, s, e) in enumerate(members):
                    if i not in needed:  # cached already; computed only to keep the batch as planned
                        continue
                    residues = reps[row, 1:e - s + 1]
                    if n_chunks[i] == 1:
                        finish(i, residues.copy() if per_residue else residues)
                        done += 1
                        continue
                    merged = self._merge_window(partial, i, s, e, residues, len(seqs[i]), n_chunks[i])
                    if merged is not None:
                        finish(i, merged)
                        done += 1
                if len(ready_keys) >= self.flush_every or time.monotonic() - last_flush >= self.flush_seconds:
                    flush()
                self.embedded += done
                bar.update(done)
        finally:  # an interrupted run keeps everything finished so far
            flush()
            bar.close()

    def _plan_batches(self, seqs: list[str], needed: set[int]) -> tuple[np.ndarray, list[list[tuple[int, int, int]]]]:
        """``(n_windows, batches)``: each row's window count, and the batches of ``(row, start,
        end)`` windows (planned over every row by :func:`length_batches`) that hold a needed row."""
        chunks = [(i, s, e) for i, seq in enumerate(seqs) for s, e in sliding_windows(len(seq), self.window, self.stride)]
        n_chunks = np.bincount([c[0] for c in chunks], minlength=len(seqs))
        batches = [[chunks[j] for j in batch]
                   for batch in length_batches([e - s for _, s, e in chunks], self.toks_per_batch)]
        batches = [batch for batch in batches if any(i in needed for i, _, _ in batch)]
        return n_chunks, batches

    def _merge_window(self, partial: dict, i: int, s: int, e: int, residues: np.ndarray, length: int,
                      n_windows: int) -> np.ndarray | None:
        """Add one window's residues ``s:e`` to row ``i``'s running sums in ``partial``; once its
        last window is in, the mean over the windows covering each residue (float32), else None."""
        total, count, left = partial.get(i) or (np.zeros((length, self.dim), np.float64),
                                                np.zeros(length, np.int64), n_windows)
        total[s:e] += residues
        count[s:e] += 1
        if left == 1:
            partial.pop(i, None)
            return (total / count[:, None]).astype(np.float32)
        partial[i] = (total, count, left - 1)
        return None

    def _map_batches(self, compute, batches):
        """``compute`` over ``batches`` in order; on the CPU, ``cpu_workers`` batches at a time.

        Small batches leave a multi-threaded matrix multiply waiting on thread
        synchronisation (badly so on a shared machine), so on the CPU protlab runs whole
        batches concurrently on single-threaded workers instead (``torch.set_num_threads(1)``
        while it runs, restored afterwards). Results are yielded in order.
        """
        if self.cpu_workers <= 1 or len(batches) <= 1:
            for batch in batches:
                yield compute(batch)
            return

        torch = self._torch
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        pool = ThreadPoolExecutor(self.cpu_workers, thread_name_prefix="protlab-embed")
        pending: deque = deque()
        todo = iter(batches)
        try:
            for batch in todo:
                pending.append(pool.submit(compute, batch))
                if len(pending) >= 2 * self.cpu_workers:
                    break
            while pending:
                result = pending.popleft().result()
                for batch in todo:
                    pending.append(pool.submit(compute, batch))
                    break
                yield result
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(threads)
