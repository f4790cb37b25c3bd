"""Families from the homology graph: pure pieces, merged, counted, fitted to a number.

Homology neighbours (MMseqs2 top hits) almost never cross Pfam families, but the few that
do chain whole families together when the graph's connected components are taken as they
are, and big, diverse families fall apart into many pieces. So (constants: :class:`FamilyConfig`):

1. **Pure pieces**: components of the graph that keeps an edge only where its two proteins
   share at least ``shared_neighbors`` top-k neighbours (Jarvis–Patrick); a stray hit
   between two families has no shared neighbours and is cut.
   **Longer communities** (with the sequences): two families of one clan can share a piece,
   and no count of hits tells them apart: they meet more often than the distant parts of one
   family do. Their domain lengths do, since the domains of one Pfam family vary little in
   length. A community of a piece (Louvain on its top-k graph) of at least a family's size
   whose median length is ``longer`` times the rest's becomes a piece of its own, kept apart
   from the rest. Only longer ones: shorter ones are often fragments of the family.
2. **Merging**: pieces are merged, most connected first, while the homology hits between
   two pieces (all of them, not only the top k) number at least ``merge_ratio`` per member of
   the smaller piece, and at least ``merge_hits``. A piece of near-identical copies keeps
   its top-k hits to itself but still hits its family many times per member, while two
   families meet a handful of times among hundreds to thousands of members (families of one
   clan can meet far more often and merge). After a landmark search
   (:func:`protlab.cluster.neighbors.landmark_hits`) hits and members are counted among the
   representatives that searched: inherited copies are no evidence. **Joining by profiles**
   (with the sequences, :func:`~protlab.cluster.family_search.join_by_profiles`): groups of up
   to ``join_below`` members join where one's profile finds ``join_share`` of the other's
   members: a sparsely sampled family falls into groups no single hit connects.
3. **Counting** (``n_clusters=None``): a family is a merged group of at least
   ``min_family_size(n)`` proteins; the other groups join, whole, the family they share the
   most hits with. Proteins that hits do not lead to a family (no hits at all, or hits only
   among themselves: short or divergent domains) are searched by profiles of the families
   (:func:`place_by_profiles`: a profile finds distant members a single sequence misses),
   and those no profile finds take the family of their embedding neighbours among the
   families of about their length (:func:`attach_by_affinity`). A longer community's family
   and the family of the rest of its piece then share out their members by length (the
   boundary is the geometric mean of the two medians): hits alone put some domains of either
   in the other. The sorted group sizes are the evidence
   (:func:`protlab.plot.cluster.family_count_figure`).
4. **Fitting to ``n_clusters``** when it is given: above the estimate, the next largest
   groups count as families too (a big family is rarely two; a small group is often a small
   family). Otherwise the parts of one family merge, even when the count is met (a family
   sending at least ``part_share`` of its homology hits to another), and, while there are too many,
   the smallest families into the one they are most connected to, so a big, diverse family
   that the graph (or the length rule) left in parts is made whole before a small, distinct
   family loses its identity. With too few, the largest groups that are not families yet
   become families of their own; only with none left is the largest split in two (its
   subgraph's second spectral coordinate). Each merge, promotion and split is recorded
   (``fit_steps``).

Everything but the Louvain runs is sparse and linear in the number of edges (at most
n · MAX_HITS); Louvain runs only on pieces with a family's worth of long members.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp

from protlab.cluster.family_fit import fit_to, largest_first, merge_down
from protlab.cluster.family_search import join_by_profiles, place_by_profiles, profile_seeds
from protlab.cluster.family_types import (DEFAULT, FamilyConfig, FamilyPartition, min_family_size, one_hot,
                                          relabel)
from protlab.cluster.neighbors import NeighborGraph


def topk_graph(knn: np.ndarray, homologous: np.ndarray) -> sp.csr_matrix:
    """The symmetric, binary graph of the top-k homology hits (rows not ``homologous``: none)."""
    n, k = knn.shape
    rows = np.repeat(np.arange(n), k)
    cols = knn.ravel()
    keep = (cols >= 0) & np.repeat(homologous, k)
    graph = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])), shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def pure_pieces(knn: np.ndarray, homologous: np.ndarray, *, shared: int = DEFAULT.shared_neighbors,
                chunk: int = 20_000, graph: sp.csr_matrix | None = None) -> np.ndarray:
    """Piece labels: components of the top-k graph's edges whose ends share ``shared``
    neighbours (or, for a protein with only d <= ``shared`` hits, d - 1: a short domain with
    one or two hits keeps them, a protein hitting two families with one hit each does not).

    ``knn``: (n, k) neighbour lists, -1 padded; ``homologous``: which rows are homology hits
    (embedding fallbacks of orphans are not homology and get no edges here); ``graph``: their
    :func:`topk_graph` when the caller has it.
    """
    n = len(knn)
    graph = topk_graph(knn, homologous) if graph is None else graph
    degree = np.diff(graph.indptr)
    kept_rows, kept_cols = [], []
    for start in range(0, n, chunk):  # shared-neighbour counts on the edges, in row blocks
        block = graph[start:start + chunk]
        counts = ((block @ graph).multiply(block) + block).tocoo()  # 1 + shared, on every edge
        need = np.minimum(shared, np.minimum(degree[counts.row + start], degree[counts.col]) - 1)
        ok = counts.data - 1 >= need
        kept_rows.append(counts.row[ok] + start)
        kept_cols.append(counts.col[ok])
    r, c = np.concatenate(kept_rows or [[]]).astype(np.int64), np.concatenate(kept_cols or [[]]).astype(np.int64)
    snn = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n, n))
    _, pieces = sp.csgraph.connected_components(snn, directed=False)
    return pieces.astype(np.int64)


def longer_communities(pieces: np.ndarray, graph: sp.csr_matrix, lengths: np.ndarray, min_size: int,
                       *, longer: float = DEFAULT.longer, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``(pieces, apart)``: every Louvain community (of the piece's top-k ``graph``,
    :func:`topk_graph`) of at least ``min_size`` members whose median length is ``longer``
    times the rest of its piece's becomes a new piece; ``apart`` pairs it with the piece it
    left. Only pieces with at least ``min_size`` members that long are searched."""
    pieces = pieces.copy()
    apart: list[tuple[int, int]] = []
    size = np.bincount(pieces)
    median = pd.Series(lengths).groupby(pieces).median().to_numpy()
    long_members = np.bincount(pieces, weights=lengths >= longer * median[pieces], minlength=len(size))
    candidates = np.flatnonzero((size >= 2 * min_size) & (long_members >= min_size))
    new = len(size)
    for piece in candidates:
        members = np.flatnonzero(pieces == piece)
        communities = nx.community.louvain_communities(nx.from_scipy_sparse_array(graph[members][:, members]),
                                                       seed=seed)
        for community in communities:
            inside = np.zeros(len(members), dtype=bool)
            inside[list(community)] = True
            if min_size <= inside.sum() < len(members) and (
                    np.median(lengths[members[inside]]) >= longer * np.median(lengths[members[~inside]])):
                pieces[members[inside]] = new
                apart.append((int(piece), new))
                new += 1
    return pieces, apart


