"""The training-throughput benchmark runs on the CPU and counts the same FLOPs for fused and
fair-esm attention (its MFU on a GPU divides by this count)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_train_throughput as bench  # noqa: E402
import records  # noqa: E402


@pytest.fixture(autouse=True)
def _records_in_tmp(tmp_path, monkeypatch):
    """A benchmark run by a test writes its record under tmp_path, not benchmarks/results/."""
    monkeypatch.setattr(records, "RESULTS", tmp_path)


def test_fused_and_fair_esm_attention_count_the_same_flops():
    from protlab.pretrain.model import loss_weights

    model, _, cfg = bench.build("cpu")
    data = bench.synthetic_batch(model, 2, 24, 16, "cpu")
    weights, counts = loss_weights(cfg), []
    for fused in (True, False):
        model.fused_attention = fused
        counts.append(bench.count_flops(
            lambda: sum(weights[k] * v for k, v in model(data, weights=weights).items()).backward()))
    assert counts[0] == counts[1] > 0


@pytest.mark.parametrize("extra", [[], ["--esm-attention"]])
def test_throughput_benchmark_runs_on_cpu(capsys, tmp_path, extra):
    threads = torch.get_num_threads()
    try:
        bench.main(["--seq-len", "24", "--batch-size", "2", "--steps", "1", "--warmup", "0", *extra])
    finally:
        torch.set_num_threads(threads)  # main() sets one thread
    out = capsys.readouterr().out
    assert re.search(r"model FLOPs/step\s+[\d.]+ GFLOP", out) and "tokens/s" in out
    assert ("fair-esm (unfused)" in out) == bool(extra)
    [path] = tmp_path.glob("bench_train_throughput--cpu*.json")
    results = json.loads(path.read_text())["results"]
    assert results["tokens_per_s"] > 0 and results["gflop_per_step"] > 0 and results["mfu"] is None
