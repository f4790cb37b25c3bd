"""Build the natural-family-size Pfam test sets of issue 12 from ``../shared/data/pfam``.

Pools every domain of ``bitbol_full/`` (Pfam FULL alignments, match states only),
``kortemme_natural/`` (natural-sequence alignments) and ``pfam_shared_labeled.fasta``:
gaps removed, upper-cased, only the 20 standard residues, length >= 20 (01's default). A sequence met in
two families is dropped (ambiguous); exact duplicates within a family are kept once. The
pooled set (about 1.2·10^5 unique domains, 30 families of about 50 to 39 000 members) and
seeded subsets of ``--sizes`` domains are written as

* ``natural_<n>.fasta``: headers carry the id only, so 01 reads no labels and 04 has to be
  told, or has to estimate, the number of families;
* ``natural_<n>.labels.tsv``: ``id`` and ``label`` (the Pfam family), for 05's ``labels=``.

A subset keeps every family: each family is sampled in proportion to its size, but keeps
at least ``min(its size, --min-family)`` members, so natural size ratios survive.

``--extreme N`` also writes ``extreme_<N>``: every domain of the ``bitbol_full`` families (tens of
thousands of short, diverse members each) beside at most ``N`` of every other family (some
have far fewer), the imbalance of a giant diverse family next to a tiny distinct one.

    python benchmarks/pfam_natural_sets.py --out runs/natural_sets [--sizes 10000 30000 100000] [--extreme 300]
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from protlab.core.atomic import atomic_paths
from protlab.curate.fasta import iter_fasta

REPO = Path(__file__).resolve().parent.parent
PFAM = REPO.parent / "shared" / "data" / "pfam"
STANDARD = re.compile(r"^[ACDEFGHIKLMNPQRSTVWY]+$")
MIN_LENGTH = 20  # 01's default min_length


def family_of(path: Path) -> str:
    return re.match(r"(PF\d+)", path.name).group(1)


def pooled_domains(pfam: Path = PFAM) -> dict[str, tuple[str, str]]:
    """``sequence -> (id, family)`` of every unambiguous domain of the three sources."""
    by_sequence: dict[str, set] = defaultdict(set)
    first_id: dict[str, str] = {}
    sources = [(p, family_of(p)) for p in sorted((pfam / "bitbol_full").glob("PF*.fasta"))]
    sources += [(p, family_of(p)) for p in sorted((pfam / "kortemme_natural").glob("PF*.fasta"))]
    sources.append((pfam / "pfam_shared_labeled.fasta", None))  # family from each header
    for path, family in sources:
        for record in iter_fasta(path):
            seq = record.sequence.replace("-", "").replace(".", "").upper()
            if len(seq) >= MIN_LENGTH and STANDARD.match(seq):
                by_sequence[seq].add(family or record.label)
                first_id.setdefault(seq, record.id)
    pooled, seen_ids = {}, set()
    for seq, families in by_sequence.items():
        name = first_id[seq]
        if len(families) != 1:
            continue
        if name in seen_ids:  # one entry, two fragments: make the id unique
            name = f"{name}#{len(seq)}"
        seen_ids.add(name)
        pooled[seq] = (name, next(iter(families)))
    return pooled


def subset(families: np.ndarray, size: int, *, min_family: int, seed: int) -> np.ndarray:
    """Indices of a seeded subset of ``size`` rows keeping natural family proportions."""
    rng = np.random.default_rng(seed)
    names, counts = np.unique(families, return_counts=True)
    floor = np.minimum(counts, min_family)
    share = np.maximum(floor, np.round(counts * size / len(families)).astype(int))
    keep = []
    for name, take in zip(names, np.minimum(share, counts)):
        rows = np.flatnonzero(families == name)
        keep.append(rng.choice(rows, size=take, replace=False))
    return np.sort(np.concatenate(keep))


def extreme(families: np.ndarray, full: set[str], cap: int, *, seed: int) -> np.ndarray:
    """Indices of every member of the ``full`` families and at most ``cap`` of every other."""
    rng = np.random.default_rng(seed)
    keep = []
    for name in np.unique(families):
        rows = np.flatnonzero(families == name)
        keep.append(rows if name in full or len(rows) <= cap else rng.choice(rows, size=cap, replace=False))
    return np.sort(np.concatenate(keep))


def write_set(out: Path, stem: str, ids, sequences, families) -> None:
    with atomic_paths(out / f"{stem}.fasta", out / f"{stem}.labels.tsv", durable=False) as (fasta, labels):
        with open(fasta, "w") as fh:
            for i, s in zip(ids, sequences):
                fh.write(f">{i}\n{s}\n")
        with open(labels, "w") as fh:
            fh.write("id\tlabel\n")
            for i, f in zip(ids, families):
                fh.write(f"{i}\t{f}\n")
    names, counts = np.unique(families, return_counts=True)
    print(f"{stem}: {len(ids)} domains, {len(names)} families, sizes {counts.min()}–{counts.max()} "
          f"(largest {counts.max() / len(ids):.0%})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "natural_sets"))
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    parser.add_argument("--min-family", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extreme", type=int, default=None, help="also the extreme pool with this cap per family")
    args = parser.parse_args(argv)
    pooled = pooled_domains()
    order = sorted(pooled, key=lambda s: pooled[s][0])
    ids = np.array([pooled[s][0] for s in order])
    families = np.array([pooled[s][1] for s in order])
    sequences = np.array(order, dtype=object)
    out = Path(args.out)
    write_set(out, "natural_all", ids, sequences, families)
    for size in args.sizes:
        rows = subset(families, size, min_family=args.min_family, seed=args.seed)
        write_set(out, f"natural_{size}", ids[rows], sequences[rows], families[rows])
    if args.extreme:
        full = {family_of(p) for p in (PFAM / "bitbol_full").glob("PF*.fasta")}
        rows = extreme(families, full, args.extreme, seed=args.seed)
        write_set(out, f"extreme_{args.extreme}", ids[rows], sequences[rows], families[rows])


if __name__ == "__main__":
    main()
