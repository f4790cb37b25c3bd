"""03_pretrain runs headless through papermill with tiny parameters on a small toy universe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from protlab.demo import QUICK_PARAMS
from protlab.notebooks import run_notebook
from protlab.core.rundir import save_proteins

pytestmark = pytest.mark.slow


def toy_run_dir(run_dir, *, n_families=4, members=12, seed=0):
    """proteins.parquet as 01_curate writes it: the toy universe with a per-family split column."""
    from protlab.curate.toy import make_universe

    frame = make_universe(n_families=n_families, members_per_family=members, seed=seed).proteins.copy()
    rng = np.random.default_rng(seed)
    split = np.empty(len(frame), dtype=object)
    for _, idx in frame.groupby("label").indices.items():
        idx = rng.permutation(idx)
        split[idx[:3]], split[idx[3:]] = "test", "train"
    frame["split"] = split
    save_proteins(run_dir, frame)
    return run_dir


def test_notebook_03_tiny(tmp_path):
    run_dir = toy_run_dir(tmp_path / "run")
    params = {**QUICK_PARAMS["03_pretrain"], "run_dir": str(run_dir), "max_steps": 24,
              "protein_tiny_args": {"num_layers": 1, "embed_dim": 32, "attention_heads": 2},
              "text_tiny_args": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64}, "progress": False}
    run_notebook("03_pretrain", params, output_dir=tmp_path / "executed")
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    for key in ("mrr", "recall_at_1", "recall_at_10", "zero_shot_acc"):
        assert 0 <= metrics[key] <= 1 and 0 <= metrics["untrained"][key] <= 1
    assert metrics["steps"] == 24 and metrics["n_pairs"] == 12 and metrics["n_classes"] == 4
    trends = metrics["loss_trends"]
    assert set(trends) == {"gc", "mlm", "bsr", "pda"}
    assert trends["mlm"]["decreased"] and trends["pda"]["decreased"]
    assert metrics["config"]["max_steps"] == 24 and metrics["config"]["batch_size"] == QUICK_PARAMS["03_pretrain"]["batch_size"]
    for name in ("pretrain_losses", "pretrain_retrieval"):
        assert (run_dir / "figures" / f"{name}.png").is_file() and (run_dir / "figures" / f"{name}.html").is_file()
    assert (run_dir / "checkpoints" / "protein_encoder.pt").is_file()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
