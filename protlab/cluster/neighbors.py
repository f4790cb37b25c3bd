"""Neighbour mining for SCAN: faiss kNN on embeddings, or MMseqs2 homology neighbours.

Two sources, one result (:class:`NeighborGraph`):

* ``"faiss"``: the ``k`` nearest proteins by cosine similarity of their embeddings
  (exact inner-product search on L2-normalised rows).
* ``"mmseqs"``: an all-vs-all ``mmseqs easy-search`` (``SEARCH_CHUNK`` queries at a time
  against all proteins; at most ``MAX_HITS`` aligned per query, so the graph has at most
  n · ``MAX_HITS`` edges); each protein's neighbours are its top-``k`` hits by bit score
  (self hits dropped). Above ``LANDMARK_MIN`` proteins only landmarks are searched
  (:func:`landmark_hits`: linclust representatives, whose hits their members inherit).
  Proteins without hits search each other once more (:func:`orphan_hits`); those still
  without any (short or orphan sequences) fall back to their ``fallback_k`` nearest
  embedding neighbours, so every protein has a neighbour.

Besides the kNN lists, the graph keeps a symmetric sparse *affinity*: bit scores of every
homology hit plus weight-1 edges to the ``fallback_k`` embedding neighbours of every
protein (these weak edges keep the graph connected). ``"auto"`` uses MMseqs2 when the
``mmseqs`` binary is available (:mod:`protlab.core.mmseqs`) and sequences are given, faiss otherwise.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from protlab.core.errors import InputError
from protlab.core.mmseqs import (INSTALL_HINT, chunked_search, easy_search, linclust_representatives,
                                 mmseqs_available)

log = logging.getLogger(__name__)
logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # no "Loading faiss with AVX2 support" banner

NEIGHBOR_SOURCES = ("auto", "mmseqs", "faiss")
EXACT_KNN_MAX = 200_000  # embedding kNN: exact up to this many reference rows, an IVF index (approximate) above
MAX_HITS = 50  # homology hits aligned per protein: bounds the search's time and the graph's size (n · 50 edges)
SEARCH_CHUNK = 50_000  # queries per MMseqs2 search: larger sets are searched in chunks against all proteins
LANDMARK_MIN = 200_000  # above this many proteins only linclust representatives are searched (landmark_hits) ...
LANDMARK_IDENTITY = 0.3  # ... clustered at this sequence identity (and 80 % coverage)


@dataclass
class NeighborGraph:
    """``knn[i, :counts[i]]`` are protein ``i``'s neighbours (best first; -1 pads the rest)."""

    knn: np.ndarray          # (n, k) int64, -1 padded
    counts: np.ndarray       # (n,) int64, >= 1
    affinity: sp.csr_matrix  # (n, n) symmetric, non-negative
    source: str              # "mmseqs" or "faiss"
    hits: sp.csr_matrix | None = None      # (n, n) homology hits, symmetric, binary (mmseqs only; not inherited copies)
    homologous: np.ndarray | None = None   # (n,) bool: knn row made of homology hits (not fallbacks)
    rep: np.ndarray | None = None          # (n,) each protein's representative after a landmark search, else None

    @property
    def representatives(self) -> int | None:
        """How many proteins were searched (landmark search), None after a full search."""
        return None if self.rep is None else int(len(np.unique(self.rep)))

    @property
    def n(self) -> int:
        return self.knn.shape[0]

    def purity(self, labels) -> float:
        """Fraction of neighbour pairs sharing a label (a diagnostic, needs labels)."""
        labels = np.asarray(labels)
        rows = np.repeat(np.arange(self.n), self.knn.shape[1]).reshape(self.knn.shape)
        valid = self.knn >= 0
        return float((labels[rows[valid]] == labels[self.knn[valid]]).mean())


