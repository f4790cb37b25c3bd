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
from protlab.core.progress import progress_bar

from protlab.core.atomic import append_line, atomic_write_json, atomic_write_text
from protlab.core.checkpoint import save_checkpoint
from protlab.core.errors import InputError, ProtlabError
from protlab.core.rundir import RunDir
from protlab.core.runtime import (dist_env, init_distributed, leave_distributed, pick_device, seed_everything,
                                  torch_threads)
from protlab.core.training import capture_rng, gather_rng, refuse_changed_settings, restore_rank_rng, restore_rng
from protlab.pretrain.config import PretrainConfig, resume_changes
from protlab.pretrain.data import Collator, PairBatches, load_pairs
from protlab.pretrain.loss_log import LossWindow, loss_trends, read_log
from protlab.pretrain.model import (build_model, check_architecture, export_protein_encoder, load_trained, loss_weights,
                                    model_args, param_groups, read_training_state)
from protlab.pretrain.retrieval import class_prompts, evaluate_alignment
from protlab.pretrain.validation import (BEST_FILE, BEST_METRIC, BestStep, Validator, is_eval_step, load_valid_pairs,
                                         no_selection_note)



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
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return lambda: torch.autocast(kind, dtype=torch.bfloat16)


def _to(batch: dict, device: str) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class MicroBatches(torch.utils.data.Dataset):
    """Micro-batches ``first, first + 1, ...`` of a :class:`PairBatches`, for a ``DataLoader``
    whose worker processes build them ahead of the training step (each is deterministic in
    its index, so workers change nothing but speed)."""

    def __init__(self, batches, first: int, stop: int):
        self.batches, self.first, self.stop = batches, first, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.first)

    def __getitem__(self, i: int) -> dict:
        return self.batches.batch(self.first + i)


