"""Sequence readers (FASTA, Stockholm, UniProtKB flat file, tables), format detection and bad
input, on the real files in ../shared/data and on small synthetic files."""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from protlab.curate import uniprot as uniprot_module
from protlab.curate.fasta import iter_fasta
from protlab.curate.formats import read_proteins
from protlab.curate.textio import FORMATS, detect_format, open_text
from protlab.curate.stockholm import iter_stockholm
from protlab.curate.tables import iter_table
from protlab.curate.uniprot import iter_uniprot
from protlab.core.errors import InputError, ParseError

READERS = {"fasta": iter_fasta, "stockholm": iter_stockholm, "uniprot": iter_uniprot,
           "table": iter_table}
O05204 = "uniprot-core__ff-parser__src__test__resources__entryIT__O05204.dat"
P04439 = "biopython__Tests__SwissProt__P04439.txt"
TAXONOMY = ("uniprot-store__spark-indexer__src__test__resources__2020_02__uniprotkb__"
            "uniprotkk-for-taxonomy.dat")


def flatfiles(shared: Path) -> list[Path]:
    return sorted(p for p in (shared / "uniprot" / "flatfile").glob("*.*") if p.is_file())


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


# ----------------------------------------------------------------------------- FASTA

def test_fasta_pfam_labels_from_header(shared_data):
    records = list(iter_fasta(shared_data / "pfam" / "pfam_shared_labeled.fasta"))
    assert len(records) == 8010
    sizes = Counter(r.label for r in records)
    assert len(sizes) == 30 and min(sizes.values()) == 49 and max(sizes.values()) == 300
    first = records[0]
    assert first.id == "A0A0E4A8A6_RHOER/271-421" and first.label == "PF00004"
    assert first.sequence.startswith("VLLYGPPGCGKT") and len(first.sequence) == 151


def test_fasta_and_tsv_of_the_same_data_agree(shared_data):
    fasta = list(iter_fasta(shared_data / "pfam" / "pfam_shared_labeled.fasta"))
    table = list(iter_table(shared_data / "pfam" / "pfam_shared_labeled.tsv", id_column="seq_id",
                            label_column="pfam"))
    assert [(r.id, r.sequence, r.label) for r in fasta] == [(r.id, r.sequence, r.label) for r in table]


def test_fasta_aligned_pfam_seed_keeps_gaps_and_has_no_label(shared_data):
    records = list(iter_fasta(shared_data / "pfam" / "kortemme_natural" / "PF00013.align.80.fasta"))
    assert len(records) == 1013
    assert records[0].id == "FUBP2_HUMAN/426-491" and records[0].label is None
    assert "-" in records[0].sequence


def test_fasta_label_regex_token_and_key(tmp_path):
    path = write(tmp_path / "x.fa", ">sp|P1|A_HUMAN Alpha OS=Homo sapiens OX=9606 GN=A\nMKV\nLL\n"
                                    ">sp|P2|B_MOUSE Beta OS=Mus musculus OX=10090\nAC*\n")
    by_regex = list(iter_fasta(path, label_regex=r"_([A-Z]+) "))
    assert [(r.id, r.sequence, r.label) for r in by_regex] == [
        ("sp|P1|A_HUMAN", "MKVLL", "HUMAN"), ("sp|P2|B_MOUSE", "AC*", "MOUSE")]
    assert [r.label for r in iter_fasta(path, label_token=1)] == ["Alpha", "Beta"]
    assert [r.label for r in iter_fasta(path, label_token="OS")] == ["Homo sapiens", "Mus musculus"]
    assert [r.label for r in iter_fasta(path, label_token="GN")] == ["A", None]
    assert [r.label for r in iter_fasta(path)] == [None, None]
    assert list(iter_fasta(path))[0].description.startswith("Alpha OS=Homo")


def test_fasta_pfam_download_header_form(tmp_path):
    path = write(tmp_path / "pfam.fasta", ">Q1_X/5-9 Q1.1 PF00004.30;AAA;\nACDEF\n")
    assert list(iter_fasta(path))[0].label == "PF00004"


def test_fasta_gz_equals_plain(tmp_path, shared_data):
    source = shared_data / "pfam" / "bitbol_seed" / "PF00005_seed.fasta"
    packed = tmp_path / "seed.fasta.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    assert list(iter_fasta(packed)) == list(iter_fasta(source))