def resolve_source(source: str, *, have_sequences: bool) -> str:
    if source not in NEIGHBOR_SOURCES:
        raise InputError(f"neighbors={source!r} is unknown; use one of {NEIGHBOR_SOURCES}")
    if source == "auto":
        return "mmseqs" if (have_sequences and mmseqs_available()) else "faiss"
    if source == "mmseqs":
        if not have_sequences:
            raise InputError("neighbors='mmseqs' needs the protein sequences; pass sequences= or use neighbors='faiss'")
        if not mmseqs_available():
            raise InputError(f"neighbors='mmseqs' but MMseqs2 is not installed ({INSTALL_HINT}); "
                             "or use neighbors='faiss'")
    return source


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def knn_index(r: np.ndarray, seed: int = 0):
    """A faiss inner-product index of the rows ``r``: exact (a flat index, O(n) per query) up
    to :data:`EXACT_KNN_MAX` rows, else an inverted-file index (4·sqrt(n) k-means cells trained
    on a seeded sample, 16 cells probed per query), so all-vs-all kNN grows ~ n^1.5, not n^2."""
    import faiss

    n, d = r.shape
    if n <= EXACT_KNN_MAX:
        index = faiss.IndexFlatIP(d)
    else:
        cells = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = np.random.default_rng(seed).choice(n, size=min(n, 64 * cells), replace=False)
        index.train(np.ascontiguousarray(r[np.sort(sample)]))
        index.nprobe = 16
    index.add(np.ascontiguousarray(r))
    return index


