"""Neural clustering of residues (Quan et al., CVPR 2024) on padded residue graphs.

For ``iterations`` (T, default 4) steps, on the current nodes (all residues at t = 0):

1. **Spherical cluster initialisation.** Every node is a cluster centre; its members are
   the nodes within ``radii[t]`` Å (Cα of the node's medoid residue) or within
   ``seq_radii[t]`` positions along the chain, at most ``max_members`` nearest ones.
   Both radii grow with t.
2. **Cluster representation.** Attention over members,
   ``a_nk = softmax_k(w · tanh(W [x_n ‖ x_k ‖ g_nk]))`` where ``g_nk`` is the member's
   geometry relative to the centre (coordinates in the centre's local frame, RBF
   distance, relative orientation, sequence offset); ``c_n = x_n + Σ_k a_nk V[x_k ‖ g_nk]``
   followed by 2 residual blocks.
3. **Cluster nomination.** A GCN score on the cluster graph (clusters whose centres are
   members of each other): ``s_n = σ(W1 c_n + Σ_m Â_nm (W2 c_n − W3 c_m))`` with ``Â``
   row-normalised. The top ``keep_ratio`` (ω, default 0.4) of each protein's clusters
   survive; their features, gated by ``½ + s_n`` (so the score gets gradients and the scale stays O(1)), become the
   next nodes, placed at the cluster's medoid residue.

A masked mean+max readout of the surviving clusters of every iteration (concatenated)
feeds the task head: ``task="single"``
(cross-entropy over classes) or ``task="multi"`` (binary cross-entropy per label).

Everything is batched over proteins, clusters and members with masks; the only Python
loop in :meth:`ResidueNet.forward` is over the T iterations.
:func:`protlab.residues.network_reference.forward_per_protein` is the straightforward
implementation of the same math (loops over proteins and cluster centres) used to check the
batched one and as the benchmark's baseline.

:func:`protlab.residues.explain.explain_batch` traces which residues each surviving cluster covers
(attention footprints carried through the iterations) and scores every residue. The default
``score="occlusion"`` is the drop of the decision margin ``m`` (predicted class over the
runner-up) when the residue's type is hidden: the change can reach ``m`` only through the
surviving clusters the residue belongs to. ``score="attribution"`` spreads each surviving
cluster's ``|∂m/∂c_n · c_n|`` over its footprint, ``Σ_t Σ_{n kept at t} … · footprint_t[n, r]``;
``score="nomination"`` spreads ``2^t s_n`` the same way.
"""
from __future__ import annotations

from pathlib import Path
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from protlab.core.checkpoint import read_checkpoint, save_checkpoint
from protlab.core.errors import InputError
from protlab.residues.graph import N_AA, N_NODE_FEATURES, ResidueBatch

N_RBF = 8
N_GEOMETRY = 3 + N_RBF + 9 + 2
SITE_WEIGHT = 4.0  # site residues are ~5 % of a protein: weigh them up in the residue loss
TASKS = ("single", "multi", "residue")
SCORES = ("occlusion", "attribution", "nomination")


@dataclass
class ResidueNetConfig:
    """Model arguments (saved with every checkpoint)."""

    n_classes: int
    task: str = "single"
    hidden: int = 64
    iterations: int = 4
    keep_ratio: float = 0.4
    radii: tuple[float, ...] = (6.0, 10.0, 14.0, 18.0)
    seq_radii: tuple[int, ...] = (2, 4, 8, 16)
    max_members: int = 12
    esm_dim: int = 0
    dropout: float = 0.1
    n_features: int = N_NODE_FEATURES
    class_names: list[str] = field(default_factory=list)
    pocket_features: bool = False   # graphs carry :mod:`protlab.residues.pockets` columns

    def __post_init__(self):
        if self.task not in TASKS:
            raise InputError(f"task={self.task!r}: use one of {TASKS}")
        if not 0 < self.keep_ratio <= 1:
            raise InputError(f"keep_ratio={self.keep_ratio}: must be in (0, 1]")
        if self.iterations < 1:
            raise InputError(f"iterations={self.iterations}: must be >= 1")
        self.radii = tuple(float(r) for r in self.radii)
        self.seq_radii = tuple(int(s) for s in self.seq_radii)
        if len(self.radii) < self.iterations or len(self.seq_radii) < self.iterations:
            raise InputError(f"radii/seq_radii need one value per iteration ({self.iterations})")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["radii"], out["seq_radii"] = list(self.radii), list(self.seq_radii)
        return out


