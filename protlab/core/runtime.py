"""Seeding, devices, CPU threads and the torchrun (distributed) environment."""
from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass

import numpy as np

from protlab.core.errors import InputError

LEAVE_GRACE_S = 0.5  # see leave_distributed


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def check_device(device: str) -> None:
    """A ValueError unless ``device`` names a device kind torch knows ('auto' included)."""
    if device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit()):
        return
    raise ValueError("use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def pick_device(device: str | None = None) -> str:
    """``"cuda"`` when available unless ``device`` (or ``PROTLAB_DEVICE``) says otherwise."""
    import torch

    device = device or os.environ.get("PROTLAB_DEVICE") or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    return device


def bf16_autocast(device: str, enabled: bool = True):
    """bfloat16 autocast on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``); a context that
    changes nothing when not ``enabled``. Every stage's bf16 goes through here."""
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a ``torchrun`` job (a single process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env() -> DistEnv:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    if world > 1 and not 0 <= rank < world:
        raise InputError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistEnv(rank, world, local)


def init_distributed(env: DistEnv, device: str) -> None:
    """Join the process group of a multi-process job (NCCL on GPUs, gloo on the CPU)."""
    import torch.distributed as dist

    if env.world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")


def leave_distributed(grace: float = LEAVE_GRACE_S) -> None:
    """Wait for every rank, then leave the process group (when one was joined), then let go of
    the GIL for ``grace`` seconds. gloo's worker threads free a finished collective's tensors
    after the caller has moved on, and need the GIL to do it; one that asks for it once the
    interpreter is finalizing aborts the process ("terminate called without an active
    exception"), which on a busy machine happened when a rank exited right after its last
    collective."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        time.sleep(grace)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` torch CPU threads (None: leave the setting), then restore it."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
