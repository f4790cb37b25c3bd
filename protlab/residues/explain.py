"""Critical residues: score every residue of a structure with a trained network.

:func:`explain_batch` scores the residues of a batch of residue graphs (occlusion of each
residue, or what the surviving clusters pass to their footprints, see
:mod:`protlab.residues.network`); :func:`explain_structures` gives each protein's
:class:`Explanation` (residue importance, the surviving clusters of every iteration, the prediction), which the 3D views
(:mod:`protlab.plot.view3d`) draw; :func:`critical_residues` returns one protein's residue
table (chain, residue number with insertion code, residue, score, cluster, iteration),
most important first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from protlab.core.errors import InputError
from protlab.curate.records import Structure
from protlab.residues.graph import collate
from protlab.residues.graph import UNKNOWN_AA, ResidueBatch
from protlab.residues.network import SCORES, ResidueNet, gather_rows
from protlab.residues.features import featurize
from protlab.residues.site_pockets import Pocket, pocket_ranks, score_pockets
from protlab.residues.training import batches


# -- residue importance of a batch ---------------------------------------------------------
def decision(model: ResidueNet, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """How strongly ``logits`` (B, C) keep the decision of ``reference`` (B, C): the margin of
    the reference's predicted class over the best other class (single-label), or the summed
    logits of the labels it predicts (multi-label; at least its top label)."""
    if model.config.task == "single":
        if logits.shape[1] == 1:
            return logits[:, 0]
        pred = reference.argmax(1, keepdim=True)
        others = logits.scatter(1, pred, float("-inf")).amax(1)
        return logits.gather(1, pred).squeeze(1) - others
    chosen = (reference > 0) | (reference == reference.amax(1, keepdim=True))
    return (logits * chosen).sum(1)

@torch.no_grad()
def occlusion(model: ResidueNet, batch: ResidueBatch, *, chunk: int = 128,
              reference: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L) drop of :func:`decision` when each residue's type is hidden (``X``; its ESM
    row, if any, zeroed), all else equal. One forward pass per residue, batched
    ``chunk`` variants at a time; padded positions get 0. ``reference``: the batch's
    logits when the caller already has them."""
    if reference is None:
        reference = model(batch)
    base = decision(model, reference, reference)
    drop = torch.zeros(batch.mask.shape, device=batch.mask.device)
    for b in range(len(batch.ids)):
        n = int(batch.mask[b].sum())
        for start in range(0, n, chunk):
            hide = torch.arange(start, min(n, start + chunk), device=drop.device)
            rows = torch.arange(len(hide), device=drop.device)
            variants = batch.select(torch.full((len(hide),), b, dtype=torch.long))
            variants.aa[rows, hide] = UNKNOWN_AA
            if variants.esm is not None:
                variants.esm[rows, hide] = 0.0
            out = decision(model, model(variants), reference[b].expand(len(hide), -1))
            drop[b, hide] = base[b] - out
    return drop


def explain_batch(model: ResidueNet, batch: ResidueBatch, *, member_threshold: float = 0.25,
                  score: str = "occlusion") -> dict:
    """Residue importance and surviving clusters for a batch.

    Returns tensors: ``importance`` (B, L) in [0, 1] per protein (max 1),
    ``iteration`` (B, L) last iteration whose surviving cluster holds the residue
    (-1: none), ``cluster`` (B, L) that cluster's rank among survivors at that
    iteration (by score), ``logits``; and ``clusters``: per iteration a dict with
    ``score`` (B, n) of the survivors (descending), ``centre`` (B, n) their centre
    residue, ``members`` (B, n, L) bool footprint, ``mask`` (B, n).
    A residue belongs to a cluster when its footprint weight is at least
    ``member_threshold`` × the cluster's largest weight.

    ``score`` picks the importance (a ``task="residue"`` network gives its own site
    probability per residue instead):
    ``"occlusion"`` (default) — how much the decision margin drops when the residue's type
    is hidden (:func:`occlusion`); the change can only reach the prediction through the
    surviving clusters the residue belongs to, so this measures exactly how much those
    clusters rely on it (negative drops count as 0);
    or what a surviving cluster passes to its residues through its footprint:
    ``"attribution"`` — how much the cluster drives the prediction,
    ``|∂ logit / ∂ c_n · c_n|`` for the predicted class (single-label) or the sum of
    the predicted labels' logits (multi-label), summed over the iterations it survives;
    ``"nomination"`` — its nomination score ``s_n`` weighted ``2^t`` by iteration.
    """
    if score not in SCORES:
        raise InputError(f"score={score!r}: use one of {SCORES}")
    if model.config.task == "residue":
        score = "site"  # the network scores residues itself
    logits, traces, attributions, drops = _forward(model, batch, score)
    importance, iteration, cluster, clusters = _surviving_clusters(traces, batch.mask, score=score,
                                                                   attributions=attributions,
                                                                   member_threshold=member_threshold)
    mask = batch.mask
    if score == "site":  # the site probability itself, comparable across proteins
        return {"importance": torch.sigmoid(logits) * mask, "iteration": iteration, "cluster": cluster,
                "logits": logits, "clusters": clusters}
    if score == "occlusion":
        importance = drops.clamp(min=0)
    importance = importance * mask
    importance = importance / importance.amax(1, keepdim=True).clamp(min=1e-12)
    return {"importance": importance, "iteration": iteration, "cluster": cluster, "logits": logits,
            "clusters": clusters}


