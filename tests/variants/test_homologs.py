"""Unaligned homologs: MMseqs2 aligns them to the wild type, rows over its positions."""
from __future__ import annotations

import numpy as np
import pytest

from protlab.core.mmseqs import mmseqs_available
from protlab.variants.homologs import _row, search_alignment


def test_a_hit_becomes_a_row_over_the_wild_type():
    # query positions 3..8 aligned; the target's inserted 'W' (a gap in the query) is left out
    assert _row(10, 3, "TAY-IAK", "TGYWIAR") == "--TGYIAR--"


@pytest.mark.skipif(not mmseqs_available(), reason="MMseqs2 is not installed")
def test_homologs_are_searched_and_aligned(tmp_path):
    rng = np.random.default_rng(0)
    wildtype = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 80))
    records = []
    for k in range(20):
        seq = [a if rng.random() < 0.85 else str(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"))) for a in wildtype]
        records.append(f">h{k}\n{''.join(seq[5:])}\n")  # each lacks the first five residues
    records.append(">unrelated\n" + "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 80)) + "\n")
    path = tmp_path / "homologs.fasta"
    path.write_text("".join(records))
    aln = search_alignment(path, wildtype)
    assert aln.depth == 21 and aln.dropped == {"no_hit": 1, "too_many_gaps": 0, "columns_not_covered": 5}
    assert aln.codes.shape == (21, 75) and (aln.codes[1:] > 0).mean() > 0.95
    assert aln.names[0] == "wildtype" and aln.positions.tolist() == list(range(5, 80))
