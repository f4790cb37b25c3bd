"""ProtCLIP: a protein tower and a text tower aligned by four objectives (DESIGN.md).

``L = w_gc L_GC + w_mlm L_MLM + w_bsr L_BSR + w_pda L_PDA`` (defaults 1 / 0.3 / 0.7 / 1);
a weight of 0 switches an objective off (and skips its forward passes).

* GC: symmetric InfoNCE between pooled protein and text embeddings with a learnable
  temperature (logit scale initialised to 1/0.07); under DDP the negatives are gathered
  from every rank, the local slice keeping its gradient (:func:`gather_with_local_grad`).
* MLM: masked-residue prediction with the ESM-2 LM head (masking: :mod:`protlab.pretrain.data`).
* BSR: spans of 5-10 residues masked until >= 15 % are masked, reconstructed by a
  cross-attention decoder (:class:`BSRDecoder`) attending to the text tokens.
* PDA: each property sub-text is a prototype; residue x prototype similarity is min-max
  normalised per property, values < theta zeroed, the rest weight the residues into a
  property segment, contrasted (InfoNCE) against every prototype in the batch.

The loss functions are plain functions on tensors so tests can check them against loops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from protlab.esm.fused import esm2_states
from protlab.esm.load import TINY_ARGS, load_esm

IGNORE = -100


# --------------------------------------------------------------------------- losses
def contrastive_loss(protein: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                     text_key: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over L2-normalised ``protein`` and ``text`` (N, d); pair i is row i.

    ``text_key`` (N,): pairs with equal keys have identical texts and are positives of each other
    (the target spreads evenly over them), so proteins that share a caption, e.g. one EC number,
    are never pushed apart as each other's negatives. Without duplicates this is plain InfoNCE.
    """
    logits = logit_scale * protein @ text.t()
    if text_key is None:
        target = torch.arange(protein.shape[0], device=protein.device)
    else:
        same = (text_key[:, None] == text_key[None, :]).to(logits.dtype)
        target = same / same.sum(1, keepdim=True)  # symmetric, so it serves both directions
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def masked_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose target is not ``IGNORE`` (-100); 0 when none.

    Written without data-dependent branches or shapes, so ``torch.compile`` captures it whole.
    """
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                            ignore_index=IGNORE, reduction="sum")
    return total / (targets != IGNORE).sum().clamp_min(1)


def property_segments(residues: torch.Tensor, residue_mask: torch.Tensor, prototypes: torch.Tensor,
                      *, theta: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool residues into one segment per (protein, property): ``(segments (B,K,d), weights (B,K,L))``.

    Similarity ``residues @ prototype`` is min-max normalised over the protein's residues,
    values below ``theta`` are zeroed and the rest weight the residues (weights sum to 1).
    """
    sim = torch.einsum("bld,bkd->bkl", residues, prototypes)
    valid = residue_mask[:, None, :].expand_as(sim)
    big = torch.finfo(sim.dtype).max
    lo = sim.masked_fill(~valid, big).amin(-1, keepdim=True)
    hi = sim.masked_fill(~valid, -big).amax(-1, keepdim=True)
    span = hi - lo
    norm = torch.where(span > 0, (sim - lo) / span.clamp_min(1e-12), torch.ones_like(sim))
    weights = torch.where((norm >= theta) & valid, norm, torch.zeros_like(norm))
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    segments = torch.einsum("bkl,bld->bkd", weights, residues)
    return segments, weights


def pda_loss(residues: torch.Tensor, residue_mask: torch.Tensor, prototypes: torch.Tensor,
             prototype_mask: torch.Tensor, logit_scale: torch.Tensor, *, theta: float = 0.3) -> torch.Tensor:
    """Property-driven alignment: InfoNCE of each segment against every present prototype.

    ``residues`` (B,L,d) and ``prototypes`` (B,K,d) are L2-normalised; ``prototype_mask``
    (B,K) marks the properties a protein has. The positive of segment (b,k) is prototype
    (b,k); the negatives are all other present prototypes in the batch.
    """
    segments, _ = property_segments(residues, residue_mask, prototypes, theta=theta)
    # Every (b, k) is a row and a column; absent properties are masked out of both, so the
    # shapes never depend on the data (torch.compile) and an empty batch gives 0.
    seg = F.normalize(segments.flatten(0, 1), dim=-1)          # (B*K, d)
    present = prototype_mask.flatten()                         # (B*K,)
    logits = (logit_scale * seg @ prototypes.flatten(0, 1).t()).float()
    logits = logits.masked_fill(~present[None, :], -1e9)
    rows = F.cross_entropy(logits, torch.arange(seg.shape[0], device=seg.device), reduction="none")
    return torch.where(present, rows, torch.zeros_like(rows)).sum() / present.sum().clamp_min(1)


# ----------------------------------------------------------------------- distributed
class _GatherLocalGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_local_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank (equal batch sizes); only the local slice has gradient.

    Without an initialised process group this returns ``x``. Each rank then computes the
    full-batch loss; scaling it by the world size before backward makes the DDP-averaged
    gradient equal to the single-process full-batch gradient (tests check this with gloo).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherLocalGrad.apply(x)