def _forward(model: ResidueNet, batch: ResidueBatch, score: str):
    """(logits, traces, attributions per iteration or None, occlusion drops or None), all
    detached, from the network in eval mode (no dropout noise in the scores)."""
    attributions = drops = None
    was_training = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(score == "attribution"):
            logits, traces = model(batch, return_trace=True)
            if score == "attribution":
                target = decision(model, logits, logits.detach()).sum()
                xs = [tr["x_next"] for tr in traces]
                grads = torch.autograd.grad(target, xs)
                attributions = [(g * x).sum(-1).abs().detach() for g, x in zip(grads, xs)]
        if score == "occlusion":
            drops = occlusion(model, batch, reference=logits)
    finally:
        model.train(was_training)
    return logits.detach(), [{k: v.detach() for k, v in tr.items()} for tr in traces], attributions, drops


def _surviving_clusters(traces, mask: torch.Tensor, *, score: str, attributions, member_threshold: float):
    """Each iteration's surviving clusters with their residue footprints; returns (importance
    summed for ``attribution`` / ``nomination``, last iteration holding each residue, its
    cluster's rank there, the clusters per iteration)."""
    B, L = mask.shape
    foot = torch.diag_embed(mask.float())                    # (B, N, L): node → residue weights
    importance = torch.zeros(B, L, device=mask.device)
    iteration = torch.full((B, L), -1, dtype=torch.long, device=mask.device)
    cluster = torch.full((B, L), -1, dtype=torch.long, device=mask.device)
    clusters = []
    for t, tr in enumerate(traces):
        N = tr["attention"].shape[1]
        att = torch.zeros(B, N, N, device=mask.device).scatter_add_(
            2, tr["member"], tr["attention"] * tr["valid"])
        cfoot = att @ foot                                                 # (B, N, L)
        cfoot = cfoot / cfoot.sum(-1, keepdim=True).clamp(min=1e-12)
        keep, kmask = tr["keep"], tr["keep_mask"]
        kscore = gather_rows(tr["score"], keep) * kmask                        # (B, n), descending
        kfoot = gather_rows(cfoot, keep) * kmask.unsqueeze(-1)                 # (B, n, L)
        if score == "attribution":
            importance += ((attributions[t] * kmask).unsqueeze(-1) * kfoot).sum(1)
        elif score == "nomination":
            importance += 2.0 ** t * (kscore.unsqueeze(-1) * kfoot).sum(1)  # later survival counts more
        members = (kfoot >= member_threshold * kfoot.amax(-1, keepdim=True)) & (kfoot > 0)
        members &= kmask.unsqueeze(-1)
        inside = members.any(1)
        rank = torch.where(members, kscore.unsqueeze(-1), torch.full_like(kfoot, -1.0)).argmax(1)
        iteration = torch.where(inside, torch.full_like(iteration, t), iteration)
        cluster = torch.where(inside, rank, cluster)
        clusters.append({"score": kscore, "centre": gather_rows(tr["node_res"], keep), "members": members,
                         "mask": kmask})
        foot = kfoot
    return importance, iteration, cluster, clusters


@dataclass
class Explanation:
    """One protein's critical residues and surviving clusters: ``importance`` in [0, 1] (max 1
    per protein; a site model's site probability itself) and the clusters of every iteration."""

    structure: Structure
    importance: np.ndarray        # (L,)
    iteration: np.ndarray         # (L,) last iteration whose surviving cluster holds the residue, -1: none
    cluster: np.ndarray           # (L,) that cluster's rank (0 = best) at that iteration, -1: none
    clusters: pd.DataFrame        # iteration, cluster, score, centre, members (list of residue indices)
    probabilities: np.ndarray     # (C,) task prediction; (L,) site probabilities for a site model
    classes: list[str]
    own: np.ndarray | None = None  # (L,) a site model's own probability when ``importance`` is ensembled

    @property
    def id(self) -> str:
        return self.structure.id

    def top(self, k: int) -> np.ndarray:
        """Indices of the k most important residues (ties broken by position)."""
        return np.argsort(-self.importance, kind="stable")[:k]

    @property
    def is_site_model(self) -> bool:
        return self.classes == ["site"]

    def pockets(self) -> list[Pocket]:
        """A site model's pockets: its top residues grouped in space, ranked (:func:`score_pockets`)."""
        return score_pockets(self.structure.centroid, self.importance) if self.is_site_model else []

    def table(self) -> pd.DataFrame:
        """One row per residue, best first; a site model's rows say which pocket holds the
        residue (``pocket``: its rank, 0 for none)."""
        s = self.structure
        labels = s.residue_labels()
        frame = pd.DataFrame({
            "chain": s.residue_chains(), "residue_number": labels, "residue": [str(r) for r in s.res_names],
            "score": self.importance.astype(float), "cluster": self.cluster, "iteration": self.iteration,
            "index": np.arange(len(s)),
        })
        if self.is_site_model:
            frame.insert(4, "pocket", pocket_ranks(len(s), self.pockets()))  # after the score
        frame = frame.sort_values(["score", "index"], ascending=[False, True], kind="stable").reset_index(drop=True)
        frame.insert(0, "rank", np.arange(1, len(frame) + 1))
        return frame


