"""Seeding and device choice."""
from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def pick_device(device: str | None = None) -> str:
    """``"cuda"`` when available unless ``device`` (or ``PROTLAB_DEVICE``) says otherwise."""
    import torch

    device = device or os.environ.get("PROTLAB_DEVICE") or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from protlab.core.errors import InputError

        raise InputError(f"device={device!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    return device
