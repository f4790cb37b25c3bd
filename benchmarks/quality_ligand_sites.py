"""Ligand-binding sites of real complexes: 06 trained on sites, measured on held-out structures.

Runs stage 06 with its notebook defaults on the shared PoseBusters/Astex complexes
(``../shared/data/structures/ligand_sites``): ``structures`` = the protein files, ``sites`` =
``binding_sites_primary.tsv`` (residues within 4 Å of the benchmark ligand). 06 splits the
complexes at 30 % sequence identity (a third held out), trains the residue-level network and
writes ``residue_metrics.json``: precision@k (k = the site's size) of its residue scores on the
held-out complexes beside the cavity-detection baseline (pyKVFinder, residues lining the largest
cavities first), random picks and, when it is installed, the learned pocket predictor PocketNet
(``pip install pocketnet``; 06's ``peer``). With ``--test-structures``/``--test-sites`` the saved model is
then applied, unchanged, to other complexes (e.g. a hidden set of the same kind).

    python benchmarks/quality_ligand_sites.py --run-dir runs/ligand_sites [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from protlab.residues import run

from records import peak_rss_gib, write_record

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures" / "ligand_sites"
KEYS = ("precision_at_k", "baseline_precision_at_k", "random_precision_at_k", "n_proteins")


def measure(run_dir: Path, **params) -> dict:
    start = time.perf_counter()
    result = run(run_dir, **params)
    out = {k: result.metrics[k] for k in KEYS}
    out["peer_precision_at_k"] = result.metrics.get("peer_precision_at_k")  # None: PocketNet not installed
    out["seconds"] = round(time.perf_counter() - start, 1)
    if result.history:
        out["train_precision_at_k"] = result.history[-1].get("train_precision_at_k")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/ligand_sites"))
    parser.add_argument("--structures", type=Path, default=SHARED / "structures")
    parser.add_argument("--sites", type=Path, default=SHARED / "binding_sites_primary.tsv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache-dir", type=Path, help="residue-graph cache (default: RUN_DIR/graph_cache)")
    parser.add_argument("--test-structures", type=Path, help="complexes never seen, measured with the saved model")
    parser.add_argument("--test-sites", type=Path, help="their site table")
    args = parser.parse_args(argv)
    rows = {}
    cache = str(args.cache_dir or args.run_dir / "graph_cache")
    for seed in args.seeds:
        run_dir = args.run_dir / f"seed{seed}"
        rows[f"seed {seed}"] = measure(run_dir, structures=str(args.structures), sites=str(args.sites), seed=seed,
                                       cache_dir=cache)
        print(json.dumps({f"seed {seed}": rows[f"seed {seed}"]}), flush=True)
        if args.test_structures is not None:
            rows[f"seed {seed} unseen"] = measure(
                run_dir / "unseen", structures=str(args.test_structures), sites=str(args.test_sites),
                checkpoint=str(run_dir / "checkpoints" / "residue_cluster.pt"), cache_dir=cache)
            print(json.dumps({f"seed {seed} unseen": rows[f"seed {seed} unseen"]}), flush=True)
    held = [r for name, r in rows.items() if not name.endswith("unseen")]
    summary = {k: float(np.mean([r[k] for r in held])) for k in KEYS[:3]}
    summary["margin_over_baseline"] = summary["precision_at_k"] - summary["baseline_precision_at_k"]
    peers = [r["peer_precision_at_k"] for r in held if r["peer_precision_at_k"] is not None]
    if len(peers) == len(held):
        summary["peer_precision_at_k"] = float(np.mean(peers))
        summary["margin_over_peer"] = summary["precision_at_k"] - summary["peer_precision_at_k"]
    print(json.dumps({"mean over seeds (held-out third)": summary}, indent=1))
    unseen = [r["precision_at_k"] for name, r in rows.items() if name.endswith("unseen")]
    if unseen:
        summary["unseen_precision_at_k"] = float(np.mean(unseen))
    write_record("quality_ligand_sites", params=vars(args),
                 variant="seeds=" + "-".join(map(str, args.seeds)) + ("-unseen" if unseen else ""),
                 title="Ligand-binding sites of real protein–ligand complexes (PoseBusters/Astex): precision@k of "
                       "stage 06's residue scores on the held-out third (30 % identity split), notebook defaults.",
                 notes="precision_at_k: 06's model, k = the site's size; baseline: pyKVFinder cavity residues, "
                       "largest cavities first; peer: PocketNet's residue scores (when installed); random: random "
                       "residues; 'unseen' rows: the saved model applied "
                       "unchanged to the --test-structures set; results: means over seeds.",
                 table=[{"run": name, **r} for name, r in rows.items()],
                 results={**summary, "seeds": list(args.seeds), "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