def share_by_length(labels: np.ndarray, pieces: np.ndarray, apart: list[tuple[int, int]],
                    lengths: np.ndarray) -> np.ndarray:
    """For each ``apart`` pair (the rest of a piece, its longer community): when they ended
    in two families, the members of both go to the one whose median length is nearer
    (boundary: the geometric mean of the two medians)."""
    labels = labels.copy()
    for rest, community in apart:
        in_rest, in_community = pieces == rest, pieces == community
        short = np.bincount(labels[in_rest]).argmax()
        long = np.bincount(labels[in_community]).argmax()
        if short == long:
            continue
        boundary = np.sqrt(np.median(lengths[in_rest]) * np.median(lengths[in_community]))
        both = np.flatnonzero((labels == short) | (labels == long))
        labels[both] = np.where(lengths[both] >= boundary, long, short)
    return labels


def merge_pieces(pieces: np.ndarray, hits: sp.csr_matrix, *, ratio: float = DEFAULT.merge_ratio,
                 min_hits: int = DEFAULT.merge_hits, counted: np.ndarray | None = None,
                 apart: list[tuple[int, int]] = ()) -> np.ndarray:
    """Merge pieces while the homology hits between two number >= ``ratio`` per member of
    the smaller one and >= ``min_hits`` (strongest pair first, one merge per piece per round).
    ``counted``: the members that count (after a landmark search, the representatives that
    searched; the others' hits are copies), all when None. ``apart``: pairs of pieces whose
    groups never merge."""
    values, labels = np.unique(pieces, return_inverse=True)
    apart = [tuple(np.searchsorted(values, pair)) for pair in apart]
    m = len(values)
    onehot = one_hot(labels, m)
    between = (onehot.T @ hits @ onehot).tocsr()
    size = np.maximum(np.bincount(labels, weights=counted, minlength=m).astype(np.float64), 1.0)
    group = np.arange(m)
    while True:
        coo = between.tocoo()
        upper = coo.row < coo.col
        a, b, w = coo.row[upper], coo.col[upper], coo.data[upper]
        score = np.where(w >= min_hits, w / np.minimum(size[a], size[b]), 0.0)
        order = np.argsort(-score, kind="stable")
        order = order[score[order] >= ratio]
        if apart:
            kept_apart = {frozenset((group[x], group[y])) for x, y in apart}
            order = np.array([j for j in order if frozenset((a[j], b[j])) not in kept_apart], dtype=np.int64)
        if len(order) == 0:
            return group[labels]
        target = np.arange(len(size))
        used = np.zeros(len(size), dtype=bool)
        for j in order:
            if not used[a[j]] and not used[b[j]]:
                used[a[j]] = used[b[j]] = True
                target[b[j]] = a[j]
        target = relabel(target)
        step = one_hot(target, int(target.max()) + 1)
        between = (step.T @ between @ step).tocsr()
        between.setdiag(0)
        between.eliminate_zeros()
        size = np.bincount(target, weights=size)
        group = target[group]


