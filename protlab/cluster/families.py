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
   representatives that searched: inherited copies are no evidence.
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
   family); below it, the parts of one family merge first (a family sending at least
   ``part_share`` of its homology hits to another), then the smallest families into the one
   they are most connected to, so a big, diverse family that the graph (or the length rule)
   left in parts is made whole before a small, distinct family loses its identity. Only when
   there are fewer groups than
   ``n_clusters`` is the largest split in two (its subgraph's second spectral coordinate).
   Each merge and split is recorded (``fit_steps``).

Everything but the Louvain runs is sparse and linear in the number of edges (at most
n · MAX_HITS); Louvain runs only on pieces with a family's worth of long members.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.manifold import spectral_embedding

from protlab.cluster.neighbors import NeighborGraph
from protlab.core.errors import InputError
from protlab.core.mmseqs import profile_search

@dataclass(frozen=True)
class FamilyConfig:
    """The family algorithm's constants (the module docstring says where each acts). A run
    may set any of them (04's ``family_config`` parameter); ``clusters/families.json``
    records the values used."""

    shared_neighbors: int = 3        # top-k neighbours an edge's two proteins must share to keep it
    merge_ratio: float = 0.02        # hits between two pieces per member of the smaller, to merge them ...
    merge_hits: int = 3              # ... and never on fewer hits than this (a stray hit or two)
    min_family: int = 20             # smallest group counted as a family (1 % of the proteins in small sets,
                                     # at least 5) ...
    min_family_share: float = 1e-4   # ... or this share of all proteins, whichever is larger
    split_spectral_max: int = 20_000  # a family split in two by its spectral coordinate up to this size ...
    split_smoothing: int = 10        # ... above it by its embeddings smoothed over its subgraph this many steps
    longer: float = 1.25             # a community this much longer (median length) than the rest of its piece
                                     # is its own family; a protein without homology fits a family whose
                                     # median length is within this factor
    profile_seeds: int = 5           # members per family (the best connected of its largest pieces) whose
                                     # profiles ...
    profile_iterations: int = 3      # ... (built in this many search rounds) place the proteins hits do not
                                     # lead to a family ...
    profile_evalue: float = 1.0      # ... when a profile finds them at this E-value (among those few proteins)
    part_share: float = 0.1          # fitting to fewer families: a family sending this share of its hits to
                                     # another is a part of it (the parts of one diverse family send a large
                                     # share, families of one clan a small one) and merges first

    @classmethod
    def from_dict(cls, values: dict | None) -> "FamilyConfig":
        """A config with ``values`` set; an unknown name or a non-positive value is refused by name."""
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(f"family_config: unknown key(s) {unknown}; allowed: {sorted(known)}")
        out = {}
        for name, value in values.items():
            kind = type(getattr(cls(), name))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or \
                    (kind is int and float(value) != int(value)):
                raise InputError(f"family_config[{name!r}]={value!r} is not allowed: use a positive "
                                 f"{'integer' if kind is int else 'number'}")
            out[name] = kind(value)
        return cls(**out)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = FamilyConfig()


def min_family_size(n: int, config: FamilyConfig = DEFAULT) -> int:
    return int(max(5, min(config.min_family, n // 100), round(config.min_family_share * n)))


@dataclass
class FamilyPartition:
    """``labels`` (0..n_families-1, largest family first) and how they were found."""

    labels: np.ndarray
    n_estimated: int                      # families counted before fitting to n_clusters (parts of one once)
    group_sizes: np.ndarray               # sizes of the merged groups, largest first (the evidence)
    min_size: int                         # the size a group needed to count
    info: dict = field(default_factory=dict)


def _one_hot(labels: np.ndarray, m: int | None = None) -> sp.csr_matrix:
    m = int(labels.max()) + 1 if m is None else m
    return sp.csr_matrix((np.ones(len(labels), dtype=np.float64), (np.arange(len(labels)), labels)),
                         shape=(len(labels), m))


def _relabel(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


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
    onehot = _one_hot(labels, m)
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
        target = _relabel(target)
        step = _one_hot(target, int(target.max()) + 1)
        between = (step.T @ between @ step).tocsr()
        between.setdiag(0)
        between.eliminate_zeros()
        size = np.bincount(target, weights=size)
        group = target[group]


def profile_seeds(groups: np.ndarray, pieces: np.ndarray, is_family: np.ndarray, hits: sp.csr_matrix,
                  *, per_family: int = DEFAULT.profile_seeds) -> tuple[np.ndarray, np.ndarray]:
    """``(seed proteins, their family index)``: for every family group (family index = its rank
    among ``is_family``), the member with the most hits in each of its ``per_family`` largest
    pieces, so a diverse family gets profiles of its different parts."""
    degree = np.diff(hits.tocsr().indptr)
    member = np.flatnonzero(is_family[groups])
    frame = pd.DataFrame({"group": groups[member], "piece": pieces[member], "protein": member,
                          "degree": degree[member], "piece_size": np.bincount(pieces)[pieces[member]]})
    best = (frame.sort_values(["group", "piece_size", "piece", "degree", "protein"],
                              ascending=[True, False, True, False, True])
            .drop_duplicates(["group", "piece"]).groupby("group").head(per_family))
    family_of_group = np.cumsum(is_family) - 1
    return best["protein"].to_numpy(np.int64), family_of_group[best["group"].to_numpy()].astype(np.int64)


def place_by_profiles(sequences, seeds: np.ndarray, seed_family: np.ndarray, proteins: np.ndarray,
                      *, iterations: int = DEFAULT.profile_iterations,
                      evalue: float = DEFAULT.profile_evalue,
                      threads: int | None = None) -> np.ndarray:
    """Family index of each of ``proteins`` whose best profile hit (MMseqs2 profiles of the
    ``seeds``, :func:`protlab.core.mmseqs.profile_search`) comes from that family; -1 where no
    profile finds it. Profiles place most such proteins, and mostly in their own family, where
    their embedding neighbours' family is often wrong."""
    out = np.full(len(proteins), -1, dtype=np.int64)
    if len(seeds) == 0 or len(proteins) == 0:
        return out
    seq = [str(s) for s in sequences]
    qi, ti, bits = profile_search([seq[i] for i in seeds], seq, [seq[i] for i in proteins],
                                  iterations=iterations, hit_evalue=evalue, threads=threads)
    order = np.lexsort((qi, -bits))  # best hit first, ties to the first seed
    target, first = np.unique(ti[order], return_index=True)
    out[target] = seed_family[qi[order][first]]
    return out


def attach_by_hits(groups: np.ndarray, is_family: np.ndarray, hits: sp.csr_matrix, *, rounds: int = 50) -> np.ndarray:
    """Family index (0..) of every protein that homology hits lead to a family, -1 for the
    rest: a family group's own, and for the other groups (``is_family[group]`` False) the
    family they share the most hits with, whole groups at a time and spreading outwards (a
    fragment joins its family through the hits of any member)."""
    n_fam = int(is_family.sum())
    family_of_group = np.full(len(is_family), -1, dtype=np.int64)
    family_of_group[np.flatnonzero(is_family)] = np.arange(n_fam)
    members = _one_hot(groups, len(is_family))
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
        votes = sp.csr_matrix(affinity[todo][:, np.flatnonzero(known)] @ _one_hot(out[known], n_fam)).tocoo()
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
    centers = (_one_hot(out[known], n_fam).T @ x[known]) / counts[:, None]
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


def split_in_two(members: np.ndarray, affinity: sp.csr_matrix, embeddings: np.ndarray, *, seed: int = 0,
                 config: FamilyConfig = DEFAULT) -> np.ndarray:
    """A 0/1 split of ``members``: 2-means on their subgraph's second spectral coordinate, or,
    above ``config.split_spectral_max`` members (where the eigendecomposition does not finish in
    reasonable time), on their embeddings smoothed over the subgraph (``config.split_smoothing``
    steps, linear in its edges); on their embeddings when the subgraph is too small."""
    sub = affinity[members][:, members]
    sub = sub.maximum(sub.T).tocsr()
    if len(members) < 8 or not sub.nnz:
        coords = embeddings[members]
    elif len(members) > config.split_spectral_max:
        coords = np.asarray(embeddings[members], dtype=np.float64)
        degree = np.asarray(sub.sum(axis=1)).ravel()
        walk = sp.diags(1.0 / np.maximum(degree, 1e-12)) @ sub
        for _ in range(config.split_smoothing):
            coords = 0.5 * coords + 0.5 * (walk @ coords)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            coords = spectral_embedding(sub, n_components=2, random_state=seed, drop_first=False)[:, 1:]
    halves = KMeans(2, n_init=3, random_state=seed).fit_predict(coords)
    if halves.min() == halves.max():  # degenerate: an even split by position
        halves = (np.arange(len(members)) >= len(members) // 2).astype(int)
    return halves


def merge_down(labels: np.ndarray, n_clusters: int | None, hits: sp.csr_matrix, affinity: sp.csr_matrix, *,
               part_share: float = DEFAULT.part_share) -> tuple[np.ndarray, list[dict]]:
    """Merge families until ``n_clusters`` remain: first the parts of one family (the smaller
    of a pair sends at least ``part_share`` of its homology hits to the other; strongest
    first), then the smallest family into the one it is most connected to (affinity), so a
    diverse family that the graph left in parts is made whole before a small family loses its
    identity. ``n_clusters=None``: merge the parts only. Returns the labels and each merge
    (sizes, why, one member of each side)."""
    m = int(labels.max()) + 1
    onehot = _one_hot(labels, m)
    linked, near = ((onehot.T @ matrix @ onehot).toarray().astype(np.float64) for matrix in (hits, affinity))
    np.fill_diagonal(near, 0.0)
    size = np.bincount(labels, minlength=m).astype(np.float64)
    member = np.array([int(np.flatnonzero(labels == c)[0]) for c in range(m)])
    alive = np.ones(m, dtype=bool)
    group = np.arange(m)
    merges = []
    while alive.sum() > (n_clusters or 1):
        total = linked.sum(axis=1)  # every hit of a family's members, its own included
        outside = linked - np.diag(np.diag(linked))
        smaller = np.less.outer(size, size) | (np.equal.outer(size, size) & np.less.outer(np.arange(m), np.arange(m)))
        share = np.where(np.outer(alive, alive) & smaller, outside / np.maximum(total, 1.0)[:, None], -1.0)
        gone, keep = np.unravel_index(int(np.argmax(share)), share.shape)
        why, strength = "part", float(share[gone, keep])
        if strength < part_share and n_clusters is None:
            break
        if strength < part_share:
            alive_ids = np.flatnonzero(alive)
            gone = int(alive_ids[np.argmin(size[alive_ids])])
            links = np.where(alive, near[gone], -1.0)
            links[gone] = -1.0
            keep = int(np.argmax(links)) if links.max() > 0 else int(alive_ids[np.argmax(size[alive_ids])])
            why, strength = "smallest", float(max(links[keep], 0.0) / size[gone])
        merges.append({"sizes": [int(size[gone]), int(size[keep])], "why": why, "strength": round(strength, 4),
                       "members": [int(member[gone]), int(member[keep])]})
        for matrix in (linked, near):
            matrix[keep] += matrix[gone]
            matrix[:, keep] += matrix[:, gone]
            matrix[gone] = matrix[:, gone] = 0.0
        np.fill_diagonal(near, 0.0)
        size[keep] += size[gone]
        size[gone] = 0.0
        alive[gone] = False
        group[group == gone] = keep
    return _relabel(group[labels]), merges


def fit_to(labels: np.ndarray, n_clusters: int, affinity: sp.csr_matrix, embeddings: np.ndarray,
           *, hits: sp.csr_matrix | None = None, seed: int = 0,
           config: FamilyConfig = DEFAULT) -> tuple[np.ndarray, list[dict]]:
    """Merge families (:func:`merge_down`), or split the largest in two
    (:func:`split_in_two`), until there are ``n_clusters``; returns the labels and the steps
    (``merged`` or ``split``, with sizes and one member of each side)."""
    steps = []
    if labels.max() + 1 > n_clusters:
        labels, merges = merge_down(labels, n_clusters, affinity if hits is None else hits, affinity,
                                    part_share=config.part_share)
        steps += [{"merged": merge} for merge in merges]
    labels = labels.copy()
    while labels.max() + 1 < n_clusters:
        size = np.bincount(labels)
        members = np.flatnonzero(labels == int(np.argmax(size)))
        if len(members) < 2:
            break
        halves = split_in_two(members, affinity, embeddings, seed=seed, config=config)
        labels[members[halves == 1]] = labels.max() + 1
        steps.append({"split": {"sizes": [int((halves == 0).sum()), int((halves == 1).sum())],
                                "members": [int(members[halves == 0][0]), int(members[halves == 1][0])]}})
    return labels, steps


def describe_fit_steps(steps: list[dict]) -> str:
    """One line per merge or split that fitted the families to ``n_clusters``."""
    lines = []
    for step in steps:
        (kind, change), = step.items()
        a, b = change["sizes"]
        first, second = change["clusters"]
        if kind == "merged" and change["why"] == "part":
            lines.append(f"merged a family of {a} into one of {b} as a part of it (now cluster {second}; "
                         f"it sent {change['strength']:.0%} of its homology hits there)")
        elif kind == "merged":
            lines.append(f"merged the smallest family ({a}) into the one of {b} it is most linked to "
                         f"(now cluster {second})")
        else:
            lines.append(f"split a family into {a} + {b} (clusters {first} and {second})")
    return "\n".join(lines)


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
    knn, homologous, hits, affinity = graph.knn, graph.homologous, graph.hits, graph.affinity
    counted = None if graph.rep is None else graph.rep == np.arange(graph.n)
    n = len(knn)
    topk = topk_graph(knn, homologous)
    pieces = pure_pieces(knn, homologous, shared=config.shared_neighbors, graph=topk)
    passes = [{"pass": "pure_pieces", "groups": int(pieces.max()) + 1}]
    apart: list[tuple[int, int]] = []
    lengths = None if sequences is None else np.array([len(s) for s in sequences], dtype=np.float64)
    if lengths is not None:
        pieces, apart = longer_communities(pieces, topk, lengths, min_family_size(n, config),
                                           longer=config.longer, seed=seed)
        passes.append({"pass": "longer_communities", "groups": int(pieces.max()) + 1, "split": len(apart)})
    del topk
    groups = merge_pieces(pieces, hits, ratio=config.merge_ratio, min_hits=config.merge_hits, counted=counted,
                          apart=apart)
    group_sizes = np.bincount(groups)
    min_size = min(min_family_size(n, config), int(group_sizes.max()))
    is_family = group_sizes >= min_size
    n_estimated = int(is_family.sum())
    if n_clusters is not None and n_clusters > n_estimated:  # asked for more: the next largest groups count too
        is_family = np.zeros(len(group_sizes), dtype=bool)
        is_family[np.argsort(-group_sizes, kind="stable")[:int(n_clusters)]] = True
    passes.append({"pass": "merge_pieces", "groups": int(len(group_sizes)), "families": n_estimated})
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
    labels = attach_by_affinity(labels, affinity, embeddings, lengths=lengths, longer=config.longer)
    passes.append({"pass": "attach_by_affinity", "families": int(len(np.unique(labels)))})
    if apart:
        labels = share_by_length(labels, pieces, apart, lengths)
        passes.append({"pass": "share_by_length", "families": int(len(np.unique(labels)))})
    if n_clusters is None:  # the parts of one family count once
        labels, merges = merge_down(labels, None, hits, affinity, part_share=config.part_share)
        steps = [{"merged": merge} for merge in merges]
        n_estimated -= len(merges)
        passes.append({"pass": "merge_parts", "families": int(len(np.unique(labels)))})
    else:
        labels, steps = fit_to(labels, int(n_clusters), affinity, embeddings, hits=hits, seed=seed, config=config)
        n_estimated -= sum(step.get("merged", {}).get("why") == "part" for step in steps)
        passes.append({"pass": "fit_to", "families": int(len(np.unique(labels)))})
    order = np.argsort(-np.bincount(labels), kind="stable")  # largest family first
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    for step in steps:  # which final cluster each step made
        change = next(iter(step.values()))
        change["clusters"] = [int(rank[labels[i]]) for i in change.pop("members")]
    info = {"pieces": int(pieces.max()) + 1, "groups": int(len(group_sizes)),
            "attached": int((~is_family[groups]).sum()),
            "without_hits": int((np.diff(hits.tocsr().indptr) == 0).sum()),
            "unreached_by_hits": int(len(unreached)), "placed_by_profiles": placed,
            "longer_communities": len(apart), "fit_steps": steps, "passes": passes}
    return FamilyPartition(rank[labels], n_estimated, np.sort(group_sizes)[::-1], min_size, info)
