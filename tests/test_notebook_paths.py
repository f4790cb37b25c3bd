"""Relative paths given to a notebook are read from the repository root, whatever the kernel's
working directory (JupyterLab starts kernels in notebooks/)."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from protlab.notebooks import NOTEBOOK_DIR, REPO, parameters_from, resolve_paths, run_notebook


def test_relative_paths_resolve_against_the_repository_root(tmp_path):
    given = {"run_dir": "runs/demo", "source": "toy", "structures": ["a.pdb", str(tmp_path / "b.pdb")],
             "sites": None, "encoder": "kmer", "text_encoder": "microsoft/some-bert", "cache_dir": str(tmp_path),
             "split_method": "kmer", "seed": 0, "checkpoint": "runs/demo/checkpoints/x.pt"}
    got = resolve_paths(given)
    assert got["run_dir"] == str(REPO / "runs" / "demo")
    assert got["structures"] == [str(REPO / "a.pdb"), str(tmp_path / "b.pdb")]  # absolute: as given
    assert got["checkpoint"] == str(REPO / "runs/demo/checkpoints/x.pt")
    for name in ("source", "sites", "encoder", "text_encoder", "cache_dir", "split_method", "seed"):
        assert got[name] == given[name], name  # names, None, absolute paths, other parameters
    assert resolve_paths({"encoder": "notebooks"})["encoder"] == str(NOTEBOOK_DIR)  # a path the repo holds
    assert parameters_from({"run_dir": "runs/x", "_hidden": 1})["run_dir"] == str(REPO / "runs" / "x")


def test_notebooks_run_from_notebooks_dir_write_to_the_repository_run_dir(tmp_path):
    """01 then 02 with a relative run_dir and the kernel in notebooks/, as JupyterLab runs them."""
    relative = f"runs/test-paths-{uuid.uuid4().hex[:10]}"
    run_dir = REPO / relative
    try:
        run_notebook("01_curate", {"run_dir": relative, "n_families": 3, "members_per_family": 6,
                                   "split_method": "kmer", "split_identity": 0.9},
                     output_dir=tmp_path, cwd=NOTEBOOK_DIR)
        run_notebook("02_embed", {"run_dir": relative, "kmer_dim": 8, "umap_max_points": 0},
                     output_dir=tmp_path, cwd=NOTEBOOK_DIR)  # reads what 01 wrote
        assert (run_dir / "proteins.parquet").is_file() and (run_dir / "embeddings.npy").is_file()
        assert not (NOTEBOOK_DIR / relative).exists()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(NOTEBOOK_DIR / relative, ignore_errors=True)
        for parent in (NOTEBOOK_DIR / "runs",):  # only when this test made it
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
    assert not Path(run_dir).exists()
