"""SCAN heads under ``torchrun``: rank 0 builds the graph, every rank trains on its share.

``torchrun --nproc_per_node=N -m protlab.cluster --run-dir DIR`` starts N copies of stage
04. Rank 0 alone mines the neighbours (MMseqs2 or faiss), finds the families and builds the
graph features; :func:`share_from_main` hands them to the other ranks (an error on rank 0
reaches every rank, so none waits forever). The heads are wrapped in
``DistributedDataParallel``: every rank draws the same batches from the same seeded
generator and trains on its slice (:func:`my_share`), gradients are averaged, so all ranks
hold the same weights; rank 0 writes the outputs.
"""
from __future__ import annotations

from typing import Any

from protlab.core.errors import InputError
from protlab.core.runtime import DistEnv, dist_env, init_distributed


def scan_env(device: str) -> DistEnv:
    """This process's place in a torchrun job, its process group joined when there are several."""
    env = dist_env()
    if env.world > 1 and device.startswith("cuda"):
        import torch

        torch.cuda.set_device(env.local_rank)
    init_distributed(env, device)
    return env


def share_from_main(env: DistEnv, make) -> Any:
    """``make()`` on rank 0, its result on every rank. An exception on rank 0 is raised there
    and becomes an :class:`InputError` with its message on the others."""
    if env.world == 1:
        return make()
    import torch.distributed as dist

    box: list = [None]
    error = None
    if env.is_main:
        try:
            box[0] = ("ok", make())
        except Exception as exc:  # told to the other ranks, then raised here
            error = exc
            box[0] = ("error", f"{type(exc).__name__}: {exc}")
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    status, value = box[0]
    if status == "error":
        raise InputError(f"rank 0 failed while building the neighbour graph: {value}")
    return value


def my_share(env: DistEnv, batch):
    """This rank's slice of a batch every rank drew alike."""
    return batch if env.world == 1 else batch[env.rank::env.world]


def total_over_ranks(env: DistEnv, value: int) -> int:
    """``value`` summed over the ranks (itself for one process)."""
    if env.world == 1:
        return int(value)
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(value)], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return int(t.item())


def same_buffers(env: DistEnv, module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank: each rank's last
    forward updated its own, and the head choice and the saved model must not depend on the rank."""
    if env.world == 1:
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def wrap(model, env: DistEnv, device: str):
    """``model`` in DistributedDataParallel on a multi-process job, as it is otherwise."""
    if env.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[env.local_rank] if device.startswith("cuda") else None)
