"""The one ProtCLIP training loop (``python -m protlab.pretrain.train_config --config cfg.json|yaml``).

AdamW, linear warmup then cosine decay, gradient accumulation, clipping, bf16 autocast on
GPU, optional ``torch.compile``, per-tower freezing and learning-rate ratios. DDP is
detected from the ``torchrun`` environment (RANK / WORLD_SIZE / LOCAL_RANK); only rank 0
writes. Checkpoints (``run_dir/checkpoints/last.pt``, written atomically) carry the model
arguments, config, optimiser, scheduler, step, RNG states and data position, so a run
restarted with ``resume`` continues exactly where the last checkpoint left it. Every
``eval_every`` steps the valid split is scored and the best step by valid MRR is kept as
``checkpoints/best.pt`` (:mod:`protlab.pretrain.validation`).

Artifacts (rank 0; paths from :class:`~protlab.core.rundir.RunDir`): ``pretrain_log.jsonl``
(one record per ``log_every`` steps), ``pretrain_metrics.json`` (held-out retrieval and
zero-shot accuracy of the exported step and of the untrained model) and
``checkpoints/protein_encoder.pt`` (the best step's protein tower, the last step's without a
valid split, as a protlab esm2 checkpoint that 02_embed / 04_cluster load by path). The stage,
:func:`protlab.pretrain.run`, calls :func:`run_training` and then draws the figures.

Progress (:class:`~protlab.core.training_log.TrainingLog`): a bar over the steps, what the
run does as ``[pretrain] ...`` lines, and the log's record of every validation step and of
the last step as one line ``[pretrain] step N/max_steps  gc ...  loss ...``.
"""
from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

from protlab.core.atomic import atomic_write_json
from protlab.core.checkpoint import save_checkpoint
from protlab.core.errors import InputError, ProtlabError
from protlab.core.rundir import RunDir
from protlab.core.runtime import (bf16_autocast, dist_env, init_distributed, leave_distributed, pick_device,
                                  seed_everything, torch_threads)
from protlab.core.training import capture_rng, gather_rng, refuse_changed_settings, restore_rank_rng
from protlab.core.training_log import TrainingLog
from protlab.pretrain.config import PretrainConfig, resume_changes
from protlab.pretrain.data import Collator, PairBatches, load_pairs, micro_batch_stream
from protlab.pretrain.loss_log import LOG_NAME, PRINTED, LossWindow, loss_trends, read_log, say
from protlab.pretrain.model import (build_model, check_architecture, export_protein_encoder, load_trained, loss_weights,
                                    model_args, param_groups, read_training_state)
from protlab.pretrain.retrieval import class_prompts, evaluate_alignment
from protlab.pretrain.validation import (BEST_FILE, BestStep, Validator, is_eval_step, load_valid_pairs,
                                         no_selection_note, select_exported, validated)


# ------------------------------------------------------------------------------ model
def alignment_evaluator(model, eval_pairs, train_pairs, collator, config: PretrainConfig, device: str = "cpu",
                        autocast=None):
    """``evaluate()``: retrieval and zero-shot metrics of ``model`` (as it is when called) on
    ``eval_pairs``, with class prompts from ``train_pairs``."""
    prompts = class_prompts(train_pairs, field=config.zero_shot_field, template=config.zero_shot_template)

    def evaluate() -> dict:
        return evaluate_alignment(model, eval_pairs, prompts, collator, crop_length=config.crop_length,
                                  stride=config.eval_stride, max_text_length=config.max_text_length,
                                  batch_size=config.eval_batch_size, device=device, autocast=autocast)
    return evaluate


def mrr_ratio(trained: dict, untrained: dict) -> float:
    return trained["mrr"] / max(untrained["mrr"], 1e-12)


