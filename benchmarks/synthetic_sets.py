"""Synthetic family sets at any size (issue 12's 10^6 run): toy sequences, no structures.

Each family is a toy-universe residue profile (:mod:`protlab.curate.toy`: secondary-structure
biased, a favourite residue per position) with a root sequence drawn from it; like real
collections, families are redundant: about sqrt(size)/2 subfamily ancestors each redraw
``SUBFAMILY_CHANGE`` of the root's positions from the profile, and members redraw
``MEMBER_CHANGE`` of their ancestor's, with one or two indels of 1-3 residues. Family sizes are log-uniform
between ``--min-size`` and ``--max-size``, scaled to ``--n`` proteins in all (natural-like:
a few large families, many small ones). Written like ``pfam_natural_sets.py`` writes its
sets: ``synthetic_<n>.fasta`` (ids only in the headers) and ``synthetic_<n>.labels.tsv``.

    python benchmarks/synthetic_sets.py --n 1000000 --families 300 --out runs/synthetic_sets
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.atomic import atomic_paths
from protlab.curate.toy import _profile
from protlab.curate.toy_structure import _secondary_structure

REPO = Path(__file__).resolve().parent.parent
LETTERS = np.array(list(AMINO_ACIDS))
SUBFAMILY_CHANGE = 1.0  # share of the root's positions a subfamily ancestor redraws from the profile
MEMBER_CHANGE = 0.5     # share of its ancestor's positions a member redraws


def family_sizes(n: int, families: int, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Log-uniform sizes in [lo, hi] summing to ``n`` (the largest absorbs the rounding)."""
    raw = np.exp(rng.uniform(np.log(lo), np.log(hi), size=families))
    sizes = np.maximum(lo, np.floor(raw * n / raw.sum())).astype(np.int64)
    sizes[np.argmax(sizes)] += n - sizes.sum()
    if sizes.min() < lo:  # families held at lo take more than n leaves them
        raise SystemExit(f"--n {n} is too small for {families} families of {lo} to {hi} members (log-uniform): "
                         "give a larger --n, fewer --families or a smaller --max-size")
    return sizes


def _draw(profile: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, L) residue indices drawn position by position from ``profile`` (L, 20)."""
    cum = np.cumsum(profile, axis=1)
    return (rng.random((count, len(profile)))[:, :, None] > cum[None]).sum(2).clip(0, 19)


def _redraw(base: np.ndarray, profile: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Copies of ``base`` (count, L) with ``share`` of their positions redrawn from ``profile``."""
    return np.where(rng.random(base.shape) < share, _draw(profile, len(base), rng), base)


def members(profile: np.ndarray, count: int, rng: np.random.Generator) -> list[str]:
    """``count`` sequences of one family (see the module docstring)."""
    root = _draw(profile, 1, rng)
    n_sub = max(1, int(round(np.sqrt(count) / 2)))
    ancestors = _redraw(np.repeat(root, n_sub, axis=0), profile, SUBFAMILY_CHANGE, rng)
    draws = _redraw(ancestors[rng.integers(0, n_sub, count)], profile, MEMBER_CHANGE, rng)
    out = []
    for row in LETTERS[draws]:
        seq = row.tolist()
        for _ in range(int(rng.integers(1, 3))):
            at, size = int(rng.integers(1, len(seq) - 4)), int(rng.integers(1, 4))
            if rng.random() < 0.5:
                del seq[at:at + size]
            else:
                seq[at:at] = LETTERS[rng.integers(0, 20, size)].tolist()
        out.append("".join(seq))
    return out


def write_set(out: Path, n: int, families: int, lo: int, hi: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    sizes = family_sizes(n, families, lo, hi, rng)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"synthetic_{n}"
    with atomic_paths(stem.with_suffix(".fasta"), f"{stem}.labels.tsv", durable=False) as (fasta_tmp, labels_tmp), \
            open(fasta_tmp, "w") as fasta, open(labels_tmp, "w") as labels:  # a set is written whole or not at all
        labels.write("id\tlabel\n")
        for f, size in enumerate(sizes):
            profile = _profile(_secondary_structure(int(rng.integers(80, 200)), rng), rng)
            for m, seq in enumerate(members(profile, int(size), rng)):
                pid = f"syn{f:04d}_{m:06d}"
                fasta.write(f">{pid}\n{seq}\n")
                labels.write(f"{pid}\tfamily{f:04d}\n")
    print(f"{stem}.fasta: {n} proteins in {families} families of {sizes.min()}-{sizes.max()}")
    return stem


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--families", type=int, default=300)
    parser.add_argument("--min-size", type=int, default=50)
    parser.add_argument("--max-size", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "runs" / "synthetic_sets"))
    args = parser.parse_args(argv)
    write_set(Path(args.out), args.n, args.families, args.min_size, args.max_size, args.seed)


if __name__ == "__main__":
    main()
