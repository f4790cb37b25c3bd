"""ESM-2 forward with fused attention, for training and evaluating the ProtCLIP protein tower.

fair-esm's attention cannot take PyTorch's fused path because ESM-2 uses rotary embeddings:
it materialises the (B*H, L, L) scores, runs a float32 softmax and averages the weights
over heads even when nobody asks for them. ``ESM2.forward`` also branches on
``padding_mask.any()``, which splits a ``torch.compile`` graph. :func:`esm2_states` runs the
same modules and parameters with ``F.scaled_dot_product_attention`` (flash / memory-efficient
kernels on a GPU) and no data-dependent branch. It returns what
``ESM2.forward(tokens, repr_layers=[num_layers])`` returns for the last layer plus the LM
logits (a test compares the two); attention maps and contacts still need ``ESM2.forward``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from esm.modules import gelu
from esm.rotary_embedding import apply_rotary_pos_emb

# ESM-2's token dropout rescales embeddings by the mask rate seen in its training (15 % x 80 %).
_TRAIN_MASK_RATIO = 0.15 * 0.8


def _rotary_tables(inv_freq: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos / sin tables (1, length, head_dim), as ``esm.rotary_embedding.RotaryEmbedding`` builds them."""
    t = torch.arange(length, device=inv_freq.device, dtype=inv_freq.dtype)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[None], emb.sin()[None]


def _self_attention(attn, x: torch.Tensor, keep: torch.Tensor, cos, sin) -> torch.Tensor:
    """fair-esm ``MultiheadAttention`` (self-attention, rotary, no bias_kv) on (B, L, E) input."""
    b, length, _ = x.shape
    q, k, v = (proj(x).view(b, length, attn.num_heads, attn.head_dim).transpose(1, 2)
               for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    # The rotary tables are float32, as in fair-esm; bring q / k back to v's (autocast) dtype.
    q = apply_rotary_pos_emb(q, cos, sin).to(v.dtype)
    k = apply_rotary_pos_emb(k, cos, sin).to(v.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=attn.scaling,
                                         dropout_p=attn.dropout if attn.training else 0.0)
    return attn.out_proj(out.transpose(1, 2).reshape(b, length, -1))


def esm2_states(model, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(last-layer representations (B, L, E), LM logits (B, L, V))`` of a fair-esm ``ESM2``."""
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    if model.token_dropout:
        masked = tokens.eq(model.mask_idx)
        x = x.masked_fill(masked.unsqueeze(-1), 0.0)
        observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
        x = x * (1 - _TRAIN_MASK_RATIO) / (1 - observed)[:, None, None]
    x = x * (1 - padding.unsqueeze(-1).type_as(x))
    keep = ~padding[:, None, None, :]  # (B, 1, 1, L): every query attends to the non-padding keys
    cos, sin = _rotary_tables(model.layers[0].self_attn.rot_emb.inv_freq, tokens.shape[1])
    for layer in model.layers:
        x = x + _self_attention(layer.self_attn, layer.self_attn_layer_norm(x), keep, cos, sin)
        x = x + layer.fc2(gelu(layer.fc1(layer.final_layer_norm(x))))
    x = model.emb_layer_norm_after(x)
    return x, model.lm_head(x)
