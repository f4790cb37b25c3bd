"""The demo pipeline: every notebook that exists, in order, on the toy universe.

``python -m protlab.demo [--run-dir runs/demo] [--quick]`` executes the notebooks into
``run_dir/executed/``; the figures stay in ``run_dir/figures/`` (untracked, like the whole run
directory). A relative ``--run-dir`` is read from the repository root, as in the notebooks.
``--quick`` uses the tiny settings the tests use.

Two demos on one machine give the same numbers: every notebook gets the same seed, and the
kernels run with fixed thread counts (torch, OpenMP, BLAS, numba) and a fixed hash seed, since
parallel reductions summed in a different order and set iteration order change results.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time
from pathlib import Path

from protlab.notebooks import NOTEBOOK_DIR, repo_path, run_notebook
from protlab.plot.export import find_chromium

DEMO_SEED = 0
# The kernels inherit these. One thread: the demo's stages train on one torch thread anyway,
# and a BLAS or OpenMP pool sized by the machine's load would sum in a varying order.
REPRODUCIBLE_ENV = {
    "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_DYNAMIC": "FALSE",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # deterministic cuBLAS when a GPU is used
}

# Per-notebook parameters for the demo; run_dir is added for each.
DEMO_PARAMS: dict[str, dict] = {
    "01_curate": {},
    "02_embed": {},
    "03_pretrain": {"resume": False},  # the demo trains from scratch, whatever an older run left
    "04_cluster": {},
    "05_evaluate": {},
    "06_critical_residues": {},
}
# Tiny settings shared with the tests (PROTLAB quick mode).
QUICK_PARAMS: dict[str, dict] = {
    "01_curate": {"n_families": 4, "members_per_family": 12, "split_method": "kmer", "split_identity": 0.9},
    "02_embed": {},
    "03_pretrain": {"resume": False, "max_steps": 20, "batch_size": 8, "log_every": 2, "warmup_steps": 4},
    "04_cluster": {"epochs": 5, "self_label_epochs": 2, "n_heads": 2, "k": 5},
    "05_evaluate": {},
    "06_critical_residues": {"epochs": 2, "n_families": 3, "members_per_family": 4, "length_range": [50, 70],
                             "hidden": 16, "max_views": 2},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="runs/demo", help="relative paths are read from the repository root")
    parser.add_argument("--quick", action="store_true", help="tiny settings (as in the tests)")
    return parser.parse_args(argv)


@contextlib.contextmanager
def reproducible_environment():
    """Kernels started in this block get fixed thread counts and hash seed (see the module
    docstring); the caller's environment is restored after it."""
    before = {name: os.environ.get(name) for name in REPRODUCIBLE_ENV}
    os.environ.update(REPRODUCIBLE_ENV)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(run_dir: str | Path, *, quick: bool = False) -> list[Path]:
    run_dir = Path(repo_path(run_dir))
    shutil.rmtree(run_dir / "figures", ignore_errors=True)  # only this run's figures
    executed = []
    if find_chromium() is None:
        print("[demo] no Chromium (apt-get install chromium): PNG figures are drawn with matplotlib", flush=True)
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    for nb in notebooks:
        params = {"seed": DEMO_SEED, **(QUICK_PARAMS if quick else DEMO_PARAMS).get(nb.stem, {})}
        params["run_dir"] = str(run_dir)
        start = time.perf_counter()
        print(f"[demo] {nb.name} ...", flush=True)
        with reproducible_environment():
            executed.append(run_notebook(nb.name, params, output_dir=run_dir / "executed", progress=False))
        print(f"[demo] {nb.name} done in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"[demo] executed notebooks in {run_dir / 'executed'}, figures in {run_dir / 'figures'}", flush=True)
    return executed


def main(argv=None) -> None:
    args = parse_args(argv)
    run(args.run_dir, quick=args.quick)


if __name__ == "__main__":
    main()
