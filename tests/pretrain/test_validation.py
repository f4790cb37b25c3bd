"""Validation while training: valid retrieval and losses in the log, the best step kept as
checkpoints/best.pt and exported, resume through a kill between best.pt and last.pt, and the
fallback to the last step without a valid split."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from protlab import pretrain
from protlab.core import training_log
from protlab.core.errors import InputError
from protlab.pretrain import loop as T
from protlab.pretrain.config import make_config
from protlab.pretrain.stage import summary_line
from protlab.pretrain.validation import BEST_METRIC

from test_train import TINY, synthetic_proteins, tiny_run

STEPS = {"max_steps": 12, "ckpt_every": 4, "eval_every": 3}


def with_valid(n_valid: int = 2):
    """10 members per family: 2 test, ``n_valid`` valid (per family; 0 for none), the rest train."""
    frame = synthetic_proteins(members=10)
    member = frame["id"].str.rsplit("_", n=1).str[1].astype(int)
    frame.loc[(member >= 2) & (member < 2 + n_valid), "split"] = "valid"
    return frame


def protein_weights(path) -> dict:
    """The protein tower's weights of a protlab checkpoint (esm2 export or pretrain state)."""
    data = torch.load(path, weights_only=True)
    if data["kind"] == "esm2":
        return data["state_dict"]
    return {k.removeprefix("protein."): v for k, v in data["model"].items() if k.startswith("protein.")}


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validated")
    cfg = tiny_run(tmp, frame=with_valid(), **STEPS)
    return pretrain.run(cfg.run_dir, **TINY, **STEPS), Path(cfg.run_dir)


def test_valid_metrics_are_logged_every_eval_every_steps(validated_run):
    result, run_dir = validated_run
    log = T.read_log(run_dir)
    assert [r["step"] for r in log] == list(range(1, 13))
    validated = [r for r in log if "valid_mrr" in r]
    assert [r["step"] for r in validated] == [3, 6, 9, 12]
    for r in validated:
        assert 0 < r["valid_mrr"] <= 1 and 0 <= r["valid_recall_at_1"] <= r["valid_recall_at_10"] <= 1
        enabled = {"gc": 1.0, "mlm": 0.3, "bsr": 0.7, "pda": 1.0}
        assert r["valid_loss"] == pytest.approx(sum(w * r[f"valid_{k}"] for k, w in enabled.items()))
    # 6 valid pairs (2 per family): the MRR of random ranking is the mean of 1/rank, 1..6, about 0.41
    assert max(r["valid_mrr"] for r in validated) > np.mean(1 / np.arange(1, 7))
    best = max(validated, key=lambda r: (r["valid_mrr"], -r["step"]))  # ties keep the earlier step
    assert [r["best_step"] for r in validated][-1] == best["step"]
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    assert metrics["best_step"] == best["step"] and metrics["best_metric"] == BEST_METRIC == "valid MRR protein→text"
    assert metrics["best_valid"]["valid_mrr"] == best["valid_mrr"] and metrics["selection_note"] is None
    assert metrics["steps"] == 12
    assert result.results["best_step"] == best["step"]
    assert f"exported step {best['step']} (best valid MRR protein→text {best['valid_mrr']:.3f})" in summary_line(
        result.results, {"total": 1})


def test_the_best_step_is_exported_and_scored(validated_run):
    result, run_dir = validated_run
    metrics = result.metrics
    checkpoints = run_dir / "checkpoints"
    best = torch.load(checkpoints / "best.pt", weights_only=True)  # plain tensors and values only
    assert (best["kind"], best["step"], best["best_metric"]) == ("pretrain", metrics["best_step"], BEST_METRIC)
    exported, kept = protein_weights(checkpoints / "protein_encoder.pt"), protein_weights(checkpoints / "best.pt")
    assert exported.keys() == kept.keys() and all(torch.equal(exported[k], kept[k]) for k in kept)
    meta = torch.load(checkpoints / "protein_encoder.pt", weights_only=True)["meta"]
    assert (meta["step"], meta["selected_by"]) == (metrics["best_step"], BEST_METRIC)
    last = protein_weights(checkpoints / "last.pt")
    assert torch.load(checkpoints / "last.pt", weights_only=True)["step"] == 12
    if metrics["best_step"] != 12:  # the last step is not what was exported
        assert not all(torch.equal(exported[k], last[k]) for k in last)
    again = T.evaluate_checkpoint(run_dir, metrics["split"])  # re-scored from best.pt
    assert again["mrr"] == pytest.approx(metrics["mrr"]) and again["zero_shot_acc"] == metrics["zero_shot_acc"]
    assert "checkpoints/best.pt" in json.loads((run_dir / "pretrain.json").read_text())["outputs"]


