"""The family algorithm's profile searches (:mod:`protlab.cluster.families`): a profile (MMseqs2
builds it from a seed's homologues) finds distant members of a family that no single sequence
hits, so profiles join the small groups of one sparsely sampled family and place the proteins
that hits do not lead to a family."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from protlab.cluster.family_types import DEFAULT, relabel
from protlab.core.mmseqs import profile_search

SEARCHABLE_LENGTH = 14  # MMseqs2 draws no k-mer from shorter sequences, and a database of only those fails


def join_by_profiles(groups: np.ndarray, hits: sp.csr_matrix, sequences, *, apart: list[tuple[int, int]] = (),
                     max_size: int = DEFAULT.join_below, share: float = DEFAULT.join_share,
                     evalue: float = DEFAULT.join_evalue, iterations: int = DEFAULT.profile_iterations,
                     threads: int | None = None) -> tuple[np.ndarray, int]:
    """``(groups, links)``: groups of 2 to ``max_size`` members joined where the profile of one
    (its best-connected member's, built among those groups) finds at least ``share`` of the
    other's members (and at least two) at ``evalue``; strongest link first, never joining two
    groups that ``apart`` (pairs of groups) keeps apart. A sparsely sampled family falls into
    groups that no single hit connects, but its profiles find each other's members; a large
    group is never a target, so a small family is not absorbed by a big relative here."""
    size = np.bincount(groups)
    searched = (size >= 2) & (size <= max_size)
    if searched.sum() < 2:
        return groups, 0
    seeds, _ = profile_seeds(groups, groups, searched, hits, per_family=1)
    targets = np.flatnonzero(searched[groups])
    seq = [str(s) for s in sequences]
    among = [seq[i] for i in targets]
    if max(len(s) for s in among) < SEARCHABLE_LENGTH:
        return groups, 0
    qi, ti, _ = profile_search([seq[i] for i in seeds], among, among, iterations=iterations, hit_evalue=evalue,
                               threads=threads)
    found = pd.DataFrame({"a": groups[seeds[qi]], "b": groups[targets[ti]], "t": ti}).drop_duplicates()
    found = found[found["a"] != found["b"]].groupby(["a", "b"]).size().rename("found").reset_index()
    found["share"] = found["found"] / size[found["b"]]
    links = found[(found["found"] >= 2) & (found["share"] >= share)].sort_values(["share", "found", "a", "b"],
                                                                                ascending=[False, False, True, True])
    root = np.arange(len(size))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    joined = 0
    for a, b in zip(links["a"].to_numpy(), links["b"].to_numpy()):
        ra, rb = find(int(a)), find(int(b))
        if ra == rb or any({find(x), find(y)} == {ra, rb} for x, y in apart):
            continue
        root[rb] = ra
        joined += 1
    return relabel(np.array([find(g) for g in range(len(size))])[groups]), joined


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
