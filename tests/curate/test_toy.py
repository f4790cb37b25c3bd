"""Invariants of the toy protein universe (protlab.curate.toy)."""
from __future__ import annotations

import numpy as np
import pytest

from protlab.curate.records import Structure
from protlab.curate.sampling import build_text
from protlab.curate.toy import AMINO_ACIDS, make_universe, site_code
from protlab.core.errors import InputError


@pytest.fixture(scope="module")
def universe():
    return make_universe(n_families=5, members_per_family=16, seed=3)


def test_columns_and_sizes(universe):
    p = universe.proteins
    assert list(p.columns) == ["id", "sequence", "label", "family", "protein_name", "function",
                               "subcellular_location", "similarity", "text", "existence", "site"]
    assert len(p) == 80 and p["id"].is_unique
    assert sorted(p["family"].unique()) == [0, 1, 2, 3, 4]
    assert (p.groupby("family").size() == 16).all()
    # one label per family and vice versa
    assert p.groupby("family")["label"].nunique().eq(1).all() and p["label"].nunique() == 5
    assert set("".join(p["sequence"])) <= set(AMINO_ACIDS)
    assert p["existence"].between(1, 5).all() and p["existence"].nunique() >= 3
    assert set(universe.coords) == set(p["id"])


def test_seeded(universe):
    again = make_universe(n_families=5, members_per_family=16, seed=3)
    assert again.proteins.drop(columns="site").equals(universe.proteins.drop(columns="site"))
    assert all(np.array_equal(again.coords[k], v) for k, v in universe.coords.items())
    other = make_universe(n_families=5, members_per_family=16, seed=4)
    assert list(other.proteins["sequence"]) != list(universe.proteins["sequence"])


def test_lengths_indels_and_family_similarity(universe):
    p = universe.proteins
    for fam in universe.families:
        assert 80 <= fam.length <= 160
        lengths = p.loc[p["family"] == fam.index, "sequence"].str.len()
        assert lengths.nunique() > 1, "members should differ by indels"
        assert (lengths - fam.length).abs().max() <= 25
    # conserved positions are conserved: members agree with the consensus there far more than elsewhere
    for fam in universe.families:
        assert len(fam.conserved) >= 0.15 * fam.length
        at_conserved, elsewhere = [], []
        conserved = np.zeros(fam.length, bool)
        conserved[fam.conserved] = True
        for pid, seq in p.loc[p["family"] == fam.index, ["id", "sequence"]].itertuples(index=False):
            aligned = universe.alignment[pid]
            for residue, pos in zip(seq, aligned):
                if pos >= 0:
                    (at_conserved if conserved[pos] else elsewhere).append(residue == fam.consensus[pos])
        assert np.mean(at_conserved) > 0.9 and 0.3 < np.mean(elsewhere) < 0.8


def test_geometry(universe):
    for pid, ca in universe.coords.items():
        assert ca.dtype == np.float32 and ca.shape == (len(universe.proteins.set_index("id").at[pid, "sequence"]), 3)
        bonds = np.linalg.norm(np.diff(ca, axis=0), axis=1)
        assert np.abs(bonds - 3.8).max() < 0.1, pid
        dist = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
        nonconsecutive = dist[np.triu_indices(len(ca), k=2)]
        assert nonconsecutive.min() >= 3.0, pid


def test_secondary_structure_segments(universe):
    """Helices: Cα(i)–Cα(i+3) ≈ 5 Å; strands: Cα(i)–Cα(i+2) ≈ 6.5 Å (extended)."""
    for fam in universe.families:
        ss, x = fam.secondary, fam.template
        helix = [i for i in range(len(ss) - 3) if ss[i:i + 4] == "HHHH"]
        strand = [i for i in range(len(ss) - 2) if ss[i:i + 3] == "EEE"]
        assert helix or strand
        if helix:
            d = np.linalg.norm(x[[i + 3 for i in helix]] - x[helix], axis=1)
            assert 4.5 < np.median(d) < 5.8
        if strand:
            d = np.linalg.norm(x[[i + 2 for i in strand]] - x[strand], axis=1)
            assert 6.0 < np.median(d) < 7.2


def test_planted_site(universe):
    p = universe.proteins
    for fam in universe.families:
        assert 3 <= len(fam.site) <= 5
        members = p[p["family"] == fam.index]
        for _, row in members.iterrows():
            site = np.array(row["site"])
            assert len(site) == len(fam.site)
            # same residue type in every member, indices recomputed through indels
            assert "".join(row["sequence"][i] for i in site) == fam.site_residues
            assert np.diff(site).min() >= 15
            ca = universe.coords[row["id"]]
            d = np.linalg.norm(ca[site][:, None] - ca[site][None], axis=-1)
            assert d.max() <= 10.0
        assert members["site"].map(tuple).nunique() > 1 or fam.length < 90  # indels shift sites


