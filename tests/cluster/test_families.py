"""Families of a homology graph: pure pieces, merging, counting, fitting to n; SCAN with a
size prior and an estimated number of families."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from protlab.cluster import families as fam
from protlab.cluster.family_fit import describe_fit_steps, split_in_two
from protlab.cluster.heads import scan_loss
from protlab.cluster.methods import cluster
from protlab.cluster.neighbors import NeighborGraph
from protlab.core.errors import InputError
from protlab.core.mmseqs import mmseqs_available
from protlab.evaluate.metrics import evaluate

needs_mmseqs = pytest.mark.skipif(not mmseqs_available(), reason="mmseqs (MMseqs2) is not installed")


def _graph(groups: list[np.ndarray], n: int, k: int, *, extra_hits=(), rng=None):
    """kNN lists where each protein's neighbours are drawn from its own group, plus symmetric
    binary hits (all kNN edges and ``extra_hits``) and an affinity equal to the hits."""
    rng = rng or np.random.default_rng(0)
    knn = np.full((n, k), -1, dtype=np.int64)
    for members in groups:
        for i in members:
            others = members[members != i]
            take = rng.choice(others, size=min(k, len(others)), replace=False)
            knn[i, :len(take)] = take
    rows = np.repeat(np.arange(n), k)
    ok = knn.ravel() >= 0
    pairs = [(rows[ok], knn.ravel()[ok])] + [(np.asarray(a), np.asarray(b)) for a, b in extra_hits]
    r = np.concatenate([p[0] for p in pairs])
    c = np.concatenate([p[1] for p in pairs])
    hits = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    hits = hits.maximum(hits.T).tocsr()
    hits.data[:] = 1.0
    return knn, hits


def homology_graph(knn, homologous, hits, affinity) -> NeighborGraph:
    return NeighborGraph(knn=knn, counts=np.maximum((knn >= 0).sum(1), 1), affinity=affinity, source="mmseqs",
                         hits=hits, homologous=homologous)


def test_a_stray_hit_does_not_chain_two_families():
    a, b = np.arange(0, 60), np.arange(60, 100)
    knn, hits = _graph([a, b], 100, 8)
    knn[0, -1], knn[60, -1] = 60, 0  # the two families' best-connected members hit each other
    hits = (hits + sp.csr_matrix(([1.0, 1.0], ([0, 60], [60, 0])), shape=(100, 100))).tocsr()
    hits.data[:] = 1.0
    assert sp.csgraph.connected_components(hits)[0] == 1  # plain components would be one family
    part = fam.find_families(homology_graph(knn, np.ones(100, bool), hits, hits), np.eye(100, 4, dtype=np.float32))
    assert part.n_estimated == 2 and part.min_size == fam.min_family_size(100) == 5
    assert set(part.labels[a]) == {0} and set(part.labels[b]) == {1}  # largest family first


def test_fragments_merge_into_their_family_and_orphans_are_attached():
    rng = np.random.default_rng(1)
    family, fragment, orphans = np.arange(0, 80), np.arange(80, 95), np.arange(95, 100)
    other = np.arange(100, 140)
    # the fragment's top hits are among itself, but it hits the family 2 times per member
    extra = (rng.choice(fragment, 30), rng.choice(family, 30))
    knn, hits = _graph([family, fragment, other], 140, 6, extra_hits=[extra], rng=rng)
    homologous = np.ones(140, bool)
    homologous[orphans] = False
    knn[orphans] = -1
    # orphans: no homology hits, only embedding edges to the other family
    weak = sp.csr_matrix((np.ones(10), (np.repeat(orphans, 2), rng.choice(other, 10))), shape=(140, 140))
    affinity = (hits + weak.maximum(weak.T)).tocsr()
    pieces = fam.pure_pieces(knn, homologous)
    assert len(set(pieces[fragment]) & set(pieces[family])) == 0  # pure pieces: the fragment stands apart
    part = fam.find_families(homology_graph(knn, homologous, hits, affinity), np.ones((140, 3), np.float32))
    assert part.n_estimated == 2
    assert len(set(part.labels[np.r_[family, fragment]])) == 1
    assert set(part.labels[orphans]) == set(part.labels[other]) and part.info["attached"] == len(orphans)


def test_fit_to_merges_the_smallest_and_splits_the_largest():
    a, b, c = np.arange(0, 50), np.arange(50, 90), np.arange(90, 100)
    _, hits = _graph([a, b, c], 100, 5)
    link = sp.csr_matrix((np.ones(6), ([90, 91, 92, 50, 51, 52], [50, 51, 52, 90, 91, 92])), shape=(100, 100))
    affinity = (hits + link).tocsr()
    labels = np.r_[np.zeros(50, int), np.ones(40, int), np.full(10, 2)]
    merged, steps = fam.fit_to(labels, 2, affinity, np.zeros((100, 2), np.float32))
    assert len(set(merged)) == 2 and len(set(merged[np.r_[b, c]])) == 1  # c joins b, its best connection
    assert steps == [{"merged": {"sizes": [10, 40], "why": "smallest", "strength": 0.3, "members": [90, 50]}}]
    x = np.r_[np.zeros((25, 2)), np.full((25, 2), 5.0), np.ones((50, 2))].astype(np.float32)
    split, steps = fam.fit_to(np.r_[np.zeros(50, int), np.ones(50, int)], 3, sp.csr_matrix((100, 100)), x)
    assert len(set(split)) == 3 and len(set(split[:25])) == 1 and len(set(split[25:50])) == 1
    assert split[0] != split[25] and list(steps[0]) == ["split"] and sorted(steps[0]["split"]["sizes"]) == [25, 25]


def _parts_and_small(cross_pairs: int):
    """A big family in two parts (``cross_pairs`` hits between them) and a small family with no
    hit to anyone; the labels the graph gave them."""
    part1, part2, small = np.arange(0, 600), np.arange(600, 1000), np.arange(1000, 1030)
    _, hits = _graph([part1, part2, small], 1030, 5)
    rng = np.random.default_rng(0)
    rows, cols = rng.choice(part1, cross_pairs), rng.choice(part2, cross_pairs)
    cross = sp.csr_matrix((np.ones(2 * cross_pairs), (np.r_[rows, cols], np.r_[cols, rows])), shape=(1030, 1030))
    hits = ((hits + cross) > 0).astype(np.float64).tocsr()
    return hits, np.r_[np.zeros(600, int), np.ones(400, int), np.full(30, 2)]


def test_fit_to_merges_the_parts_of_a_big_family_before_a_small_distinct_one():
    """Fitting 3 families to 2 merges the parts (a quarter of the smaller part's hits go to the
    other), and the small family keeps its own cluster; families that meet rarely (the parts
    of a clan) are no parts: then the smallest merges."""
    hits, labels = _parts_and_small(1000)
    fitted, steps = fam.fit_to(labels, 2, hits, np.zeros((1030, 2), np.float32), hits=hits)
    assert len(set(fitted[:1000])) == 1 and len(set(fitted[1000:])) == 1 and fitted[0] != fitted[1000]
    assert steps[0]["merged"]["sizes"] == [400, 600] and steps[0]["merged"]["why"] == "part"
    assert steps[0]["merged"]["strength"] >= 0.1
    hits, labels = _parts_and_small(40)
    fitted, steps = fam.fit_to(labels, 2, hits, np.zeros((1030, 2), np.float32), hits=hits)
    assert steps[0]["merged"]["why"] == "smallest" and len(set(fitted[:1000])) == 2


def test_a_count_met_by_a_family_in_parts_keeps_a_small_group_apart_instead():
    """Three families asked for, three estimated, but two are the parts of one: the parts merge
    although the count is met, and the largest group the graph had attached to a family (12 of
    the small family's 30, a group too small to count) becomes the third family, not a half of
    the big one. Below the estimate (groups promoted to fill the count) nothing merges back."""
    hits, labels = _parts_and_small(1000)
    groups = np.r_[np.zeros(600, int), np.ones(400, int), np.full(18, 2), np.full(12, 3)]
    is_family = np.array([True, True, True, False])
    x = np.zeros((1030, 2), np.float32)
    kept, steps = fam.fit_to(labels, 3, hits, x, hits=hits, groups=groups, is_family=is_family)
    assert steps == [] and np.array_equal(kept, labels)
    fitted, steps = fam.fit_to(labels, 3, hits, x, hits=hits, groups=groups, is_family=is_family, parts_first=True)
    assert len(set(fitted[:1000])) == 1 and len(set(fitted[1000:1018])) == 1 and len(set(fitted[1018:])) == 1
    assert len(set(fitted)) == 3 and fitted[1000] != fitted[1018] != fitted[0]
    assert [next(iter(step)) for step in steps] == ["merged", "promoted"]
    assert steps[1]["promoted"] == {"sizes": [12], "members": [1018]}
    fam.largest_first(fitted, steps)
    assert "kept a group of 12 proteins" in describe_fit_steps(steps)
    hits, labels = _parts_and_small(40)  # no parts: the count is met as it is
    fitted, steps = fam.fit_to(labels, 3, hits, x, hits=hits, groups=groups, is_family=is_family, parts_first=True)
    assert steps == [] and np.array_equal(fitted, labels)


def test_the_estimate_counts_the_parts_of_one_family_once():
    hits, labels = _parts_and_small(1000)
    merged, steps = fam.merge_down(labels, None, hits, hits)
    assert len(set(merged)) == 2 and [s["why"] for s in steps] == ["part"]
    hits, labels = _parts_and_small(40)
    assert len(set(fam.merge_down(labels, None, hits, hits)[0])) == 3


def test_merge_counts_only_the_proteins_that_searched():
    """After a landmark search a piece's hits come from its representatives: 3 hits from a
    piece of 400 proteins, 40 of them representatives, are 0.0075 per protein (kept apart)
    but 0.075 per representative (merged)."""
    pieces = np.r_[np.zeros(400, int), np.ones(600, int)]
    hits = sp.csr_matrix((np.ones(3), ([0, 10, 20], [400, 401, 402])), shape=(1000, 1000))
    hits = hits.maximum(hits.T).tocsr()
    assert len(set(fam.merge_pieces(pieces, hits))) == 2
    counted = np.ones(1000, bool)
    counted[40:400] = False
    assert len(set(fam.merge_pieces(pieces, hits, counted=counted))) == 1


@pytest.mark.parametrize("spectral_max", [1000, 10])
def test_split_in_two_follows_the_graph(spectral_max):
    """Two communities joined by one edge, embeddings pure noise: split along the graph, by
    the spectral coordinate or (large families) by embeddings smoothed over the subgraph."""
    rng = np.random.default_rng(0)
    groups = [np.arange(40), np.arange(40, 70)]
    r, c = [], []
    for g in groups:
        pairs = rng.choice(g, size=(len(g) * 6, 2))
        r += pairs[:, 0].tolist()
        c += pairs[:, 1].tolist()
    affinity = sp.csr_matrix((np.ones(len(r) + 1), (r + [0], c + [40])), shape=(80, 80))
    members = np.arange(70)
    halves = split_in_two(members, affinity, rng.normal(size=(80, 8)).astype(np.float32),
                              config=fam.FamilyConfig(split_spectral_max=spectral_max))
    assert len(set(halves[:40])) == 1 and len(set(halves[40:70])) == 1 and halves[0] != halves[40]


def test_min_family_size_grows_with_the_data():
    assert fam.min_family_size(300) == 5 and fam.min_family_size(1000) == 10
    assert fam.min_family_size(5000) == fam.min_family_size(100_000) == fam.FamilyConfig().min_family == 20
    assert fam.min_family_size(1_000_000) == 100
    assert fam.min_family_size(5000, fam.FamilyConfig(min_family=40)) == 40


def test_family_config_refuses_unknown_names_and_bad_values():
    assert fam.FamilyConfig.from_dict({"longer": 1.5, "merge_hits": 4.0}) == fam.FamilyConfig(longer=1.5, merge_hits=4)
    with pytest.raises(InputError, match="unknown key.*'longr'"):
        fam.FamilyConfig.from_dict({"longr": 1.5})
    with pytest.raises(InputError, match="merge_hits.*positive integer"):
        fam.FamilyConfig.from_dict({"merge_hits": 2.5})
    with pytest.raises(InputError, match="longer.*positive number"):
        fam.FamilyConfig.from_dict({"longer": -1})


def test_scan_loss_with_a_prior():
    torch.manual_seed(0)
    anchors, neighbours = torch.randn(64, 4, requires_grad=True), torch.randn(64, 4)
    plain, _, _ = scan_loss(anchors, neighbours, entropy_weight=5.0)
    uniform, _, _ = scan_loss(anchors, neighbours, entropy_weight=5.0, prior=torch.full((4,), 0.25))
    assert float((uniform - plain).detach()) == pytest.approx(5.0 * np.log(4), rel=1e-5)  # KL = log K − H
    (g1,) = torch.autograd.grad(plain, anchors)
    (g2,) = torch.autograd.grad(uniform, anchors)
    torch.testing.assert_close(g1, g2)
    # a skewed prior: predictions of the skewed sizes cost less than equal sizes
    skewed = torch.tensor([0.7, 0.1, 0.1, 0.1])
    logits_skewed = torch.log(skewed).repeat(64, 1)
    logits_equal = torch.zeros(64, 4)
    cost = lambda z: float(scan_loss(z, z, entropy_weight=5.0, prior=skewed)[0])  # noqa: E731
    assert cost(logits_skewed) < cost(logits_equal)


def test_n_clusters_none_needs_a_homology_graph():
    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    with pytest.raises(InputError, match="homology"):
        cluster(x, method="scan", n_clusters=None, neighbors="faiss")
    with pytest.raises(InputError, match="homology graph"):
        cluster(x, method="families", n_clusters=3, neighbors="faiss")
    with pytest.raises(InputError, match="only method='families' or 'scan'"):
        cluster(x, method="kmeans", n_clusters=None)


@needs_mmseqs
def test_scan_estimates_the_number_of_unequal_real_families(shared_data):
    """Real Pfam domains in families of 20 to 120 members, the number of families not given."""
    from protlab.curate.formats import read_proteins
    from protlab.embed.kmer import KmerEncoder

    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    sizes = {"PF00072": 120, "PF00595": 60, "PF00004": 40, "PF00018": 25, "PF00076": 20}
    frame = pd.concat([frame[frame["label"] == name].head(size) for name, size in sizes.items()], ignore_index=True)
    emb = KmerEncoder(dim=32).embed(frame["sequence"].tolist())
    result = cluster(emb, frame["sequence"].tolist(), method="families", n_clusters=None,
                     epochs=5, self_label_epochs=2, n_heads=2, min_steps=100)
    assert result.info["n_clusters_estimated"] == 5 and result.probabilities.shape[1] == 5
    scores = evaluate(frame["label"], result.labels)
    assert scores["nmi"] >= 0.9 and scores["acc"] >= 0.95
    sizes_found = np.sort(np.bincount(result.labels))[::-1]
    assert sizes_found[0] >= 110 and sizes_found[-1] >= 18  # unequal sizes kept, not pulled to 53 each
    assert result.info["agreement_heads_families"] >= 0.95


@needs_mmseqs
def test_chunked_search_equals_one_search(shared_data):
    """The scale path: queries searched in chunks against all proteins give the same hits and graph."""
    from protlab.cluster.neighbors import mine_neighbors
    from protlab.core.mmseqs import chunked_search, easy_search
    from protlab.curate.formats import read_proteins

    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    frame = frame[frame["label"].isin(["PF00072", "PF00595", "PF00018"])].groupby("label").head(30)
    seqs = frame["sequence"].tolist()
    whole = easy_search(seqs, max_seqs=50)
    parts = list(chunked_search(seqs, chunk_size=50, max_seqs=50))
    assert len(parts) == 2 and parts[1][0].min() >= 50
    chunked = [np.concatenate(c) for c in zip(*parts)]
    key = lambda q, t, b: sorted(zip(q.tolist(), t.tolist(), np.round(b, 1).tolist()))  # noqa: E731
    assert key(*whole) == key(*chunked) and len(whole[0]) > len(seqs)
    emb = np.random.default_rng(0).normal(size=(len(seqs), 8)).astype(np.float32)
    one, two = mine_neighbors(emb, seqs, source="mmseqs"), mine_neighbors(emb, seqs, source="mmseqs", search_chunk=50)
    np.testing.assert_array_equal(one.knn, two.knn)
    assert (one.hits != two.hits).nnz == 0 and one.purity(frame["label"]) >= 0.99


@needs_mmseqs
def test_stage_estimates_families_without_labels(tmp_path):
    """04 on proteins without labels: n_clusters=None is estimated, recorded and shown."""
    import protlab
    from protlab.core.rundir import RunDir
    from protlab.curate.toy import make_universe
    from protlab.embed.kmer import KmerEncoder

    proteins = make_universe(5, 30, seed=2).proteins
    frame = proteins[["id", "sequence"]].assign(label=None, split="train")
    RunDir(tmp_path).save_proteins(frame)
    RunDir(tmp_path).save_embeddings(frame["id"], KmerEncoder(dim=32).embed(frame["sequence"].tolist()), encoder="kmer")
    result = protlab.cluster.run(tmp_path, epochs=5, self_label_epochs=2, n_heads=2, map_max_points=0)
    assert result.results["n_clusters_estimated"] == 5 and result.results["n_clusters"] == 5
    assert evaluate(proteins["label"], result.labels)["nmi"] >= 0.95
    assert "5 families estimated" in result.figures["family_count"].layout.title.text
    assert (tmp_path / "figures" / "family_count_families.html").is_file()
    for method in ("families", "scan"):  # one fit, both clusterings written
        recorded = json.loads(RunDir(tmp_path).clustering(method, ".json").read_text())
        assert recorded["n_clusters_estimated"] == 5 and recorded["n_clusters_requested"] is None
        assert recorded["family_config"] == fam.FamilyConfig().as_dict()
    stage = json.loads((tmp_path / "cluster.json").read_text())
    assert stage["settings"]["n_clusters"] == 5 and stage["params"]["n_clusters"] is None
    assert stage["settings"]["family_config"]["longer"] == fam.FamilyConfig().longer
    assert stage["code"]["version"] == protlab.__version__


def test_profile_seeds_take_the_best_connected_member_of_each_large_piece():
    groups = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    pieces = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    is_family = np.array([True, True, False])
    r, c = [0, 1, 1, 2, 3, 5], [1, 2, 4, 4, 4, 6]
    hits = sp.csr_matrix((np.ones(6), (r, c)), shape=(8, 8))
    hits = hits.maximum(hits.T).tocsr()
    seeds, family = fam.profile_seeds(groups, pieces, is_family, hits, per_family=5)
    # group 0: piece 0 (3 members, protein 1 has most hits) then piece 1 (protein 4); group 1: protein 5
    assert seeds.tolist() == [1, 4, 5] and family.tolist() == [0, 0, 1]
    assert fam.profile_seeds(groups, pieces, is_family, hits, per_family=1)[0].tolist() == [1, 5]
    reached = fam.attach_by_hits(groups, is_family, hits)
    assert reached.tolist() == [0, 0, 0, 0, 0, 1, 1, -1]  # protein 7: no hits
    affinity = hits + sp.csr_matrix(([1.0, 1.0], ([7, 5], [5, 7])), shape=(8, 8))  # an embedding edge 7-5
    assert fam.attach_by_affinity(reached, affinity, np.eye(8, 3)).tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    placed = reached.copy()
    placed[7] = 0  # found by family 0's profile: kept
    assert fam.attach_by_affinity(placed, affinity, np.eye(8, 3)).tolist() == placed.tolist()


def test_proteins_without_homology_take_a_family_of_their_length():
    """Family 0: 31-residue repeats, family 1: 100-residue domains. Protein 6 (31 residues)
    has only an embedding edge into family 1, protein 7 (30) an edge to protein 6, protein 8
    (300, no family that long) an edge into family 0."""
    families = np.array([0, 0, 0, 1, 1, 1, -1, -1, -1])
    lengths = np.array([31, 30, 31, 100, 98, 104, 31, 30, 300], dtype=float)
    r, c = [0, 1, 3, 4, 6, 7, 8], [1, 2, 4, 5, 3, 6, 0]
    affinity = sp.csr_matrix((np.ones(7), (r, c)), shape=(9, 9))
    affinity = affinity.maximum(affinity.T).tocsr()
    emb = np.r_[np.tile([1.0, 0, 0], (3, 1)), np.tile([0, 1.0, 0], (6, 1))]  # 6-8 look like family 1
    assert fam.attach_by_affinity(families, affinity, emb).tolist()[6:] == [1, 1, 0]  # by edges alone
    assert fam.attach_by_affinity(families, affinity, emb, lengths=lengths).tolist()[6:] == [0, 0, 0]


@needs_mmseqs
def test_family_profiles_place_proteins_without_hits(shared_data):
    """PPR repeats (PF01535, 31 residues) often hit nothing; profiles of their family find
    them, where embedding neighbours mostly guess."""
    from protlab.cluster.neighbors import mine_neighbors
    from protlab.curate.formats import read_proteins
    from protlab.embed.kmer import KmerEncoder

    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    frame = pd.concat([frame[frame["label"] == "PF01535"],
                       frame[frame["label"].isin(["PF00595", "PF00018", "PF00072"])].groupby("label").head(80)])
    seqs, labels = frame["sequence"].tolist(), frame["label"].to_numpy()
    emb = KmerEncoder(dim=64).embed(seqs)
    graph = mine_neighbors(emb, seqs, source="mmseqs")
    hitless = np.flatnonzero(np.diff(graph.hits.indptr) == 0)
    assert len(hitless) >= 10 and (labels[hitless] == "PF01535").mean() > 0.8
    pieces = fam.pure_pieces(graph.knn, graph.homologous)
    groups = fam.merge_pieces(pieces, graph.hits)
    is_family = np.bincount(groups) >= 10
    seeds, seed_family = fam.profile_seeds(groups, pieces, is_family, graph.hits)
    family_label = {f: pd.Series(labels[groups == g]).mode()[0] for f, g in enumerate(np.flatnonzero(is_family))}
    placed = fam.place_by_profiles(seqs, seeds, seed_family, hitless)
    found = placed >= 0
    assert found.sum() >= 10
    assert np.mean([family_label[f] for f in placed[found]] == labels[hitless[found]]) >= 0.9
    partition = fam.find_families(graph, emb, n_clusters=4, sequences=seqs)
    assert partition.info["without_hits"] == len(hitless) and partition.info["unreached_by_hits"] >= len(hitless)
    assert partition.info["placed_by_profiles"] >= 10


def test_pieces_kept_apart_never_merge_and_share_members_by_length():
    pieces = np.r_[np.zeros(50, int), np.ones(30, int), np.full(5, 2)]
    r = np.r_[np.arange(30), 80, 81, 82, 83, 84]  # many hits 0-1; the small piece 2 hits piece 1
    c = np.r_[np.arange(50, 80), 50, 51, 52, 53, 54]
    hits = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(85, 85))
    hits = hits.maximum(hits.T).tocsr()
    assert len(set(fam.merge_pieces(pieces, hits))) == 1
    kept = fam.merge_pieces(pieces, hits, apart=[(0, 1)])
    assert len(set(kept)) == 2 and kept[0] != kept[50] and kept[80] == kept[50]  # 2 joins 1, never 0
    lengths = np.r_[np.full(48, 80.0), 118, 119, np.full(30, 115.0), np.full(5, 82.0)]
    labels = fam.share_by_length(kept, pieces, [(0, 1)], lengths)
    # boundary sqrt(80 * 115) = 95.9: the long members of piece 0 go to piece 1's family, the short of piece 2 back
    assert labels[48] == labels[49] == labels[50] and set(labels[80:]) == {labels[0]}
    assert (labels[:48] == labels[0]).all() and labels[0] != labels[50]


@needs_mmseqs
def test_a_longer_family_sharing_a_piece_with_its_clan_neighbour_is_its_own(shared_data):
    """V-set domains (PF07686, 113 ± 5 residues) share a pure piece with I-set domains
    (PF07679, 82 ± 8; same clan) and hit them more often than distant parts of one family hit
    each other: without lengths the two are one family."""
    from protlab.cluster.neighbors import mine_neighbors
    from protlab.curate.formats import read_proteins
    from protlab.embed.kmer import KmerEncoder

    v_set = read_proteins(shared_data / "pfam" / "kortemme_natural" / "PF07686.align.80.fasta")
    i_set = read_proteins(shared_data / "pfam" / "bitbol_full" / "PF07679.fasta").sample(n=3000, random_state=0)
    seqs = v_set["sequence"].tolist() + i_set["sequence"].tolist()
    is_v = np.r_[np.ones(len(v_set), bool), np.zeros(len(i_set), bool)]
    emb = KmerEncoder(dim=64).embed(seqs)
    graph = mine_neighbors(emb, seqs, source="mmseqs")
    pieces = fam.pure_pieces(graph.knn, graph.homologous)
    largest = np.bincount(pieces).argmax()
    assert is_v[pieces == largest].sum() >= 100  # the two families share a piece
    without = fam.find_families(graph, emb)
    assert without.n_estimated == 1
    part = fam.find_families(graph, emb, sequences=seqs)
    assert part.n_estimated == 2 and part.info["longer_communities"] >= 1
    v_family = np.bincount(part.labels[is_v]).argmax()
    assert np.mean(part.labels[is_v] == v_family) >= 0.95 and np.mean(part.labels[~is_v] != v_family) >= 0.99


@needs_mmseqs
def test_profiles_join_the_groups_of_a_sparsely_sampled_family(shared_data):
    """60 domains each of PF08666 and PPR (PF01535) fall into many groups that no single hit
    connects; their profiles find each other's members and join them, never across families,
    and never two groups kept apart."""
    from protlab.cluster.family_search import join_by_profiles
    from protlab.cluster.neighbors import mine_neighbors
    from protlab.curate.formats import read_proteins
    from protlab.embed.kmer import KmerEncoder

    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    frame = frame[frame["label"].isin(["PF08666", "PF01535", "PF00595"])].groupby("label").sample(60, random_state=0)
    seqs, labels = frame["sequence"].tolist(), frame["label"].to_numpy()
    graph = mine_neighbors(KmerEncoder(dim=64).embed(seqs), seqs, source="mmseqs")
    groups = fam.merge_pieces(fam.pure_pieces(graph.knn, graph.homologous), graph.hits)
    joined, links = join_by_profiles(groups, graph.hits, seqs)

    def largest(g, family):
        return int(pd.Series(g[labels == family]).value_counts().iloc[0])

    assert links >= 5 and joined.max() < groups.max()
    assert largest(joined, "PF08666") >= 2 * largest(groups, "PF08666")
    assert largest(joined, "PF01535") > largest(groups, "PF01535")
    assert (pd.crosstab(joined, labels).gt(0).sum(axis=1) == 1).all()  # no group holds two families
    biggest = pd.Series(joined[labels == "PF08666"]).mode()[0]
    a, b = np.unique(groups[joined == biggest])[:2]
    kept, _ = join_by_profiles(groups, graph.hits, seqs, apart=[(a, b)])
    assert kept[groups == a][0] != kept[groups == b][0]