def explain_structures(model: ResidueNet, structures: Sequence[Structure], *, batch_size: int = 16,
                       esm: dict | None = None, device: str = "cpu", score: str = "occlusion",
                       cache_dir=None, graphs=None) -> list[Explanation]:
    """Explanations for structures (batched); ``score`` as in :func:`explain_batch`
    (a site model scores residues itself). Graphs get the features the model was trained on
    (cached in ``cache_dir``), unless given as ``graphs``."""
    if isinstance(structures, Structure):
        structures = [structures]
    if graphs is None:
        graphs = featurize(structures, esm=esm, pockets=model.config.pocket_features, cache_dir=cache_dir)
    model.eval().to(device)
    out = []
    for idx in batches(len(graphs), batch_size):
        batch = collate([graphs[i] for i in idx]).to(device)
        ex = explain_batch(model, batch, score=score)
        task = model.config.task
        probs = ex["logits"].softmax(-1) if task == "single" else ex["logits"].sigmoid()
        for j, i in enumerate(idx):
            n = len(graphs[i])
            rows = []
            for t, cl in enumerate(ex["clusters"]):
                valid = cl["mask"][j].cpu().numpy()
                members = cl["members"][j, :, :n].cpu().numpy()
                for r in np.flatnonzero(valid):
                    rows.append({"iteration": t, "cluster": int(r), "score": float(cl["score"][j, r]),
                                 "centre": int(cl["centre"][j, r]), "members": np.flatnonzero(members[r]).tolist()})
            out.append(Explanation(
                structure=structures[i], importance=ex["importance"][j, :n].cpu().numpy(),
                iteration=ex["iteration"][j, :n].cpu().numpy(), cluster=ex["cluster"][j, :n].cpu().numpy(),
                clusters=pd.DataFrame(rows, columns=["iteration", "cluster", "score", "centre", "members"]),
                probabilities=probs[j, :n].cpu().numpy() if task == "residue" else probs[j].cpu().numpy(),
                classes=list(model.config.class_names)))
    return out


def critical_residues(model: ResidueNet, structure: Structure, *, top_k: int | None = None,
                      esm=None) -> pd.DataFrame:
    """One protein's residues, most important first: rank, chain, residue_number (with
    insertion code), residue, score (0..1), cluster, iteration, index (0-based position).
    ``top_k`` keeps the first k rows."""
    ex = explain_structures(model, [structure], esm=None if esm is None else {structure.id: esm})[0]
    table = ex.table()
    return table.head(top_k) if top_k else table


def pocket_table(explanations: Sequence[Explanation]) -> pd.DataFrame:
    """A site model's pockets of every structure: ``id``, ``pocket`` (rank), ``score`` (summed
    residue scores), the centre (Å) and the residues (``chain:number``, by position)."""
    rows = []
    for ex in explanations:
        keys = [f"{c}:{n}" for c, n in ex.structure.residue_keys()]
        for p in ex.pockets():
            rows.append({"id": ex.id, "pocket": p.rank, "score": p.score, "centre_x": p.centre[0],
                         "centre_y": p.centre[1], "centre_z": p.centre[2], "n_residues": len(p.residues),
                         "residues": " ".join(keys[i] for i in p.residues)})
    return pd.DataFrame(rows, columns=["id", "pocket", "score", "centre_x", "centre_y", "centre_z", "n_residues",
                                       "residues"])


def residue_tables(explanations: Sequence[Explanation]) -> pd.DataFrame:
    """Every explanation's :meth:`Explanation.table`, one after another, with an ``id`` column."""
    tables = []
    for ex in explanations:
        t = ex.table()
        t.insert(0, "id", ex.id)
        tables.append(t)
    if not tables:
        return pd.DataFrame(columns=["id", "rank", "chain", "residue_number", "residue", "score", "cluster",
                                     "iteration", "index"])
    return pd.concat(tables, ignore_index=True)