def test_members_share_the_family_fold(universe):
    """Same-length members superpose on each other far better than on other families."""
    p = universe.proteins

    def rmsd(a, b):
        a, b = a - a.mean(0), b - b.mean(0)
        u, _, vt = np.linalg.svd(a.T @ b)
        d = np.sign(np.linalg.det(u @ vt))
        r = u @ np.diag([1, 1, d]) @ vt
        return float(np.sqrt(((a @ r - b) ** 2).sum(1).mean()))

    for fam in universe.families:
        other = universe.families[(fam.index + 1) % len(universe.families)]
        for pid in p.loc[p["family"] == fam.index, "id"].head(4):
            aligned = universe.alignment[pid]
            assert len(aligned) == len(universe.coords[pid])
            kept = aligned >= 0
            assert (np.diff(aligned[kept]) > 0).all()
            own = rmsd(universe.coords[pid][kept], fam.template[aligned[kept]])
            assert own < 1.5
            n = min(len(universe.coords[pid]), other.length)
            assert rmsd(universe.coords[pid][:n], other.template[:n]) > 3 * own


def test_text_correlates_with_family_with_noise(universe):
    p = universe.proteins
    assert p["text"].eq(p.apply(build_text, axis=1)).all()
    assert p["text"].str.startswith(("PROTEIN NAME:", "FUNCTION:", "SUBCELLULAR", "SIMILARITY")).all()
    # similarity points to the family for most proteins, not all (confusion noise)
    sim = p.dropna(subset=["similarity"])
    majority = sim.groupby("family")["similarity"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    assert (majority > 0.7).all()
    assert sim.groupby("family")["similarity"].first().nunique() == len(universe.families)
    # some fields are dropped, and names come with synonyms
    assert p[["function", "subcellular_location"]].isna().any().all()
    assert p.groupby("family")["protein_name"].nunique().max() > 1


def test_structures(universe):
    pid = universe.proteins["id"].iloc[7]
    s = universe.structure(pid)
    assert isinstance(s, Structure) and s.id == pid and s.chain == "A"
    assert len(s) == len(s.ca) == len(s.res_ids) == len(s.centroid)
    assert s.res_ids[0] == 1 and s.residue_labels()[:2] == ["1", "2"]
    assert s.res_names[0] == {"A": "ALA"}.get(s.sequence[0], s.res_names[0])
    np.testing.assert_array_equal(s.ca, universe.coords[pid])
    assert len(universe.structures()) == len(universe.proteins)
    with pytest.raises(InputError, match="no toy protein"):
        universe.structure("nope")


def test_default_universe_is_fast():
    import time

    start = time.process_time()
    u = make_universe()
    assert len(u.proteins) == 320
    assert time.process_time() - start < 6.0  # ≈ 1.5 s CPU; generous for a loaded CI machine


@pytest.mark.parametrize("kwargs", [{"n_families": 0}, {"members_per_family": 0},
                                    {"length_range": (10, 20)}, {"length_range": (150, 100)}])
def test_bad_arguments(kwargs):
    with pytest.raises(InputError):
        make_universe(**kwargs)


def test_superfamilies_share_fold_and_differ_only_at_the_site():
    u = make_universe(4, 3, families_per_superfamily=2, length_range=(60, 80), seed=3)
    a, b, c = u.families[0], u.families[1], u.families[2]
    assert np.array_equal(a.template, b.template) and np.array_equal(a.site, b.site)
    assert a.secondary == b.secondary and not np.array_equal(a.template[:5], c.template[:5]) or a.length != c.length
    differ = [i for i in range(a.length) if not np.allclose(a.profile[i], b.profile[i])]
    assert differ == sorted(a.site.tolist())
    assert a.site_residues != b.site_residues
    p = u.proteins
    for fam in (a, b):
        for seq, site in zip(p.loc[p["family"] == fam.index, "sequence"], p.loc[p["family"] == fam.index, "site"]):
            assert "".join(seq[s] for s in site) == fam.site_residues
    with pytest.raises(InputError):
        make_universe(2, 2, families_per_superfamily=10)


def test_site_code_makes_every_site_residue_necessary():
    words = site_code(8, 3)
    assert len({tuple(w) for w in words}) == 8                     # 8 distinct families
    assert (words.sum(0) == 4).all()                               # every position splits them 4/4
    for drop in range(3):                                          # any two positions leave pairs ambiguous
        kept = {tuple(np.delete(w, drop)) for w in words}
        assert len(kept) == 4
    parity = site_code(4, 3)                                       # fewer families: parity fills the rest
    assert parity.tolist() == [[0, 0, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0]]
    u = make_universe(8, 2, families_per_superfamily=8, length_range=(60, 80), seed=1)
    sites = {f.site_residues for f in u.families}
    assert len(sites) == 8
    for i in range(len(u.families[0].site)):                       # two residue types per site position
        assert len({s[i] for s in sites}) == 2
