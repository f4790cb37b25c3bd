"""Family profiles: who a discovered family is, and where along its members the network looks.

Per cluster: its size, confidence and lengths, its most and least typical members (highest
and lowest probability of their own cluster) and, from the residue attribution, a strip along
the representative (the most typical member): every member aligned to the representative by
MMseqs2 adds its residues' attribution at the representative's positions, and the strip is
their mean, a sequence-logo-like view of what makes the family a family to the network.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from protlab.cluster.attribution import aligned_columns
from protlab.core.mmseqs import search_alignments

TYPICAL = 3  # members listed as most and least typical per family


def family_summary(ids, sequences, clusters, confidence, *, typical: int = TYPICAL) -> pd.DataFrame:
    """One row per cluster: ``size``, ``mean_confidence``, length quantiles, ``representative``
    and the ``most_typical`` / ``least_typical`` member ids."""
    frame = pd.DataFrame({"id": [str(i) for i in ids], "cluster": np.asarray(clusters, dtype=np.int64),
                          "confidence": np.asarray(confidence, dtype=np.float64),
                          "length": [len(s) for s in sequences]})
    rows = []
    for cluster, members in frame.groupby("cluster"):
        median = members["length"].median()
        # most typical first; equal confidence: the length nearest the family's median
        ranked = members.assign(off=(members["length"] - median).abs()).sort_values(
            ["confidence", "off", "id"], ascending=[False, True, True])
        rows.append({"cluster": int(cluster), "size": len(members),
                     "mean_confidence": float(members["confidence"].mean()),
                     "median_length": float(median), "length_q10": float(members["length"].quantile(0.1)),
                     "length_q90": float(members["length"].quantile(0.9)),
                     "representative": ranked["id"].iloc[0],
                     "most_typical": ranked["id"].head(typical).tolist(),
                     "least_typical": ranked["id"].tail(typical).iloc[::-1].tolist()})
    return pd.DataFrame(rows)


def attribution_strips(summary: pd.DataFrame, ids, sequences, clusters, attribution: pd.DataFrame, *,
                       threads: int | None = None) -> pd.DataFrame:
    """Mean attribution at each position of each family's representative, over the members
    that align to it (long form: ``cluster``, ``representative``, ``position`` 1-based,
    ``residue``, ``mean_attribution``, ``members``)."""
    ids = [str(i) for i in ids]
    clusters = np.asarray(clusters, dtype=np.int64)
    index = {pid: i for i, pid in enumerate(ids)}
    reps = [index[r] for r in summary["representative"]]
    rep_of_cluster = dict(zip(summary["cluster"], range(len(reps))))
    lengths = np.array([len(sequences[i]) for i in reps], dtype=np.int64)
    rep_offsets = np.concatenate([[0], np.cumsum(lengths)])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])])
    flat = np.zeros(int(offsets[-1]))
    known = np.zeros(len(ids), dtype=bool)
    for pid, group in attribution.groupby("id", sort=False):
        i = index.get(str(pid))
        if i is not None:
            flat[offsets[i] + group["position"].to_numpy() - 1] = group["attribution"].to_numpy()
            known[i] = True
    # every member is aligned to every representative (few targets: no prefilter to miss distant
    # members) and only the alignment to its own family's one is kept, so a permissive E-value
    # adds distant members without admitting other families
    found = search_alignments(list(sequences), [sequences[i] for i in reps], threads=threads,
                              max_seqs=len(reps), sensitivity=7.5, evalue=10.0, exhaustive=True)
    own = np.array([rep_of_cluster.get(c, -1) for c in clusters])
    keep = (found["target"] == own[found["query"]]) & known[found["query"]]
    found = {key: value[keep] for key, value in found.items()}
    first = np.unique(found["query"], return_index=True)[1]  # the best alignment of each member
    found = {key: value[first] for key, value in found.items()}
    cols = aligned_columns(found)
    both = (cols["q"] != ord("-")) & (cols["t"] != ord("-"))
    member = found["query"][cols["which"]][both]
    slot = rep_offsets[found["target"][cols["which"]][both]] + cols["tpos"][both]
    sums = np.bincount(slot, weights=flat[offsets[member] + cols["qpos"][both]], minlength=int(rep_offsets[-1]))
    counts = np.bincount(slot, minlength=int(rep_offsets[-1]))
    return pd.DataFrame({
        "cluster": np.repeat(summary["cluster"].to_numpy(), lengths),
        "representative": np.repeat(summary["representative"].to_numpy(), lengths),
        "position": np.concatenate([np.arange(1, n + 1) for n in lengths]) if len(lengths) else [],
        "residue": list("".join(sequences[i] for i in reps)),
        "mean_attribution": np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32),
        "members": counts.astype(np.int64)})
