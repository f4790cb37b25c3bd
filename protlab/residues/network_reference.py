"""The straightforward reference of :class:`~protlab.residues.network.ResidueNet`: the
same math, one protein and one cluster centre at a time (tests check the batched network
against it; ``benchmarks/bench_residue_cluster.py`` times both)."""
from __future__ import annotations

import math

import torch

from protlab.residues.graph import ResidueBatch
from protlab.residues.network import ResidueNet, pair_geometry, tie_break


def forward_per_protein(model: ResidueNet, batch: ResidueBatch) -> torch.Tensor:
    """Logits computed one protein at a time, one cluster centre at a time (for tests/benchmarks)."""
    cfg = model.config
    x_all = model.embed(batch)
    out = []
    for b in range(len(batch.ids)):
        pooled = []
        n = int(batch.mask[b].sum())
        x, pos, frames = x_all[b, :n], batch.ca[b, :n], batch.frames[b, :n]
        seq = torch.arange(n, dtype=x.dtype)
        for t in range(cfg.iterations):
            layer = model.layers[t]
            N = x.shape[0]
            K = min(cfg.max_members, N)
            reps, members, within_rows = [], [], []
            for c in range(N):
                d = (pos - pos[c]).norm(dim=-1)
                within = (d <= cfg.radii[t]) | ((seq - seq[c]).abs() <= cfg.seq_radii[t])
                neg, idx = torch.topk((d + tie_break(N, d)).masked_fill(~within, float("inf")).neg(), K)
                ok = torch.isfinite(neg)
                ok[0] = True
                geom = pair_geometry(pos[c], frames[c], seq[c], pos[idx], frames[idx], seq[idx], cfg.radii[t])
                rep, _ = layer.represent(x[c], x[idx], geom, ok)
                reps.append(rep)
                members.append(idx[ok])
                within_rows.append(within)
            cl = torch.stack(reps)
            adj = torch.stack(within_rows).float() * (1 - torch.eye(N))
            adj = adj / adj.sum(-1, keepdim=True).clamp(min=1)
            score = layer.nominate(cl, adj)
            n_keep = max(1, math.ceil(cfg.keep_ratio * N))
            keep = torch.topk(score, n_keep).indices
            medoids = []
            for k in keep.tolist():
                mp = pos[members[k]]
                medoids.append(members[k][torch.cdist(mp, mp).sum(-1).argmin()])
            medoids = torch.stack(medoids)
            x = cl[keep] * (0.5 + score[keep]).unsqueeze(-1)
            pooled += [x.mean(0), x.amax(0)]
            pos, frames, seq = pos[medoids], frames[medoids], seq[medoids]
        out.append(model.head(torch.cat(pooled)))
    return torch.stack(out)
