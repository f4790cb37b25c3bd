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

from protlab.core.rundir import RunDir
from protlab.core.runtime import dist_env
from protlab.core.stage import Param, Stage, StageRecord, StageResult
from protlab.plot.export import save_figure
from protlab.plot.pretrain import loss_figure, mark_best_step, metrics_figure
from protlab.pretrain.config import PRESETS, PretrainConfig, field_param, make_config, setting_names
from protlab.pretrain.loop import run_training
from protlab.pretrain.loss_log import loss_trends, read_log
from protlab.pretrain.model import loss_weights
from protlab.pretrain.retrieval import metrics_table
from protlab.pretrain.validation import BEST_FILE

BUILTIN_ENCODERS = ("tiny", "minilm")  # tower specs that are not files (nothing to fingerprint)


def _preset_values(name: str) -> str:
    """``preset: 600`` or ``preset: toy-cpu 600, server 50000``: what None keeps."""
    values = {preset: getattr(PretrainConfig(**over), name) for preset, over in PRESETS.items()}
    if len({repr(v) for v in values.values()}) == 1:
        return f"preset: {next(iter(values.values()))!r}"
    return "preset: " + ", ".join(f"{preset} {value!r}" for preset, value in values.items())


STAGE = Stage("pretrain", "03_pretrain", "ProtCLIP pretraining: align a protein encoder with a text encoder on "
              "the curated protein-text pairs (01_curate).", (
    Param("preset", "toy-cpu", "starting settings: 'toy-cpu' (tiny towers, CPU minutes) or 'server' "
          "(ESM-2 650M + PubMedBERT on GPUs); every other parameter overrides it", "str", choices=tuple(PRESETS)),
    # one parameter per config field, None keeping the preset's value
    *(field_param(name, None, none=True, help_suffix=f" [{_preset_values(name)}]") for name in setting_names()),
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
