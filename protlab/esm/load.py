"""ESM-2 protein encoders: load from every format protlab meets, save in one.

:func:`load_esm` accepts

* a fair-esm pretrained name (``"esm2_t6_8M_UR50D"``): read from the torch hub cache
  ``$TORCH_HOME/hub/checkpoints/<name>.pt``; downloaded only when online;
* a local fair-esm ``.pt`` file (``{"cfg": {"model": Namespace(...)}, "model": {...}}`` with
  ``encoder.sentence_encoder.`` key prefixes, as published by fair-esm);
* a Hugging Face directory (``config.json`` + weights of an ``EsmModel`` or
  ``EsmForMaskedLM``), converted to fair-esm's :class:`esm.model.esm2.ESM2`;
* ``"tiny"`` or a dict of ``ESM2`` arguments (``num_layers``, ``embed_dim``,
  ``attention_heads``): a randomly initialised model (seeded);
* a protlab ``esm2`` checkpoint written by :func:`save_esm` (``03_pretrain`` exports
  ``run_dir/checkpoints/protein_encoder.pt`` this way), a checkpoint that carries a
  ``protein_encoder`` entry in that format, or a ``03_pretrain`` training checkpoint
  (kind ``pretrain``: the ``protein.*`` weights of the CLIP model); see
  :mod:`protlab.core.checkpoint`.

Every path returns ``(model, alphabet)`` with the model in eval mode on the CPU.
"""
from __future__ import annotations

import argparse
import os
import re
import urllib.error
import warnings
from pathlib import Path
from typing import Any

import torch

from protlab.core.checkpoint import checkpoint_kind, load_torch_file, save_checkpoint
from protlab.core.errors import InputError

TINY_ARGS = {"num_layers": 2, "embed_dim": 32, "attention_heads": 4}
# The published ESM-2 family: name -> (num_layers, embed_dim, attention_heads).
PRETRAINED = {
    "esm2_t6_8M_UR50D": (6, 320, 20),
    "esm2_t12_35M_UR50D": (12, 480, 20),
    "esm2_t30_150M_UR50D": (30, 640, 20),
    "esm2_t33_650M_UR50D": (33, 1280, 20),
    "esm2_t36_3B_UR50D": (36, 2560, 40),
    "esm2_t48_15B_UR50D": (48, 5120, 40),
}
MAX_RESIDUES = 1022  # ESM-2 was trained on crops of 1022 residues + BOS + EOS
_ESM_ARG_NAMES = ("num_layers", "embed_dim", "attention_heads", "token_dropout")


def esm_args(model) -> dict[str, Any]:
    """The constructor arguments of an ``ESM2`` model."""
    return {name: getattr(model, name) for name in _ESM_ARG_NAMES}


def new_esm(args: dict[str, Any] | None = None, *, seed: int = 0):
    """A randomly initialised ESM-2 (``TINY_ARGS`` by default), seeded."""
    import esm

    args = dict(TINY_ARGS if args is None else args)
    unknown = set(args) - set(_ESM_ARG_NAMES)
    if unknown:
        raise InputError(f"unknown ESM2 arguments {sorted(unknown)}; valid: {list(_ESM_ARG_NAMES)}")
    if args.get("embed_dim", 1280) % args.get("attention_heads", 20):
        raise InputError(f"embed_dim {args['embed_dim']} is not divisible by attention_heads {args['attention_heads']}")
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = esm.model.esm2.ESM2(alphabet=alphabet, **args)
    return model.eval(), alphabet


def describe_spec(spec) -> str:
    """A short human-readable name for an encoder spec."""
    if isinstance(spec, dict):
        return "esm2-random(" + ",".join(f"{k}={v}" for k, v in sorted(spec.items())) + ")"
    return str(spec)


def load_esm(spec, *, seed: int = 0):
    """``(model, alphabet)`` for ``spec`` (see the module docstring for what it can be)."""
    if isinstance(spec, dict):
        return new_esm(spec, seed=seed)
    if isinstance(spec, (str, os.PathLike)):
        text = str(spec)
        if text == "tiny":
            return new_esm(TINY_ARGS, seed=seed)
        path = Path(text).expanduser()
        if path.is_dir():
            return _load_hf_dir(path)
        if path.is_file():
            return _load_file(path)
        if text in PRETRAINED or re.fullmatch(r"esm2_t\d+_\d+[MB]_UR50D", text):
            return _load_pretrained(text)
        if "/" in text or text.endswith((".pt", ".pth", ".bin")):
            raise InputError(f"ESM checkpoint {text!r} does not exist")
    raise InputError(
        f"unknown protein encoder {spec!r}; use 'kmer', 'tiny', a dict of ESM2 arguments, an ESM-2 "
        f"pretrained name ({', '.join(PRETRAINED)}), a fair-esm .pt file, a Hugging Face ESM "
        f"directory or a protlab checkpoint")