def attach_by_hits(groups: np.ndarray, is_family: np.ndarray, hits: sp.csr_matrix, *, rounds: int = 50) -> np.ndarray:
    """Family index (0..) of every protein that homology hits lead to a family, -1 for the
    rest: a family group's own, and for the other groups (``is_family[group]`` False) the
    family they share the most hits with, whole groups at a time and spreading outwards (a
    fragment joins its family through the hits of any member)."""
    n_fam = int(is_family.sum())
    family_of_group = np.full(len(is_family), -1, dtype=np.int64)
    family_of_group[np.flatnonzero(is_family)] = np.arange(n_fam)
    members = one_hot(groups, len(is_family))
    for _ in range(rounds):
        out = family_of_group[groups]
        known = np.flatnonzero(out >= 0)
        assigned = sp.csr_matrix((np.ones(len(known)), (known, out[known])), shape=(len(groups), n_fam))
        votes = (members.T @ (hits @ assigned)).tocsr()
        todo = np.flatnonzero((family_of_group < 0) & (np.diff(votes.indptr) > 0))
        if len(todo) == 0:
            break
        family_of_group[todo] = np.asarray(votes[todo].argmax(axis=1)).ravel()
    return family_of_group[groups]


def _spread(out: np.ndarray, affinity: sp.csr_matrix, n_fam: int, rounds: int, fits=None) -> None:
    """Gives each protein without a family (-1, in place) the family it is most connected to
    through ``affinity``, spreading outwards; with ``fits(rows, families)``, only fitting ones."""
    for _ in range(rounds):
        todo = np.flatnonzero(out < 0)
        if len(todo) == 0:
            return
        known = out >= 0
        votes = sp.csr_matrix(affinity[todo][:, np.flatnonzero(known)] @ one_hot(out[known], n_fam)).tocoo()
        if fits is not None:
            keep = fits(todo[votes.row], votes.col)
            votes = sp.coo_matrix((votes.data[keep], (votes.row[keep], votes.col[keep])), shape=votes.shape)
        votes = votes.tocsr()
        has = np.diff(votes.indptr) > 0
        if not has.any():
            return
        out[todo[has]] = np.asarray(votes[has].argmax(axis=1)).ravel()


def _closest_centers(out: np.ndarray, embeddings: np.ndarray, todo: np.ndarray, n_fam: int) -> np.ndarray:
    """(len(todo), n_fam) cosine similarities to the families' mean embeddings."""
    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    known = out >= 0
    counts = np.maximum(np.bincount(out[known], minlength=n_fam), 1)
    centers = (one_hot(out[known], n_fam).T @ x[known]) / counts[:, None]
    return x[todo] @ np.asarray(centers).T


