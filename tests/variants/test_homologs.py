"""Unaligned homologs: MMseqs2 aligns them to the wild type, rows over its positions."""
from __future__ import annotations

import numpy as np
import pytest

from protlab.core.mmseqs import mmseqs_available
from protlab.variants.homologs import _row, search_alignment, variant_region


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


def test_variant_region_is_the_span_widened_within_the_protein():
    assert variant_region([50, 60], 300) == (30, 81)
    assert variant_region([5, 290], 300) == (0, 300)
    assert variant_region([], 120) == (0, 120)


@pytest.mark.skipif(not mmseqs_available(), reason="MMseqs2 is not installed")
def test_a_domain_repeated_in_the_wild_type_is_modelled_where_the_variants_are(tmp_path):
    rng = np.random.default_rng(1)
    letters = list("ACDEFGHIKLMNPQRSTVWY")
    domain = "".join(rng.choice(letters, 70))
    copy = "".join(a if rng.random() < 0.9 else str(rng.choice(letters)) for a in domain)
    linker = "".join(rng.choice(letters, 60))
    wildtype = domain + linker + copy  # the second copy starts at 0-based position 130
    records = []
    for k in range(30):
        seq = "".join(a if rng.random() < 0.8 else str(rng.choice(letters)) for a in domain)
        records.append(f">h{k}\n{seq[:30]}-..-{seq[30:]}\n")  # an aligned FASTA's gaps are ignored
    path = tmp_path / "domain_family.fasta"
    path.write_text("".join(records))
    region = variant_region([140, 180], len(wildtype))
    aln = search_alignment(path, wildtype, region=region)
    assert aln.depth == 31 and aln.dropped["no_hit"] == 0
    assert aln.positions.min() >= region[0] and aln.positions.max() < region[1]
    assert set(range(135, 195)) <= set(aln.positions.tolist())  # the second copy, where the variants are
    matches = np.mean([wildtype[p] == "-ACDEFGHIKLMNPQRSTVWY"[c] for row in aln.codes[1:]
                       for p, c in zip(aln.positions, row) if c > 0])
    assert matches > 0.6  # rows sit on the wild type's residues: the region's offset is applied