def micro_batch_stream(batches, first: int, stop: int, *, workers: int, pin: bool):
    """An iterator over micro-batches ``first .. stop - 1``; ``workers`` > 0 prefetches them."""
    if workers == 0:
        return (batches.batch(i) for i in range(first, stop))
    loader = torch.utils.data.DataLoader(MicroBatches(batches, first, stop), batch_size=None,
                                         num_workers=workers, pin_memory=pin, prefetch_factor=4)
    return iter(loader)


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
    run_dir = Path(config.run_dir)
    run_ = RunDir(run_dir)
    ckpt_path = run_.path("pretrain_checkpoint")
    log_path, untrained_path = run_.path("pretrain_log"), run_.path("pretrain_untrained_metrics")
    weights = loss_weights(config)

    seed_everything(config.seed)  # the same on every rank (dropout streams too, as in Megatron-LM)
    model, tokenizer = build_model(config)
    model.to(device)
    train_pairs = load_pairs(run_dir, split=config.train_split)
    collator = Collator(model.alphabet, tokenizer, crop_length=config.crop_length,
                        max_text_length=config.max_text_length, max_property_length=config.max_property_length,
                        mlm_prob=config.mlm_prob, bsr_ratio=config.bsr_ratio,
                        bsr_span=(config.bsr_span_min, config.bsr_span_max), weights=weights,
                        fixed_shapes=config.compile, substitution_prob=config.substitution_prob)
    batches = PairBatches(train_pairs, collator, batch_size=config.batch_size, seed=config.seed,
                          rank=env.rank, world=env.world)
    autocast = _autocast_factory(device, config)
    eval_pairs = None
    if env.is_main:
        try:
            eval_pairs = load_pairs(run_dir, split=config.eval_split)
        except InputError as exc:
            print(f"[train] no evaluation: {exc}", flush=True)
    evaluate = alignment_evaluator(model, eval_pairs, train_pairs, collator, config, device, autocast)
    validate, selection_note, best = None, None, BestStep(run_.path("checkpoints"))
    if env.is_main:
        valid_pairs, reason = load_valid_pairs(run_dir)
        if valid_pairs is None:
            selection_note = no_selection_note(reason)
            print(f"[train] {selection_note}", flush=True)
        else:
            validate = Validator(model, valid_pairs, collator, config, weights, device=device, autocast=autocast)

    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr, betas=(0.9, 0.98), eps=1e-6,
                                  fused=device.startswith("cuda"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    step, window = 0, None
    resumed = config.resume and ckpt_path.is_file()
    if resumed:
        ckpt = read_training_state(ckpt_path)
        check_architecture(ckpt, model, ckpt_path)
        refuse_changed_settings(resume_changes(ckpt.get("config", {}), config), override=config.resume_override,
                                path=ckpt_path, say=lambda line: env.is_main and print(f"[train] {line}", flush=True))
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise InputError(f"{ckpt_path} does not fit this model/optimiser ({str(exc)[:300]}); "
                             "use the config it was trained with, or a new run_dir") from exc
        scheduler.load_state_dict(ckpt["scheduler"])
        step, window = int(ckpt["step"]), dict(ckpt.get("window", {}))
        per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
        if not restore_rank_rng(per_rank, env):
            if env.is_main:
                print(f"[train] warning: {ckpt_path} was written by {len(per_rank)} rank(s), this run has "
                      f"{env.world}; training continues, but not exactly as the original run would have",
                      flush=True)
        if env.is_main:  # drop log records written after the checkpoint (a killed run)
            kept = [r for r in read_log(run_dir) if r["step"] <= step]
            atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in kept))
            print(f"[train] resumed from {ckpt_path} at step {step}", flush=True)
            best.restore()
    else:
        if env.is_main:
            log_path.unlink(missing_ok=True)
            best.forget()
            if eval_pairs is not None:  # the untrained baseline, measured in the same run
                atomic_write_json(untrained_path, evaluate())
    if env.is_main:  # an earlier run's metrics; this run writes its own when it finishes
        run_.path("pretrain_metrics").unlink(missing_ok=True)

    train_model = model
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[env.local_rank] if device.startswith("cuda") else None,
                          find_unused_parameters=any(w == 0 for w in weights.values()))
    if config.compile:
        train_model = torch.compile(train_model)

    losses_log = LossWindow(weights, env.world, window)
    note_pending = selection_note is not None and not resumed

    def checkpoint():
        losses_log.drain()
        rng = gather_rng(env, capture_rng())  # every rank's, so each resumes its own streams
        if not env.is_main:
            return
        save_checkpoint(ckpt_path, "pretrain", {
            "model_args": model_args(model), "config": config.to_dict(),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "rng": rng[0], "rng_per_rank": rng, "window": losses_log.window,
            "data_position": batches.position(step * config.grad_accum)})

    progress = None
    if env.is_main and config.progress:

        progress = progress_bar(total=config.max_steps, initial=step, desc="pretrain", dynamic_ncols=True)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    stream = micro_batch_stream(batches, step * config.grad_accum, config.max_steps * config.grad_accum,
                                workers=config.data_workers, pin=device.startswith("cuda"))
    start, tokens_seen = time.perf_counter(), 0
    while step < config.max_steps:
        optimizer.zero_grad(set_to_none=True)
        step_losses = torch.zeros(len(losses_log.names), device=device)
        for micro in range(config.grad_accum):
            cpu_batch = next(stream)
            tokens_seen += int((cpu_batch["tokens"] != model.alphabet.padding_idx).sum()) * env.world
            batch = _to(cpu_batch, device)
            sync = micro == config.grad_accum - 1 or env.world == 1
            ctx = contextlib.nullcontext() if sync or not hasattr(train_model, "no_sync") else train_model.no_sync()
            with ctx:
                with autocast() if autocast else contextlib.nullcontext():
                    losses = train_model(batch, weights=weights)
                # GC is the full gathered-batch loss on every rank: x world makes the DDP mean exact.
                total = sum(weights[k] * v * (env.world if k == "gc" else 1) for k, v in losses.items())
                (total / config.grad_accum).backward()
            step_losses += torch.stack([losses[k].detach().float() for k in losses_log.names]) / config.grad_accum
        grad_norm = (torch.nn.utils.clip_grad_norm_(trainable, config.clip_grad) if config.clip_grad > 0
                     else torch.zeros((), device=device))
        optimizer.step()
        scheduler.step()
        step += 1
        losses_log.add(step_losses, grad_norm)
        if progress is not None:
            progress.update(1)
        # the same rule on every rank: a record's losses are all-reduced under DDP
        eval_step = is_eval_step(step, config.eval_every, config.max_steps)
        if step % config.log_every == 0 or step == config.max_steps or eval_step:
            record = {"step": step, **losses_log.record(), "lr": scheduler.get_last_lr()[0],
                      "temperature": float(1.0 / model.scale().detach()),
                      "tokens_per_s": tokens_seen / max(1e-9, time.perf_counter() - start)}
            if validate is not None and eval_step:
                record.update(validated(validate))
                best.offer(step, {k: v for k, v in record.items() if k.startswith("valid_")},
                           lambda: {"model_args": model_args(model), "config": config.to_dict(),
                                    "model": model.state_dict()})
                record["best_step"] = best.step
            if note_pending:  # said once, in the run's first record
                record["note"], note_pending = selection_note, False
            if progress is not None:
                progress.set_postfix(loss=f"{record['last_loss']:.3f}",
                                     **({"best": best.step} if best.step is not None else {}))
            if env.is_main:
                append_line(log_path, json.dumps(record))
        if step % config.ckpt_every == 0 or step == config.max_steps:
            checkpoint()
    del stream  # stops the data workers
    if progress is not None:
        progress.close()
    elapsed = time.perf_counter() - start
    summary = {"step": step, "train_seconds": elapsed, "tokens_per_s": tokens_seen / max(elapsed, 1e-9)}
    if env.is_main:
        history = read_log(run_dir)
        summary["final_loss"] = history[-1]["last_loss"] if history else None
        selection = select_exported(model, best, validate is not None, step, selection_note)
        summary.update(selection)
        export_protein_encoder(model, run_.path("protein_encoder"), source="protlab.pretrain.loop",
                               step=selection["best_step"], selected_by=selection["best_metric"],
                               protein_encoder=config.protein_encoder,
                               text_encoder=config.text_encoder)
        if eval_pairs is not None:
            trained = evaluate()
            untrained = json.loads(untrained_path.read_text()) if untrained_path.is_file() else None
            metrics = {**trained, "untrained": untrained, "split": config.eval_split, "steps": step, **selection,
                       "loss_trends": loss_trends(history, weights), "config": config.to_dict()}
            if untrained:
                metrics["mrr_ratio"] = mrr_ratio(trained, untrained)
            if trained["zero_shot_acc"] is None:
                metrics["note"] = ("zero-shot not scored: no held-out protein has a label whose class has training "
                                   "texts; retrieval only")
                print(f"pretrain: {metrics['note']}", flush=True)
            atomic_write_json(run_.path("pretrain_metrics"), metrics)
            summary["metrics"] = metrics
    if env.world > 1:
        leave_distributed()
    return summary


