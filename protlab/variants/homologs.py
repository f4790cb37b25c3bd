"""Homologs from a FASTA file: MMseqs2 searches them with the wild type (or the region of it
that the variants touch) and each hit's local alignment becomes a row over the wild type's
positions (insertions relative to the wild type left out, unaligned ends as gaps), the wild
type first. Positions where more than ``max_gap_fraction`` of the hits have a gap are not
modelled (a domain's homologs model the domain), then rows with more gaps than that over the
modelled positions are dropped. Gaps in the file ('-', '.') are removed first, so an aligned
FASTA (a Pfam family) serves as homologs too.

The region matters for a protein of repeated domains (three PDZ domains, say): a homolog of
one domain aligns to whichever copy it resembles most, so over the whole protein no copy is
covered by most hits; searched with the region the variants touch, every hit covers it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from protlab.core.errors import InputError
from protlab.core.mmseqs import _run, _search_options, _workspace, require_mmseqs, write_fasta
from protlab.curate.fasta import read_fasta
from protlab.variants.alignment import MAX_GAP_FRACTION, THETA, Alignment, alignment_from_rows

MAX_HITS = 10000
REGION_MARGIN = 20  # residues around the variants' span: room for a domain's local alignment
ITERATIONS = 3      # profile searches, as jackhmmer-style MSA builders run: one finds only the closer homologs


def variant_region(positions, length: int, margin: int = REGION_MARGIN) -> tuple[int, int]:
    """``(start, stop)``, 0-based, of the wild type searched for variants at ``positions``
    (0-based): their span widened by ``margin`` on each side, within the protein."""
    positions = list(positions)
    if not positions:
        return 0, length
    return max(0, min(positions) - margin), min(length, max(positions) + 1 + margin)


def _row(length: int, qstart: int, qaln: str, taln: str) -> str:
    row = ["-"] * length
    pos = qstart - 1
    for q, t in zip(qaln, taln):
        if q == "-":
            continue  # a residue the wild type lacks
        if t != "-":
            row[pos] = t.upper()
        pos += 1
    return "".join(row)


def search_alignment(path: str | Path, wildtype: str, *, region: tuple[int, int] | None = None,
                     max_gap_fraction: float = MAX_GAP_FRACTION, theta: float = THETA, evalue: float = 1e-3,
                     iterations: int = ITERATIONS, threads: int | None = None) -> Alignment:
    """The homologs of ``path`` aligned to ``wildtype[start:stop]`` (``region``, default the
    whole wild type) by ``mmseqs easy-search`` (every hit with an E-value ≤ ``evalue``, the
    best per target; ``iterations`` rounds of profile search), rows with more than
    ``max_gap_fraction`` gaps dropped and counted."""
    path = Path(path)
    records = read_fasta(path)
    sequences = [r.sequence.replace("-", "").replace(".", "").upper() for r in records]
    if not any(sequences):
        raise InputError(f"homologs {path}: no sequences")
    start, stop = region or (0, len(wildtype))
    exe = require_mmseqs("homolog alignment")
    with _workspace(None) as (tmp, tether):
        query, target, hits = tmp / "query.fasta", tmp / "target.fasta", tmp / "hits.tsv"
        write_fasta(query, [wildtype[start:stop]])
        write_fasta(target, sequences)
        _run(tether, [exe, "easy-search", str(query), str(target), str(hits), str(tmp / "work"),
                      *_search_options(threads, 7.5, MAX_HITS, evalue), "--num-iterations", str(iterations),
                      "--format-output", "target,qstart,qaln,taln"], "easy-search")
        lines = hits.read_text().splitlines() if hits.is_file() else []
    rows, names, seen = [wildtype], ["wildtype"], set()
    for line in lines:
        target_id, qstart, qaln, taln = line.split("\t")
        if target_id in seen:
            continue
        seen.add(target_id)
        rows.append(_row(len(wildtype), start + int(qstart), qaln, taln))
        names.append(records[int(target_id)].id)
    # model the wild type's positions the homologs cover (a domain's homologs cover the domain)
    gaps = np.array([[c == "-" for c in row] for row in rows[1:]]) if len(rows) > 1 else np.ones((1, len(wildtype)))
    columns = np.flatnonzero(gaps.mean(0) <= max_gap_fraction)
    if len(columns) == 0:
        raise InputError(f"homologs {path}: {len(rows) - 1} of {len(sequences)} sequences aligned to the wild type "
                         f"and no position is covered by more than {1 - max_gap_fraction:.0%} of them")
    rows = ["".join(row[c] for c in columns) for row in rows]
    kept = [0] + [i for i in range(1, len(rows)) if rows[i].count("-") <= max_gap_fraction * len(columns)]
    aln = alignment_from_rows([rows[i] for i in kept], [names[i] for i in kept], theta=theta,
                              path=f"{path} (MMseqs2)")
    aln.positions = columns
    aln.dropped = {"no_hit": len(sequences) - len(seen), "too_many_gaps": len(rows) - len(kept),
                   "columns_not_covered": int(len(wildtype) - len(columns))}
    return aln
