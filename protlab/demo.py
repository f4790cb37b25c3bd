"""The demo pipeline: every notebook that exists, in order, on the toy universe.

``python -m protlab.demo [--run-dir runs/demo] [--quick]`` executes the notebooks into
``run_dir/executed/`` and copies ``run_dir/figures/`` to the repository's ``figures/``.
``--quick`` uses the tiny settings the tests use.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from protlab.notebooks import NOTEBOOK_DIR, REPO, run_notebook
from protlab.plot.export import find_chromium

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
    parser.add_argument("--run-dir", default="runs/demo")
    parser.add_argument("--quick", action="store_true", help="tiny settings (as in the tests)")
    parser.add_argument("--no-copy-figures", action="store_true")
    return parser.parse_args(argv)


def run(run_dir: str | Path, *, quick: bool = False, copy_figures: bool = True) -> list[Path]:
    run_dir = Path(run_dir).resolve()
    shutil.rmtree(run_dir / "figures", ignore_errors=True)  # only this run's figures are copied
    executed = []
    if find_chromium() is None:
        print("[demo] no Chromium (apt-get install chromium): PNG figures are drawn with matplotlib", flush=True)
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    for nb in notebooks:
        params = dict((QUICK_PARAMS if quick else DEMO_PARAMS).get(nb.stem, {}))
        params["run_dir"] = str(run_dir)
        start = time.perf_counter()
        print(f"[demo] {nb.name} ...", flush=True)
        executed.append(run_notebook(nb.name, params, output_dir=run_dir / "executed", progress=False))
        print(f"[demo] {nb.name} done in {time.perf_counter() - start:.0f} s", flush=True)
    if copy_figures and (run_dir / "figures").is_dir():
        dest = REPO / "figures"
        dest.mkdir(exist_ok=True)
        made = {fig.name for fig in (run_dir / "figures").iterdir() if fig.is_file()}
        for old in dest.iterdir():  # figures/ mirrors the latest demo: drop what it no longer makes
            if old.is_file() and old.name not in made:
                old.unlink()
        for name in sorted(made):
            shutil.copy2(run_dir / "figures" / name, dest / name)
        print(f"[demo] figures copied to {dest}")
    return executed


def main(argv=None) -> None:
    args = parse_args(argv)
    run(args.run_dir, quick=args.quick, copy_figures=not args.no_copy_figures)


if __name__ == "__main__":
    main()