def test_fasta_illegal_character_names_file_line_and_record(tmp_path):
    path = write(tmp_path / "bad.fasta", ">ok\nACDE\n>broken desc\nACD\nEF1GH\n")
    with pytest.raises(ParseError) as caught:
        list(iter_fasta(path))
    err = caught.value
    assert err.path == str(path) and err.record == "broken" and err.line == 5
    assert "illegal character '1'" in str(err) and str(path) in str(err)


def test_fasta_text_before_header_and_empty_header(tmp_path):
    with pytest.raises(ParseError, match="before the first '>'"):
        list(iter_fasta(write(tmp_path / "a.fasta", "ACDE\n>x\nAC\n")))
    with pytest.raises(ParseError, match="empty FASTA header"):
        list(iter_fasta(write(tmp_path / "b.fasta", ">x\nAC\n>\nAC\n")))


# ----------------------------------------------------------------------------- Stockholm

def test_every_stockholm_file_parses_ungapped(shared_data):
    files = sorted((shared_data / "pfam" / "stockholm").iterdir())
    assert len(files) == 16
    for path in files:
        records = list(iter_stockholm(path))
        assert records, path
        for record in records:
            assert record.sequence and record.sequence == record.sequence.upper()
            assert "-" not in record.sequence and "." not in record.sequence


def test_stockholm_family_from_ac_then_id(shared_data, tmp_path):
    fn3 = list(iter_stockholm(shared_data / "pfam" / "stockholm" / "hmmer_tutorial_fn3.sto"))
    assert len(fn3) == 98 and {r.label for r in fn3} == {"PF00041"}
    assert fn3[0].id == "LAR_DROME/418-503"
    only_id = write(tmp_path / "id.sto", "# STOCKHOLM 1.0\n#=GF ID   Fam_x\nA1 AC-D.e\n//\n")
    assert [(r.id, r.sequence, r.label) for r in iter_stockholm(only_id)] == [("A1", "ACDE", "Fam_x")]


def test_stockholm_interleaved_blocks_are_joined(shared_data):
    globins = {r.id: r.sequence for r in iter_stockholm(
        shared_data / "pfam" / "stockholm" / "hmmer_tutorial_globins4.sto")}
    assert list(globins) == ["HBB_HUMAN", "HBA_HUMAN", "MYG_PHYCA", "GLB5_PETMA"]
    assert len(globins["HBB_HUMAN"]) == 146 and globins["HBB_HUMAN"].startswith("VHLTPEEKSAV")
    assert len(globins["HBA_HUMAN"]) == 141 and globins["MYG_PHYCA"].endswith("KELGYQG")


def test_stockholm_several_alignments_per_file(shared_data, tmp_path):
    folder = shared_data / "pfam" / "stockholm"
    both = write(tmp_path / "two.sto", (folder / "biopython_pfam1.seed.txt").read_text()
                 + (folder / "biopython_pfam2.seed.txt").read_text())
    labels = Counter(r.label for r in iter_stockholm(both))
    assert labels == {"PF12574": 2, "PF02294": 3}


def test_stockholm_truncated_and_bad_lines(tmp_path):
    with pytest.raises(ParseError, match="no '//' terminator"):
        list(iter_stockholm(write(tmp_path / "t.sto", "# STOCKHOLM 1.0\nA1 ACDE\n")))
    with pytest.raises(ParseError, match="expected '# STOCKHOLM"):
        list(iter_stockholm(write(tmp_path / "h.sto", "A1 ACDE\n//\n")))
    with pytest.raises(ParseError) as caught:
        list(iter_stockholm(write(tmp_path / "c.sto", "# STOCKHOLM 1.0\nA1 AC\nB2 A7D\n//\n")))
    assert caught.value.record == "B2" and caught.value.line == 3


# ----------------------------------------------------------------------------- UniProt

def test_every_uniprot_flatfile_parses(shared_data):
    counts = {p.name: len(list(iter_uniprot(p))) for p in flatfiles(shared_data)}
    assert len(counts) == 116 and all(counts.values())
    assert sum(counts.values()) == 148 and counts[O05204] == 1 and counts[TAXONOMY] == 13


