"""Embedding speed: fair-esm's own batched path vs protlab, same sequences, same model.

The model is a randomly initialised ESM-2 with the real 8M architecture (6 layers, 320
dims, 20 heads). fair-esm's path is what ``esm/scripts/extract.py`` does:
``FastaBatchedDataset`` + ``get_batch_indices(toks_per_batch=4096, extra_toks_per_seq=1)``
+ its batch converter (truncation 1022) + ``model(tokens, repr_layers=[6])`` under
``torch.no_grad`` + mean pooling ``t[i, 1:len+1].mean(0)``. protlab's path is
``ESMEncoder.embed`` with its per-device defaults (no cache). Runs are interleaved and
repeated; the table shows the best and median wall time, CPU time, and the peak resident
memory increase during each run (``/proc/self/statm`` sampled every 2 ms). It checks that the
embeddings agree within 1e-5 and prints the speed ratio.

    .venv/bin/python benchmarks/bench_embed_speed.py [--n 300] [--repeats 3] [--sweep]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from records import peak_rss_gib, write_record  # noqa: E402
DEFAULT_FASTA = Path(os.environ.get("PROTLAB_SHARED_DATA", REPO.parent / "shared" / "data")) / "pfam" / "pfam_shared_labeled.fasta"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", default=str(DEFAULT_FASTA))
    parser.add_argument("--n", type=int, default=300, help="sequences sampled (seeded) from the FASTA file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--fair-toks", type=int, default=4096)
    parser.add_argument("--toks", type=int, default=None, help="protlab toks_per_batch (default: its CPU default)")
    parser.add_argument("--sweep", action="store_true",
                        help="also time protlab at several toks_per_batch, and with cpu_workers=1")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def read_fasta(path: Path, n: int, seed: int) -> list[tuple[str, str]]:
    if not path.is_file():
        sys.exit(f"{path} not found: pass --fasta (real Pfam sequences live in ../shared/data/pfam/)")
    records, name, chunks = [], None, []
    with open(path) as fh:
        for line in fh:
            if line.startswith(">"):
                if name is not None:
                    records.append((name, "".join(chunks)))
                name, chunks = line[1:].split()[0], []
            else:
                chunks.append(line.strip())
    if name is not None:
        records.append((name, "".join(chunks)))
    return random.Random(seed).sample(records, min(n, len(records)))


class PeakRSS:
    """Peak resident-set increase (bytes) while the block runs, sampled from /proc/self/statm."""

    def __enter__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.increase = self.peak - self.base


def fair_esm_path(model, alphabet, records, toks_per_batch: int) -> tuple[np.ndarray, int]:
    """fair-esm's extract.py: FastaBatchedDataset + get_batch_indices + mean pooling."""
    from esm.data import FastaBatchedDataset

    dataset = FastaBatchedDataset([r[0] for r in records], [r[1] for r in records])
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(dataset, collate_fn=alphabet.get_batch_converter(1022),
                                         batch_sampler=batches)
    layer = model.num_layers
    out = {}
    with torch.no_grad():
        for labels, strs, toks in loader:
            result = model(toks, repr_layers=[layer], return_contacts=False)
            reps = result["representations"][layer]
            for i, label in enumerate(labels):
                truncate_len = min(1022, len(strs[i]))
                out[label] = reps[i, 1:truncate_len + 1].mean(0).clone()
    return np.stack([out[r[0]].numpy() for r in records]), len(batches)


