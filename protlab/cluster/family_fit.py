"""Meeting a requested number of families (the family algorithm's last pass, see
:mod:`protlab.cluster.families`): the parts of one family merge first, then the smallest
family into its best-connected one; with too few, the largest groups that are not families
yet become families, and only with none left is the largest split in two.
Every merge, promotion and split is returned as a step (:func:`describe_fit_steps` prints them)."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.manifold import spectral_embedding

from protlab.cluster.family_types import DEFAULT, FamilyConfig, one_hot, relabel


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
    onehot = one_hot(labels, m)
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
    return relabel(group[labels]), merges


def fit_to(labels: np.ndarray, n_clusters: int, affinity: sp.csr_matrix, embeddings: np.ndarray,
           *, hits: sp.csr_matrix | None = None, seed: int = 0, config: FamilyConfig = DEFAULT,
           groups: np.ndarray | None = None, is_family: np.ndarray | None = None,
           parts_first: bool = False) -> tuple[np.ndarray, list[dict]]:
    """Fit the families to ``n_clusters``: with ``hits`` and ``parts_first`` (the graph
    estimated at least ``n_clusters`` families), the parts of one family merge first, whatever
    the count (:func:`merge_down`); then merge further, or keep the graph's largest groups
    that are not families yet as families of their own (``groups`` and ``is_family`` of the
    graph step, :func:`promote_groups`), or, with none left, split the largest in two
    (:func:`split_in_two`). A count met only because one family stayed in parts would
    otherwise keep it in parts; below the estimate the groups that filled the count are
    fragments kept on purpose. Returns the labels and the steps (``merged``, ``promoted`` or
    ``split``, with sizes and one member of each side)."""
    steps = []
    if hits is not None and parts_first:
        labels, merges = merge_down(labels, None, hits, affinity, part_share=config.part_share)
        steps += [{"merged": merge} for merge in merges]
    if labels.max() + 1 > n_clusters:
        labels, merges = merge_down(labels, n_clusters, affinity if hits is None else hits, affinity,
                                    part_share=config.part_share)
        steps += [{"merged": merge} for merge in merges]
    if groups is not None and labels.max() + 1 < n_clusters:
        labels, promoted = promote_groups(labels, n_clusters, groups, is_family)
        steps += promoted
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


def promote_groups(labels: np.ndarray, n_clusters: int, groups: np.ndarray,
                   is_family: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """``(labels, steps)``: the largest groups of at least two members that are not families
    (``is_family`` False: the graph step attached them to one) become families of their own,
    one at a time, until there are ``n_clusters``: a small group is often a small family, and
    keeping one apart costs far less than splitting a big family in two."""
    sizes = np.bincount(groups)
    labels = labels.copy()
    steps = []
    for group in np.argsort(-sizes, kind="stable"):
        if labels.max() + 1 >= n_clusters or sizes[group] < 2:
            break
        if is_family[group]:
            continue
        members = np.flatnonzero(groups == group)
        labels[members] = labels.max() + 1
        steps.append({"promoted": {"sizes": [len(members)], "members": [int(members[0])]}})
    return relabel(labels), steps


def largest_first(labels: np.ndarray, steps: list[dict]) -> np.ndarray:
    """``labels`` renumbered largest family first; each of ``steps`` (in place) names the final
    clusters its ``members`` ended in instead of them."""
    order = np.argsort(-np.bincount(labels), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    for step in steps:
        change = next(iter(step.values()))
        change["clusters"] = [int(rank[labels[i]]) for i in change.pop("members")]
    return rank[labels]


def describe_fit_steps(steps: list[dict]) -> str:
    """One line per merge, promotion or split that fitted the families to ``n_clusters``."""
    lines = []
    for step in steps:
        (kind, change), = step.items()
        if kind == "promoted":
            lines.append(f"kept a group of {change['sizes'][0]} proteins that was attached to a family as a family "
                         f"of its own (cluster {change['clusters'][0]})")
            continue
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