def test_uniprot_agrees_with_biopython_where_it_parses(shared_data):
    SwissProt = pytest.importorskip("Bio.SwissProt")
    compared = 0
    for path in flatfiles(shared_data):
        try:
            with open(path) as handle:
                expected = list(SwissProt.parse(handle))
        except Exception:
            assert path.name == O05204  # the only file Biopython 1.88 cannot read
            continue
        ours = list(iter_uniprot(path))
        assert len(ours) == len(expected), path
        for mine, bio in zip(ours, expected):
            assert (mine.accessions, mine.entry_name, mine.sequence) == (
                bio.accessions, bio.entry_name, bio.sequence)
            assert (mine.organism or "") == bio.organism.rstrip(".")
            assert mine.existence == (bio.protein_existence or None)
            compared += 1
    assert compared == 147


def test_uniprot_o05204_that_biopython_cannot_read(shared_data):
    (entry,) = iter_uniprot(shared_data / "uniprot" / "flatfile" / O05204)
    assert entry.accession == "O05204" and entry.accessions == ["O05204", "Q2G0Z7"]
    assert entry.entry_name == "AHPF_STAA8"
    assert entry.protein_name == "Alkyl hydroperoxide reductase subunit F"
    assert entry.organism == "Staphylococcus aureus (strain NCTC 8325 / PS 47)"
    assert len(entry.sequence) == 507 and entry.sequence.startswith("MLNADLKQQL")
    assert entry.function == (
        "Serves to protect the cell against DNA damage by alkyl hydroperoxides. It can use either "
        "NADH or NADPH as electron donor for direct reduction of redox dyes or of alkyl "
        "hydroperoxides when combined with the AhpC protein (By similarity).")
    assert entry.similarity == ("Belongs to the class-II pyridine nucleotide-disulfide "
                                "oxidoreductase family.")
    assert entry.subcellular_location is None
    assert entry.go[:2] == ["GO:0005829", "GO:0008785"] and len(entry.go) == 7
    assert entry.pfam == ["PF07992", "PF13192"] and entry.ec == ["1.8.1.-"]
    assert entry.existence == 3


def test_uniprot_multiline_topics_and_text_fields(shared_data):
    (entry,) = iter_uniprot(shared_data / "uniprot" / "flatfile" / P04439)
    assert entry.protein_name == "HLA class I histocompatibility antigen, A alpha chain"
    assert entry.subcellular_location == ("Cell membrane; Single-pass type I membrane protein. "
                                          "Endoplasmic reticulum membrane; Single-pass type I "
                                          "membrane protein.")
    assert entry.function.startswith("Antigen-presenting major histocompatibility complex class I")
    assert "allele-specific binding motifs" in entry.function  # line-wrapped hyphen re-joined
    assert entry.text_fields()["similarity"] == "Belongs to the MHC class I family."
    assert entry.existence == 1


def test_uniprot_fields_are_clean_everywhere(shared_data):
    entries = [e for p in flatfiles(shared_data) for e in iter_uniprot(p)]
    for entry in entries:
        for text in (entry.protein_name, entry.function, entry.subcellular_location,
                     entry.similarity):
            assert text is None or ("{ECO:" not in text and "  " not in text and text.strip() == text)
        assert all(go.startswith("GO:") and len(go) == 10 for go in entry.go)
        assert all(p.startswith("PF") and len(p) == 7 for p in entry.pfam)
        assert entry.existence in (None, 1, 2, 3, 4, 5)
    assert sum(e.function is not None for e in entries) >= 70
    assert sum(bool(e.go) for e in entries) >= 100
    assert any(e.ec for e in entries) and all(e.protein_name for e in entries if e.sequence)


def test_uniprot_entries_without_sequence(shared_data):
    entries = list(iter_uniprot(shared_data / "uniprot" / "flatfile" / TAXONOMY))
    assert entries[1].accession == "O60260-2" and entries[0].sequence == ""


def test_uniprot_malformed_raises_parse_error_with_file_and_line(shared_data):
    (path,) = (shared_data / "uniprot" / "flatfile" / "malformed").iterdir()
    entries = []
    with pytest.raises(ParseError) as caught:
        for entry in iter_uniprot(path):
            entries.append(entry)
    assert [e.accession for e in entries] == ["A8EZU1"]  # the entry before it was read
    assert caught.value.path == str(path) and caught.value.line == 87
    assert "malformed ID line" in str(caught.value) and f"{path}, line 87" in str(caught.value)


