"""03's losses as the loop logs them: running windows of per-step losses, the training log
(``pretrain_log.jsonl``) read back, and the trend of each loss."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protlab.core.rundir import RunDir
from protlab.core.training_log import read_records

LOSS_NAMES = ("gc", "mlm", "bsr", "pda")
LOG_NAME = "pretrain"  # the training log's name: its lines read "[pretrain] ..."
# what a printed record line gives (the JSONL record has every loss and rate)
PRINTED = ("last_loss", "lr", "tokens_per_s", "valid_mrr", "valid_loss", "best_step")


class LossWindow:
    """Per-step losses and gradient norms, kept on the device until a log or checkpoint reads
    them (one host sync and, under DDP, one all-reduce per interval instead of several per
    step, so the GPU is never left waiting for Python). ``window`` holds the running sums
    since the last log record (saved in checkpoints); ``last`` the latest step's values."""

    def __init__(self, weights: dict[str, float], world: int = 1, window: dict | None = None):
        self.names = [k for k in LOSS_NAMES if weights.get(k, 0) > 0]
        self.weights, self.world = weights, world
        self.window: dict[str, float] = dict(window or {})
        self.last: dict[str, float] = {}
        self._pending: list[torch.Tensor] = []

    def add(self, losses: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """One step: ``losses`` in ``names`` order (averaged over micro-steps) and the grad norm."""
        self._pending.append(torch.cat([losses.detach().float(), grad_norm.detach().float().reshape(1)]))

    def drain(self) -> None:
        if not self._pending:
            return
        rows = torch.stack(self._pending)
        self._pending.clear()
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(rows)
            rows = rows / self.world
        for row in rows.double().cpu().tolist():
            values = dict(zip(self.names, row))
            values["loss"] = sum(self.weights[k] * values[k] for k in self.names)
            for k, v in values.items():
                self.window[k] = self.window.get(k, 0.0) + v
            self.window["_n"] = self.window.get("_n", 0) + 1
            self.last = {"loss": values["loss"], "grad_norm": row[-1]}

    def record(self) -> dict[str, float]:
        """Means over the steps since the last record; starts a new window."""
        self.drain()
        n = self.window.pop("_n")
        means = {k: v / n for k, v in self.window.items()}
        self.window = {}
        return {**means, "grad_norm": self.last["grad_norm"], "last_loss": self.last["loss"]}


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of the run's training log (``pretrain_log.jsonl``), oldest first; [] when none.
    A last line cut short (the record a killed run was writing: the checkpoint has its step) is
    left out, with a line saying so; any other line that is not JSON is an ``InputError``."""
    return read_records(RunDir(run_dir).path("pretrain_log"), say=say)


def say(message: str) -> None:
    """A line of 03's training, in its log's form (``[pretrain] ...``)."""
    print(f"[{LOG_NAME}] {message}", flush=True)


def loss_trends(history: list[dict], weights: dict) -> dict:
    """Per enabled loss: mean of the first and last fifth of the log and whether it fell."""
    out = {}
    for name in LOSS_NAMES:
        if weights.get(name, 0) <= 0:
            continue
        values = [r[name] for r in history if name in r]
        if len(values) < 2:
            continue
        k = max(1, len(values) // 5)
        first, last = float(np.mean(values[:k])), float(np.mean(values[-k:]))
        out[name] = {"first": first, "last": last, "decreased": last < first}
    return out
