"""Speed and memory of 07's Potts fit at the size the field's alignments have: 4 000 sequences
of 400 modelled columns, ``potts_iterations`` at the stage default, on this machine's CPU cores.

The alignment is synthetic (a root sequence with 40 % of its residues resampled per row, gaps
included): the fit's cost depends on its shape and the number of L-BFGS evaluations, not on the
biology. Reports fit seconds, evaluations, seconds per evaluation and the peak RSS.

    python benchmarks/bench_potts_fit.py [--sequences 4000] [--columns 400]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from records import peak_rss_gib, write_record

from protlab.variants.alignment import Q, Alignment
from protlab.variants.scorers import fit_potts
from protlab.variants.stage import STAGE


def synthetic_alignment(sequences: int, columns: int, *, seed: int = 0, resampled: float = 0.4) -> Alignment:
    rng = np.random.default_rng(seed)
    codes = np.tile(rng.integers(1, Q, columns), (sequences, 1))
    changed = rng.random((sequences, columns)) < resampled
    codes[changed] = rng.integers(0, Q, int(changed.sum()))
    return Alignment(path="synthetic", names=[str(i) for i in range(sequences)], codes=codes.astype(np.int8),
                     positions=np.arange(columns), weights=np.ones(sequences))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4000)
    parser.add_argument("--columns", type=int, default=400)
    parser.add_argument("--potts-iterations", type=int, default=STAGE.by_name["potts_iterations"].default)
    args = parser.parse_args(argv)
    aln = synthetic_alignment(args.sequences, args.columns)
    start = time.perf_counter()
    model = fit_potts(aln, iterations=args.potts_iterations)
    seconds = time.perf_counter() - start
    results = {"fit_s": round(seconds, 1), "evaluations": model.info["evaluations"],
               "s_per_evaluation": round(seconds / max(model.info["evaluations"], 1), 2),
               "peak_rss_gib": peak_rss_gib(), "cpu_cores": len(os.sched_getaffinity(0))}
    print(results)
    write_record("bench_potts_fit", params=vars(args), results=results,
                 title="07's Potts pseudo-likelihood fit: time and peak memory on a synthetic alignment of the "
                       "field's size, on CPU.",
                 notes="Target: 4 000 × 400 within 10 minutes and 6 GB on 2 CPU cores.")


if __name__ == "__main__":
    main()
