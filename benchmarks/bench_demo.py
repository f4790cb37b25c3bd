"""The demo a newcomer runs first: how long each notebook takes and whether its numbers reproduce.

Runs ``protlab.demo`` (every notebook through papermill, fixed seeds and thread counts) once
or more into fresh run directories and records each notebook's time, the headline numbers
(03 retrieval and zero-shot accuracy, 05 NMI / ACC of each clustering, 06 precision@k) and
whether every repeat gave the same numbers.

    python benchmarks/bench_demo.py [--quick] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from records import peak_rss_gib, write_record

REPO = Path(__file__).resolve().parent.parent
STAGES = ("curate", "embed", "pretrain", "cluster", "evaluate", "residues", "variants")


def headline(run_dir: Path) -> dict:
    """The numbers the demo's notebooks show, read from the run directory."""
    def read(name):
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else {}

    pretrain, metrics, residues = read("pretrain_metrics.json"), read("metrics.json"), read("residue_metrics.json")
    out = {"pretrain_mrr": pretrain.get("mrr"), "pretrain_mrr_ratio": pretrain.get("mrr_ratio"),
           "pretrain_zero_shot_acc": pretrain.get("zero_shot_acc")}
    for row in metrics.get("per_method", []):
        out[f"{row['method']}_nmi"], out[f"{row['method']}_acc"] = row.get("nmi"), row.get("acc")
    out["residues_precision_at_k"] = residues.get("precision_at_k")
    variants = read("variant_metrics.json").get("scorers", {}).get("score", {})
    out["variants_score_spearman"] = variants.get("spearman")
    out["residues_baseline_precision_at_k"] = residues.get("baseline_precision_at_k")
    return out


def stage_seconds(run_dir: Path) -> dict:
    seconds = {}
    for stage in STAGES:
        record = run_dir / f"{stage}.json"
        if record.is_file():
            seconds[stage] = json.loads(record.read_text())["timings"].get("total")
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny settings of make demo-quick")
    parser.add_argument("--repeats", type=int, default=2, help="runs into fresh directories; numbers must agree")
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "bench_demo"))
    args = parser.parse_args(argv)
    from protlab import demo

    runs = []
    for repeat in range(args.repeats):
        run_dir = Path(args.run_dir) / f"repeat{repeat}"
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        demo.run(run_dir, quick=args.quick)
        runs.append({"wall_seconds": time.perf_counter() - start, "stage_seconds": stage_seconds(run_dir),
                     "numbers": headline(run_dir)})
        print(f"repeat {repeat}: {runs[-1]['wall_seconds']:.0f} s; {runs[-1]['numbers']}", flush=True)
    reproduced = all(run["numbers"] == runs[0]["numbers"] for run in runs) if len(runs) > 1 else None
    print(f"numbers identical over {len(runs)} runs: {reproduced}" if reproduced is not None else
          "one run: reproducibility not checked (--repeats 2)")
    write_record("bench_demo", variant="quick" if args.quick else "full", params=vars(args),
                 title=f"The {'quick' if args.quick else 'full'} demo (make demo{'-quick' if args.quick else ''}): "
                       "every notebook on the toy universe, wall time per run and per stage, headline numbers.",
                 notes="stage seconds are each stage record's total (the notebook's kernel start and figures "
                       "come on top); 'reproduced': every repeat gave exactly the same numbers.",
                 table=[{"run": i, "wall seconds": run["wall_seconds"], **run["stage_seconds"]}
                        for i, run in enumerate(runs)],
                 results={"reproduced": reproduced, "numbers": runs[0]["numbers"],
                          "wall_seconds": [run["wall_seconds"] for run in runs], "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
