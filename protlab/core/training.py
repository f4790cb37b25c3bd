"""One training core for 03's pretraining, 04's SCAN heads and 06's residue network.

Each stage keeps its model and its step; what a resumable training needs is here, once:

* :func:`capture_rng` / :func:`restore_rng`: every random state (Python's, numpy's global,
  torch's, CUDA's, and the named generators a loop draws its batches from), in types
  ``torch.load(weights_only=True)`` reads; :func:`gather_rng` collects every rank's;
* :func:`save_training_state` / :func:`read_training_state`: one atomic file holding the
  model, optimiser, scheduler, position, random states and the settings it was made with;
* :func:`settings_changes` and :func:`refuse_changed_settings`: one policy for a saved state
  made with other settings or data: refused, naming every change, unless the run says
  ``resume_override=True``.
"""
from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from protlab.core.checkpoint import read_checkpoint, save_checkpoint
from protlab.core.errors import InputError


def capture_rng(numpy_generators: Mapping[str, np.random.Generator] | None = None,
                torch_generators: Mapping[str, Any] | None = None) -> dict:
    """Every random state, and those of the named generators given."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "torch": torch.random.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_generators": {k: json.dumps(g.bit_generator.state) for k, g in (numpy_generators or {}).items()},
            "torch_generators": {k: g.get_state() for k, g in (torch_generators or {}).items()}}


def restore_rng(states: dict, numpy_generators: Mapping[str, np.random.Generator] | None = None,
                torch_generators: Mapping[str, Any] | None = None) -> None:
    """Put back what :func:`capture_rng` captured (into the named generators given too)."""
    import torch

    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.random.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for key, generator in (numpy_generators or {}).items():
        generator.bit_generator.state = json.loads(states["numpy_generators"][key])
    for key, generator in (torch_generators or {}).items():
        generator.set_state(states["torch_generators"][key])


def restore_rank_rng(per_rank: list[dict], env, **generators) -> bool:
    """This rank's states of ``per_rank`` (every rank's, as :func:`gather_rng` gathered them)
    restored, with the named ``generators`` (``numpy_generators`` / ``torch_generators``); with
    another number of ranks, rank 0's. Returns whether this rank got its own states back."""
    own = len(per_rank) == env.world
    restore_rng(per_rank[env.rank if own else 0], **generators)
    return own


def gather_rng(env, states: dict) -> list[dict] | None:
    """Every rank's states (rank order) on rank 0, None on the others; ``[states]`` alone."""
    if env.world == 1:
        return [states]
    import torch.distributed as dist

    gathered = [None] * env.world
    dist.all_gather_object(gathered, states)
    return gathered if env.is_main else None


def settings_changes(saved: Mapping, current: Mapping) -> list[str]:
    """``["lr: 0.002 -> 0.001", ...]``: the settings of ``current`` whose value differs from the saved one."""
    return [f"{key}: {saved.get(key)!r} -> {value!r}" for key, value in current.items() if saved.get(key) != value]


def refuse_changed_settings(changes: list[str], *, override: bool, path: str | Path, say=print) -> None:
    """The one resume policy: a saved state made with other settings or data is refused,
    naming each change, unless ``override``; then the run goes on and says so."""
    if not changes:
        return
    listed = "; ".join(changes)
    if not override:
        raise InputError(f"{path} was trained with other settings or data ({listed}): resuming would mix two runs. "
                         "Use its settings, resume=False (or a new run_dir) to start over, or resume_override=True "
                         "to continue with the new ones")
    say(f"resuming {path} with changed settings (resume_override): {listed}")


def save_training_state(path: str | Path, kind: str, *, position: dict, settings: dict, model, optimizer,
                        scheduler=None, rng: list[dict], **extra) -> Path:
    """One atomic training-state file: ``position`` (where the loop stands: step, epoch, pass),
    ``settings`` (what a resume must share), the model's, optimiser's and scheduler's states,
    every rank's random states (``rng``) and the stage's ``extra`` values."""
    return save_checkpoint(path, kind, {
        "position": position, "settings": settings, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng_per_rank": rng, **extra})


def read_training_state(path: str | Path, kind: str) -> dict | None:
    """The state :func:`save_training_state` wrote, or None when there is no file."""
    path = Path(path)
    return read_checkpoint(path, kind) if path.is_file() else None
