"""03_pretrain runs headless through papermill with tiny parameters on a small toy universe."""
from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest

import protlab
from protlab.demo import QUICK_PARAMS
from protlab.notebooks import run_notebook

pytestmark = pytest.mark.slow


def toy_run_dir(run_dir):
    """proteins.parquet written by 01_curate's stage (the quick toy universe: 4 families x 12)."""
    protlab.curate.run(run_dir, **QUICK_PARAMS["01_curate"])
    return run_dir


def test_notebook_03_tiny(tmp_path):
    run_dir = toy_run_dir(tmp_path / "run")
    held_out = int((pd.read_parquet(run_dir / "proteins.parquet")["split"] != "train").sum())
    params = {**QUICK_PARAMS["03_pretrain"], "run_dir": str(run_dir), "max_steps": 24,
              "protein_tiny_args": {"num_layers": 1, "embed_dim": 32, "attention_heads": 2},
              "text_tiny_args": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64}, "progress": False}
    executed = run_notebook("03_pretrain", params, output_dir=tmp_path / "executed")
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    for key in ("mrr", "recall_at_1", "recall_at_10", "zero_shot_acc"):
        assert 0 <= metrics[key] <= 1 and 0 <= metrics["untrained"][key] <= 1
    assert metrics["steps"] == 24 and metrics["n_pairs"] == held_out > 0 and metrics["n_classes"] == 4
    trends = metrics["loss_trends"]
    assert set(trends) == {"gc", "mlm", "bsr", "pda"}
    assert trends["mlm"]["decreased"] and trends["pda"]["decreased"]
    assert metrics["config"]["max_steps"] == 24 and metrics["config"]["batch_size"] == QUICK_PARAMS["03_pretrain"]["batch_size"]
    for name in ("pretrain_losses", "pretrain_retrieval"):
        assert (run_dir / "figures" / f"{name}.png").is_file() and (run_dir / "figures" / f"{name}.html").is_file()
    assert (run_dir / "checkpoints" / "protein_encoder.pt").is_file()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    # the stage record: the notebook's parameters as run() took them
    record = json.loads((run_dir / "pretrain.json").read_text())
    assert record["params"]["max_steps"] == 24 and record["params"]["preset"] == "toy-cpu"
    assert record["params"]["lr"] is None and record["results"]["zero_shot_acc"] == metrics["zero_shot_acc"]
    assert "proteins.parquet" in record["inputs"]
    # every cell ran and showed something: the summary, both figures, the table, the headline numbers
    nb = nbformat.read(str(executed), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
            and "injected-parameters" not in c.metadata.get("tags", [])]
    assert all(c.outputs for c in code[1:]), [c.source for c in code[1:] if not c.outputs]
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