def faiss_knn(query: np.ndarray, reference: np.ndarray | None = None, *, k: int,
              exclude_self: bool = True, index=None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine kNN: ``(indices (n, k), similarities (n, k))`` of ``query`` rows in ``reference``
    (approximate above :data:`EXACT_KNN_MAX` reference rows, see :func:`knn_index`; missing
    neighbours of a row are -1).

    With ``reference=None`` the query set searches itself and each row's own index is dropped;
    ``index``: :func:`knn_index` of the reference rows when the caller keeps one.
    """
    same = reference is None
    q = normalize_rows(query)
    r = q if same else normalize_rows(reference)
    k = int(min(k, r.shape[0] - (1 if same and exclude_self else 0)))
    if k < 1:
        raise InputError("kNN mining needs at least 2 proteins")
    index = knn_index(r) if index is None else index
    extra = 1 if same and exclude_self else 0
    sims, idx = index.search(np.ascontiguousarray(q), k + extra)
    if extra:
        # drop each row's own index (ties may put it anywhere), keep the first k others
        keep = idx != np.arange(len(q))[:, None]
        keep &= np.cumsum(keep, axis=1) <= k  # k + 1 found: the first k that are not the row itself
        return idx[keep].reshape(len(q), k).astype(np.int64), sims[keep].reshape(len(q), k).astype(np.float32)
    return idx.astype(np.int64), sims.astype(np.float32)


def _topk_lists(n: int, qi: np.ndarray, ti: np.ndarray, score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the ``k`` best targets by score (ties broken by target index)."""
    order = np.lexsort((ti, -score, qi))
    qi, ti = qi[order], ti[order]
    starts = np.searchsorted(qi, np.arange(n))
    rank = np.arange(len(qi)) - starts[qi]
    keep = rank < k
    knn = np.full((n, k), -1, dtype=np.int64)
    knn[qi[keep], rank[keep]] = ti[keep]
    counts = np.bincount(qi[keep], minlength=n).astype(np.int64)
    return knn, counts


def orphan_hits(sequences, orphans: np.ndarray, *, threads: int | None = None,
                max_hits: int = MAX_HITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits among the proteins that found none in the all-vs-all search, in global indices.

    An E-value grows with the size of the database searched: short domains (such as PF01535's
    31-residue repeats) fall below the threshold in a big search and find each other in a small one.
    """
    seqs = [str(sequences[i]) for i in orphans]
    qi, ti, bits = easy_search(seqs, threads=threads, max_seqs=max_hits)
    other = qi != ti
    return orphans[qi[other]], orphans[ti[other]], bits[other]


def all_hits(sequences, *, search_chunk: int = SEARCH_CHUNK, threads: int | None = None,
             max_hits: int = MAX_HITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(query, target, bit score)`` of the all-vs-all search, self hits dropped."""
    parts = []
    for qi, ti, bits in chunked_search(list(sequences), chunk_size=search_chunk, threads=threads, max_seqs=max_hits):
        other = qi != ti
        parts.append((qi[other], ti[other], bits[other]))
    return tuple(np.concatenate(column) for column in zip(*parts))


def landmark_hits(sequences, rep: np.ndarray, *, search_chunk: int = SEARCH_CHUNK, threads: int | None = None,
                  max_hits: int = MAX_HITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hits of :func:`all_hits` for large sets, from landmarks: ``rep`` is each protein's
    representative (:func:`protlab.core.mmseqs.linclust_representatives`); only the
    representatives search each other, and every other protein inherits its
    representative's hits (same bit scores) and a hit to the representative itself (weighted
    as the representative's best hit). At most ``max_hits`` + 1 hits per protein, as in
    :func:`all_hits`; the search costs (representatives / n)^2 of the full one."""
    n = len(sequences)
    reps = np.unique(rep)
    qi, ti, bits = all_hits([sequences[i] for i in reps], search_chunk=search_chunk, threads=threads,
                            max_hits=max_hits)
    qi, ti = reps[qi], reps[ti]
    order = np.argsort(qi, kind="stable")
    qi, ti, bits = qi[order], ti[order], bits[order]
    members = np.flatnonzero(rep != np.arange(n))
    first = np.searchsorted(qi, rep[members])
    count = np.searchsorted(qi, rep[members], side="right") - first
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    inherited = np.repeat(first, count) + offset
    best = np.full(n, float(np.median(bits)) if len(bits) else 1.0, dtype=np.float32)
    has = np.unique(qi)
    best[has] = np.maximum.reduceat(bits, np.searchsorted(qi, has)) if len(has) else best[has]
    return (np.concatenate([qi, np.repeat(members, count), members]),
            np.concatenate([ti, ti[inherited], rep[members]]),
            np.concatenate([bits, bits[inherited], best[rep[members]]]).astype(np.float32))


def mine_neighbors(embeddings: np.ndarray, sequences=None, *, source: str = "auto", k: int = 20,
                   fallback_k: int = 5, max_hits: int = MAX_HITS, search_chunk: int = SEARCH_CHUNK,
                   landmarks: bool | None = None, threads: int | None = None) -> NeighborGraph:
    """Neighbours of every protein (see the module docstring for the two sources);
    ``landmarks`` None: :func:`landmark_hits` above ``LANDMARK_MIN`` proteins."""
    x = np.asarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    if n < 2:
        raise InputError("neighbour mining needs at least 2 proteins")
    source = resolve_source(source, have_sequences=sequences is not None)
    fallback_k = int(min(fallback_k, n - 1))
    fb_idx, _ = faiss_knn(x, k=max(fallback_k, min(k, n - 1)))
    rows, cols = np.repeat(np.arange(n), fallback_k), fb_idx[:, :fallback_k].ravel()
    found = cols >= 0  # an approximate search may find fewer
    weak = sp.csr_matrix((np.ones(int(found.sum()), dtype=np.float32), (rows[found], cols[found])), shape=(n, n))
    if source == "faiss":
        kk = int(min(k, n - 1))
        knn = fb_idx[:, :kk].copy()
        valid = knn >= 0
        counts = valid.sum(axis=1).astype(np.int64)
        affinity = sp.csr_matrix((np.ones(int(valid.sum()), dtype=np.float32),
                                  (np.repeat(np.arange(n), kk)[valid.ravel()], knn[valid])), shape=(n, n))
        affinity = affinity.maximum(affinity.T).tocsr()
        return NeighborGraph(knn=knn, counts=counts, affinity=affinity, source="faiss")
    if len(sequences) != n:
        raise InputError(f"{len(sequences)} sequences for {n} embeddings: they must describe the same proteins")
    sequences = list(sequences)
    rep = None
    if n > LANDMARK_MIN if landmarks is None else landmarks:
        rep = linclust_representatives(sequences, identity=LANDMARK_IDENTITY, threads=threads)
        log.info("landmark search: %d representatives of %d proteins (linclust at %.0f %% identity)",
                 len(np.unique(rep)), n, 100 * LANDMARK_IDENTITY)
        qi, ti, bits = landmark_hits(sequences, rep, search_chunk=search_chunk, threads=threads, max_hits=max_hits)
    else:
        qi, ti, bits = all_hits(sequences, search_chunk=search_chunk, threads=threads, max_hits=max_hits)
    alone = np.setdiff1d(np.arange(n), qi)
    if 1 < len(alone) < n:  # proteins without hits search each other (see orphan_hits)
        extra = orphan_hits(sequences, alone, threads=threads, max_hits=max_hits)
        qi, ti, bits = (np.concatenate(pair) for pair in zip((qi, ti, bits), extra))
    knn, counts = _topk_lists(n, qi, ti, bits, k)
    homologous = counts > 0
    orphans = np.flatnonzero(~homologous)
    take = min(fallback_k, knn.shape[1])  # an orphan's lists hold at most k neighbours too
    knn[orphans, :take] = fb_idx[orphans, :take]
    counts[orphans] = take
    scores = sp.csr_matrix((bits, (qi, ti)), shape=(n, n))
    scores = scores.maximum(scores.T)
    affinity = (scores + weak.maximum(weak.T)).tocsr()
    found = np.ones(len(qi), dtype=bool)
    if rep is not None:  # an inherited copy is no evidence of its own: hits keeps the searched ones
        found = (rep[qi] == qi) | (ti == rep[qi])
    hits = sp.csr_matrix((np.ones(int(found.sum()), dtype=np.float32), (qi[found], ti[found])), shape=(n, n))
    hits = hits.maximum(hits.T).tocsr()
    hits.data[:] = 1.0
    log.info("mmseqs neighbours: %d proteins, %d hits, %d without hits (embedding fallback)",
             n, len(qi), len(orphans))
    return NeighborGraph(knn=knn, counts=counts, affinity=affinity, source="mmseqs", hits=hits,
                         homologous=homologous, rep=rep)


def reference_affinity(query_embeddings: np.ndarray, reference_embeddings: np.ndarray, query_sequences=None,
                       reference_sequences=None, *, source: str, k: int = 20, fallback_k: int = 5,
                       threads: int | None = None, index=None) -> sp.csr_matrix:
    """Affinity ``(n_query, n_reference)`` of new proteins to a fitted model's reference set.

    Built exactly as a row of :func:`mine_neighbors`' affinity: bit scores of homology hits
    (``source="mmseqs"``) plus weight-1 edges to the ``fallback_k`` nearest embeddings;
    with ``source="faiss"`` weight-1 edges to the ``k`` nearest embeddings only.
    """
    nq, nr = len(query_embeddings), len(reference_embeddings)
    fallback_k = int(min(fallback_k if source == "mmseqs" else k, nr))
    idx, _ = faiss_knn(query_embeddings, reference_embeddings, k=fallback_k, exclude_self=False, index=index)
    rows, cols = np.repeat(np.arange(nq), fallback_k), idx.ravel()
    found = cols >= 0
    weak = sp.csr_matrix((np.ones(int(found.sum()), dtype=np.float32), (rows[found], cols[found])), shape=(nq, nr))
    if source != "mmseqs":
        return weak
    qi, ti, bits = easy_search(list(query_sequences), list(reference_sequences), threads=threads, max_seqs=MAX_HITS)
    hits = sp.csr_matrix((bits, (qi, ti)), shape=(nq, nr))
    return (hits + weak).tocsr()
