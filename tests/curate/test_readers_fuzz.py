"""Property-based fuzzing of the text readers: any bytes written to a file give either records
or the documented ParseError/InputError naming the file, never another exception."""
from __future__ import annotations

import gzip
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protlab.curate.fasta import iter_fasta
from protlab.curate.formats import read_proteins
from protlab.curate.records import SequenceRecord, UniProtEntry
from protlab.curate.stockholm import iter_stockholm
from protlab.curate.tables import iter_table
from protlab.curate.uniprot import iter_uniprot
from protlab.core.errors import InputError, ParseError

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SEEDS = {
    "fasta": b">a/1-5 PF00001.3\nACDE\nFG\n>b desc OX=9606\nMK-.*\n",
    "stockholm": (b"# STOCKHOLM 1.0\n#=GF ID fam\n#=GF AC PF00001.2\n#=GS a DE x\n"
                  b"a AC-DE\nb MK..L\n#=GC SS_cons ....\n\na FF\nb GG\n//\n"),
    "uniprot": (b"ID   TEST_HUMAN              Reviewed;          10 AA.\n"
                b"AC   P12345; Q99999;\n"
                b"DE   RecName: Full=Test protein {ECO:0000250};\n"
                b"DE            EC=1.1.1.1;\n"
                b"OS   Homo sapiens (Human).\n"
                b"CC   -!- FUNCTION: Does\n"
                b"CC       things. {ECO:0000269|PubMed:1}.\n"
                b"CC   -!- SIMILARITY: Belongs to the X family.\n"
                b"DR   GO; GO:0005737; C:cytoplasm; IEA:X.\n"
                b"DR   Pfam; PF00001; X; 1.\n"
                b"PE   1: Evidence at protein level;\n"
                b"SQ   SEQUENCE   10 AA;  1000 MW;  0 CRC64;\n"
                b"     ACDEFGHIKL\n"
                b"//\n"),
    "table": b"id\tsequence\tlabel\na\tACDE\tF1\nb\tMK\t\n",
}
FRAGMENTS = [b"\n", b"//\n", b">", b"ID   ", b"AC   ", b"SQ   SEQUENCE   3 AA;\n", b"     ",
             b"# STOCKHOLM 1.0\n", b"#=GF AC ", b"\t", b",", b"\r\n", b"\r", b"\x00", b"\xff",
             b"\xc3\xa9", b"PE   9: x\n", b"CC   -!- FUNCTION: ", b"{ECO:1}", b"1", b'"', b";",
             b"ATOM  ", b"data_", b"DR   GO; ", b"\n\n"]
ALLOWED = re.compile(r"[A-Za-z*.\-]*")


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "repeat"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "delete":
            del data[pos:pos + draw(st.integers(1, 12))]
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from(FRAGMENTS) | st.binary(min_size=1, max_size=6))
        elif kind == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = data[max(0, pos - 40):pos]
    return bytes(data)


def file_bytes(seed: bytes):
    plain = st.one_of(
        st.binary(max_size=200),
        st.lists(st.sampled_from(FRAGMENTS + [seed[:30]]), max_size=12).map(b"".join),
        mutated(seed),
        mutated(seed),
    )
    # sometimes gzip it, and sometimes cut the gzip stream short
    return st.tuples(plain, st.sampled_from(["plain"] * 4 + ["gzip", "cut"]), st.integers(1, 60)).map(
        lambda t: t[0] if t[1] == "plain" else
        gzip.compress(t[0]) if t[1] == "gzip" else gzip.compress(t[0])[:-t[2]])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def run_reader(reader, path, data: bytes, record_type):
    if data[:2] == b"\x1f\x8b":
        path = path.with_name(path.name + ".gz")
    path.write_bytes(data)
    try:
        records = list(reader(path))
    except (ParseError, InputError) as err:
        assert str(path) in str(err)
        return None
    for record in records:
        assert isinstance(record, record_type)
        assert isinstance(record.sequence, str)
    return records


@FUZZ
@given(data=file_bytes(SEEDS["fasta"]))
def test_fuzz_fasta(fuzz_dir, data):
    records = run_reader(iter_fasta, fuzz_dir / "x.fasta", data, SequenceRecord)
    for record in records or []:
        assert record.id and ALLOWED.fullmatch(record.sequence)


@FUZZ
@given(data=file_bytes(SEEDS["stockholm"]))
def test_fuzz_stockholm(fuzz_dir, data):
    records = run_reader(iter_stockholm, fuzz_dir / "x.sto", data, SequenceRecord)
    for record in records or []:
        assert record.id and re.fullmatch(r"[A-Z*]*", record.sequence)


@FUZZ
@given(data=file_bytes(SEEDS["uniprot"]))
def test_fuzz_uniprot(fuzz_dir, data):
    records = run_reader(iter_uniprot, fuzz_dir / "x.dat", data, UniProtEntry)
    for entry in records or []:
        assert entry.accession == entry.accessions[0] and re.fullmatch(r"[A-Za-z]*", entry.sequence)
        assert entry.existence in (None, 1, 2, 3, 4, 5)


@FUZZ
@given(data=file_bytes(SEEDS["table"]))
def test_fuzz_table(fuzz_dir, data):
    records = run_reader(iter_table, fuzz_dir / "x.tsv", data, SequenceRecord)
    for record in records or []:
        assert record.id and record.sequence and ALLOWED.fullmatch(record.sequence)


@FUZZ
@given(data=st.sampled_from(sorted(SEEDS)).flatmap(lambda name: file_bytes(SEEDS[name])))
def test_fuzz_read_proteins_auto_detect(fuzz_dir, data):
    path = fuzz_dir / "auto.txt"
    path.write_bytes(data)
    try:
        frame = read_proteins(path)
    except (ParseError, InputError) as err:
        assert str(path) in str(err)
        return
    assert {"id", "sequence", "label"} <= set(frame.columns)


def test_the_seeds_themselves_parse(fuzz_dir):
    """The fuzzing starts from valid files: check they give the expected records."""
    fasta = run_reader(iter_fasta, fuzz_dir / "s.fasta", SEEDS["fasta"], SequenceRecord)
    assert [(r.id, r.sequence, r.label) for r in fasta] == [("a/1-5", "ACDEFG", "PF00001"),
                                                            ("b", "MK-.*", None)]
    sto = run_reader(iter_stockholm, fuzz_dir / "s.sto", SEEDS["stockholm"], SequenceRecord)
    assert [(r.id, r.sequence, r.label) for r in sto] == [("a", "ACDEFF", "PF00001"),
                                                          ("b", "MKLGG", "PF00001")]
    (entry,) = run_reader(iter_uniprot, fuzz_dir / "s.dat", SEEDS["uniprot"], UniProtEntry)
    assert (entry.accession, entry.protein_name, entry.function, entry.ec, entry.go, entry.pfam,
            entry.existence, entry.sequence) == (
        "P12345", "Test protein", "Does things.", ["1.1.1.1"], ["GO:0005737"], ["PF00001"], 1,
        "ACDEFGHIKL")
    table = run_reader(iter_table, fuzz_dir / "s.tsv", SEEDS["table"], SequenceRecord)
    assert [(r.id, r.label) for r in table] == [("a", "F1"), ("b", None)]