def test_the_loss_figure_marks_the_exported_step(validated_run):
    result, _ = validated_run
    fig = result.figures["losses"]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert [s.x0 for s in lines] == [result.metrics["best_step"]]
    valid = next(t for t in fig.data if t.name == "valid total (weighted)")
    assert list(valid.x) == [3, 6, 9, 12]


def test_resume_after_a_kill_between_best_and_last_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    """Killed at step 10: best.pt may hold step 9, last.pt step 8; the resumed run must keep
    the same log, best step and exported encoder as a run never stopped."""
    frame = with_valid()
    straight, killed = (tiny_run(tmp_path, name, frame=frame, **STEPS) for name in ("straight", "killed"))
    T.run_training(straight)
    real_append = training_log.append_line

    def die_at_step_10(path, line):
        if json.loads(line)["step"] == 10:
            raise KeyboardInterrupt("killed")
        return real_append(path, line)

    monkeypatch.setattr(training_log, "append_line", die_at_step_10)
    with pytest.raises(KeyboardInterrupt):
        T.run_training(killed)
    monkeypatch.setattr(training_log, "append_line", real_append)
    assert torch.load(Path(killed.run_dir) / "checkpoints" / "last.pt", weights_only=True)["step"] == 8
    T.run_training(killed)
    a, b = T.read_log(straight.run_dir), T.read_log(killed.run_dir)
    assert [r["step"] for r in b] == list(range(1, 13))
    for ra, rb in zip(a, b):
        keys = {k for k in ra if k.startswith(("valid_", "best_")) or k in ("loss", "gc", "lr")}
        assert keys == {k for k in rb if k.startswith(("valid_", "best_")) or k in ("loss", "gc", "lr")}
        assert all(ra[k] == rb[k] for k in keys), ra["step"]
    ma, mb = (json.loads((Path(c.run_dir) / "pretrain_metrics.json").read_text()) for c in (straight, killed))
    assert ma["best_step"] == mb["best_step"] and ma["mrr"] == mb["mrr"]
    ea, eb = (protein_weights(Path(c.run_dir) / "checkpoints" / "protein_encoder.pt") for c in (straight, killed))
    assert all(torch.equal(ea[k], eb[k]) for k in ea)


@pytest.mark.parametrize("n_valid, reason", [(0, "no usable valid split"), (1, "choosing a step needs at least 2")])
def test_without_a_valid_split_the_last_step_is_exported_and_said_once(tmp_path, capsys, n_valid, reason):
    frame = with_valid(n_valid)
    if n_valid == 1:  # one valid protein in all
        frame.loc[(frame["split"] == "valid") & ~frame["id"].str.startswith("s0_"), "split"] = "train"
    over = {"max_steps": 6, "ckpt_every": 3, "eval_every": 3}
    cfg = tiny_run(tmp_path, frame=frame, **over)
    result = pretrain.run(cfg.run_dir, **TINY, **over)
    run_dir = Path(cfg.run_dir)
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    assert metrics["best_step"] == 6 and metrics["best_metric"] == "none: the last step"
    assert reason in metrics["selection_note"] and "protein_encoder.pt is the last step" in metrics["selection_note"]
    notes = [r["note"] for r in T.read_log(run_dir) if "note" in r]
    assert notes == [metrics["selection_note"]]  # once, in the first record
    assert not any("valid_mrr" in r for r in T.read_log(run_dir))
    assert capsys.readouterr().out.count("no step selection") == 1
    assert not (run_dir / "checkpoints" / "best.pt").exists()
    exported, last = (protein_weights(run_dir / "checkpoints" / n) for n in ("protein_encoder.pt", "last.pt"))
    assert all(torch.equal(exported[k], last[k]) for k in last)
    assert "exported the last step (no valid split of 2+ pairs to select on)" in summary_line(result.results, {})
    assert [s.x0 for s in result.figures["losses"].layout.shapes if s.type == "line"] == [6]


def test_eval_every_must_be_positive(tmp_path):
    with pytest.raises(InputError, match=r"^eval_every=0 is not allowed"):
        pretrain.run(tmp_path, eval_every=0)
    with pytest.raises(InputError, match=r"config: eval_every=0 is not allowed: use int >= 1"):
        make_config(eval_every=0)