def test_uniprot_streaming_blocks_crlf_gzip_and_blank_lines(shared_data, tmp_path, monkeypatch):
    source = shared_data / "uniprot" / "flatfile" / "biopython__Tests__SwissProt__multi_ex.txt"
    expected = list(iter_uniprot(source))
    assert len(expected) == 8
    variants = {
        "crlf.dat": source.read_bytes().replace(b"\n", b"\r\n"),
        "blank.dat": b"\n\n" + source.read_bytes().replace(b"//\n", b"//\n\n  \n"),
        "nonewline.dat": source.read_bytes().rstrip(b"\n"),
    }
    paths = [write(tmp_path / name, data) for name, data in variants.items()]
    packed = tmp_path / "multi.dat.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    for block in (5, 97, 1 << 22):
        monkeypatch.setattr(uniprot_module, "_BLOCK_BYTES", block)
        for path in [*paths, packed]:
            assert list(iter_uniprot(path)) == expected, (path, block)


def test_uniprot_errors_name_line_and_record(shared_data, tmp_path):
    text = (shared_data / "uniprot" / "flatfile" / O05204).read_text()
    lines = text.splitlines()
    sq = next(i for i, line in enumerate(lines) if line.startswith("SQ   "))
    bad_residue = "\n".join(lines[:sq + 2] + [lines[sq + 2][:7] + "9" + lines[sq + 2][8:]]
                            + lines[sq + 3:]) + "\n"
    with pytest.raises(ParseError) as caught:
        list(iter_uniprot(write(tmp_path / "residue.dat", bad_residue)))
    assert caught.value.record == "AHPF_STAA8" and caught.value.line == sq + 3
    assert "illegal character '9'" in str(caught.value)
    truncated = "\n".join(lines[:sq + 3]) + "\n"
    with pytest.raises(ParseError, match="no '//' terminator"):
        list(iter_uniprot(write(tmp_path / "cut.dat", truncated)))
    short = "\n".join(lines[:sq + 3]) + "\n//\n"
    with pytest.raises(ParseError, match="declares 507"):
        list(iter_uniprot(write(tmp_path / "short.dat", short)))
    bad_ac = text.replace("AC   O05204; Q2G0Z7;", "AC   O05204; NOT_AN_AC;")
    with pytest.raises(ParseError, match="invalid accession 'NOT_AN_AC'") as caught:
        list(iter_uniprot(write(tmp_path / "ac.dat", bad_ac)))
    assert caught.value.line == 2


# ----------------------------------------------------------------------------- tables

def test_table_columns_and_missing_column_error(tmp_path):
    path = write(tmp_path / "p.csv", "name,seq,family\nA1,ACDE,F1\nB2,mkv*,\n")
    records = list(iter_table(path, id_column="name", sequence_column="seq", label_column="family"))
    assert [(r.id, r.sequence, r.label) for r in records] == [("A1", "ACDE", "F1"), ("B2", "mkv*", None)]
    assert [r.label for r in iter_table(path, id_column="name", sequence_column="seq")] == [None, None]
    with pytest.raises(InputError) as caught:
        list(iter_table(path, sequence_column="seq"))
    message = str(caught.value)
    assert str(path) in message and "'id'" in message and "['name', 'seq', 'family']" in message
    with pytest.raises(InputError, match="label_column"):
        list(iter_table(path, id_column="name", sequence_column="seq", label_column="pfam"))


def test_table_bad_rows(tmp_path):
    with pytest.raises(ParseError) as caught:
        list(iter_table(write(tmp_path / "a.tsv", "id\tsequence\nx\tAC\ny\tA;C\n")))
    assert caught.value.record == "y" and caught.value.line == 3
    with pytest.raises(ParseError, match="2 fields but the header has 3"):
        list(iter_table(write(tmp_path / "b.tsv", "id\tsequence\tlabel\nx\tAC\n")))


# ----------------------------------------------------------------------------- detection, read_proteins