def validated(validate) -> dict:
    """``validate()`` with every RNG state put back: scoring changes nothing a resumed run replays."""
    states = capture_rng()
    try:
        return validate()
    finally:
        restore_rng(states)


def select_exported(model, best: BestStep, validating: bool, step: int, note: str | None) -> dict:
    """Load the best step's weights into ``model`` (the last step's stay without a selection);
    returns what was chosen and by what (``best_step``, ``best_metric``, ``best_valid``)."""
    if validating and best.step is None:
        note = no_selection_note("no validation was recorded for this run")
    if best.step is None or not validating:
        return {"best_step": step, "best_metric": "none: the last step", "best_valid": None,
                "selection_note": note}
    if best.step != step:
        model.load_state_dict(best.weights())
    return {"best_step": best.step, "best_metric": BEST_METRIC, "best_valid": best.valid, "selection_note": None}


# ------------------------------------------------------------------------- launchers
def launch_torchrun(config: PretrainConfig, nproc: int) -> dict:
    """Run this module under ``torchrun --nproc_per_node=nproc``; returns a summary (step,
    final loss, metrics) read from what rank 0 wrote."""
    run_ = RunDir(config.run_dir)
    cfg_path = atomic_write_json(run_.writable("pretrain_config"), {**config.to_dict(), "nproc": 1})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "protlab.pretrain.train_config", "--config", str(cfg_path)]
    print("[train] launching:", " ".join(cmd), flush=True)
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
