"""Shared fixtures: hermetic Jupyter dirs, the real data beside the repository, tiny runs."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from protlab.notebooks import hermetic_jupyter_env

hermetic_jupyter_env()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# A notebook cell that hangs fails naming itself before pytest-timeout (900 s) ends the test,
# and the cells' outputs so far are in the failure report (papermill's log, captured).
os.environ.setdefault("PROTLAB_CELL_TIMEOUT", "600")
os.environ.setdefault("PROTLAB_NOTEBOOK_LOG", "1")
# A slow Chromium costs a test at most this once per process; the PNG then comes from matplotlib.
os.environ.setdefault("PROTLAB_PNG_TIMEOUT", "30")
logging.getLogger("papermill").setLevel(logging.INFO)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PROTLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real public data); tests using it skip with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set PROTLAB_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of small-tensor tests: OpenMP oversubscription on busy
    shared CPUs made them up to 40x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def make_toy_run(tmp_path_factory):
    """``make(members_per_family=12, kmer_dim=32)``: a run dir as 01 + 02 leave it, made by the
    stages' own run() (4 toy families, k-mer embeddings)."""
    import protlab

    def make(members_per_family: int = 12, kmer_dim: int = 32) -> Path:
        run_dir = tmp_path_factory.mktemp("run")
        protlab.curate.run(run_dir, n_families=4, members_per_family=members_per_family, split_method="kmer",
                           split_identity=0.9)
        protlab.embed.run(run_dir, kmer_dim=kmer_dim, umap_max_points=10)
        return run_dir

    return make