def test_detect_format_on_real_files(shared_data):
    assert {detect_format(p) for p in flatfiles(shared_data)} == {"uniprot"}
    assert {detect_format(p) for p in (shared_data / "pfam" / "stockholm").iterdir()} == {"stockholm"}
    assert detect_format(shared_data / "pfam" / "pfam_shared_labeled.fasta") == "fasta"
    assert detect_format(shared_data / "pfam" / "pfam_shared_labeled.tsv") == "tsv"
    assert detect_format(shared_data / "structures" / "pfam_domains" / "domains.csv") == "csv"
    assert detect_format(shared_data / "structures" / "pdb" / "1aki.pdb") == "pdb"
    assert detect_format(shared_data / "structures" / "pdb" / "1GBT.cif") == "mmcif"


def test_detect_format_by_content_when_the_extension_says_nothing(tmp_path):
    assert detect_format(write(tmp_path / "a.txt", "\n>x\nAC\n")) == "fasta"
    assert detect_format(write(tmp_path / "b", "# STOCKHOLM 1.0\n")) == "stockholm"
    assert detect_format(write(tmp_path / "c.gz", gzip.compress(b"ID   X\n"))) == "uniprot"
    assert detect_format(write(tmp_path / "d.data", "id\tsequence\n")) == "tsv"
    assert detect_format(write(tmp_path / "e.data", "data_1ABC\n")) == "mmcif"


def test_read_proteins_every_sequence_format(shared_data):
    pfam = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta")
    assert list(pfam.columns) == ["id", "sequence", "label"] and len(pfam) == 8010
    assert pfam["label"].nunique() == 30
    table = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.tsv", id_column="seq_id",
                          label_column="pfam")
    assert table.equals(pfam)
    fn3 = read_proteins(shared_data / "pfam" / "stockholm" / "hmmer_tutorial_fn3.sto")
    assert len(fn3) == 98 and set(fn3["label"]) == {"PF00041"}
    uni = read_proteins(shared_data / "uniprot" / "flatfile" / O05204)
    row = uni.iloc[0]
    assert row["id"] == "O05204" and row["label"] == "PF07992" and row["existence"] == 3
    for column in ("accession", "entry_name", "protein_name", "organism", "function",
                   "subcellular_location", "similarity", "go", "pfam", "ec", "existence"):
        assert column in uni.columns
    by_field = read_proteins(shared_data / "uniprot" / "flatfile" / O05204, label_field="organism")
    assert by_field.iloc[0]["label"].startswith("Staphylococcus aureus")
    structure = read_proteins(shared_data / "structures" / "pdb" / "1aki.pdb")
    assert structure.iloc[0]["id"] == "1aki_A" and len(structure.iloc[0]["sequence"]) == 129


