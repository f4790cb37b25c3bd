"""Stage 03: ProtCLIP pretraining of a protein encoder against a text encoder.

``run(run_dir, **params)`` starts from a preset (:data:`~protlab.pretrain.config.PRESETS`),
applies every parameter that is not None, trains on the train split of ``proteins.parquet``
(:func:`protlab.pretrain.loop.run_training`: in this process, or under ``torchrun`` when
``nproc > 1``), validating every ``eval_every`` steps, and scores the held-out pairs with the
best step by valid MRR (the last without a valid split) against the untrained model. Writes
``checkpoints/last.pt`` (resumable), ``checkpoints/best.pt``, ``checkpoints/protein_encoder.pt``
(the best step's protein tower, an encoder path for 02_embed / 04_cluster),
``pretrain_log.jsonl``, ``pretrain_metrics.json``, the loss and retrieval figures and ``pretrain.json``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from protlab.core.rundir import RunDir
from protlab.core.runtime import check_device, dist_env
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult
from protlab.curate.records import TEXT_FIELDS
from protlab.plot.export import save_figure
from protlab.plot.pretrain import loss_figure, mark_best_step, metrics_figure
from protlab.pretrain.config import PRESETS, PretrainConfig, make_config
from protlab.pretrain.loop import loss_trends, loss_weights, read_log, run_training
from protlab.pretrain.retrieval import metrics_table
from protlab.pretrain.validation import BEST_FILE

BUILTIN_ENCODERS = ("tiny", "minilm")  # tower specs that are not files (nothing to fingerprint)


def _below(limit: float):
    def check(value):
        if value >= limit:
            raise ValueError(f"use a number < {limit:g}")
    return check


def _template(value: str):
    try:
        value.format(label="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"a text with '{{label}}' as its only field ({exc})") from exc


def _preset_values(name: str) -> str:
    """``preset: 600`` or ``preset: toy-cpu 600, server 50000``: what None keeps."""
    values = {preset: getattr(PretrainConfig(**over), name) for preset, over in PRESETS.items()}
    if len({repr(v) for v in values.values()}) == 1:
        return f"preset: {next(iter(values.values()))!r}"
    return "preset: " + ", ".join(f"{preset} {value!r}" for preset, value in values.items())


# One parameter per PretrainConfig field but run_dir: (help, kind, other Param arguments); each
# defaults to None, which keeps the preset's value.
_SETTINGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "protein_encoder": (("protein tower: a fair-esm name, a .pt / Hugging Face dir / protlab checkpoint path, "
                         "or 'tiny' (random ESM-2 of protein_tiny_args)"), "str", {}),
    "protein_tiny_args": (("ESM-2 arguments of the 'tiny' protein tower (num_layers, embed_dim, "
                           "attention_heads); missing keys keep the preset's"), "dict", {}),
    "text_encoder": ("text tower: a Hugging Face name or dir, 'minilm' (offline MiniLM) or 'tiny' (random BERT)",
                     "str", {}),
    "text_tiny_args": ("BERT settings of the 'tiny' text tower; missing keys keep the preset's", "dict", {}),
    "proj_dim": ("dimension of the shared protein-text space", "int", {"low": 1}),
    "decoder_layers": ("depth of the BSR cross-attention decoder", "int", {"low": 1}),
    "freeze_protein": ("keep the protein tower's weights fixed", "bool", {}),
    "freeze_text": ("keep the text tower's weights fixed", "bool", {}),
    "protein_lr_ratio": ("protein tower learning rate = lr x this", "float", {"low": 0}),
    "text_lr_ratio": ("text tower learning rate = lr x this", "float", {"low": 0}),
    "temperature_init": ("initial contrastive temperature", "float", {"low": 0, "low_open": True}),
    "w_gc": ("weight of global contrast (0: off)", "float", {"low": 0}),
    "w_mlm": ("weight of masked-residue prediction (0: off)", "float", {"low": 0}),
    "w_bsr": ("weight of biology-aware segment reconstruction (0: off)", "float", {"low": 0}),
    "w_pda": ("weight of property-driven alignment (0: off)", "float", {"low": 0}),
    "mlm_prob": ("share of residues masked for MLM, in (0, 1)", "float",
                 {"low": 0, "low_open": True, "check": _below(1)}),
    "bsr_ratio": ("share of residues masked in BSR spans, in (0, 1)", "float",
                  {"low": 0, "low_open": True, "check": _below(1)}),
    "bsr_span_min": ("shortest BSR span (residues)", "int", {"low": 1}),
    "bsr_span_max": ("longest BSR span (residues)", "int", {"low": 1}),
    "pda_theta": ("PDA threshold on normalised residue-property similarity", "float", {"low": 0, "high": 1}),
    "substitution_prob": ("augmentation: chance, in [0, 1), that a GC / PDA residue becomes a random one", "float",
                          {"low": 0, "check": _below(1)}),
    "crop_length": ("residues per training crop; longer proteins are windowed in evaluation", "int", {"low": 16}),
    "eval_stride": ("window stride in evaluation (a preset's None: crop_length // 2)", "int", {"low": 1}),
    "max_text_length": ("text tokens kept per pair", "int", {"low": 2}),
    "max_property_length": ("text tokens kept per property sub-text (PDA)", "int", {"low": 2}),
    "train_split": ("split trained on", "str", {}),
    "eval_split": ("held-out split(s) scored, joined by '+'", "str", {}),
    "zero_shot_field": (("class prompt: 'ensemble' (mean of the class's training texts), 'all' (its most "
                         "common value of every property) or one property"), "str",
                        {"choices": ("ensemble", "all", *TEXT_FIELDS)}),
    "zero_shot_template": ("prompt when a class has no text, with '{label}'", "str", {"check": _template}),
    "batch_size": ("pairs per device per micro-step (>= 2 while w_gc > 0)", "int", {"low": 1}),
    "grad_accum": ("micro-steps per optimiser step", "int", {"low": 1}),
    "lr": ("peak learning rate (AdamW)", "float", {"low": 0, "low_open": True}),
    "weight_decay": ("AdamW weight decay", "float", {"low": 0}),
    "warmup_steps": ("linear warmup steps", "int", {"low": 0}),
    "max_steps": ("optimiser steps", "int", {"low": 1}),
    "min_lr_ratio": ("final learning rate / lr after cosine decay", "float", {"low": 0, "high": 1}),
    "clip_grad": ("gradient-norm clipping (0: off)", "float", {"low": 0}),
    "seed": ("random seed (initialisation, batches, masks)", "int", {"low": 0, "high": MAX_SEED}),
    "device": ("'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", "str", {"check": check_device}),
    "cpu_threads": ("torch CPU threads while training on the CPU", "int", {"low": 1}),
    "data_workers": ("processes building batches ahead of the training step", "int", {"low": 0}),
    "precision": ("'auto' (bf16 on GPU, fp32 on CPU), 'bf16' or 'fp32'", "str", {"choices": ("auto", "bf16", "fp32")}),
    "compile": ("torch.compile the training step", "bool", {}),
    "nproc": ("processes (GPUs); > 1 launches torchrun", "int", {"low": 1}),
    "log_every": ("steps per log record", "int", {"low": 1}),
    "ckpt_every": ("steps per checkpoint", "int", {"low": 1}),
    "eval_every": (("steps per validation: the valid split's retrieval MRR and losses are logged and the best "
                    "step by valid MRR is kept (checkpoints/best.pt) and exported"), "int", {"low": 1}),
    "resume": ("continue from the run's last checkpoint when there is one", "bool", {}),
    "resume_override": ("resume even when optimisation, data or loss settings differ from the checkpoint's",
                        "bool", {}),
    "eval_batch_size": ("proteins / texts per evaluation batch", "int", {"low": 1}),
    "progress": ("show a progress bar", "bool", {}),
}
STAGE = Stage("pretrain", "03_pretrain", "ProtCLIP pretraining: align a protein encoder with a text encoder on "
              "the curated protein-text pairs (01_curate).", (
    Param("preset", "toy-cpu", "starting settings: 'toy-cpu' (tiny towers, CPU minutes) or 'server' "
          "(ESM-2 650M + PubMedBERT on GPUs); every other parameter overrides it", "str", choices=tuple(PRESETS)),
    *(Param(name, None, f"{text} [{_preset_values(name)}]", kind, none=True, **extra)
      for name, (text, kind, extra) in _SETTINGS.items()),
))


def _record_outputs(record: StageRecord, run_: RunDir, *, launched: bool) -> None:
    keys = ["pretrain_checkpoint", "protein_encoder", "pretrain_log", "pretrain_metrics", "pretrain_untrained_metrics"]
    if launched:  # the config torchrun's workers read
        keys.append("pretrain_config")
    for key in keys:
        record.wrote(run_.path(key))
    best = run_.path("checkpoints") / BEST_FILE
    if best.is_file():
        record.wrote(best)


def run(run_dir: str | Path, **params) -> StageResult | None:
    params = STAGE.validate(params)
    config = make_config(params["preset"], run_dir=str(run_dir),
                         **{k: v for k, v in params.items() if k != "preset"})
    record = StageRecord(STAGE, run_dir, params)
    record.resolve(**dataclasses.asdict(config))
    run_ = RunDir(run_dir)
    record.read(run_.require("proteins"))
    for spec in (config.protein_encoder, config.text_encoder):
        if spec not in BUILTIN_ENCODERS and Path(spec).exists():
            record.read(spec)
    checkpoint = run_.path("pretrain_checkpoint")
    if config.resume and checkpoint.is_file():  # the state this run continues from
        record.read(checkpoint)
    env = dist_env()
    launched = config.nproc > 1 and env.world == 1  # run_training starts torchrun
    with record.timed("train"):
        summary = run_training(config)
    if not env.is_main:  # a worker of ``torchrun -m protlab.pretrain``: rank 0 reports
        return None
    metrics = summary.pop("metrics", None)
    chosen = metrics or summary
    selection = {key: chosen.get(key) for key in ("best_step", "best_metric", "selection_note")}
    selection["best_valid_mrr"] = (chosen.get("best_valid") or {}).get("valid_mrr")
    history = read_log(run_dir)
    weights = loss_weights(config)
    figures, table = {}, None
    with record.timed("figures"):
        if history:
            figures["losses"] = mark_best_step(loss_figure(history, weights), history, selection["best_step"],
                                               selected=selection["selection_note"] is None)
            for path in save_figure(figures["losses"], run_.figure("pretrain_losses")).values():
                record.wrote(path)
        if metrics:
            table = metrics_table(metrics)
            figures["retrieval"] = metrics_figure(table, n_pairs=metrics.get("n_pairs"))
            for path in save_figure(figures["retrieval"], run_.figure("pretrain_retrieval")).values():
                record.wrote(path)
    _record_outputs(record, run_, launched=launched)
    record.results.update(steps=summary.get("step"), final_loss=summary.get("final_loss"),
                          loss_trends=loss_trends(history, weights), **selection)
    if metrics:
        record.results.update(split=metrics["split"], n_pairs=metrics["n_pairs"],
                              zero_shot_acc=metrics["zero_shot_acc"], mrr=metrics["mrr"],
                              zero_shot_coverage=metrics.get("zero_shot_coverage"),
                              untrained_mrr=(metrics.get("untrained") or {}).get("mrr"),
                              mrr_ratio=metrics.get("mrr_ratio"))
    record.save()
    return StageResult(record, figures, config=config, summary=summary, metrics=metrics, history=history,
                       table=table, checkpoint=checkpoint, protein_encoder=run_.path("protein_encoder"))


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: training and the held-out retrieval."""
    parts = [f"{results.get('steps')} steps, final loss {results.get('final_loss')}"]
    if results.get("best_valid_mrr") is not None:
        parts.append(f"exported step {results['best_step']} (best {results.get('best_metric')} "
                     f"{results['best_valid_mrr']:.3f})")
    elif results.get("best_step") is not None:
        parts.append("exported the last step (no valid split of 2+ pairs to select on)")
    if results.get("mrr") is not None:
        parts.append(f"{results.get('split')} ({results.get('n_pairs')} pairs): protein->text MRR {results['mrr']:.3f}"
                     + (f" ({results['mrr_ratio']:.2f}x the untrained model)" if results.get("mrr_ratio") else "")
                     + (f", zero-shot accuracy {results['zero_shot_acc']:.3f} on "
                        f"{results.get('zero_shot_coverage') or 0:.0%} of the pairs"
                        if results.get("zero_shot_acc") is not None else ", zero-shot not scored (no held-out label has training texts)"))
    parts.append(f"{timings.get('total', 0):.0f} s")
    return "; ".join(parts)


run.__doc__ = STAGE.docstring()
