"""ESM-2 forward passes with fused attention, on a fair-esm ``ESM2``'s own modules and weights.

fair-esm's attention cannot take PyTorch's fused path because ESM-2 uses rotary embeddings:
it materialises the (B*H, L, L) scores, runs a float32 softmax and averages the weights over
heads even when nobody asks for them. Here attention is ``F.scaled_dot_product_attention``
(flash / memory-efficient kernels on a GPU); the arithmetic is otherwise fair-esm's (tests
compare both against ``ESM2.forward``).

* :func:`esm_layer_representation` (``02_embed``): one layer's representations; stops at that
  layer, skips the LM head, drops the attention mask when a batch has no padding, caches the
  rotary tables per length.
* :func:`esm2_states` (ProtCLIP training): last-layer states and LM logits, with no
  data-dependent branch or Python-side cache, so ``torch.compile`` captures it in one graph.

Attention maps and contacts still need ``ESM2.forward``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ESM-2's token dropout rescales embeddings by the mask rate seen in its training (15 % x 80 %).
_TRAIN_MASK_RATIO = 0.15 * 0.8
_ROTARY_CACHE: dict = {}


def rotary_tables(inv_freq: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos / sin tables (1, length, head_dim), as ``esm.rotary_embedding.RotaryEmbedding`` builds them."""
    t = torch.arange(length, device=inv_freq.device).type_as(inv_freq)
    emb = torch.cat([torch.outer(t, inv_freq)] * 2, dim=-1)
    return emb.cos()[None], emb.sin()[None]


def _cached_rotary_tables(inv_freq: torch.Tensor, length: int):
    """:func:`rotary_tables` cached per length (thread-safe, unlike fair-esm's module cache)."""
    key = (length, inv_freq.device, inv_freq.dtype, inv_freq.data_ptr())
    tables = _ROTARY_CACHE.get(key)
    if tables is None:
        if len(_ROTARY_CACHE) > 4096:
            _ROTARY_CACHE.clear()
        tables = _ROTARY_CACHE[key] = rotary_tables(inv_freq, length)
    return tables


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def embed(model, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(token embeddings (B, L, E) after token dropout, padding mask (B, L))``, as ESM2.forward."""
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    if model.token_dropout:
        masked = tokens.eq(model.mask_idx)
        x = x.masked_fill(masked.unsqueeze(-1), 0.0)
        observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
        x = x * (1 - _TRAIN_MASK_RATIO) / (1 - observed)[:, None, None]
    return x * (1 - padding.unsqueeze(-1).type_as(x)), padding


def transformer_layer(block, x: torch.Tensor, attn_mask, cos, sin) -> torch.Tensor:
    """One fair-esm ``TransformerLayer`` (pre-norm, rotary self-attention, GELU MLP) on (B, L, E).

    ``attn_mask`` (B, 1, 1, L) marks the keys to attend to (None: all). The float32 rotary
    tables promote q / k, as in fair-esm; they go back to v's (autocast) dtype for the kernel.
    """
    attn = block.self_attn
    b, length, e = x.shape
    y = block.self_attn_layer_norm(x)
    q, k, v = (proj(y).view(b, length, attn.num_heads, attn.head_dim).transpose(1, 2)
               for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    q, k = _rotate(q, cos, sin).to(v.dtype), _rotate(k, cos, sin).to(v.dtype)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=attn.scaling,
                                       dropout_p=attn.dropout if attn.training else 0.0)
    x = x + attn.out_proj(y.transpose(1, 2).reshape(b, length, e))
    return x + block.fc2(F.gelu(block.fc1(block.final_layer_norm(x))))


def esm_layer_representation(model, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    """``ESM2.forward(tokens, repr_layers=[layer])["representations"][layer]``, faster."""
    x, padding = embed(model, tokens)
    attn_mask = (~padding)[:, None, None, :] if padding.any() else None  # None: flash kernels
    cos, sin = _cached_rotary_tables(model.layers[0].self_attn.rot_emb.inv_freq, tokens.shape[1])
    for block in model.layers[:layer]:
        x = transformer_layer(block, x, attn_mask, cos, sin)
    return model.emb_layer_norm_after(x) if layer == model.num_layers else x


def esm2_states(model, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(last-layer representations (B, L, E), LM logits (B, L, V))`` of a fair-esm ``ESM2``."""
    x, padding = embed(model, tokens)
    attn_mask = ~padding[:, None, None, :]
    cos, sin = rotary_tables(model.layers[0].self_attn.rot_emb.inv_freq, tokens.shape[1])
    for block in model.layers:
        x = transformer_layer(block, x, attn_mask, cos, sin)
    x = model.emb_layer_norm_after(x)
    return x, model.lm_head(x)