def attach_by_affinity(families: np.ndarray, affinity: sp.csr_matrix, embeddings: np.ndarray | None = None,
                       *, lengths: np.ndarray | None = None, longer: float = DEFAULT.longer,
                       rounds: int = 50) -> np.ndarray:
    """``families`` (-1: none yet) completed protein by protein: the family a protein is most
    connected to through ``affinity`` (hits and embedding neighbours), spreading outwards;
    the unreachable ones take the family whose mean embedding is closest.

    With ``lengths``, a protein first takes only a family whose median length is within a
    factor ``longer`` of its own (through affinity, else the closest mean embedding among
    them); the rule is dropped only for a protein no family fits. The proteins that reach this
    step are short or divergent domains that neither hits nor profiles place, where embedding
    neighbours mostly guess; the length rule removes most of the wrong guesses."""
    out = families.copy()
    n_fam = int(out.max()) + 1
    if lengths is not None:
        known = out >= 0
        median = pd.Series(lengths[known]).groupby(out[known]).median().reindex(range(n_fam)).to_numpy()

        def fits(rows, fams):
            ratio = lengths[rows] / median[fams]
            return (ratio >= 1 / longer) & (ratio <= longer)

        _spread(out, affinity, n_fam, rounds, fits)
        todo = np.flatnonzero(out < 0)
        if len(todo) and embeddings is not None:
            ok = fits(todo[:, None], np.arange(n_fam)[None, :])
            some = ok.any(axis=1)
            similarity = np.where(ok, _closest_centers(out, embeddings, todo, n_fam), -np.inf)
            out[todo[some]] = similarity[some].argmax(axis=1)
    _spread(out, affinity, n_fam, rounds)
    todo = np.flatnonzero(out < 0)
    if len(todo):
        out[todo] = 0 if embeddings is None else _closest_centers(out, embeddings, todo, n_fam).argmax(axis=1)
    return out


