"""03's model as a run builds, checks, saves and reloads it: ProtCLIP from a config, its
AdamW parameter groups, the architecture a checkpoint records, and the protein tower's export."""
from __future__ import annotations

from pathlib import Path

import torch

from protlab.core.checkpoint import read_checkpoint
from protlab.core.errors import InputError
from protlab.esm.load import esm_args, save_esm
from protlab.pretrain.clip import ProtCLIP, build_protein_tower
from protlab.pretrain.config import PretrainConfig, from_dict
from protlab.pretrain.text import load_text_encoder


def loss_weights(config: PretrainConfig) -> dict[str, float]:
    return {"gc": config.w_gc, "mlm": config.w_mlm, "bsr": config.w_bsr, "pda": config.w_pda}


def build_model(config: PretrainConfig):
    """``(ProtCLIP, tokenizer)`` with towers from the config, initialised from ``config.seed``."""
    protein, alphabet = build_protein_tower(config.protein_encoder, tiny_args=config.protein_tiny_args,
                                            seed=config.seed)
    text, tokenizer = load_text_encoder(config.text_encoder, tiny_args=config.text_tiny_args, seed=config.seed)
    state = torch.random.get_rng_state()
    torch.manual_seed(config.seed + 1)
    try:
        model = ProtCLIP(protein, alphabet, text, proj_dim=config.proj_dim, decoder_layers=config.decoder_layers,
                         temperature_init=config.temperature_init, pda_theta=config.pda_theta)
    finally:
        torch.random.set_rng_state(state)
    for p in model.protein.parameters():
        p.requires_grad_(not config.freeze_protein)
    for p in model.protein.contact_head.parameters():  # never trained here (and unused under DDP)
        p.requires_grad_(False)
    for p in model.text.parameters():
        p.requires_grad_(not config.freeze_text)
    return model, tokenizer


def model_args(model) -> dict:
    """The architecture a checkpoint was written for (compared on resume)."""
    text_cfg = model.text.backbone.config
    return {"protein": esm_args(model.protein),
            "text": {k: getattr(text_cfg, k, None) for k in ("model_type", "hidden_size", "num_hidden_layers",
                                                              "num_attention_heads", "vocab_size")},
            "proj_dim": model.protein_proj.net[-1].out_features,
            "decoder_layers": len(model.bsr_decoder.layers.layers)}


def param_groups(model, config: PretrainConfig) -> list[dict]:
    """AdamW groups: tower LR ratios; no weight decay on biases, norms and the temperature."""
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        tower = name.split(".")[0] if name.split(".")[0] in ("protein", "text") else "heads"
        decay = p.ndim >= 2 and "norm" not in name.lower()
        groups.setdefault((tower, decay), []).append(p)
    ratio = {"protein": config.protein_lr_ratio, "text": config.text_lr_ratio, "heads": 1.0}
    return [{"params": ps, "lr": config.lr * ratio[tower], "weight_decay": config.weight_decay if decay else 0.0,
             "name": f"{tower}{'' if decay else '/no_decay'}"} for (tower, decay), ps in sorted(groups.items())]


def read_training_state(path: str | Path) -> dict:
    """A ``pretrain`` checkpoint (:mod:`protlab.core.checkpoint`)."""
    return read_checkpoint(path, "pretrain")


def check_architecture(ckpt: dict, model, path) -> None:
    """An error naming every difference between the checkpoint's and the model's architecture."""
    want, have = model_args(model), ckpt.get("model_args", {})
    diffs = [f"{k}: checkpoint {have.get(k)!r} vs config {want[k]!r}" for k in want if have.get(k) != want[k]]
    if diffs:
        raise InputError(f"{path} was written for another architecture ({'; '.join(diffs)}); "
                         "use the config it was trained with, or a new run_dir")


def load_trained(path: str | Path):
    """``(ProtCLIP, tokenizer, config)`` from a training checkpoint (``run_dir/checkpoints/last.pt``)."""
    ckpt = read_training_state(path)
    config = from_dict(ckpt["config"], where=str(path))
    model, tokenizer = build_model(config)
    check_architecture(ckpt, model, path)
    model.load_state_dict(ckpt["model"])
    return model.eval(), tokenizer, config


def export_protein_encoder(model, path: str | Path, **meta) -> Path:
    """The protein tower as a protlab esm2 checkpoint, loadable by ``02_embed`` / ``04_cluster``."""
    return save_esm(model.protein, model.alphabet, path, **meta)