def test_read_proteins_uniprot_lists_survive_parquet(shared_data, tmp_path):
    import pandas as pd

    frame = read_proteins(shared_data / "uniprot" / "flatfile" / P04439)
    frame.to_parquet(tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet")
    assert list(back.iloc[0]["go"]) == frame.iloc[0]["go"] and len(frame.iloc[0]["go"]) > 10


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", sorted(READERS))
def test_missing_file_is_an_input_error_naming_it(tmp_path, name):
    missing = tmp_path / "nope.txt"
    with pytest.raises(InputError, match="no such file") as caught:
        list(READERS[name](missing))
    assert str(missing) in str(caught.value)
    with pytest.raises(InputError, match="no such file"):
        read_proteins(missing)


@pytest.mark.parametrize("name", sorted(READERS))
def test_empty_file_is_a_parse_error(tmp_path, name):
    path = write(tmp_path / "empty.txt", " \n\n")
    with pytest.raises(ParseError, match="empty") as caught:
        list(READERS[name](path))
    assert caught.value.path == str(path)


def test_empty_and_unknown_format_in_detection(tmp_path):
    with pytest.raises(ParseError, match="empty"):
        detect_format(write(tmp_path / "empty.fasta", ""))
    with pytest.raises(InputError) as caught:
        detect_format(write(tmp_path / "notes.xml", "<uniprot>\n</uniprot>\n"))
    assert str(tmp_path / "notes.xml") in str(caught.value)
    assert all(fmt in str(caught.value) for fmt in FORMATS)
    with pytest.raises(InputError, match="is a directory"):
        detect_format(tmp_path)
    with pytest.raises(InputError, match="format="):
        read_proteins(write(tmp_path / "x.fasta", ">a\nAC\n"), format="genbank")


@pytest.mark.parametrize("name", sorted(READERS))
def test_truncated_gzip_is_a_parse_error(shared_data, tmp_path, name):
    source = {"fasta": shared_data / "pfam" / "pfam_shared_labeled.fasta",
              "stockholm": shared_data / "pfam" / "stockholm" / "hmmer_tutorial_fn3.sto",
              "uniprot": shared_data / "uniprot" / "flatfile" / P04439,
              "table": shared_data / "pfam" / "pfam_shared_labeled.tsv"}[name]
    packed = gzip.compress(source.read_bytes())
    path = write(tmp_path / f"{source.name}.gz", packed[: len(packed) // 2])
    with pytest.raises(ParseError, match="truncated or corrupt gzip") as caught:
        list(READERS[name](path))
    assert caught.value.path == str(path)


def test_binary_garbage_and_fake_gzip(tmp_path):
    with pytest.raises(ParseError, match="binary file"):
        list(iter_fasta(write(tmp_path / "x.fasta", b">a\nAC\x00\x01\x02")))
    with pytest.raises(ParseError, match="not UTF-8"):
        list(iter_uniprot(write(tmp_path / "x.dat", b"ID   \xff\xfe\n")))
    with pytest.raises(ParseError, match="not gzip-compressed"):
        with open_text(write(tmp_path / "x.fasta.gz", ">a\nAC\n")):
            pass


# ---------------------------------------------------------------- encodings and cut files
def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.fasta"
    path.write_bytes(b"\xef\xbb\xbf>a PF00001\nMKTAYIAKQR\n>b\nMKTAYIAKQR\n")
    frame = read_proteins(path)
    assert frame["id"].tolist() == ["a", "b"] and frame["label"].iloc[0] == "PF00001"


def test_latin1_byte_names_its_line(tmp_path):
    path = tmp_path / "latin.fasta"
    path.write_bytes(b">a\nMKTAYIAKQR\n>b caf\xe9\nMKT\n")
    with pytest.raises(ParseError, match=r"latin.fasta, line 3: is not UTF-8 text: byte 0xe9"):
        read_proteins(path)


def test_cut_stockholm_names_the_line_where_it_ends(tmp_path, shared_data):
    source = sorted((shared_data / "pfam" / "stockholm").iterdir())[0]
    lines = source.read_text().splitlines()
    cut = tmp_path / "cut.sto"
    cut.write_text("\n".join(lines[:len(lines) // 2]) + "\n")
    with pytest.raises(ParseError, match=rf"cut.sto, line {len(lines) // 2}: the alignment that starts at line 1 "
                                         r"has no '//' terminator"):
        read_proteins(cut, format="stockholm")


def test_truncated_structures_name_the_line(tmp_path, shared_data):
    from protlab.curate.structures import read_structure

    pdb = (shared_data / "structures" / "pdb" / "1A8O.pdb").read_text().splitlines(keepends=True)
    first_atom = next(i for i, line in enumerate(pdb) if line.startswith(("ATOM", "HETATM")))
    (tmp_path / "cut.pdb").write_text("".join(pdb[:first_atom + 5]) + pdb[first_atom + 5][:40])
    with pytest.raises(ParseError, match=rf"cut.pdb, line {first_atom + 6}: (ATOM|HETATM) record cut short"):
        read_structure(tmp_path / "cut.pdb")
    (tmp_path / "header.pdb").write_text("".join(pdb[:first_atom]))
    with pytest.raises(ParseError, match=rf"header.pdb, line {first_atom}: no atoms.*truncated"):
        read_structure(tmp_path / "header.pdb")
    cif = (shared_data / "structures" / "pdb" / "1A7G.cif").read_text().splitlines(keepends=True)
    atom = next(i for i, line in enumerate(cif) if line.startswith("ATOM"))
    (tmp_path / "cut.cif").write_text("".join(cif[:atom + 20]) + cif[atom + 20][:30])
    with pytest.raises(ParseError, match=rf"cut.cif, line {atom + 21}: cannot parse as mmcif.*truncated"):
        read_structure(tmp_path / "cut.cif")
