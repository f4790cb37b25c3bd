"""SCAN heads under torchrun (gloo on CPU, 2 ranks): rank 0 builds the graph, both ranks
train on their share of each batch and end with the same weights; stage 04 writes once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from protlab.cluster.scan import ScanClusterer
from protlab.cluster.stage import aligned_inputs
from protlab.core.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]
OPTIONS = dict(n_clusters=None, epochs=3, self_label_epochs=2, n_heads=2, hidden=32, min_steps=6, batch_size=16)

FIT = """
import os, sys, numpy as np, torch
from protlab.cluster.scan import ScanClusterer
data = np.load(sys.argv[1], allow_pickle=True)
model = ScanClusterer(**{options!r}).fit(data["x"], data["seqs"].tolist())
torch.save({{"state": model.model.state_dict(), "proba": model.predict_proba(data["x"], data["seqs"].tolist()),
            "info": {{k: model.info[k] for k in ("world_size", "n_clusters_estimated")}}}},
           os.path.join(sys.argv[2], "rank" + os.environ["RANK"] + ".pt"))
"""


def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MASTER_PORT": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d",
           "--rdzv-endpoint=localhost:0", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_ddp_ranks_train_the_same_heads_and_agree_with_one_process(make_toy_run, tmp_path):
    proteins, _, x, _ = aligned_inputs(RunDir(make_toy_run(members_per_family=12)))
    seqs = proteins["sequence"].astype(str).tolist()
    np.savez(tmp_path / "data.npz", x=x, seqs=np.array(seqs, dtype=object))
    script = tmp_path / "fit.py"
    script.write_text(FIT.format(options=OPTIONS))
    _torchrun([str(script), str(tmp_path / "data.npz"), str(tmp_path)], tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for name, value in ranks[0]["state"].items():  # gradients averaged: one model on both ranks
        assert torch.equal(value, ranks[1]["state"][name]), name
    assert ranks[0]["info"] == ranks[1]["info"] and ranks[0]["info"]["world_size"] == 2
    single = ScanClusterer(**OPTIONS).fit(x, seqs)
    assert single.info["world_size"] == 1
    assert single.info["n_clusters_estimated"] == ranks[0]["info"]["n_clusters_estimated"] == 4
    together = single.predict_proba(x, seqs).argmax(1)
    shared = ranks[0]["proba"].argmax(1)
    from sklearn.metrics import normalized_mutual_info_score

    assert normalized_mutual_info_score(together, shared) > 0.9  # half batches per rank, same clusters


@pytest.mark.slow
def test_stage_04_under_torchrun_writes_once_from_rank_0(make_toy_run, tmp_path):
    run_dir = make_toy_run(members_per_family=12)
    proc = _torchrun(["-m", "protlab.cluster", "--run-dir", str(run_dir), "--epochs", "2", "--self-label-epochs", "1",
                      "--map-max-points", "0"], tmp_path)
    assert proc.stdout.count("cluster: done") == 2  # both ranks finish
    info = json.loads((Path(run_dir) / "clusters" / "families.json").read_text())
    assert info["world_size"] == 2 and info["device"] == "cpu" and info["n_clusters"] == 4
    record = json.loads((Path(run_dir) / "cluster.json").read_text())
    assert record["params"]["device"] == "auto" and record["results"]["n_clusters"] == 4
    frame = RunDir(run_dir).load_proteins()
    import pandas as pd

    clusters = pd.read_parquet(Path(run_dir) / "clusters.parquet")
    assert len(clusters) == len(frame) and clusters["cluster"].nunique() == 4
