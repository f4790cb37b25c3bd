"""Mutant parsing and input validation: every refusal names the file, the row and the position."""
from __future__ import annotations

import numpy as np
import pytest

from protlab.core.errors import InputError
from protlab.variants.alignment import read_alignment, sequence_weights
from protlab.variants.mutants import all_singles, parse_mutant, read_variants, read_wildtype

WT = "MKTAYIAKQR"


def test_mutants_parse_single_and_multiple():
    single = parse_mutant("A4C", WT)
    assert single.substitutions == ((3, "A", "C"),)
    double = parse_mutant("M1A:K8D", WT)
    assert double.substitutions == ((0, "M", "A"), (7, "K", "D"))
    assert len(all_singles(WT)) == 19 * len(WT)


@pytest.mark.parametrize("text, message", [
    ("K4C", r"has 'A' at position 4, not 'K'"),
    ("A11C", r"position 11 is out of range"),
    ("A4B", r"unknown amino acid 'B' at position 4"),
    ("A4", r"not a substitution like 'A24C'"),
    ("A4C:A4D", r"substitutes position 4 twice"),
])
def test_bad_mutants_name_the_position(text, message):
    with pytest.raises(InputError, match=message):
        parse_mutant(text, WT)


def test_variants_file_errors_name_file_and_row(tmp_path):
    path = tmp_path / "dms.csv"
    path.write_text("mutant,DMS_score\nA4C,1.0\nM1A:K9E,0.5\nY5W,0.2\n")
    with pytest.raises(InputError, match=r"dms.csv: row 3 \(line 3\): 'K9E': the wild type has 'Q' at position 9"):
        read_variants(path, WT)
    path.write_text("mutant,DMS_score\nA4C,1.0\nM1A,0.5\nI6V,x\n")
    with pytest.raises(InputError, match=r"dms.csv: row 4 .*DMS_score 'x' is not a number"):
        read_variants(path, WT)
    path.write_text("variant\nA4C\n")
    with pytest.raises(InputError, match=r"no 'mutant' column"):
        read_variants(path, WT)
    path.write_text("mutant,DMS_score\nA4C,1.0\nM1A,0.5\n")
    mutants, table = read_variants(path, WT)
    assert [m.text for m in mutants] == ["A4C", "M1A"] and table["DMS_score"].tolist() == [1.0, 0.5]


def test_wildtype_from_fasta_or_text(tmp_path):
    fasta = tmp_path / "wt.fasta"
    fasta.write_text(f">P1 some protein\n{WT[:5]}\n{WT[5:]}\n>other\nAAAA\n")
    assert read_wildtype(str(fasta)) == ("P1", WT)
    assert read_wildtype("mktay") == ("wildtype", "MKTAY")
    with pytest.raises(InputError, match=r"'X' at position 3"):
        read_wildtype("MKXAY")
    with pytest.raises(InputError, match="neither an existing FASTA file"):
        read_wildtype("missing/wt.fasta")


def test_a2m_region_lowercase_and_gaps(tmp_path):
    wt = "MKTAYIAKQRQISFVKSHFSRQ"
    path = tmp_path / "homologs.a2m"
    # the region 3..11 of the wild type; its lowercase 't' is no match column, '.' an insertion
    path.write_text(">WT/3-11\ntAYIA-KQRQ\n>h1\naAYLAG.KQRE\n>h2\n-AY-AgKKRQ\n>h3\n---------\n")
    aln = read_alignment(path, wt)
    assert aln.positions.tolist() == [3, 4, 5, 6, 7, 8, 9, 10]  # 0-based; T3 and the gap column left out
    assert aln.depth == 3 and aln.dropped == {"too_many_gaps": 1}
    assert aln.codes.shape == (3, 8)
    path.write_text(">WT/3-11\ntAYIA-KQRE\n>h1\naAYLAG.KQRE\n")
    with pytest.raises(InputError, match=r"homologs.a2m: record 1 \('WT/3-11'\) does not match the wild type: "
                                         r"1 residue\(s\) differ, first at position 11 \('E' in the alignment, 'Q'"):
        read_alignment(path, wt)
    polymorphic = read_alignment(path, wt, max_mismatches=1)  # the first row takes the wild type's residue
    assert polymorphic.mismatches == ["E11Q"] and polymorphic.codes[0, -1] == polymorphic.codes[0, -3]
    path.write_text(">WT\nAYIAKQQQQQ\n>h1\nAYIAKQQQQQ\n")
    with pytest.raises(InputError, match=r"is not a region of the wild type"):
        read_alignment(path, wt)


def test_aligned_fasta_and_stockholm(tmp_path):
    wt = "MKTAYIAKQR"
    fasta = tmp_path / "aln.fasta"
    fasta.write_text(f">wt\n{wt}\n>h1\nMKT-YIAKQR\n>h2\nMRTAYLAKQR\n")
    aln = read_alignment(fasta, wt)
    assert aln.positions.tolist() == list(range(10)) and aln.depth == 3
    sto = tmp_path / "aln.sto"
    sto.write_text(f"# STOCKHOLM 1.0\nwt/1-10 {wt[:5]}\nh1 MKT-Y\n\nwt/1-10 {wt[5:]}\nh1 IAKQR\n//\n")
    aln = read_alignment(sto, wt)
    assert aln.names == ["wt/1-10", "h1"] and aln.codes.shape == (2, 10)


def test_weights_count_neighbours_at_identity():
    codes = np.array([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 6], [7, 8, 9, 10, 11]], dtype=np.int8)
    assert sequence_weights(codes, 0.8).tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
