"""Protein–text pairs from a table: 01's text / id / sequence columns, its errors naming the
file and row, and the enzyme tables (shared data) turned into pairs that 01 and 03 read."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import protlab
from protlab.core.errors import InputError, ParseError
from protlab.curate.enzymes import ec_text, ec_texts, enzyme_pairs, level, write_pairs
from protlab.pretrain.data import load_pairs

SEQ = "MKVLAAGIRSTQWEDHPLNACFYK"
AA = "ACDEFGHIKLMNPQRSTVWY"


def table(tmp_path, text: str, name: str = "pairs.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(n: int, text) -> str:
    """A header and ``n`` rows of unrelated random sequences in three label groups."""
    rng = np.random.default_rng(0)
    body = "".join(f"P{i:03d}\t{''.join(rng.choice(list(AA), 40))}\tEC{i % 3}\t{text(i)}\n" for i in range(n))
    return "Accession\tProtein sequence\tClass\tDescription\n" + body


def test_named_columns_give_pairs_03_reads(tmp_path):
    source = table(tmp_path, rows(30, lambda i: "" if i == 4 else f"Enzyme number {i % 3}.  Binds zinc."))
    run = tmp_path / "run"
    result = protlab.curate.run(run, source=str(source), id_column="Accession", sequence_column="Protein sequence",
                                label_field="Class", text_column="Description", split_method="kmer",
                                split_identity=0.9)
    proteins = result.proteins
    assert len(proteins) == 29 and "P004" not in set(proteins["id"])  # blank text: dropped, counted
    assert result.report["dropped"]["no_text"] == 1 and result.report["examples"]["no_text"] == ["P004"]
    assert result.results["dropped"] == {"no_text": 1}
    first = proteins.set_index("id").loc["P001"]
    assert (first["label"], first["text"]) == ("EC1", "Enzyme number 1. Binds zinc.")  # whitespace runs: one space
    assert "protclip_selected" not in proteins.columns  # every pair trains
    assert set(proteins["split"]) == {"train", "valid", "test"}
    pairs = load_pairs(run, split="train")
    assert set(pairs["text"]) == {f"Enzyme number {k}. Binds zinc." for k in range(3)} and len(pairs) > 15


def test_a_table_without_text_keeps_every_protein(tmp_path):
    source = table(tmp_path, "id\tsequence\tlabel\n" + "".join(f"Q{i}\t{SEQ}{'W' * i}\tF\n" for i in range(1, 5)))
    result = protlab.curate.run(tmp_path / "run", source=str(source), split_method="kmer", split_identity=0.9,
                                split_fractions=[1, 0, 0])
    assert len(result.proteins) == 4 and "text" not in result.proteins.columns
    assert result.report["dropped"]["no_text"] == 0


@pytest.mark.parametrize("body, params, error, message", [
    # a text column named explicitly must exist
    ("id\tsequence\n" + f"A1\t{SEQ}\n", {"text_column": "Description"}, InputError,
     r"pairs\.tsv: no text column 'Description'; the columns are \['id', 'sequence'\]"),
    ("Entry\tSeq\n" + f"A1\t{SEQ}\n", {"id_column": "Entry"}, InputError,
     r"pairs\.tsv: no column 'sequence'; the columns are \['Entry', 'Seq'\].*sequence_column"),
    ("id\tsequence\ttext\n" + f"A1\t{SEQ}\tok\nA2\t\tan enzyme\n", {}, ParseError,
     r"pairs\.tsv, line 3, record 'A2': empty 'sequence'"),
    # the text in the sequence column: a space is never a residue
    ("id\tsequence\ttext\n" + f"A1\t{SEQ}\tok\nA2\tAlcohol dehydrogenase\t{SEQ}\n", {}, ParseError,
     r"pairs\.tsv, line 3, record 'A2': illegal character ' ' in the sequence"),
    ("id\tsequence\ttext\n" + f"A1\t{SEQ}7\tok\n", {}, ParseError,
     r"pairs\.tsv, line 2, record 'A1': illegal character '7'"),
])
def test_table_errors_name_the_file_and_row(tmp_path, body, params, error, message):
    source = table(tmp_path, body)
    with pytest.raises(error, match=message):
        protlab.curate.run(tmp_path / "run", source=str(source), **params)
    assert not (tmp_path / "run" / "proteins.parquet").exists()


def test_text_columns_are_stage_parameters():
    stage = protlab.curate.STAGE.by_name
    assert (stage["id_column"].default, stage["sequence_column"].default, stage["text_column"].default) == (
        "id", "sequence", "text")
    with pytest.raises(InputError, match=r"^text_column=3 is not allowed"):
        protlab.curate.run("unused", text_column=3)


# ------------------------------------------------------------------ enzymes (shared data)
@pytest.fixture(scope="module")
def enzymes(shared_data):
    return shared_data / "enzymes"


def test_ec_texts_description_else_level3_class(enzymes):
    by_ec, by_class = ec_texts(enzymes / "protst_ec_descriptions.tsv")
    assert len(by_ec) == 384 and level("3.5.2.6", 3) == "3.5.2" and level("3.5.2.6", 4) == "3.5.2.6"
    assert ec_text("4.2.3.1", by_ec, by_class) == ("threonine synthase. Formerly EC 4.2.99.2.", "description")
    # 3.4.22.54 is not described: its sub-subclass names stand in
    assert ec_text("3.4.22.54", by_ec, by_class) == (
        "Hydrolases. Acting on peptide bonds (peptidases). Cysteine endopeptidases.", "class")
    assert ec_text("5.4.2.12", by_ec, by_class) == (None, None)  # no described EC in 5.4.2


def test_enzyme_pairs_on_real_rows(enzymes):
    pairs = enzyme_pairs(enzymes / "clean_split10.tsv", enzymes / "protst_ec_descriptions.tsv", keep_untexted=True)
    assert len(pairs) == 7757 and list(pairs.columns) == ["id", "sequence", "label", "text", "ec", "text_source"]
    row = pairs.set_index("id")
    c7 = row.loc["C7C422"]
    assert (c7["label"], c7["ec"], c7["text_source"]) == ("3.5.2.6", "3.5.2.6", "description")
    assert c7["text"].startswith("beta-lactamase. cephalosporinase. penicillinase.")
    assert c7["sequence"].startswith("MELPNIMHPVAKLSTALAAALM") and len(c7["sequence"]) == 270
    assert row.loc["Q9TTH8", "text"] == "Hydrolases. Acting on peptide bonds (peptidases). Cysteine endopeptidases."
    # several EC numbers: the first is the label, the distinct texts are joined in order
    q8 = row.loc["Q8NBL1"]
    assert (q8["label"], q8["ec"], q8["text_source"]) == ("2.4.1.376", "2.4.1.376;2.4.2.63", "class")
    assert q8["text"] == ("Transferases. Glycosyltransferases. Hexosyltransferases. "
                          "Transferases. Glycosyltransferases. Pentosyltransferases.")
    assert pd.isna(row.loc["Q79FW5", "text"]) and row.loc["Q79FW5", "ec"] == "5.4.2.12"
    # coverage: 92 % of split10 (49 % by a description), 89 % of new-392
    assert pairs.attrs["coverage"] == {"enzymes": 7757, "with_text": pytest.approx(7117 / 7757),
                                       "with_description": pytest.approx(3803 / 7757, abs=1e-4)}
    new = enzyme_pairs(enzymes / "clean_new392.tsv", enzymes / "protst_ec_descriptions.tsv", label_level=3)
    assert len(new) == 348 and new.attrs["coverage"]["with_text"] == pytest.approx(348 / 392)
    assert new["label"].str.count(r"\.").eq(2).all()  # level 3: a.b.c


def test_enzyme_pairs_through_01_and_03(enzymes, tmp_path):
    """A slice of split10 written as pairs, curated by 01 and read by 03's loader."""
    sample = pd.read_csv(enzymes / "clean_split10.tsv", sep="\t", dtype=str).head(40)
    sample.to_csv(tmp_path / "slice.tsv", sep="\t", index=False)
    pairs = enzyme_pairs(tmp_path / "slice.tsv", enzymes / "protst_ec_descriptions.tsv")
    source = write_pairs(pairs, tmp_path / "pairs.tsv")
    result = protlab.curate.run(tmp_path / "run", source=str(source), split_method="kmer", split_identity=0.9)
    curated = result.proteins.set_index("id")
    assert len(curated) == len(pairs) - sum(result.report["dropped"].values())
    assert curated.loc["C7C422", "label"] == "3.5.2.6" and curated.loc["C7C422", "text"] == \
        pairs.set_index("id").loc["C7C422", "text"]
    texts = load_pairs(tmp_path / "run")
    assert texts["text"].str.len().gt(0).all() and len(texts) == len(curated)
    report = json.loads((tmp_path / "run" / "curation_report.json").read_text())
    assert report["format"] == "tsv" and report["dropped"]["no_text"] == 0


def test_enzyme_tables_are_checked(tmp_path, enzymes):
    bad = table(tmp_path, "Entry\tEC\tSequence\nA1\t1.1.1.1\tMKV\n", "bad.tsv")
    with pytest.raises(InputError, match=r"bad\.tsv: no column\(s\) \['EC number'\]"):
        enzyme_pairs(bad, enzymes / "protst_ec_descriptions.tsv")
    blank = table(tmp_path, "Entry\tEC number\tSequence\nA1\t1.1.1.1\tMKV\nA2\t1.1.1.1\t\n", "blank.tsv")
    with pytest.raises(InputError, match=r"blank\.tsv, line 3: empty 'Sequence' \(entry 'A2'\)"):
        enzyme_pairs(blank, enzymes / "protst_ec_descriptions.tsv")
