"""Validate critical residues against known sites: precision@k beside random and a baseline.

* :func:`precision_at_k` / :func:`random_precision_at_k`: the fraction of the k best-scored
  residues that are site residues, and its expectation for random picks;
* :func:`conservation_scores`: the sequence-conservation baseline;
* :func:`site_metrics` / :func:`site_summary`: the mean over proteins (per protein too).

Known sites of real structures come from :mod:`protlab.residues.site_table` (a table) or
:mod:`protlab.residues.file_sites` (the files' own SITE records and ligand contacts).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd

from protlab.core.errors import InputError
from protlab.residues.explain import Explanation
from protlab.residues.precision import precision_at_k, random_precision_at_k

CONSERVATION = "sequence conservation (1 - column entropy / log 20, family alignment)"


def conservation_scores(sequences: Sequence[str], families: Sequence, *,
                        alignment: dict | None = None, ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Sequence-conservation baseline: per residue, how conserved its column is in its family.

    With ``alignment`` (id → column per residue, -1 for unaligned, e.g. the toy universe's
    template positions) the score is ``1 - entropy/log(20)`` of the column's residue types
    among family members (unaligned residues get 0). Without one, an alignment-free
    stand-in: the fraction of family members that contain the residue's centred 3-mer.
    """
    sequences = list(sequences)
    families = list(families)
    by_family: dict = {}
    for i, f in enumerate(families):
        by_family.setdefault(f, []).append(i)
    out: list[np.ndarray] = [np.zeros(len(s)) for s in sequences]
    for members in by_family.values():
        if alignment is not None:
            if ids is None:
                raise InputError("conservation_scores(alignment=...) needs ids")
            columns: dict[int, Counter] = {}
            for i in members:
                for aa, col in zip(sequences[i], alignment[ids[i]]):
                    if col >= 0:
                        columns.setdefault(int(col), Counter())[aa] += 1
            cons = {}
            for col, counts in columns.items():
                p = np.array(list(counts.values()), dtype=float) / sum(counts.values())
                cons[col] = 1.0 - float(-(p * np.log(p)).sum() / np.log(20))
            for i in members:
                out[i] = np.array([cons.get(int(c), 0.0) if c >= 0 else 0.0 for c in alignment[ids[i]]])
        else:
            centred = lambda seq: [seq[max(j - 1, 0):j + 2] for j in range(len(seq))]  # noqa: E731
            kmers = [set(centred(sequences[i])) for i in members]
            for i, own in zip(members, kmers):
                seq = sequences[i]
                others = [k for j, k in zip(members, kmers) if j != i] or [own]
                out[i] = np.array([np.mean([kmer in k for k in others]) for kmer in centred(seq)])
    return out


def site_metrics(explanations: Sequence[Explanation], sites: Sequence[Sequence[int]], *, k: int | None = None,
                 baseline: Sequence[np.ndarray] | None = None, seed: int = 0) -> dict:
    """Mean precision@k of critical residues vs known sites, beside random and a baseline.

    ``k`` defaults to each protein's site size. Proteins without a site are skipped.
    Also reports an empirical random precision (random scores, same k).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i, (ex, site) in enumerate(zip(explanations, sites)):
        site = [int(s) for s in site]
        if not site:
            continue
        kk = k or len(site)
        L = len(ex.importance)
        row = {"id": ex.id, "length": L, "site_size": len(site), "k": kk,
               "precision_at_k": precision_at_k(ex.importance, site, kk),
               "random_precision_at_k": random_precision_at_k(L, site, kk),
               "random_scores_precision_at_k": precision_at_k(rng.random(L), site, kk)}
        if baseline is not None:
            row["baseline_precision_at_k"] = precision_at_k(baseline[i], site, kk)
        rows.append(row)
    if not rows:
        raise InputError("no protein has a known site: nothing to measure")
    table = pd.DataFrame(rows)
    summary = {c: float(table[c].mean()) for c in table.columns if "precision" in c}
    summary.update({"n_proteins": len(table), "k": k or "site size", "per_protein": table.to_dict("records")})
    return summary


def site_summary(explanations: Sequence[Explanation], sites: dict[str, list[int]], *,
                 baseline: dict[str, np.ndarray] | None = None, top_k: int = 10, source: str = "",
                 baseline_name: str = CONSERVATION, peer: dict[str, np.ndarray] | None = None,
                 peer_name: str | None = None, peer_note: str | None = None,
                 ensemble: str | None = None) -> dict | None:
    """What ``residue_metrics.json`` holds: :func:`site_metrics` at k = site size and at
    ``top_k`` (``at_top_k``), the per-protein rows, the baseline's name and the source;
    None when no explained protein has a known site. With a learned ``peer``'s scores (by
    id; ``peer_name``) its precision@k on the same proteins, else ``peer_note`` says why not;
    when the explanations' scores ensemble the model with the peer (``ensemble`` names how),
    the model's own precision@k too (``own_precision_at_k``)."""
    with_sites = [ex for ex in explanations if sites.get(ex.id)]
    if not with_sites:
        return None
    known = [sites[ex.id] for ex in with_sites]
    base = [baseline[ex.id] for ex in with_sites] if baseline else None
    metrics = site_metrics(with_sites, known, baseline=base)
    metrics_top = site_metrics(with_sites, known, k=top_k, baseline=base)
    summary = {k: v for k, v in metrics.items() if k != "per_protein"}
    summary["at_top_k"] = {k: v for k, v in metrics_top.items() if k != "per_protein"}
    summary["top_k"] = top_k
    summary["source"] = source
    if base is not None:
        summary["baseline"] = baseline_name
    if peer is not None:
        summary["peer"] = peer_name
        summary["peer_precision_at_k"], summary["peer_n_proteins"] = _precision_of(with_sites, known, peer)
    elif peer_note is not None:
        summary["peer_note"] = peer_note
    if ensemble is not None:
        summary["ensemble"] = ensemble
        own = {ex.id: ex.own for ex in with_sites if ex.own is not None}
        summary["own_precision_at_k"] = _precision_of(with_sites, known, own)[0]
    summary["per_protein"] = metrics["per_protein"]
    return summary


def _precision_of(explanations, known, scores: dict) -> tuple[float | None, int]:
    """(mean precision@k of other ``scores`` by id on the explained proteins they cover, or None;
    how many they cover)."""
    scored = [i for i, ex in enumerate(explanations) if ex.id in scores]
    if not scored:
        return None, 0
    metrics = site_metrics([explanations[i] for i in scored], [known[i] for i in scored],
                           baseline=[scores[explanations[i].id] for i in scored])
    return metrics["baseline_precision_at_k"], len(scored)
