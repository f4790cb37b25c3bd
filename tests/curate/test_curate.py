"""Curation policy, redundancy-aware split and ProtCLIP sampling (protlab.curate.filters/split/sampling)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from protlab.curate.filters import clean_sequence, curate, load_source
from protlab.curate.sampling import build_text, keep_probability, occupied_fields, protclip_sample
from protlab.curate.split import assign_splits, cluster_kmer, split_by_identity
from protlab.core.errors import InputError, ProtlabError
from protlab.core.mmseqs import mmseqs_available

BASE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEK"  # 53 standard residues


def frame(seqs, labels=None):
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(seqs))], "sequence": seqs,
                         "label": labels or ["L"] * len(seqs)})


# ----------------------------------------------------------------------------- residue policy

@pytest.mark.parametrize("raw, policy, expected, reason", [
    (BASE.lower(), "replace_x", BASE, None),                     # lowercase → uppercase
    ("MK-TA..YI", "replace_x", "MKTAYI", None),                   # gaps removed
    ("MKTA YI\n", "replace_x", "MKTAYI", None),                   # whitespace removed
    ("MKTAYI*", "replace_x", "MKTAYI", None),                     # trailing stop stripped
    ("MKTAYI**", "replace_x", "MKTAYI", None),
    ("MKT*AYI", "replace_x", "MKT*AYI", "internal_stop"),         # internal stop: dropped
    ("MKUAOI", "replace_x", "MKCAKI", None),                      # U→C, O→K
    ("MBZJXA", "replace_x", "MXXXXA", None),                      # B/Z/J→X, X kept
    ("MKUAOI", "drop", "MKUAOI", "nonstandard"),
    ("MKXAYI", "drop", "MKXAYI", "nonstandard"),
    ("MKTAYI", "drop", "MKTAYI", None),
    ("MBZUOXJ", "keep", "MBZUOXX", None),                         # keep: ESM letters kept, J→X
    ("", "replace_x", "", "empty"),
    ("--**", "replace_x", "", "empty"),
    (None, "replace_x", "", "empty"),
    ("MK1TA", "replace_x", "MK1TA", "invalid"),
])
def test_clean_sequence_policy(raw, policy, expected, reason):
    assert clean_sequence(raw, nonstandard=policy) == (expected, reason)


def test_curate_filters_and_report():
    seqs = [
        BASE,                          # kept
        BASE.lower() + "*",            # same after cleaning → duplicate of r0
        BASE[:15],                     # too short (< 20)
        BASE * 30,                     # too long (1590 > 1000)
        BASE[:40] + "X" * 13,          # 13/53 X > 0.1
        BASE[:50] + "XXX",             # 3/53 X = 0.057: kept
        BASE[:25] + "*" + BASE[25:],   # internal stop
        "U" + BASE[1:],                # U→C, kept
        BASE[::-1],                    # kept
    ]
    out, report = curate(frame(seqs, labels=["A", "B", "A", "A", "A", "A", "A", "A", "C"]), max_length=1000)
    assert out["id"].tolist() == ["r0", "r5", "r7", "r8"]
    assert out.loc[2, "sequence"] == "C" + BASE[1:]
    assert out["length"].tolist() == [53, 53, 53, 53]
    assert report["input"] == 9 and report["kept"] == 4
    dropped = {k: v for k, v in report["dropped"].items() if v}
    assert dropped == {"duplicate": 1, "too_short": 1, "too_long": 1, "too_many_x": 1, "internal_stop": 1}
    assert report["examples"]["duplicate"] == ["r1"]
    assert report["duplicate_label_conflicts"] == 1   # r1 was labelled B, r0 A
    assert report["modified"] == 1                    # the U→C record
    # dedup off keeps the duplicate; drop policy removes X and U records
    assert len(curate(frame(seqs), dedup=False, max_length=1000)[0]) == 5
    assert curate(frame(seqs), nonstandard="drop", max_length=1000)[0]["id"].tolist() == ["r0", "r8"]
    # by default nothing is too long: 02 windows long proteins and 03 crops them
    assert curate(frame(seqs))[0]["id"].tolist() == ["r0", "r3", "r5", "r7", "r8"]
    # bounds and x fraction are configurable
    assert curate(frame(seqs), min_length=10, max_length=5000, max_x_fraction=0.5)[1]["kept"] == 7  # all but duplicate + stop


def test_curate_duplicate_ids_and_extra_columns():
    df = frame([BASE, BASE[::-1], BASE[1:]])
    df["id"] = ["a", "a", "b"]
    df["text"] = ["x", "y", "z"]
    out, report = curate(df)
    assert out["id"].tolist() == ["a", "b"] and out["text"].tolist() == ["x", "z"]
    assert report["dropped"]["duplicate_id"] == 1


def test_curate_bad_input():
    with pytest.raises(InputError, match=r"record 'r1'.*\['1'\]"):
        curate(frame([BASE, "MKT1AYI" * 10]))
    out, report = curate(frame([BASE, "MKT1AYI" * 10]), on_invalid="drop")
    assert report["dropped"]["invalid"] == 1 and len(out) == 1
    with pytest.raises(InputError, match="nonstandard"):
        curate(frame([BASE]), nonstandard="strip")
    with pytest.raises(InputError, match="min_length"):
        curate(frame([BASE]), min_length=10, max_length=5)
    with pytest.raises(InputError, match="'sequence' column"):
        curate(pd.DataFrame({"id": ["a"]}))


def test_curate_toy_keeps_everything():
    raw, kind = load_source("toy", n_families=3, members_per_family=5, seed=1)
    assert kind == "toy" and len(raw) == 15
    out, report = curate(raw)
    assert report["kept"] == 15 and report["modified"] == 0


def test_load_source_errors(tmp_path):
    with pytest.raises(InputError):
        load_source(str(tmp_path / "missing.fasta"))
    with pytest.raises(InputError, match="max_records"):
        load_source("toy", n_families=2, members_per_family=2, max_records=0)
    sub, _ = load_source("toy", n_families=2, members_per_family=10, max_records=7)
    assert len(sub) == 7 and sub["id"].is_unique


# ----------------------------------------------------------------------------- split

def _mutate(seq, rate, rng):
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    arr = np.array(list(seq))
    hit = rng.random(len(arr)) < rate
    arr[hit] = rng.choice(aa, hit.sum())
    return "".join(arr)


def _near_duplicate_groups(n_groups=30, per_group=4, length=120, seed=0):
    """Groups of ~96 %-identical sequences; groups are unrelated random sequences."""
    rng = np.random.default_rng(seed)
    aa = list("ACDEFGHIKLMNPQRSTVWY")
    rows = []
    for g in range(n_groups):
        root = "".join(rng.choice(aa, length))
        for m in range(per_group):
            rows.append({"id": f"g{g}_{m}", "sequence": _mutate(root, 0.02, rng), "label": f"g{g}"})
    return pd.DataFrame(rows)


def _assert_groups_never_cross(out):
    per_group = out.groupby("label")["split"].nunique()
    assert (per_group == 1).all(), per_group[per_group > 1]
    per_cluster = out.groupby("cluster")["split"].nunique()
    assert (per_cluster == 1).all()


def test_kmer_split_keeps_near_identical_together(caplog):
    df = _near_duplicate_groups()
    out = split_by_identity(df, identity=0.9, method="kmer", seed=1)
    _assert_groups_never_cross(out)
    # unrelated groups are not merged: one cluster per group
    assert out["cluster"].nunique() == 30
    assert out.groupby("label")["cluster"].nunique().eq(1).all()
    sizes = out["split"].value_counts()
    assert sizes["train"] == 96 and sizes["valid"] == 12 and sizes["test"] == 12
    assert out.attrs["split"]["method"] == "kmer"
    # same seed, same split; another seed, another split
    assert split_by_identity(df, identity=0.9, method="kmer", seed=1)["split"].equals(out["split"])
    assert not split_by_identity(df, identity=0.9, method="kmer", seed=2)["split"].equals(out["split"])


def test_kmer_clusters_follow_identity():
    rng = np.random.default_rng(0)
    root = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 200))
    close, far = _mutate(root, 0.2, rng), "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 200))
    labels = cluster_kmer([root, close, far], identity=0.5)
    assert labels[0] == labels[1] != labels[2]
    # ~80 % identity is not ≥ 95 %
    assert len(set(cluster_kmer([root, close], identity=0.95))) == 2


def test_auto_falls_back_to_kmer_without_mmseqs(monkeypatch, caplog):
    import protlab.core.mmseqs as mmseqs_mod

    monkeypatch.setattr(mmseqs_mod, "mmseqs_binary", lambda: None)
    with caplog.at_level(logging.WARNING, logger="protlab.curate.split"):
        out = split_by_identity(_near_duplicate_groups(n_groups=10), identity=0.9)
    assert out.attrs["split"]["method"] == "kmer"
    assert "MMseqs2 not installed" in caplog.text
    with pytest.raises(InputError, match="MMseqs2"):
        split_by_identity(_near_duplicate_groups(n_groups=2), method="mmseqs")
    with pytest.raises(InputError, match=r"split_identity=0.5: the k-mer fallback cannot tell identities below 0.6"):
        split_by_identity(_near_duplicate_groups(n_groups=2), identity=0.5)  # auto fell back to k-mers: refused


@pytest.mark.skipif(not mmseqs_available(), reason="MMseqs2 is not installed")
def test_mmseqs_split_keeps_near_identical_together():
    df = _near_duplicate_groups(n_groups=12, per_group=3)
    out = split_by_identity(df, identity=0.9, method="mmseqs", seed=0)
    assert out.attrs["split"]["method"] == "mmseqs"
    _assert_groups_never_cross(out)
    assert out["cluster"].nunique() == 12


def test_mmseqs_failure_is_a_clear_error(monkeypatch, tmp_path):
    fake = tmp_path / "mmseqs"
    fake.write_text("#!/bin/sh\necho 'boom: out of memory' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PROTLAB_MMSEQS", str(fake))
    with pytest.raises(ProtlabError, match=r"mmseqs easy-cluster failed \(exit 3\).*boom"):
        split_by_identity(_near_duplicate_groups(n_groups=2), method="mmseqs")


def test_assign_splits_hits_fractions_with_whole_clusters():
    clusters = np.repeat(np.arange(100), 5)
    split = assign_splits(clusters, fractions=(0.7, 0.2, 0.1), seed=0)
    counts = pd.Series(split).value_counts()
    assert counts["train"] == 350 and counts["valid"] == 100 and counts["test"] == 50
    assert pd.DataFrame({"c": clusters, "s": split}).groupby("c")["s"].nunique().eq(1).all()


@pytest.mark.parametrize("kwargs", [{"identity": 0}, {"identity": 1.5}, {"fractions": (0.5, 0.5)},
                                    {"fractions": (0.8, 0.3, 0.1)}, {"method": "blast"}])
def test_split_bad_arguments(kwargs):
    with pytest.raises(InputError):
        split_by_identity(_near_duplicate_groups(n_groups=2), **kwargs)


# ----------------------------------------------------------------------------- ProtCLIP sampling

def test_keep_probability_exact_values():
    n = np.array([4, 3, 4, 3, 4, 2, 4, 4, 1, 0])
    c = np.array([1, 1, 2, 2, 3, 1, 4, 5, 1, 1])
    p = keep_probability(n, c)
    expected = [1.0, np.sqrt(0.75), 1 / 8, np.sqrt(0.75) / 8, 1 / 27, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    assert keep_probability(4, float("nan")) == 0.0
    assert float(keep_probability(3, 1)) == pytest.approx(0.8660254037844386)


def _uniprot_like(n, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append({"id": f"P{i:05d}", "sequence": BASE, "label": None,
                     "protein_name": "Kinase" if rng.random() < 0.95 else None,
                     "function": "Phosphorylates." if rng.random() < 0.7 else "  ",
                     "subcellular_location": "Nucleus" if rng.random() < 0.7 else None,
                     "similarity": "Belongs to the kinase family." if rng.random() < 0.8 else np.nan,
                     "existence": int(rng.choice([1, 2, 3, 4, 5], p=[0.5, 0.2, 0.15, 0.1, 0.05]))})
    return pd.DataFrame(rows)


def test_occupied_fields_and_text():
    df = _uniprot_like(200)
    n = occupied_fields(df)
    manual = df[["protein_name", "function", "subcellular_location", "similarity"]].apply(
        lambda r: sum(isinstance(v, str) and bool(v.strip()) for v in r), axis=1)
    assert (n == manual.to_numpy()).all()
    assert build_text({"protein_name": "Kinase", "function": " ", "subcellular_location": "Nucleus",
                       "similarity": None}) == "PROTEIN NAME: Kinase; SUBCELLULAR LOCATION: Nucleus"
    assert build_text({"protein_name": "A", "function": "B", "subcellular_location": "C", "similarity": "D"}) \
        == "PROTEIN NAME: A; FUNCTION: B; SUBCELLULAR LOCATION: C; SIMILARITY: D"


def test_protclip_sample_rules_and_empirical_rate():
    df = _uniprot_like(20000, seed=1)
    kept, report = protclip_sample(df, seed=0)
    p = keep_probability(occupied_fields(df), df["existence"])
    # hard rules
    assert (kept["n_fields"] >= 3).all() and (kept["existence"] <= 3).all()
    assert report["dropped_fewer_than_3_fields"] == int((occupied_fields(df) < 3).sum())
    assert report["kept"] == len(kept)
    assert report["input"] == report["kept"] + report["dropped_fewer_than_3_fields"] + \
        report["dropped_existence_above_3_or_missing"] + report["dropped_by_draw"]
    # empirical keep rate matches sum of probabilities (binomial sd ≈ 50)
    assert abs(len(kept) - p.sum()) < 4 * np.sqrt((p * (1 - p)).sum())
    # per stratum too: C=2 with all four fields is kept 1/8 of the time
    stratum = (occupied_fields(df) == 4) & (df["existence"] == 2).to_numpy()
    rate = kept[(kept["n_fields"] == 4) & (kept["existence"] == 2)].shape[0] / stratum.sum()
    assert abs(rate - 1 / 8) < 4 * np.sqrt(1 / 8 * 7 / 8 / stratum.sum())
    assert kept["text"].str.startswith("PROTEIN NAME:").mean() > 0.9
    # seeded
    assert protclip_sample(df, seed=0)[0]["id"].equals(kept["id"])
    assert not protclip_sample(df, seed=1)[0]["id"].equals(kept["id"])


def test_protclip_sample_needs_existence():
    with pytest.raises(InputError, match="existence"):
        protclip_sample(frame([BASE]))


def test_protclip_sample_on_real_uniprot(shared_data):
    from protlab.curate.formats import read_proteins

    files = sorted((shared_data / "uniprot" / "flatfile").glob("*"))
    frames = [read_proteins(f) for f in files if f.is_file()]
    df = pd.concat(frames, ignore_index=True)
    assert len(df) >= 100
    kept, report = protclip_sample(df, seed=0)
    assert 0 < report["kept"] < len(df)
    assert (kept["existence"] <= 3).all() and (kept["n_fields"] >= 3).all()
    assert kept["text"].str.contains("FUNCTION: ").all() or (kept["n_fields"] >= 3).all()


def test_kmer_split_on_real_pfam_never_separates_near_identical(shared_data):
    """Equal-length Pfam domains ≥ 70 % identical (Hamming) always land in one split."""
    from protlab.curate.formats import read_proteins

    df = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta").sample(3000, random_state=0)
    out = split_by_identity(df, identity=0.7, method="kmer", seed=0)
    pairs = 0
    for _, group in out.groupby(out["sequence"].str.len()):
        if len(group) < 2:
            continue
        arr = np.array([list(s) for s in group["sequence"]])
        ident = (arr[:, None, :] == arr[None, :, :]).mean(-1)
        i, j = np.nonzero(np.triu(ident >= 0.7, k=1))
        pairs += len(i)
        split = group["split"].to_numpy()
        assert (split[i] == split[j]).all()
    assert pairs > 100  # the check had something to check (229 pairs)
    assert set(out["split"]) == {"train", "valid", "test"}


def test_require_proteins_names_the_step():
    from protlab.curate.filters import require_proteins

    kept, report = curate(frame(["MK", "MKT"]))
    with pytest.raises(InputError, match=r"in\.fasta: no proteins left after curation.*'too_short': 2"):
        require_proteins(kept, report, source="in.fasta", step="curation")
    ok, _ = curate(frame([BASE]))
    assert require_proteins(ok, report, source="x", step="curation") is ok


def test_dataset_figure_data():
    from protlab.curate.report import composition, summary
    from protlab.plot.curate import family_sizes, length_histogram

    df = frame([BASE, BASE[::-1], "ACDX" * 10], labels=["a", "a", "b"]).assign(split=["train", "train", "test"])
    comp = composition(df["sequence"])
    assert comp.sum() == pytest.approx(1.0) and comp["X"] == pytest.approx(10 / 146)
    bars = family_sizes(df)
    assert {(t.name, tuple(t.x), tuple(t.y)) for t in bars.data} == {("train", ("a",), (2,)), ("test", ("b",), (1,))}
    assert sorted(np.concatenate([t.x for t in length_histogram(df).data])) == [40, 53, 53]
    assert summary(df) == {"proteins": 3, "labels": 2, "length_min": 40, "length_median": 53.0,
                           "length_max": 53, "splits": {"train": 2, "test": 1}}


def test_stratified_split_gives_every_label_its_share():
    # label "a": 2 big clusters of 20; label "b": 40 singletons. Unstratified, the big clusters
    # can fill valid/test and leave "a" almost without training data.
    clusters = np.r_[np.zeros(20, int), np.ones(20, int), np.arange(2, 42)]
    labels = np.array(["a"] * 40 + ["b"] * 40)
    split = assign_splits(clusters, fractions=(0.5, 0.25, 0.25), seed=0, strata=labels)
    a, b = split[:40], split[40:]
    assert sorted(set(a[:20])) == [a[0]] and sorted(set(a[20:])) == [a[20]]  # clusters stay whole
    assert (a == "train").sum() == 20                                       # "a" gets its 50 % of train
    assert [(b == s).sum() for s in ("train", "valid", "test")] == [20, 10, 10]


def test_kmer_split_keeps_one_family_of_homologs_together():
    rng = np.random.default_rng(3)
    ancestor = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 150))
    variants = [_mutate(ancestor, 0.15, rng) for _ in range(60)]  # one family: every pair >= ~70 % identical
    assert len(set(cluster_kmer(variants, identity=0.6))) == 1


def test_kmer_split_does_not_chain_long_unrelated_proteins():
    rng = np.random.default_rng(0)
    unrelated = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=1000)) for _ in range(19)]
    clusters = cluster_kmer(unrelated, identity=0.5)
    assert len(set(clusters)) == 19  # chance 3-mer sharing (~10 %) used to link them all at identity 0.5
    mutant = list(unrelated[0])
    for i in rng.choice(1000, size=300, replace=False):  # 70 % identical: still one cluster with its parent
        mutant[i] = "W" if mutant[i] != "W" else "A"
    clusters = cluster_kmer(unrelated + ["".join(mutant)], identity=0.5)
    assert clusters[0] == clusters[-1] and len(set(clusters)) == 19


def test_empty_split_is_reported_not_silent():
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(12)], "sequence": ["MKTAYIAKQRQISFVKSHFSRQ"] * 12,
                          "label": "a"})
    with pytest.warns(UserWarning, match=r"split 'valid', 'test' is EMPTY.*1 identity clusters"):
        out = split_by_identity(frame, method="kmer", identity=0.9)
    assert out.attrs["split"]["empty"] == ["valid", "test"] and set(out["split"]) == {"train"}