# --------------------------------------------------------------------------- modules
class ProjectionHead(nn.Module):
    """Two-layer MLP into the shared space."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, dim_in), nn.GELU(), nn.Linear(dim_in, dim_out))

    def forward(self, x):
        return self.net(x)


class BSRDecoder(nn.Module):
    """Cross-attention decoder: masked-protein residue states attend to text tokens."""

    def __init__(self, dim: int, text_dim: int, vocab: int, *, layers: int = 1, heads: int | None = None):
        super().__init__()
        if heads is None:
            heads = next((h for h in (8, 4, 2) if dim % h == 0 and dim // h >= 16), 1)
        self.text_in = nn.Linear(text_dim, dim)
        layer = nn.TransformerDecoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, layers)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, vocab))

    def forward(self, residues, residue_pad, text_states, text_pad):
        memory = self.text_in(text_states)
        x = self.layers(residues, memory, tgt_key_padding_mask=residue_pad, memory_key_padding_mask=text_pad)
        return self.out(x)


def build_protein_tower(spec, *, tiny_args: dict | None = None, seed: int = 0):
    """``(ESM2, alphabet)`` through :func:`protlab.esm.load.load_esm`; ``"tiny"`` builds a
    random ESM-2 from ``tiny_args`` (the config's ``protein_tiny_args``)."""
    tiny = {**TINY_ARGS, **(tiny_args or {})}
    state = torch.random.get_rng_state()
    try:
        return load_esm(tiny if spec == "tiny" else spec, seed=seed)
    finally:
        torch.random.set_rng_state(state)


class ProtCLIP(nn.Module):
    """Protein tower (ESM-2) + text tower + projection heads + BSR decoder + temperature."""

    def __init__(self, protein, alphabet, text, *, proj_dim: int = 64, decoder_layers: int = 1,
                 temperature_init: float = 0.07, pda_theta: float = 0.3):
        super().__init__()
        self.protein, self.alphabet, self.text = protein, alphabet, text
        dim = protein.embed_dim
        self.protein_proj = ProjectionHead(dim, proj_dim)
        self.text_proj = ProjectionHead(text.hidden_size, proj_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))
        self.bsr_decoder = BSRDecoder(dim, text.hidden_size, len(alphabet.all_toks), layers=decoder_layers)
        self.pda_theta = pda_theta
        self.special = [alphabet.cls_idx, alphabet.eos_idx, alphabet.padding_idx]

    # ---- towers
    def residue_mask(self, tokens):
        mask = torch.ones_like(tokens, dtype=torch.bool)
        for idx in self.special:
            mask &= tokens != idx
        return mask

    # False runs fair-esm's own forward (same numbers, unfused attention): for comparisons.
    fused_attention = True

    def protein_states(self, tokens):
        """Last-layer residue states and LM logits."""
        if self.fused_attention:
            return esm2_states(self.protein, tokens)
        n = self.protein.num_layers
        out = self.protein(tokens, repr_layers=[n])
        return out["representations"][n], out["logits"]

    def scale(self):
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def pool_protein(self, states, tokens):
        mask = self.residue_mask(tokens).unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def embed_protein(self, tokens) -> torch.Tensor:
        """Normalised shared-space embeddings (B, d) of tokenised proteins."""
        states, _ = self.protein_states(tokens)
        return F.normalize(self.protein_proj(self.pool_protein(states, tokens)).float(), dim=-1)

    def embed_text(self, input_ids, attention_mask) -> torch.Tensor:
        _, pooled = self.text(input_ids, attention_mask)
        return F.normalize(self.text_proj(pooled).float(), dim=-1)

    # ---- objectives
    def forward(self, batch: dict, *, weights: dict[str, float], gather=gather_with_local_grad) -> dict:
        """Every enabled loss (unweighted) for one batch made by ``pretrain_data.Collator``."""
        losses: dict[str, torch.Tensor] = {}
        scale = self.scale()
        need_clean = weights.get("gc", 0) > 0 or weights.get("pda", 0) > 0
        need_text = weights.get("gc", 0) > 0 or weights.get("bsr", 0) > 0
        if need_clean:
            tokens = batch["tokens"]
            states, _ = self.protein_states(tokens)
        if need_text:
            text_states, text_pooled = self.text(batch["text_ids"], batch["text_mask"])
        if weights.get("gc", 0) > 0:
            p = F.normalize(self.protein_proj(self.pool_protein(states, tokens)).float(), dim=-1)
            t = F.normalize(self.text_proj(text_pooled).float(), dim=-1)
            losses["gc"] = contrastive_loss(gather(p), gather(t), scale, gather(batch["text_key"]))
        if weights.get("mlm", 0) > 0:
            _, logits = self.protein_states(batch["mlm_tokens"])
            losses["mlm"] = masked_lm_loss(logits, batch["mlm_targets"])
        if weights.get("bsr", 0) > 0:
            masked_states, _ = self.protein_states(batch["bsr_tokens"])
            pad = batch["bsr_tokens"].eq(self.alphabet.padding_idx)
            logits = self.bsr_decoder(masked_states, pad, text_states, batch["text_mask"] == 0)
            losses["bsr"] = masked_lm_loss(logits, batch["bsr_targets"])
        if weights.get("pda", 0) > 0:
            valid = batch["prop_valid"]                               # (B, K) bool
            _, pooled = self.text(batch["prop_ids"], batch["prop_mask"])
            proto = F.normalize(self.text_proj(pooled).float(), dim=-1)
            if proto.shape[0] == valid.numel():  # a row per (b, k): fixed-shape batches (compile)
                protos = proto.view(*valid.shape, -1) * valid[..., None]
            else:                                # a row per present (b, k), in order
                protos = proto.new_zeros(valid.shape + (proto.shape[-1],))
                protos[valid] = proto
            residues = F.normalize(self.protein_proj(states).float(), dim=-1)
            losses["pda"] = pda_loss(residues, self.residue_mask(tokens), protos, valid, scale,
                                     theta=self.pda_theta)
        return losses