def _pieces_of(graph: NeighborGraph, lengths: np.ndarray | None, seed: int, config: FamilyConfig,
               passes: list[dict]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``(pieces, apart)``: step 1, the pure pieces and, with ``lengths``, their longer
    communities as pieces of their own (``passes`` gets a record of each pass)."""
    topk = topk_graph(graph.knn, graph.homologous)
    pieces = pure_pieces(graph.knn, graph.homologous, shared=config.shared_neighbors, graph=topk)
    passes.append({"pass": "pure_pieces", "groups": int(pieces.max()) + 1})
    apart: list[tuple[int, int]] = []
    if lengths is not None:
        pieces, apart = longer_communities(pieces, topk, lengths, min_family_size(graph.n, config),
                                           longer=config.longer, seed=seed)
        passes.append({"pass": "longer_communities", "groups": int(pieces.max()) + 1, "split": len(apart)})
    return pieces, apart


def _joined(groups: np.ndarray, pieces: np.ndarray, apart: list[tuple[int, int]], hits: sp.csr_matrix, sequences,
            config: FamilyConfig, passes: list[dict]) -> np.ndarray:
    """The merged groups joined by their profiles (:func:`join_by_profiles`), the pieces that
    ``apart`` keeps apart still apart."""
    first = {piece: int(np.flatnonzero(pieces == piece)[0]) for pair in apart for piece in pair}
    groups, links = join_by_profiles(groups, hits, sequences, max_size=config.join_below, share=config.join_share,
                                     evalue=config.join_evalue, iterations=config.profile_iterations,
                                     apart=[(int(groups[first[a]]), int(groups[first[b]])) for a, b in apart])
    passes.append({"pass": "join_by_profiles", "groups": int(groups.max()) + 1, "links": links})
    return groups


def _family_groups(groups: np.ndarray, n_clusters: int | None,
                   config: FamilyConfig) -> tuple[np.ndarray, int, np.ndarray, int]:
    """``(group_sizes, min_size, is_family, n_estimated)``: the merged groups of at least a
    family's size are the families; asked for more, the next largest groups count too."""
    group_sizes = np.bincount(groups)
    min_size = min(min_family_size(len(groups), config), int(group_sizes.max()))
    is_family = group_sizes >= min_size
    n_estimated = int(is_family.sum())
    if n_clusters is not None and n_clusters > n_estimated:
        is_family = np.zeros(len(group_sizes), dtype=bool)
        is_family[np.argsort(-group_sizes, kind="stable")[:int(n_clusters)]] = True
    return group_sizes, min_size, is_family, n_estimated


def _count_or_fit(labels: np.ndarray, n_clusters: int | None, hits: sp.csr_matrix, affinity: sp.csr_matrix,
                  embeddings: np.ndarray, *, groups: np.ndarray, is_family: np.ndarray, n_estimated: int,
                  seed: int = 0, config: FamilyConfig = DEFAULT) -> tuple[np.ndarray, list[dict], int]:
    """``(labels, steps, parts merged)``: without ``n_clusters`` only the parts of one family
    merge (they count once); with it, the families are fitted to that number (:func:`fit_to`).
    ``parts merged``: how many of the steps merged a part into its family."""
    if n_clusters is None:
        labels, merges = merge_down(labels, None, hits, affinity, part_share=config.part_share)
        return labels, [{"merged": merge} for merge in merges], len(merges)
    labels, steps = fit_to(labels, int(n_clusters), affinity, embeddings, hits=hits, seed=seed, config=config,
                           groups=groups, is_family=is_family, parts_first=n_estimated >= n_clusters)
    return labels, steps, sum(step.get("merged", {}).get("why") == "part" for step in steps)


def find_families(graph: NeighborGraph, embeddings: np.ndarray, *, n_clusters: int | None = None, seed: int = 0,
                  sequences=None, config: FamilyConfig = DEFAULT) -> FamilyPartition:
    """The families of a homology neighbour graph (see the module docstring). ``graph``:
    MMseqs2 neighbours (:func:`~protlab.cluster.neighbors.mine_neighbors`): its top-k hits
    (``knn``, ``homologous``), every hit (``hits``, symmetric, binary), hits plus embedding
    edges (``affinity``, for attaching and fitting) and, after a landmark search, each
    protein's representative (``rep``: only those that searched count, see
    :func:`merge_pieces`); ``sequences`` (optional) let family profiles place the proteins
    without hits; ``config``: the algorithm's constants. ``info["passes"]`` records the passes
    in order with the groups or families after each."""
    hits = graph.hits
    counted = None if graph.rep is None else graph.rep == np.arange(graph.n)
    lengths = None if sequences is None else np.array([len(s) for s in sequences], dtype=np.float64)
    passes: list[dict] = []
    pieces, apart = _pieces_of(graph, lengths, seed, config, passes)
    groups = merge_pieces(pieces, hits, ratio=config.merge_ratio, min_hits=config.merge_hits, counted=counted,
                          apart=apart)
    passes.append({"pass": "merge_pieces", "groups": int(groups.max()) + 1})
    if sequences is not None:
        groups = _joined(groups, pieces, apart, hits, sequences, config, passes)
    group_sizes, min_size, is_family, n_estimated = _family_groups(groups, n_clusters, config)
    passes[-1]["families"] = n_estimated
    labels = attach_by_hits(groups, is_family, hits)
    unreached = np.flatnonzero(labels < 0)  # no hits, or hits only among groups too small to count
    passes.append({"pass": "attach_by_hits", "unreached": int(len(unreached))})
    placed = 0
    if sequences is not None and len(unreached):
        seeds, seed_family = profile_seeds(groups, pieces, is_family, hits, per_family=config.profile_seeds)
        labels[unreached] = place_by_profiles(sequences, seeds, seed_family, unreached,
                                              iterations=config.profile_iterations, evalue=config.profile_evalue)
        placed = int((labels[unreached] >= 0).sum())
        passes.append({"pass": "place_by_profiles", "placed": placed})
    labels = attach_by_affinity(labels, graph.affinity, embeddings, lengths=lengths, longer=config.longer)
    passes.append({"pass": "attach_by_affinity", "families": int(len(np.unique(labels)))})
    if apart:
        labels = share_by_length(labels, pieces, apart, lengths)
        passes.append({"pass": "share_by_length", "families": int(len(np.unique(labels)))})
    labels, steps, parts_merged = _count_or_fit(labels, n_clusters, hits, graph.affinity, embeddings, groups=groups,
                                                is_family=is_family, n_estimated=n_estimated, seed=seed,
                                                config=config)
    passes.append({"pass": "merge_parts" if n_clusters is None else "fit_to",
                   "families": int(len(np.unique(labels)))})
    info = {"pieces": int(pieces.max()) + 1, "groups": int(len(group_sizes)),
            "attached": int((~is_family[groups]).sum()),
            "without_hits": int((np.diff(hits.tocsr().indptr) == 0).sum()),
            "unreached_by_hits": int(len(unreached)), "placed_by_profiles": placed,
            "longer_communities": len(apart), "fit_steps": steps, "passes": passes}
    return FamilyPartition(largest_first(labels, steps), n_estimated - parts_merged, np.sort(group_sizes)[::-1],
                           min_size, info)