def save_esm(model, alphabet, path: str | Path, **meta) -> Path:
    """Write ``model`` as a protlab ``esm2`` checkpoint (``esm_args``, ``state_dict``, ``meta``)."""
    return save_checkpoint(path, "esm2", {
        "esm_args": esm_args(model), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta)})


# ---------------------------------------------------------------------------- loaders
def _torch_load(path: Path) -> Any:
    try:
        return load_torch_file(path, safe_globals=(argparse.Namespace,))
    except InputError as exc:
        raise InputError(f"{exc}; expected a fair-esm ESM-2 .pt, a protlab checkpoint "
                         f"(save_esm) or a Hugging Face directory") from exc


def _load_file(path: Path):
    data = _torch_load(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: holds a {type(data).__name__}, not a checkpoint dict; expected a "
                         f"fair-esm ESM-2 .pt ('cfg' + 'model'), a protlab esm2 checkpoint "
                         f"or a 03_pretrain checkpoint with 'protein_encoder'")
    kind = checkpoint_kind(data)
    if kind == "esm2":
        return _from_protlab(data, path)
    if isinstance(data.get("protein_encoder"), dict):
        inner = data["protein_encoder"]
        if checkpoint_kind(inner) == "esm2" or ("esm_args" in inner and "state_dict" in inner):
            return _from_protlab(inner, path)
        raise InputError(f"{path}: its 'protein_encoder' entry is not in the protlab format "
                         f"(keys {sorted(inner)[:8]}); expected 'esm_args' and 'state_dict'")
    if kind == "pretrain":  # a 03_pretrain training checkpoint
        try:
            args = data["model_args"]["protein"]
            state = {k[len("protein."):]: v for k, v in data["model"].items() if k.startswith("protein.")}
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{path}: a 03_pretrain checkpoint without model_args['protein'] and "
                             f"'protein.*' weights ({exc}); use run_dir/checkpoints/protein_encoder.pt") from exc
        return _from_protlab({"esm_args": args, "state_dict": state}, path)
    if "cfg" in data and "model" in data:
        return _from_fair_esm(data, path, regression=_regression_beside(path))
    if "args" in data and "model" in data:
        arch = getattr(data["args"], "arch", "?")
        raise InputError(f"{path}: is a fair-esm ESM-1 checkpoint (arch {arch!r}); protlab embeds with "
                         f"ESM-2 only: pass an esm2_* checkpoint")
    raise InputError(f"{path}: unrecognised checkpoint (top-level keys {sorted(map(str, data))[:8]}); "
                     f"expected a fair-esm ESM-2 .pt ('cfg' + 'model'), a protlab esm2 checkpoint "
                     f"or a 03_pretrain checkpoint with 'protein_encoder'")


def _from_protlab(data: dict, path: Path):
    try:
        model, alphabet = new_esm(dict(data["esm_args"]))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: protlab checkpoint without valid 'esm_args' ({exc})") from exc
    _load_state(model, data.get("state_dict", {}), path)
    return model.eval(), alphabet


def _load_state(model, state: dict, path: Path, *, allow_missing=()) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - set(allow_missing))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        args = esm_args(model)
        details = []
        if wrong:
            k = wrong[0]
            details.append(f"{len(wrong)} tensors of the wrong shape (e.g. {k}: {tuple(state[k].shape)} "
                           f"in the file, {tuple(expected[k].shape)} expected)")
        if missing:
            details.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise InputError(f"{path}: weights do not fit the ESM-2 architecture it declares ({args}): "
                         f"{'; '.join(details)}. Expected an ESM-2 checkpoint whose weights match its "
                         f"configuration")
    model.load_state_dict(state, strict=not allow_missing)


def _regression_beside(path: Path):
    beside = Path(str(path.with_suffix("")) + "-contact-regression.pt")
    return _torch_load(beside) if beside.is_file() else None


def _from_fair_esm(data: dict, path: Path, *, regression=None):
    """A fair-esm ESM-2 checkpoint through ``esm.pretrained.load_model_and_alphabet_core``."""
    import esm

    try:
        cfg = data["cfg"]["model"]
        layers, dim, heads = cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_attention_heads
    except (KeyError, AttributeError, TypeError) as exc:
        raise InputError(f"{path}: fair-esm checkpoint without cfg['model'].encoder_layers/"
                         f"encoder_embed_dim/encoder_attention_heads ({exc}); expected an ESM-2 checkpoint") from exc
    # Check shapes first: fair-esm itself fails late with a bare RuntimeError.
    model, _ = new_esm({"num_layers": layers, "embed_dim": dim, "attention_heads": heads,
                        "token_dropout": bool(getattr(cfg, "token_dropout", True))})
    prefix = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
    state = {prefix.sub("", k): v for k, v in data["model"].items()}
    if regression is not None:
        state.update(regression.get("model", {}))
    _load_state(model, state, path, allow_missing=("contact_head.regression.weight", "contact_head.regression.bias"))
    name = path.stem if path.stem.startswith("esm2") else "esm2_" + path.stem  # core dispatches on the name

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Regression weights not found")
        model, alphabet = esm.pretrained.load_model_and_alphabet_core(name, data, regression)
    return model.eval(), alphabet


