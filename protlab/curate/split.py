"""Redundancy-aware train/validation/test split: whole identity clusters go to one split.

``split_by_identity`` clusters sequences at a sequence-identity threshold and assigns
each cluster, as a whole, to ``train``, ``valid`` or ``test``, so near-identical
sequences never sit on both sides of a split.

Clustering methods (``method``):

* ``"mmseqs"``: ``mmseqs easy-cluster --min-seq-id <identity> -c <coverage>`` (MMseqs2,
  run in a temporary directory). Used by ``"auto"`` when MMseqs2 is available (:mod:`protlab.core.mmseqs`).
* ``"kmer"``: the fallback, no external tool. A sequence with identity p to another
  keeps about ``p**k`` of its k-mers, so two sequences are linked when the share ``f``
  of the shorter one's distinct k-mers found in the other reaches
  ``KMER_SLACK * identity**k`` (slack 0.8 absorbs the noise of the estimate); clusters
  are the connected components (single linkage). It errs on the side of merging, which
  only makes the split stricter. ``k = 3``: on real Pfam domains, pairs at the identity
  threshold share clearly more 3-mers than pairs from different families, while with
  5-mers identical pairs lose too many of theirs. Long sequences also share 3-mers by
  chance, so only the share above the chance
  expectation ``1 - exp(-m / D)`` counts (``m`` distinct k-mers of the longer sequence,
  ``D = (1 / Σ f_a²)^k`` the effective number of k-mers under the residue composition ``f``,
  which does not depend on how conserved the data set's own families are). Below identity
  ``KMER_MIN_IDENTITY`` (0.6) chance sharing still chains unrelated proteins of real Pfam
  families into one cluster, so
  ``split_by_identity`` refuses the k-mer method there and asks for MMseqs2.

A split that should have members but has none (e.g. every protein in one cluster) is
reported with a warning that says why and what to change; it is never silent.

Stratification: when the table has labels (``stratify="label"``, the default), clusters
are assigned per label, so every family gets its share of train/valid/test (a family made
of few large clusters would otherwise land mostly in one split). A cluster whose members
carry several labels counts under its most common one. Unlabelled rows form one stratum,
and labels with fewer than ``MIN_STRATUM_CLUSTERS`` clusters share one pooled stratum (a
label that is a single cluster cannot be spread over splits, and alone it would always
go to train).
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from protlab.core.errors import InputError
from protlab.core.mmseqs import INSTALL_HINT, easy_cluster, mmseqs_available

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")
METHODS = ("auto", "mmseqs", "kmer")
KMER_SLACK = 0.8
KMER_MIN_IDENTITY = 0.6  # below it, 3-mer sharing by chance chains unrelated proteins together
MIN_STRATUM_CLUSTERS = 3


def _resolve_method(method: str, identity: float) -> str:
    """The clustering method ``"auto"`` stands for here (with a warning when it is the
    fallback), or an :class:`InputError` where the k-mer fallback cannot tell ``identity``."""
    if method == "auto":
        method = "mmseqs" if mmseqs_available() else "kmer"
        if method == "kmer":
            log.warning("MMseqs2 not installed: clustering with the k-mer single-linkage fallback "
                        f"({INSTALL_HINT}) for real identity clustering")
    if method == "kmer" and identity < KMER_MIN_IDENTITY:
        raise InputError(f"split_identity={identity}: the k-mer fallback cannot tell identities below "
                         f"{KMER_MIN_IDENTITY} from chance 3-mer sharing (unrelated proteins chain into one cluster); "
                         f"use MMseqs2 (split_method='mmseqs'; {INSTALL_HINT}) "
                         f"or split_identity >= {KMER_MIN_IDENTITY}")
    return method


def _warn_of_empty_splits(out: pd.DataFrame, clusters: np.ndarray, fractions: tuple[float, float, float],
                          sizes: pd.Series, method: str, identity: float) -> None:
    """Logs and warns (at the caller of :func:`split_by_identity`) of each split that should
    have members but has none, saying why and what to change; records them in ``out.attrs``."""
    empty = [name for name, share in zip(SPLITS, fractions) if share > 0 and sizes[name] == 0]
    if empty and len(out):
        largest = int(np.bincount(pd.factorize(pd.Series(clusters))[0]).max())
        hint = (f"; clustering with MMseqs2 ({INSTALL_HINT}) keeps unrelated proteins apart"
                if method == "kmer" and largest > len(out) / 2 else "")
        message = (f"split {', '.join(map(repr, empty))} is EMPTY: the {len(out)} proteins form "
                   f"{out.attrs['split']['n_clusters']} identity clusters at identity {identity} ({method}), the "
                   f"largest holding {largest}; raise split_identity, add proteins, or set that split's fraction "
                   f"to 0{hint}")
        out.attrs["split"]["empty"] = empty
        log.warning(message)
        warnings.warn(message, stacklevel=3)


def split_by_identity(frame: pd.DataFrame, *, identity: float = 0.5,
                      fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                      method: str = "auto", coverage: float = 0.8, threads: int | None = None,
                      stratify: str | None = "label") -> pd.DataFrame:
    """A copy of ``frame`` with ``cluster`` (int) and ``split`` (train/valid/test) columns.

    ``stratify`` names a column whose values are balanced across splits (ignored when the
    column is absent or empty); ``None`` assigns clusters regardless of labels.

    ``frame.attrs["split"]`` records the method used, the settings and the split sizes.
    """
    if method not in METHODS:
        raise InputError(f"method={method!r}: choose one of {METHODS}")
    if not 0.0 < identity <= 1.0:
        raise InputError(f"identity={identity} must be within (0, 1]")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"fractions={fractions!r} must be three non-negative numbers summing to 1")
    if "sequence" not in frame.columns:
        raise InputError("the table to split has no 'sequence' column")
    sequences = frame["sequence"].astype(str).tolist()
    method = _resolve_method(method, identity)
    if not sequences:
        clusters = np.zeros(0, dtype=int)
    elif method == "mmseqs":
        clusters = cluster_mmseqs(sequences, identity=identity, coverage=coverage, threads=threads)
    else:
        clusters = cluster_kmer(sequences, identity=identity)
    out = frame.copy()
    out["cluster"] = clusters
    strata = None
    if stratify and stratify in out.columns and out[stratify].notna().any():
        strata = out[stratify].astype(object).where(out[stratify].notna(), "").astype(str).to_numpy()
    out["split"] = assign_splits(clusters, fractions=fractions, seed=seed, strata=strata)
    sizes = out["split"].value_counts().reindex(SPLITS, fill_value=0)
    out.attrs["split"] = {"method": method, "identity": identity, "coverage": coverage,
                          "fractions": list(fractions), "seed": seed,
                          "stratified_by": stratify if strata is not None else None,
                          "n_clusters": int(len(np.unique(clusters))),
                          "sizes": {k: int(v) for k, v in sizes.items()}}
    log.info("split %d sequences in %d clusters (%s, identity %.2f): %s", len(out),
             out.attrs["split"]["n_clusters"], method, identity, dict(sizes))
    _warn_of_empty_splits(out, clusters, fractions, sizes, method, identity)
    return out


def assign_splits(clusters, *, fractions=(0.8, 0.1, 0.1), seed: int = 0, strata=None) -> np.ndarray:
    """Give each whole cluster the split furthest below its target (largest clusters first).

    With ``strata`` (one value per row), targets are kept per stratum: a cluster fills the
    split furthest below target within its majority stratum.
    """
    clusters = np.asarray(clusters)
    labels, inverse, counts = np.unique(clusters, return_inverse=True, return_counts=True)
    if strata is None:
        stratum_of = np.zeros(len(labels), dtype=int)
        stratum_sizes = np.array([len(clusters)])
    else:
        codes, _ = pd.factorize(pd.Series(np.asarray(strata)))
        votes = pd.crosstab(inverse, codes).to_numpy()  # clusters x strata member counts
        stratum_of = votes.argmax(1)
        n_clusters_in = np.bincount(stratum_of, minlength=votes.shape[1])
        pooled = n_clusters_in[stratum_of] < MIN_STRATUM_CLUSTERS
        stratum_of = np.where(pooled, votes.shape[1], stratum_of)  # one extra, shared stratum
        stratum_sizes = np.bincount(stratum_of, weights=counts, minlength=votes.shape[1] + 1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    order = order[np.argsort(-counts[order], kind="stable")]  # big first, random among equals
    targets = np.outer(stratum_sizes, np.asarray(fractions))
    filled = np.zeros_like(targets)
    split_of = np.empty(len(labels), dtype=object)
    for idx in order:
        s = stratum_of[idx]
        k = int(np.argmax(targets[s] - filled[s]))
        split_of[idx] = SPLITS[k]
        filled[s, k] += counts[idx]
    return split_of[inverse]


def cluster_mmseqs(sequences: list[str], *, identity: float | None = 0.5, coverage: float | None = 0.8,
                   threads: int | None = None) -> np.ndarray:
    """Cluster ids (0..) from ``mmseqs easy-cluster`` (:mod:`protlab.core.mmseqs`).

    ``identity`` / ``coverage`` of None leave MMseqs2's own defaults.
    """
    return easy_cluster(sequences, identity=identity, coverage=coverage, threads=threads)


def background_kmer_space(sequences, k: int) -> float:
    """Effective number of distinct k-mers under residue composition alone, ``(1 / sum f_a^2)^k``.

    From single-residue frequencies, so a data set of one conserved family (whose own k-mers
    dominate the k-mer counts) does not raise the chance level and split its homologs."""
    counts = Counter()
    for s in sequences:
        counts.update(s)
    total = max(sum(counts.values()), 1)
    return (1.0 / max(sum((c / total) ** 2 for c in counts.values()), 1e-12)) ** k


def cluster_kmer(sequences: list[str], *, identity: float = 0.5, k: int | None = None,
                 block: int = 512) -> np.ndarray:
    """Single-linkage clusters from shared k-mers (see the module docstring)."""

    k = k or 3
    n = len(sequences)
    rows, cols = [], []
    vocab: dict[str, int] = {}
    for i, s in enumerate(sequences):
        kmers = {s[j:j + k] for j in range(len(s) - k + 1)} or {s}
        ids = [vocab.setdefault(km, len(vocab)) for km in kmers]
        rows.extend([i] * len(ids))
        cols.extend(ids)
    x = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(vocab)))
    sizes = np.asarray(x.sum(1)).ravel()
    need = KMER_SLACK * identity ** k
    # Chance sharing: a k-mer of one sequence is in an unrelated one with probability about
    # 1 - exp(-distinct k-mers of the other / effective k-mer space), which for two 1000-residue
    # proteins is already ~0.1. Only the share above chance counts as evidence of identity.
    space = background_kmer_space(sequences, k)
    xt = x.T.tocsc()
    edges_i, edges_j = [], []
    for start in range(0, n, block):
        shared = (x[start:start + block] @ xt).tocoo()
        i = shared.row + start
        j = shared.col
        upper = j > i
        i, j, v = i[upper], j[upper], shared.data[upper]
        small, large = np.minimum(sizes[i], sizes[j]), np.maximum(sizes[i], sizes[j])
        chance = 1.0 - np.exp(-large / space)
        link = (v / small - chance) >= need * (1.0 - chance)
        edges_i.append(i[link])
        edges_j.append(j[link])
    ei = np.concatenate(edges_i) if edges_i else np.zeros(0, int)
    ej = np.concatenate(edges_j) if edges_j else np.zeros(0, int)
    graph = sparse.coo_matrix((np.ones(len(ei)), (ei, ej)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(pd.Series(labels))[0].astype(int)
