"""Held-out quality of 03_pretrain's defaults over seeds: zero-shot accuracy and MRR ratio.

Curates the default toy universe once (01_curate's defaults: 8 families x 40 members,
MMseqs2 identity split when installed), then trains the ``toy-cpu`` preset with every
default except ``seed`` and prints, per seed, the held-out pairs' (``eval_split``: valid+test)
zero-shot family accuracy, protein->text MRR of the trained and untrained model and their
ratio, the same on the test split alone, whether every loss decreased, and the training
time. Targets (issue 4): zero-shot >= 0.9, MRR ratio >= 3, every loss decreasing, under 10
minutes on CPU. First it prints the ceiling of the MRR ratio (:func:`family_oracle`).

``python benchmarks/quality_pretrain.py [--seeds 0 1 2] [--set key=value ...]``; the seeds
train one after another.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from protlab import curate, pretrain  # noqa: E402
from protlab.core.rundir import RunDir  # noqa: E402
from protlab.pretrain.loop import evaluate_checkpoint  # noqa: E402
from protlab.pretrain.train_config import parse_overrides  # noqa: E402
from records import write_record  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="parameters of protlab.pretrain.run (VALUE parsed as JSON when it can be)")
    p.add_argument("--work-dir", default=None, help="keep the runs here (default: a temporary directory)")
    return p.parse_args(argv)


def curate_toy(run_dir: Path) -> None:
    curate.run(run_dir)  # 01_curate's defaults


def family_oracle(proteins, split: str, *, draws: int = 2000, seed: int = 0) -> dict:
    """Protein->text MRR of a model perfect at family level that orders a family's texts at random
    (their differences are noise no sequence predicts), against random ranking; mean and 5-95 %.

    A text's family is the one whose training texts carry its SIMILARITY line (the toy borrows
    5 % of descriptions from another family, which such a model ranks with that family)."""
    train = proteins[proteins["split"] == "train"]
    family_of_line = train.groupby("similarity")["label"].agg(lambda s: s.mode()[0]).to_dict()
    held = proteins[proteins["split"].isin(split.split("+"))]
    text_family = np.array([family_of_line.get(v, "?") for v in held["similarity"]])
    same = held["label"].to_numpy()[:, None] == text_family[None, :]
    rng, n = np.random.default_rng(seed), len(held)

    def mrr(score):
        return float((1.0 / ((score > score.diagonal()[:, None]).sum(1) + 1)).mean())

    oracle = [mrr(same + 0.5 * rng.random((n, n))) for _ in range(draws)]
    chance = [mrr(rng.random((n, n))) for _ in range(draws)]
    ratio = np.array(oracle) / np.mean(chance)
    return {"pairs": n, "ratio": float(ratio.mean()), "p5": float(np.percentile(ratio, 5)),
            "p95": float(np.percentile(ratio, 95))}


def main(argv=None) -> None:
    args = parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="protlab-quality-pretrain-"))
    curated = work / "curated"
    proteins_path = RunDir(curated).path("proteins")
    if not proteins_path.is_file():
        curate_toy(curated)
    overrides = parse_overrides(args.set)
    proteins = pd.read_parquet(proteins_path)
    ceiling = {}
    for split in ("valid+test", "test"):
        o = ceiling[split] = family_oracle(proteins, split)
        print(f"[ceiling] {split} ({o['pairs']} pairs): a family-perfect model expects an MRR ratio of "
              f"{o['ratio']:.2f} (5-95 %: {o['p5']:.2f}-{o['p95']:.2f})", flush=True)
    rows = []
    for seed in args.seeds:
        run_dir = work / f"seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(proteins_path, RunDir(run_dir).path("proteins"))
        result = pretrain.run(run_dir, **{**overrides, "seed": seed, "resume": False, "progress": False})
        m, seconds = result.metrics, result.record.timings["train"]
        test = evaluate_checkpoint(run_dir, "test")  # the test split alone, for comparison
        rows.append({"seed": seed, "split": m["split"], "n_pairs": m["n_pairs"], "zero_shot_acc": m["zero_shot_acc"],
                     "mrr": m["mrr"], "untrained_mrr": m["untrained"]["mrr"], "mrr_ratio": m["mrr_ratio"],
                     "test_pairs": test["n_pairs"], "test_zero_shot_acc": test["zero_shot_acc"],
                     "test_mrr_ratio": test["mrr_ratio"],
                     "losses_decrease": all(t["decreased"] for t in m["loss_trends"].values()), "seconds": seconds})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| seed | eval split (pairs) | zero-shot acc | MRR | untrained MRR | ratio | test only: zero-shot, ratio "
          "| losses decrease | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['seed']} | {r['split']} ({r['n_pairs']}) | {r['zero_shot_acc']:.3f} | {r['mrr']:.3f} "
              f"| {r['untrained_mrr']:.3f} | {r['mrr_ratio']:.2f} | {r['test_zero_shot_acc']:.3f}, "
              f"{r['test_mrr_ratio']:.2f} ({r['test_pairs']}) | {r['losses_decrease']} | {r['seconds']:.0f} |")
    write_record("quality_pretrain", params={**vars(args), "overrides": overrides},
                 variant="-".join(["seeds=" + "-".join(map(str, args.seeds)), *args.set]),
                 title="ProtCLIP pretraining (03_pretrain's toy-cpu defaults) on the default toy universe: held-out "
                       "zero-shot family accuracy and protein->text MRR against the untrained model, per seed.",
                 notes="Held-out pairs: valid+test (test alone beside them); mrr_ratio: trained MRR over the "
                       "untrained model's; ceiling_mrr_ratio: what a model perfect at family level would expect.",
                 table=rows,
                 results={"zero_shot_acc_mean": float(np.mean([r["zero_shot_acc"] for r in rows])),
                          "mrr_ratio_mean": float(np.mean([r["mrr_ratio"] for r in rows])),
                          "mrr_ratio_min": float(min(r["mrr_ratio"] for r in rows)),
                          "losses_decrease_all": all(r["losses_decrease"] for r in rows),
                          "seconds_max": float(max(r["seconds"] for r in rows)),
                          "ceiling_mrr_ratio": {split: o["ratio"] for split, o in ceiling.items()}})
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