def _hub_checkpoint(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def _load_pretrained(name: str):
    """A fair-esm pretrained ESM-2: the hub cache first, a download only when online."""
    import esm

    cached = _hub_checkpoint(name)
    if cached.is_file():  # offline-friendly: the contact regression head is optional
        regression = Path(str(cached.with_suffix("")) + "-contact-regression.pt")
        return _from_fair_esm(_torch_load(cached), cached,
                              regression=_torch_load(regression) if regression.is_file() else None)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            model, alphabet = esm.pretrained.load_model_and_alphabet(name)
    except (urllib.error.URLError, OSError, ConnectionError) as exc:
        raise InputError(
            f"cannot download ESM-2 weights {name!r} ({type(exc).__name__}: {exc}); this machine is "
            f"probably offline. Place {name}.pt (from https://dl.fbaipublicfiles.com/fair-esm/models/"
            f"{name}.pt) under {cached.parent} (TORCH_HOME={os.environ.get('TORCH_HOME', '~/.cache/torch')}) "
            f"or pass the path of a local .pt file as the encoder") from exc
    return model.eval(), alphabet


# ------------------------------------------------------------------- Hugging Face
_HF_LAYER_MAP = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "LayerNorm": "final_layer_norm",
}


def hf_state_to_esm(hf_state: dict, num_layers: int) -> dict:
    """Rename a Hugging Face ``EsmModel`` state dict to fair-esm ``ESM2`` names."""
    out = {}
    for key, value in hf_state.items():
        key = key.removeprefix("esm.")
        if key == "embeddings.word_embeddings.weight":
            out["embed_tokens.weight"] = value
        elif key.startswith("encoder.emb_layer_norm_after."):
            out[key.removeprefix("encoder.")] = value
        elif key.startswith("contact_head."):
            out[key] = value
        elif key.startswith("lm_head."):
            rest = key.removeprefix("lm_head.")
            out["lm_head." + {"decoder.weight": "weight", "decoder.bias": "bias"}.get(rest, rest)] = value
        else:
            m = re.match(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$", key)
            if m and m.group(2) in _HF_LAYER_MAP:
                out[f"layers.{m.group(1)}.{_HF_LAYER_MAP[m.group(2)]}.{m.group(3)}"] = value
    return out


def _load_hf_dir(path: Path):
    import esm
    import transformers

    if not (path / "config.json").is_file():
        raise InputError(f"{path}: a directory without config.json; expected a Hugging Face ESM model "
                         f"directory (save_pretrained) holding config.json and the weights")
    try:
        config = transformers.AutoConfig.from_pretrained(str(path))
    except Exception as exc:
        raise InputError(f"{path}/config.json cannot be read ({exc})") from exc
    if config.model_type != "esm" or getattr(config, "is_folding_model", False):
        raise InputError(f"{path}: config.json describes a {config.model_type!r} model; expected an ESM-2 "
                         f"protein language model (model_type 'esm')")
    if getattr(config, "position_embedding_type", "rotary") != "rotary" or config.intermediate_size != 4 * config.hidden_size:
        raise InputError(f"{path}: an ESM-1 style config (position embeddings "
                         f"{config.position_embedding_type!r}); protlab embeds with ESM-2 (rotary) only")
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    if (path / "vocab.txt").is_file():  # the tokenizer must number tokens as fair-esm's alphabet does
        tokenizer = transformers.EsmTokenizer.from_pretrained(str(path))
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(alphabet.all_toks))))
        if tokens != list(alphabet.all_toks):
            raise InputError(f"{path}/vocab.txt: token order differs from fair-esm's ESM-2 alphabet "
                             f"({tokens[:6]}... vs {alphabet.all_toks[:6]}...); cannot convert these weights")
    masked_lm = "EsmForMaskedLM" in (config.architectures or [])
    cls = transformers.EsmForMaskedLM if masked_lm else transformers.EsmModel
    try:
        hf = cls.from_pretrained(str(path))
    except Exception as exc:
        raise InputError(f"{path}: Hugging Face weights cannot be loaded ({type(exc).__name__}: "
                         f"{str(exc)[:300]}); expected config.json plus model.safetensors or pytorch_model.bin") from exc
    model, alphabet = new_esm({"num_layers": config.num_hidden_layers, "embed_dim": config.hidden_size,
                               "attention_heads": config.num_attention_heads,
                               "token_dropout": bool(config.token_dropout)})
    state = hf_state_to_esm(hf.state_dict(), config.num_hidden_layers)
    own = model.state_dict()
    for key in own:  # inv_freq buffers are recomputed; heads the directory lacks keep their init
        if key not in state and (key.endswith("rot_emb.inv_freq") or key.startswith(("lm_head.", "contact_head."))):
            state[key] = own[key]
    if "embed_tokens.weight" in state:
        state["lm_head.weight"] = state["embed_tokens.weight"]  # tied, as in ESM2 and EsmForMaskedLM
    _load_state(model, state, path)
    return model.eval(), alphabet