def _mlp_block(dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(2 * dim, dim))


class ResidueNetLayer(nn.Module):
    """One iteration's cluster representation (attention + 2 residual blocks) and nomination."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.att = nn.Linear(2 * hidden + N_GEOMETRY, hidden)
        self.att_w = nn.Linear(hidden, 1, bias=False)
        self.value = nn.Linear(hidden + N_GEOMETRY, hidden)
        self.blocks = nn.ModuleList([_mlp_block(hidden, dropout) for _ in range(2)])
        self.w1, self.w2, self.w3 = (nn.Linear(hidden, 1), nn.Linear(hidden, 1, bias=False),
                                     nn.Linear(hidden, 1, bias=False))

    def represent(self, x_centre, x_members, geom, valid):
        """x_centre (..., H), x_members (..., K, H), geom (..., K, G), valid (..., K) → (c, a)."""
        h = torch.cat([x_centre.unsqueeze(-2).expand_as(x_members), x_members, geom], dim=-1)
        logits = self.att_w(torch.tanh(self.att(h))).squeeze(-1)
        logits = logits.masked_fill(~valid, float("-inf"))
        a = torch.softmax(logits, dim=-1)
        c = x_centre + (a.unsqueeze(-1) * self.value(torch.cat([x_members, geom], dim=-1))).sum(-2)
        for block in self.blocks:
            c = c + block(c)
        return c, a

    def represent_gathered(self, x, member, geom, valid):
        """Batched :meth:`represent`: x (B, N, H), member (B, N, K) node indices, geom (B, N, K, G).

        Same math, but the linear maps act on the N nodes before gathering members
        (``W [x_n ‖ x_k ‖ g] = W_c x_n + W_m x_k + W_g g``), which saves a factor ~K.
        """
        H = x.shape[-1]
        wa, wv = self.att.weight, self.value.weight
        pre = F.linear(x, wa[:, :H], self.att.bias).unsqueeze(-2)
        proj = torch.cat([F.linear(x, wa[:, H:2 * H]), F.linear(x, wv[:, :H])], dim=-1)
        proj = gather_rows(proj, member)                                             # (B, N, K, 2H)
        logits = self.att_w(torch.tanh(pre + proj[..., :H] + F.linear(geom, wa[:, 2 * H:]))).squeeze(-1)
        a = torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=-1)
        v = proj[..., H:] + F.linear(geom, wv[:, H:], self.value.bias)
        c = x + (a.unsqueeze(-1) * v).sum(-2)
        for block in self.blocks:
            c = c + block(c)
        return c, a

    def nominate(self, c, adj):
        """c (..., N, H), adj (..., N, N) row-normalised float → scores (..., N) in (0, 1)."""
        own = self.w1(c).squeeze(-1) + self.w2(c).squeeze(-1) * adj.sum(-1)
        return torch.sigmoid(own - (adj @ self.w3(c)).squeeze(-1))


def rbf(d: torch.Tensor, *, d_max: float = 20.0) -> torch.Tensor:
    centres = torch.linspace(0.0, d_max, N_RBF, device=d.device, dtype=d.dtype)
    width = d_max / N_RBF
    return torch.exp(-((d.unsqueeze(-1) - centres) / width) ** 2)


def pair_geometry(pos_c, frame_c, seq_c, pos_m, frame_m, seq_m, radius: float) -> torch.Tensor:
    """Invariant geometry of members relative to their centre.

    pos_c (..., 3), frame_c (..., 3, 3), seq_c (...); members carry an extra K dimension
    before those. Returns (..., K, N_GEOMETRY).
    """
    rel = pos_m - pos_c.unsqueeze(-2)                                   # (..., K, 3)
    local = torch.einsum("...ij,...kj->...ki", frame_c, rel) / radius    # coordinates in centre frame
    dist = rel.norm(dim=-1)
    orient = torch.einsum("...ij,...klj->...kil", frame_c, frame_m).flatten(-2)  # R_c R_m^T
    dseq = seq_m - seq_c.unsqueeze(-1)
    seq = torch.stack([torch.sign(dseq) * torch.log1p(dseq.abs()) / 3.0, (dseq.abs() <= 1).to(rel.dtype)], -1)
    return torch.cat([local, rbf(dist), orient, seq], dim=-1)


def tie_break(n: int, like: torch.Tensor) -> torch.Tensor:
    """A distance offset growing with node index (at most ~0.02 Å): nodes at the same place
    (clusters sharing a medoid) are chosen by rank, not by how a batch happens to be padded."""
    return torch.arange(n, device=like.device, dtype=like.dtype) * 1e-5


def _interpolate(pos: torch.Tensor, node_pos: torch.Tensor, node_x: torch.Tensor, node_mask: torch.Tensor,
                 k: int = 3) -> torch.Tensor:
    """Node features carried back to residues: the inverse-distance-weighted mean of the ``k``
    nearest surviving clusters (by medoid), as point-cloud segmentation networks upsample.
    pos (B, L, 3), node_pos (B, n, 3), node_x (B, n, H), node_mask (B, n) → (B, L, H)."""
    d = (torch.cdist(pos, node_pos) + tie_break(node_pos.shape[1], pos)).masked_fill(~node_mask.unsqueeze(1),
                                                                                      float("inf"))
    k = min(k, d.shape[-1])
    near, idx = torch.topk(d, k, dim=-1, largest=False)                       # (B, L, k)
    w = torch.where(torch.isfinite(near), 1.0 / (near + 1.0), torch.zeros_like(near))
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    B = node_x.shape[0]
    picked = node_x[torch.arange(B, device=node_x.device).view(B, 1, 1), idx]  # (B, L, k, H)
    return (w.unsqueeze(-1) * picked).sum(-2)


def gather_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t (B, N, ...) indexed by idx (B, ...) along dim 1 → (B, ..., ...)."""
    B = t.shape[0]
    batch = torch.arange(B, device=t.device).view(B, *([1] * (idx.dim() - 1)))
    return t[batch, idx]


