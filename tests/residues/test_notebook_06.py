"""06_critical_residues runs headless: on the toy universe (training), then on a real file (saved model)."""
from __future__ import annotations

import json

import pytest
import torch

from protlab.demo import QUICK_PARAMS
from protlab.notebooks import run_notebook

TINY = {"epochs": 2, "n_families": 2, "members_per_family": 4, "length_range": [50, 60], "hidden": 16,
        "max_views": 2, "top_k": 5}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the kernel inherits it: no oversubscription
    run_dir = tmp_path_factory.mktemp("nb06")
    run_notebook("06_critical_residues", {**TINY, "run_dir": str(run_dir)}, output_dir=run_dir / "executed")
    return run_dir


def test_toy_run_writes_every_artifact(toy_run):
    metrics = json.loads((toy_run / "residue_metrics.json").read_text())
    for key in ("precision_at_k", "random_precision_at_k", "baseline_precision_at_k"):
        assert 0.0 <= metrics[key] <= 1.0
    ckpt = torch.load(toy_run / "checkpoints" / "residue_cluster.pt", weights_only=True)
    held_out = ckpt["meta"]["held_out"]            # 20 % of the 8 toy proteins, never trained on
    assert len(held_out) == 2 and {r["id"] for r in metrics["per_protein"]} == set(held_out)
    assert metrics["n_proteins"] == 2 and metrics["source"] == "toy"
    assert 0.0 < metrics["random_precision_at_k"] < 0.15  # 3-5 site residues of 50-60
    figures = toy_run / "figures"
    views = sorted(figures.glob("residues_3d_*.html"))
    assert len(views) == 2 and all(v.stat().st_size > 10_000 for v in views)
    assert (figures / "residue_importance.html").is_file() and (figures / "residue_importance.png").is_file()
    assert (ckpt["format"], ckpt["kind"]) == ("protlab", "residue-cluster") and ckpt["meta"]["trained_on"] == "toy"
    import pandas as pd

    table = pd.read_parquet(toy_run / "residues" / "critical_residues.parquet")
    assert {"id", "chain", "residue_number", "residue", "score", "cluster", "iteration"} <= set(table.columns)


def test_toy_run_writes_the_stage_record(toy_run):
    record = json.loads((toy_run / "residues.json").read_text())
    assert record["params"]["epochs"] == TINY["epochs"] and record["params"]["sites"] is None
    assert "checkpoints/residue_cluster.pt" in record["outputs"] and "total" in record["timings"]
    assert record["results"]["n_structures"] == 2 and 0.0 <= record["results"]["precision_at_k"] <= 1.0
    executed = (toy_run / "executed" / "06_critical_residues.ipynb").read_text()
    assert "Traceback" not in executed and "iframe" in executed  # the inspector was drawn
    assert f"epoch {TINY['epochs']}/{TINY['epochs']}" in executed  # training progress reaches papermill's log
    outputs = [o for c in json.loads(executed)["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    static = [o for o in outputs if "text/html" in o.get("data", {}) and "protlab-legend" in "".join(
        o["data"]["text/html"]) and "application/vnd.jupyter.widget-view+json" not in o["data"]]
    assert static  # a view that shows without widget state when the notebook is reopened


def test_real_structure_with_saved_model(toy_run, shared_data, tmp_path):
    pdb = shared_data / "structures" / "pdb" / "1k6p.pdb"
    sites = shared_data / "structures" / "site_records.tsv"
    run_notebook("06_critical_residues", {"run_dir": str(tmp_path), "structures": str(pdb), "top_k": 5,
                                          "checkpoint": str(toy_run / "checkpoints" / "residue_cluster.pt"),
                                          "sites": str(sites), "toy_model": True},
                 output_dir=tmp_path / "executed")
    assert not (tmp_path / "checkpoints").exists()  # nothing trained
    metrics = json.loads((tmp_path / "residue_metrics.json").read_text())  # 1k6p has SITE records
    assert metrics["n_proteins"] == 1 and "baseline_precision_at_k" not in metrics
    assert (tmp_path / "figures" / "residues_3d_1k6p.html").is_file()
    record = json.loads((tmp_path / "residues.json").read_text())
    assert str(sites) in record["inputs"] and str(pdb) in record["inputs"]


def test_unknown_notebook_parameter_is_named(tmp_path):
    from protlab.core.errors import InputError

    with pytest.raises(InputError, match="epoch"):
        run_notebook("06_critical_residues", {"run_dir": str(tmp_path), "epoch": 2}, output_dir=tmp_path)


def test_quick_params_are_small():
    assert QUICK_PARAMS["06_critical_residues"]["epochs"] <= 3


def warn_slow_cells(executed, *, limit: float) -> None:
    """A warning naming the slowest cells when the notebook took over ``limit`` seconds: CI
    prints warnings, so a slow machine's cause shows without failing the test."""
    import warnings

    cells = json.loads(executed.read_text())["cells"]
    timed = [(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0, "".join(c["source"])[:60])
             for c in cells]
    if sum(t for t, _ in timed) > limit:
        slowest = sorted(timed, reverse=True)[:3]
        warnings.warn("06 notebook took {:.0f} s; slowest cells: {}".format(
            sum(t for t, _ in timed), "; ".join(f"{t:.0f} s {src!r}" for t, src in slowest)))


@pytest.mark.slow
def test_notebook_trains_on_real_sites(shared_data, tmp_path):
    """The notebook on real complexes with a site table: trains, measures the held-out ones beside
    the cavity baseline, shows the curves and the views (also as plain HTML)."""
    import shutil

    folder = tmp_path / "complexes"
    folder.mkdir()
    source = shared_data / "structures" / "ligand_sites"
    for path in sorted((source / "structures").glob("*.pdb"))[:6]:
        shutil.copy(path, folder / path.name)
    run_dir = tmp_path / "run"
    out = run_notebook("06_critical_residues", {"run_dir": str(run_dir), "structures": str(folder),
                                                "sites": str(source / "binding_sites_primary.tsv"), "epochs": 2,
                                                "hidden": 16, "max_views": 1, "test_fraction": 0.34},
                       output_dir=run_dir / "executed")
    executed = out.read_text()
    warn_slow_cells(out, limit=180)
    assert "Traceback" not in executed and "epoch 2/2" in executed  # training progress in papermill's log
    metrics = json.loads((run_dir / "residue_metrics.json").read_text())
    assert metrics["baseline"].startswith("cavity detection (pyKVFinder)") and metrics["n_proteins"] >= 1
    assert (run_dir / "figures" / "residue_training.png").is_file()
    record = json.loads((run_dir / "residues.json").read_text())
    assert record["params"]["epochs"] == 2 and record["results"]["model_task"] == "residue"