def evaluate_checkpoint(run_dir: str | Path, split: str, *, device: str = "cpu") -> dict:
    """A finished run's exported model (``checkpoints/best.pt``, else ``checkpoints/last.pt``)
    and the same model untrained, scored on ``split`` of ``run_dir/proteins.parquet`` as
    ``train`` scores its ``eval_split``."""
    last = RunDir(run_dir).require("pretrain_checkpoint")
    best = last.parent / BEST_FILE
    trained, tokenizer, config = load_trained(best if best.is_file() else last)
    untrained, _ = build_model(config)
    trained.to(device), untrained.to(device)
    pairs, train_pairs = load_pairs(run_dir, split=split), load_pairs(run_dir, split=config.train_split)
    collator = Collator(trained.alphabet, tokenizer, crop_length=config.crop_length,
                        max_text_length=config.max_text_length)
    out = {name: alignment_evaluator(m, pairs, train_pairs, collator, config, device)()
           for name, m in (("trained", trained), ("untrained", untrained))}
    return {**out["trained"], "untrained": out["untrained"], "split": split,
            "mrr_ratio": mrr_ratio(out["trained"], out["untrained"])}


def lr_factor(step: int, config: PretrainConfig) -> float:
    """Linear warmup to 1 over ``warmup_steps``, then cosine decay to ``min_lr_ratio``."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# -------------------------------------------------------------------------- the loop
def _autocast_factory(device: str, config: PretrainConfig):
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.startswith("cuda"))
    if not use_bf16:
        return None
    return lambda: bf16_autocast(device)


def _to(batch: dict, device: str) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(config: PretrainConfig) -> dict:
    """Train (or resume) in this process; returns a summary (rank 0 also writes artifacts).

    On the CPU, torch uses ``config.cpu_threads`` threads while training (restored after)."""
    env = dist_env()
    if env.world > 1 and torch.cuda.is_available():
        device = f"cuda:{env.local_rank}"
        torch.cuda.set_device(env.local_rank)
    else:
        device = pick_device(config.device)
    init_distributed(env, device)
    with torch_threads(config.cpu_threads if device == "cpu" else None):
        return _train(config, env, device)


def _train(config: PretrainConfig, env, device: str) -> dict:
    """The loop: a record every ``log_every`` steps, at validation steps and at the last; a
    checkpoint every ``ckpt_every`` steps and at the last (by the same rule on every rank)."""
    run = _Training(config, env, device)
    log = run.resume_or_start()
    stream = run.prepare()
    while run.step < config.max_steps:
        run.optimise(stream)
        # the same rule on every rank: a record's losses are all-reduced under DDP
        eval_step = is_eval_step(run.step, config.eval_every, config.max_steps)
        logged = run.step % config.log_every == 0 or run.step == config.max_steps or eval_step
        log.advance(1, **(run.log_record(log, eval_step) if logged else {}))
        if run.step % config.ckpt_every == 0 or run.step == config.max_steps:
            run.checkpoint()
    del stream  # stops the data workers
    log.close()
    elapsed = time.perf_counter() - run.started
    summary = {"step": run.step, "train_seconds": elapsed, "tokens_per_s": run.tokens_seen / max(elapsed, 1e-9)}
    if env.is_main:
        summary.update(run.export())
    if env.world > 1:
        leave_distributed()
    return summary


class _Training:
    """One run of :func:`train`: what it trains and scores, and the parts of its loop.

    Every rank builds the same things in the same order from one seed (the model, the batches,
    the optimiser), so every rank draws the same random numbers; rank 0 alone loads the
    evaluation and validation splits, writes and prints."""

    def __init__(self, config: PretrainConfig, env, device: str):
        self.config, self.env, self.device = config, env, device
        self.run = RunDir(config.run_dir)
        self.say = say if env.is_main else (lambda message: None)
        self.weights = loss_weights(config)
        seed_everything(config.seed)  # the same on every rank (dropout streams too, as in Megatron-LM)
        self.model, tokenizer = build_model(config)
        self.model.to(device)
        train_pairs = load_pairs(self.run.root, split=config.train_split)
        collator = Collator(self.model.alphabet, tokenizer, crop_length=config.crop_length,
                            max_text_length=config.max_text_length, max_property_length=config.max_property_length,
                            mlm_prob=config.mlm_prob, bsr_ratio=config.bsr_ratio,
                            bsr_span=(config.bsr_span_min, config.bsr_span_max), weights=self.weights,
                            fixed_shapes=config.compile, substitution_prob=config.substitution_prob)
        self.batches = PairBatches(train_pairs, collator, batch_size=config.batch_size, seed=config.seed,
                                   rank=env.rank, world=env.world)
        self.autocast = _autocast_factory(device, config)
        self._evaluators(train_pairs, collator)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, config), lr=config.lr, betas=(0.9, 0.98),
                                           eps=1e-6, fused=device.startswith("cuda"))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, config))
        self.step, self.losses, self.note_pending = 0, None, False
        self.train_model, self.trainable, self.started, self.tokens_seen = None, [], 0.0, 0

    def _evaluators(self, train_pairs, collator) -> None:
        """``evaluate`` (held-out retrieval and zero-shot on ``eval_split``, rank 0 with such a
        split) and ``validate`` (the valid split that picks the exported step, rank 0; without
        one, ``selection_note`` says why the last step is exported)."""
        config = self.config
        self.eval_pairs, self.validate, self.selection_note = None, None, None
        if self.env.is_main:
            try:
                self.eval_pairs = load_pairs(self.run.root, split=config.eval_split)
            except InputError as exc:
                self.say(f"no evaluation: {exc}")
        self.evaluate = alignment_evaluator(self.model, self.eval_pairs, train_pairs, collator, config, self.device,
                                            self.autocast)
        self.best = BestStep(self.run.path("checkpoints"))
        if self.env.is_main:
            valid_pairs, reason = load_valid_pairs(self.run.root)
            if valid_pairs is None:
                self.selection_note = no_selection_note(reason)
                self.say(self.selection_note)
            else:
                self.validate = Validator(self.model, valid_pairs, collator, config, self.weights, device=self.device,
                                          autocast=self.autocast)

    def resume_or_start(self) -> TrainingLog:
        """Continue from ``checkpoints/last.pt`` (``resume``) or start afresh (the untrained model
        scored first); returns the training log, whose records a resumed run keeps up to its step."""
        config, env = self.config, self.env
        ckpt_path = self.run.path("pretrain_checkpoint")
        resumed = config.resume and ckpt_path.is_file()
        window = self._resume(ckpt_path) if resumed else None
        log = TrainingLog(LOG_NAME, unit="step", total=config.max_steps, path=self.run.path("pretrain_log"),
                          start=self.step, every=config.eval_every, bar=config.progress, main=env.is_main,
                          shown=PRINTED)
        if resumed:
            log.say(f"resumed from {ckpt_path} at step {self.step}")
            if env.is_main:
                self.best.restore()
        elif env.is_main:
            self.best.forget()
            if self.eval_pairs is not None:  # the untrained baseline, measured in the same run
                atomic_write_json(self.run.path("pretrain_untrained_metrics"), self.evaluate())
        if env.is_main:  # an earlier run's metrics; this run writes its own when it finishes
            self.run.path("pretrain_metrics").unlink(missing_ok=True)
        self.losses = LossWindow(self.weights, env.world, window)
        self.note_pending = self.selection_note is not None and not resumed
        return log

    def _resume(self, ckpt_path: Path) -> dict:
        """The checkpoint's weights, optimiser, scheduler, step and every rank's random states;
        returns its loss window (the steps since its last record)."""
        ckpt = read_training_state(ckpt_path)
        check_architecture(ckpt, self.model, ckpt_path)
        refuse_changed_settings(resume_changes(ckpt.get("config", {}), self.config),
                                override=self.config.resume_override, path=ckpt_path, say=self.say)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise InputError(f"{ckpt_path} does not fit this model/optimiser ({str(exc)[:300]}); "
                             "use the config it was trained with, or a new run_dir") from exc
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step, window = int(ckpt["step"]), dict(ckpt.get("window", {}))
        per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
        if not restore_rank_rng(per_rank, self.env):
            self.say(f"warning: {ckpt_path} was written by {len(per_rank)} rank(s), this run has "
                     f"{self.env.world}; training continues, but not exactly as the original run would have")
        return window

    def prepare(self):
        """The model as the loop runs it (DDP over ranks, compiled on request) in training mode;
        starts the clock and returns the stream of micro-batches from the current step on."""
        config, env, device = self.config, self.env, self.device
        self.train_model = self.model
        if env.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.train_model = DDP(self.model, device_ids=[env.local_rank] if device.startswith("cuda") else None,
                                   find_unused_parameters=any(w == 0 for w in self.weights.values()))
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        stream = micro_batch_stream(self.batches, self.step * config.grad_accum, config.max_steps * config.grad_accum,
                                    workers=config.data_workers, pin=device.startswith("cuda"))
        self.started, self.tokens_seen = time.perf_counter(), 0
        return stream

    def optimise(self, stream) -> None:
        """One optimiser step over ``grad_accum`` micro-batches of ``stream``."""
        config, env, device, weights = self.config, self.env, self.device, self.weights
        self.optimizer.zero_grad(set_to_none=True)
        step_losses = torch.zeros(len(self.losses.names), device=device)
        for micro in range(config.grad_accum):
            cpu_batch = next(stream)
            self.tokens_seen += int((cpu_batch["tokens"] != self.model.alphabet.padding_idx).sum()) * env.world
            batch = _to(cpu_batch, device)
            sync = micro == config.grad_accum - 1 or env.world == 1
            no_sync = not sync and hasattr(self.train_model, "no_sync")
            with self.train_model.no_sync() if no_sync else contextlib.nullcontext():
                with self.autocast() if self.autocast else contextlib.nullcontext():
                    losses = self.train_model(batch, weights=weights)
                # GC is the full gathered-batch loss on every rank: x world makes the DDP mean exact.
                total = sum(weights[k] * v * (env.world if k == "gc" else 1) for k, v in losses.items())
                (total / config.grad_accum).backward()
            step_losses += torch.stack([losses[k].detach().float() for k in self.losses.names]) / config.grad_accum
        grad_norm = (torch.nn.utils.clip_grad_norm_(self.trainable, config.clip_grad) if config.clip_grad > 0
                     else torch.zeros((), device=device))
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.losses.add(step_losses, grad_norm)

    def log_record(self, log: TrainingLog, eval_step: bool) -> dict:
        """The record of the steps since the last one (every rank calls it: the losses are
        all-reduced); at ``eval_step`` rank 0 validates and keeps the best step. Rank 0 writes it
        (printed at validation steps and the last); returns what the progress bar shows."""
        record = {**self.losses.record(), "lr": self.scheduler.get_last_lr()[0],
                  "temperature": float(1.0 / self.model.scale().detach()),
                  "tokens_per_s": self.tokens_seen / max(1e-9, time.perf_counter() - self.started)}
        if self.validate is not None and eval_step:
            record.update(validated(self.validate))
            self.best.offer(self.step, {k: v for k, v in record.items() if k.startswith("valid_")},
                            lambda: {"model_args": model_args(self.model), "config": self.config.to_dict(),
                                     "model": self.model.state_dict()})
            record["best_step"] = self.best.step
        if self.note_pending:  # said once, in the run's first record
            record["note"], self.note_pending = self.selection_note, False
        log.record(self.step, record)
        shown = {"loss": f"{record['last_loss']:.3f}"}
        return {**shown, "best": self.best.step} if self.best.step is not None else shown

    def checkpoint(self) -> None:
        """``checkpoints/last.pt`` (every rank calls it: the random states are gathered)."""
        self.losses.drain()
        rng = gather_rng(self.env, capture_rng())  # every rank's, so each resumes its own streams
        if not self.env.is_main:
            return
        save_checkpoint(self.run.path("pretrain_checkpoint"), "pretrain", {
            "model_args": model_args(self.model), "config": self.config.to_dict(), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "step": self.step,
            "rng": rng[0], "rng_per_rank": rng, "window": self.losses.window,
            "data_position": self.batches.position(self.step * self.config.grad_accum)})

    def export(self) -> dict:
        """Rank 0 at the end: the exported step's protein tower and, with an evaluation split, the
        metrics; returns the final loss, what was exported and why, and the metrics."""
        config = self.config
        history = read_log(self.run.root)
        out = {"final_loss": history[-1]["last_loss"] if history else None}
        selection = select_exported(self.model, self.best, self.validate is not None, self.step, self.selection_note)
        out.update(selection)
        export_protein_encoder(self.model, self.run.path("protein_encoder"), source="protlab.pretrain.loop",
                               step=selection["best_step"], selected_by=selection["best_metric"],
                               protein_encoder=config.protein_encoder, text_encoder=config.text_encoder)
        if self.eval_pairs is not None:
            out["metrics"] = self._metrics(history, selection)
        return out

    def _metrics(self, history: list[dict], selection: dict) -> dict:
        """``pretrain_metrics.json``: the exported model scored on ``eval_split`` beside the untrained one."""
        config = self.config
        trained = self.evaluate()
        untrained_path = self.run.path("pretrain_untrained_metrics")
        untrained = json.loads(untrained_path.read_text()) if untrained_path.is_file() else None
        metrics = {**trained, "untrained": untrained, "split": config.eval_split, "steps": self.step, **selection,
                   "loss_trends": loss_trends(history, self.weights), "config": config.to_dict()}
        if untrained:
            metrics["mrr_ratio"] = mrr_ratio(trained, untrained)
        if trained["zero_shot_acc"] is None:
            metrics["note"] = ("zero-shot not scored: no held-out protein has a label whose class has training "
                               "texts; retrieval only")
            self.say(metrics["note"])
        atomic_write_json(self.run.path("pretrain_metrics"), metrics)
        return metrics


# ------------------------------------------------------------------------- launchers
def launch_torchrun(config: PretrainConfig, nproc: int) -> dict:
    """Run this module under ``torchrun --nproc_per_node=nproc``; returns a summary (step,
    final loss, metrics) read from what rank 0 wrote."""
    run_ = RunDir(config.run_dir)
    cfg_path = atomic_write_json(run_.writable("pretrain_config"), {**config.to_dict(), "nproc": 1})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "protlab.pretrain.train_config", "--config", str(cfg_path)]
    say(f"launching: {' '.join(cmd)}")
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise ProtlabError(f"torchrun exited with status {proc.returncode}; see the output above and "
                           f"{run_.path('pretrain_log')}")
    history = read_log(run_.root)
    summary = {"step": history[-1]["step"] if history else 0,
               "final_loss": history[-1]["last_loss"] if history else None}
    metrics_path = run_.path("pretrain_metrics")
    if metrics_path.is_file():
        summary["metrics"] = json.loads(metrics_path.read_text())
    return summary


def run_training(config: PretrainConfig) -> dict:
    """Train in-process on one device, or through torchrun when ``config.nproc > 1``."""
    if config.nproc > 1 and dist_env().world == 1:
        if torch.cuda.is_available() and torch.cuda.device_count() < config.nproc:
            raise InputError(f"nproc={config.nproc} but only {torch.cuda.device_count()} GPU(s) are visible")
        return launch_torchrun(config, config.nproc)
    return train(config)
