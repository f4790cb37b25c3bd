"""Held-out quality of 03_pretrain's defaults over seeds: zero-shot accuracy and MRR ratio.

Curates the default toy universe once (01_curate's defaults: 8 families x 40 members,
MMseqs2 identity split when installed), then trains the ``toy-cpu`` preset with every
default except ``seed`` and prints, per seed, the test split's zero-shot family accuracy,
protein->text MRR of the trained and untrained model and their ratio, whether every loss
decreased, and the training time. Targets (issue 4): zero-shot >= 0.9, MRR ratio >= 3,
every loss decreasing, under 10 minutes on CPU.

``python benchmarks/quality_pretrain.py [--seeds 0 1 2] [--set key=value ...]``; each seed
takes about 7 minutes on one CPU thread.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (as protlab.train)")
    p.add_argument("--work-dir", default=None, help="keep the runs here (default: a temporary directory)")
    return p.parse_args(argv)


def curate_toy(run_dir: Path) -> None:
    from protlab.notebooks import run_notebook

    run_notebook("01_curate", {"run_dir": str(run_dir)}, output_dir=run_dir / "executed")


def main(argv=None) -> None:
    from protlab.config import make_config
    from protlab.train import parse_overrides, train

    args = parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="protlab-quality-pretrain-"))
    curated = work / "curated"
    if not (curated / "proteins.parquet").is_file():
        curate_toy(curated)
    overrides = parse_overrides(args.set)
    rows = []
    for seed in args.seeds:
        run_dir = work / f"seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(curated / "proteins.parquet", run_dir / "proteins.parquet")
        config = make_config("toy-cpu", **{**overrides, "run_dir": str(run_dir), "seed": seed,
                                          "resume": False, "progress": False})
        start = time.perf_counter()
        m = train(config)["metrics"]
        rows.append({"seed": seed, "n_test": m["n_pairs"], "zero_shot_acc": m["zero_shot_acc"],
                     "mrr": m["mrr"], "untrained_mrr": m["untrained"]["mrr"], "mrr_ratio": m["mrr_ratio"],
                     "losses_decrease": all(t["decreased"] for t in m["loss_trends"].values()),
                     "seconds": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| seed | test pairs | zero-shot acc | MRR | untrained MRR | ratio | losses decrease | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['seed']} | {r['n_test']} | {r['zero_shot_acc']:.3f} | {r['mrr']:.3f} | {r['untrained_mrr']:.3f} "
              f"| {r['mrr_ratio']:.2f} | {r['losses_decrease']} | {r['seconds']:.0f} |")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