def protlab_path(model, alphabet, records, toks_per_batch: int | None, cpu_workers: int | None = None):
    from protlab.embed.esm_encoder import ESMEncoder

    enc = ESMEncoder(model, alphabet, name="esm2_t6_8M-random", device="cpu", toks_per_batch=toks_per_batch,
                     cpu_workers=cpu_workers)
    emb = enc.embed([r[1] for r in records], progress=False)
    return emb, enc.forward_calls


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    with PeakRSS() as mem:
        result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu, mem.increase


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from protlab.embed.esm_encoder import DEFAULT_TOKS_PER_BATCH
    from protlab.esm.load import new_esm

    records = read_fasta(Path(args.fasta), args.n, args.seed)
    lengths = [len(s) for _, s in records]
    model, alphabet = new_esm({"num_layers": 6, "embed_dim": 320, "attention_heads": 20}, seed=args.seed)
    toks = args.toks or DEFAULT_TOKS_PER_BATCH["cpu"]
    print(f"{len(records)} sequences from {args.fasta} (length {min(lengths)}-{max(lengths)}, "
          f"median {int(np.median(lengths))}, {sum(lengths)} residues); ESM-2 8M architecture, random "
          f"weights; torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    paths = {f"fair-esm (toks_per_batch={args.fair_toks})": lambda: fair_esm_path(model, alphabet, records, args.fair_toks),
             f"protlab (toks_per_batch={toks})": lambda: protlab_path(model, alphabet, records, toks)}
    if args.sweep:
        for t in (512, 2048, 4096):
            if t != toks:
                paths[f"protlab (toks_per_batch={t})"] = (lambda t=t: protlab_path(model, alphabet, records, t))
        # the same forward without concurrent single-threaded batches (torch's own threading)
        paths[f"protlab ({toks}, cpu_workers=1)"] = lambda: protlab_path(model, alphabet, records, toks, 1)
    warm = records[:8]
    fair_esm_path(model, alphabet, warm, args.fair_toks)
    protlab_path(model, alphabet, warm, toks)
    runs = {name: [] for name in paths}
    outputs = {}
    for _ in range(args.repeats):  # interleaved, so machine load hits every path alike
        for name, fn in paths.items():
            (emb, batches), wall, cpu, mem = timed(fn)
            runs[name].append((wall, cpu, mem, batches))
            outputs[name] = emb
    reference = outputs[next(iter(paths))]
    print(f"\n{'path':34s} {'batches':>7s} {'best s':>8s} {'median s':>9s} {'CPU s':>7s} {'seq/s':>7s} "
          f"{'peak RSS +MB':>12s} {'max |diff|':>11s}")
    best, table = {}, []
    for name, rows in runs.items():
        walls = [r[0] for r in rows]
        best[name] = min(walls)
        diff = float(np.abs(outputs[name] - reference).max())
        table.append({"path": name, "batches": rows[0][3], "best s": min(walls), "median s": statistics.median(walls),
                      "CPU s": min(r[1] for r in rows), "seq/s": len(records) / min(walls),
                      "peak RSS +MB": max(r[2] for r in rows) / 2**20, "max |diff|": diff})
        print(f"{name:34s} {rows[0][3]:7d} {min(walls):8.2f} {statistics.median(walls):9.2f} "
              f"{min(r[1] for r in rows):7.2f} {len(records) / min(walls):7.1f} "
              f"{max(r[2] for r in rows) / 2**20:12.1f} {diff:11.2e}")
    fair_name, ours_name = list(paths)[:2]
    diff = float(np.abs(outputs[ours_name] - reference).max())
    ratio = best[fair_name] / best[ours_name]
    median_ratio = statistics.median(r[0] for r in runs[fair_name]) / statistics.median(r[0] for r in runs[ours_name])
    print(f"\nprotlab vs fair-esm: {ratio:.2f}x faster (best of {args.repeats}), {median_ratio:.2f}x (median); "
          f"embeddings agree to {diff:.1e} ({'OK' if diff <= 1e-5 else 'MISMATCH'}, tolerance 1e-5); "
          f"target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'}")
    variant = "-".join([f"n={args.n}", *([f"threads={args.threads}"] if args.threads else []),
                        *(["sweep"] if args.sweep else [])])
    write_record("bench_embed_speed", params=vars(args), variant=variant,
                 title=f"ESM-2 embedding speed on CPU: fair-esm's extract.py path vs protlab's ESMEncoder, "
                       f"{len(records)} real Pfam sequences, 8M architecture with random weights.",
                 notes=f"Both paths run interleaved in one process, {args.repeats} times each; the speed-up is the "
                       "ratio of their best (or median) wall times; peak RSS +MB: the increase during a run; "
                       "max |diff|: largest embedding difference from fair-esm's.",
                 table=table,
                 results={"speedup_best": ratio, "speedup_median": median_ratio, "max_abs_diff": diff,
                          "embeddings_agree": diff <= 1e-5, "sequences": len(records), "residues": sum(lengths),
                          "torch_threads": torch.get_num_threads(), "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