class ResidueNet(nn.Module):
    """Iterative neural clustering of a residue graph with a pooled task head."""

    def __init__(self, config: ResidueNetConfig):
        super().__init__()
        self.config = config
        H = config.hidden
        self.aa_embed = nn.Embedding(N_AA, H)
        self.feat_proj = nn.Linear(config.n_features, H)
        self.esm_proj = nn.Linear(config.esm_dim, H) if config.esm_dim else None
        self.input_norm = nn.LayerNorm(H)
        self.layers = nn.ModuleList([ResidueNetLayer(H, config.dropout) for _ in range(config.iterations)])
        if config.task == "residue":  # per residue: its input, its own cluster and every later level
            self.head = nn.Sequential(nn.Linear(H * (2 + config.iterations), H), nn.GELU(),
                                      nn.Dropout(config.dropout), nn.Linear(H, 1))
        else:
            self.head = nn.Sequential(nn.Linear(2 * H * config.iterations, H), nn.GELU(),
                                      nn.Dropout(config.dropout), nn.Linear(H, config.n_classes))

    # -- inputs -------------------------------------------------------------------------
    def embed(self, batch: ResidueBatch) -> torch.Tensor:
        x = self.aa_embed(batch.aa) + self.feat_proj(batch.feats)
        if self.esm_proj is not None:
            if batch.esm is None:
                raise InputError("this model was built with esm_dim>0: pass per-residue ESM embeddings")
            x = x + self.esm_proj(batch.esm)
        return self.input_norm(x)

    # -- one iteration, batched ---------------------------------------------------------
    def _iterate(self, t: int, x, pos, frames, seq, mask):
        cfg = self.config
        B, N, _ = x.shape
        dist = torch.cdist(pos, pos)                                          # (B, N, N)
        pair_ok = mask.unsqueeze(1) & mask.unsqueeze(2)
        within = ((dist <= cfg.radii[t]) | ((seq.unsqueeze(1) - seq.unsqueeze(2)).abs() <= cfg.seq_radii[t])) & pair_ok
        K = min(cfg.max_members, N)
        ranked = (dist + tie_break(N, dist)).masked_fill(~within, float("inf"))
        neg, member = torch.topk(ranked.neg(), K, dim=-1)  # nearest first
        valid = torch.isfinite(neg) & mask.unsqueeze(-1)
        valid[..., 0] = True  # the centre itself (keeps padded rows finite)
        geom = pair_geometry(pos, frames, seq, gather_rows(pos, member), gather_rows(frames, member),
                             gather_rows(seq, member), cfg.radii[t])
        layer = self.layers[t]
        c, a = layer.represent_gathered(x, member, geom, valid)
        adj = within.float() * (1 - torch.eye(N, device=x.device))
        adj = adj / adj.sum(-1, keepdim=True).clamp(min=1)
        score = layer.nominate(c, adj)
        # keep the top ceil(ω n) clusters of each protein
        n_keep = torch.clamp(torch.ceil(cfg.keep_ratio * mask.sum(1).float()).long(), min=1)   # (B,)
        n_max = int(n_keep.max())
        _, keep = torch.topk(score.masked_fill(~mask, -1.0), n_max, dim=-1)                   # (B, n_max)
        keep_mask = torch.arange(n_max, device=x.device).unsqueeze(0) < n_keep.unsqueeze(1)
        # medoid of each kept cluster: the member with the least summed distance to the others
        kept_members, kept_valid = gather_rows(member, keep), gather_rows(valid, keep)                # (B, n_max, K)
        mpos = gather_rows(pos, kept_members)
        mdist = torch.cdist(mpos, mpos) * kept_valid.unsqueeze(-2)
        medoid_k = mdist.sum(-1).masked_fill(~kept_valid, float("inf")).argmin(-1)           # (B, n_max)
        medoid = kept_members.gather(-1, medoid_k.unsqueeze(-1)).squeeze(-1)                # node index
        x_next = gather_rows(c * (0.5 + score).unsqueeze(-1), keep)
        trace = {"member": member, "valid": valid, "attention": a, "score": score, "keep": keep,
                 "keep_mask": keep_mask, "medoid": medoid, "x_next": x_next, "c": c}
        return (x_next, gather_rows(pos, medoid), gather_rows(frames, medoid), gather_rows(seq, medoid), keep_mask), trace

    def forward(self, batch: ResidueBatch, *, return_trace: bool = False):
        """Logits (B, n_classes), or (B, L) per residue for ``task="residue"``; with
        ``return_trace`` also the per-iteration cluster trace."""
        x, mask = self.embed(batch), batch.mask
        x0, levels = x, []
        pos, frames = batch.ca, batch.frames
        B, L = mask.shape
        seq = torch.arange(L, device=x.device, dtype=x.dtype).unsqueeze(0).expand(B, L)
        node_res = torch.arange(L, device=x.device).unsqueeze(0).expand(B, L)  # residue index of each node
        traces, pooled = [], []
        for t in range(self.config.iterations):
            (x, pos, frames, seq_next, mask_next), trace = self._iterate(t, x, pos, frames, seq, mask)
            trace["node_res"], trace["node_mask"] = node_res, mask
            node_res = gather_rows(node_res, trace["medoid"])
            seq, mask = seq_next, mask_next
            traces.append(trace)
            if self.config.task == "residue":
                levels.append(_interpolate(batch.ca, pos, x, mask))
            m = mask.unsqueeze(-1).to(x.dtype)
            pooled.append((x * m).sum(1) / m.sum(1).clamp(min=1))
            pooled.append(x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1))
        if self.config.task == "residue":
            logits = self.head(torch.cat([x0, traces[0]["c"], *levels], dim=-1)).squeeze(-1)
            logits = logits.masked_fill(~batch.mask, float("-inf"))
        else:
            logits = self.head(torch.cat(pooled, dim=-1))
        return (logits, traces) if return_trace else logits

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (single), binary cross-entropy per label (multi) or per real residue
        (residue: ``target`` (B, L), padding ignored; site residues weighted ``SITE_WEIGHT``)."""
        if self.config.task == "single":
            return F.cross_entropy(logits, target)
        if self.config.task == "residue":
            real = torch.isfinite(logits)
            return F.binary_cross_entropy_with_logits(logits[real], target[real].float(),
                                                      pos_weight=logits.new_tensor(SITE_WEIGHT))
        return F.binary_cross_entropy_with_logits(logits, target.float())


def save_network(model: ResidueNet, path, **meta) -> Path:
    """The network as a ``residue-cluster`` checkpoint (:mod:`protlab.core.checkpoint`)."""
    return save_checkpoint(path, "residue-cluster", {"config": model.config.to_dict(),
                                                     "state_dict": model.state_dict(), "meta": meta})


def load_network(path) -> ResidueNet:
    """A network saved by :func:`save_network`."""
    if not Path(path).is_file():
        raise InputError(f"checkpoint {path} does not exist: train a model (06_critical_residues with "
                         f"checkpoint=None) or give the path of a saved one")
    payload = read_checkpoint(path, "residue-cluster")
    model = ResidueNet(ResidueNetConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.meta = payload.get("meta", {})
    return model.eval()
