"""Ligand-binding sites of real complexes: 06 trained on sites, measured on held-out structures.

Runs stage 06 with its notebook defaults on the shared PoseBusters/Astex complexes
(``../shared/data/structures/ligand_sites``): ``structures`` = the protein files, ``sites`` =
``binding_sites_primary.tsv`` (residues within 4 Å of the benchmark ligand). 06 splits the
complexes at 30 % sequence identity (a third held out), trains the residue-level network and
writes ``residue_metrics.json``: precision@k (k = the site's size) of its residue scores on the
held-out complexes beside the cavity-detection baseline (pyKVFinder, residues lining the largest
cavities first), random picks and, when it is installed, the learned pocket predictor PocketNet
(``pip install 'protlab[peers]'``; 06's ``peer``), with which 06 then ensembles its site probability;
the network alone is measured in the same run (the ablation). With
``--test-structures``/``--test-sites`` the saved model is then applied, unchanged, to other complexes
(e.g. a hidden set of the same kind).

    python benchmarks/quality_ligand_sites.py --run-dir runs/ligand_sites [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from protlab.residues import run
from protlab.residues.pocket_peer import peer_available, peer_cache, peer_pockets, peer_version
from protlab.residues.site_pockets import Pocket, dca_success, pocket_summary, read_ligands

from records import peak_rss_gib, write_record

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures" / "ligand_sites"
KEYS = ("precision_at_k", "baseline_precision_at_k", "random_precision_at_k", "n_proteins")
# 06's command line in a process that writes its own peak RSS (KiB) to the file named first: VmHWM,
# which starts afresh at exec (ru_maxrss would carry over the benchmark's own peak from the fork).
MEASURED_CLI = ("import re, runpy, sys; out = sys.argv.pop(1); sys.argv[0] = 'protlab.residues'\n"
                "try:\n    runpy.run_module('protlab.residues', run_name='__main__')\n"
                "finally:\n    status = open('/proc/self/status').read()\n"
                "    open(out, 'w').write(re.search(r'VmHWM:\\s*(\\d+)', status).group(1))")
POCKET_KEYS = ("dca_top_n", "dca_top_n2", "recall", "precision", "mcc")


def ligands_of(structures, folder: Path | None) -> dict:
    """id → the molecules of the structure's ligand file (``<complex>_ligand.sdf`` beside the
    ``<complex>_protein.pdb`` naming of PoseBusters/Astex); structures without one are left out."""
    if folder is None:
        return {}
    paths = {s.id: folder / f"{s.id.removesuffix('_protein')}_ligand.sdf" for s in structures}
    return {i: read_ligands(p) for i, p in paths.items() if p.is_file()}


def native_dca(structures, ligands: dict, cache: str) -> dict:
    """DCA top-n / top-n+2 of PocketNet's own pockets (from its surface points), as PocketNet reports them."""
    native = peer_pockets(structures, peer_cache(cache)) or {}
    rows = [dca_success([Pocket(r + 1, row[0], row[1:], np.zeros(0, int)) for r, row in enumerate(native[s.id])],
                        np.concatenate(ligands[s.id]), n_ligands=len(ligands[s.id]))
            for s in structures if s.id in native and s.id in ligands]
    if not rows:
        return {}
    return {f"peer_native_{k}": float(np.mean([r[k] for r in rows])) for k in ("dca_top_n", "dca_top_n2")}


def pocket_results(result, ligand_dir: Path | None, cache: str) -> dict:
    """Pocket-level metrics (DCA top-n / top-n+2, the top pocket's residue recall / precision /
    MCC) of 06, its network alone, the peer and the cavity baseline, pockets made the same way
    from each one's scores; and the DCA of PocketNet's own pockets."""
    inputs = result.inputs
    structures = [ex.structure for ex in result.explanations]
    ligands = ligands_of(structures, ligand_dir)
    predictors = {"": {ex.id: ex.importance for ex in result.explanations}, "baseline_": inputs.baseline,
                  "peer_": inputs.peer or {},
                  "own_": {ex.id: ex.own for ex in result.explanations if ex.own is not None}}
    out = {}
    for prefix, scores in predictors.items():
        if scores:
            out.update({f"{prefix}{k}": v for k, v in pocket_summary(structures, scores, inputs.sites,
                                                                     ligands).items()})
    if inputs.peer:
        out.update(native_dca(structures, ligands, cache))
    return out


def measure(run_dir: Path, ligand_dir: Path | None = None, **params) -> tuple[dict, object]:
    """A row of the record for one 06 run, and the run's result."""
    start = time.perf_counter()
    result = run(run_dir, **params)
    seconds = round(time.perf_counter() - start, 1)
    out = {k: result.metrics[k] for k in KEYS}
    out["peer_precision_at_k"] = result.metrics.get("peer_precision_at_k")  # None: PocketNet not installed
    out["own_precision_at_k"] = result.metrics.get("own_precision_at_k")  # the network alone (None: no ensemble)
    out["seconds"] = seconds
    out["stage_seconds"] = {k: round(v, 1) for k, v in result.record.timings.items()}
    if result.history:
        out["train_precision_at_k"] = result.history[-1].get("train_precision_at_k")
    out.update(pocket_results(result, ligand_dir, params["cache_dir"]))
    out["peak_rss_gib"] = peak_rss_gib()
    return out, result


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows]
    return float(np.mean(values)) if values and None not in values else None


def summarise(rows: dict) -> dict:
    """Means over seeds: 06 with its defaults (ensembled with the peer when it is installed),
    its network alone (the ablation), the peer, the cavity baseline and random on the held-out
    thirds; 06 and the peer on the unseen set."""
    held = [r for name, r in rows.items() if not name.endswith("unseen")]
    pocket = [f"{who}{k}" for who in ("", "own_", "peer_", "baseline_", "peer_native_") for k in POCKET_KEYS]
    summary = {k: _mean(held, k) for k in (*KEYS[:3], "own_precision_at_k", "peer_precision_at_k",
                                           *[k for k in pocket if k in held[0]])}
    summary["margin_over_baseline"] = summary["precision_at_k"] - summary["baseline_precision_at_k"]
    if summary["peer_precision_at_k"] is not None:
        summary["margin_over_peer"] = summary["precision_at_k"] - summary["peer_precision_at_k"]
    unseen = [r for name, r in rows.items() if name.endswith("unseen")]
    if unseen:
        for key in ("precision_at_k", "own_precision_at_k", "peer_precision_at_k", "baseline_precision_at_k"):
            summary[f"unseen_{key}"] = _mean(unseen, key)
        peer = summary["unseen_peer_precision_at_k"]
        if peer is not None:
            summary["unseen_margin_over_peer"] = summary["unseen_precision_at_k"] - peer
    return {k: v for k, v in summary.items() if v is not None}


def prediction_speed(run_dir: Path, checkpoint: Path, structures: list[Path], cache: str) -> dict:
    """The saved model applied to ``structures`` (their graphs, pocket features and PocketNet
    scores already cached by the training) from the command line, as a user predicts on new
    files: wall seconds and the process's peak RSS."""
    folder = run_dir / "structures"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in structures:
        shutil.copy(path, folder)
    rss = run_dir / "peak_rss_kib.txt"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", MEASURED_CLI, str(rss), "--run-dir", str(run_dir / "run"), "--structures",
                    str(folder), "--checkpoint", str(checkpoint), "--cache-dir", cache,
                    "--max-views", str(len(structures))], check=True, stdout=subprocess.DEVNULL)
    return {"structures": len(structures), "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_gib": round(int(rss.read_text()) / 2**20, 2)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/ligand_sites"))
    parser.add_argument("--structures", type=Path, default=SHARED / "structures")
    parser.add_argument("--sites", type=Path, default=SHARED / "binding_sites_primary.tsv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache-dir", type=Path, help="residue-graph cache (default: RUN_DIR/graph_cache)")
    parser.add_argument("--test-structures", type=Path, help="complexes never seen, measured with the saved model")
    parser.add_argument("--test-sites", type=Path, help="their site table")
    parser.add_argument("--ligands", type=Path, default=SHARED / "ligands",
                        help="ligand files (<complex>_ligand.sdf) for the pocket-level metrics")
    parser.add_argument("--test-ligands", type=Path, help="the ligand files of --test-structures")
    parser.add_argument("--predict", type=int, default=30, help="held-out structures of the first seed the saved "
                        "model predicts on afterwards, timed (0: none)")
    args = parser.parse_args(argv)
    rows, held_out = {}, []
    cache = str(args.cache_dir or args.run_dir / "graph_cache")
    for seed in args.seeds:
        run_dir = args.run_dir / f"seed{seed}"
        rows[f"seed {seed}"], result = measure(run_dir, args.ligands, structures=str(args.structures),
                                               sites=str(args.sites), seed=seed, cache_dir=cache)
        held_out = held_out or [Path(ex.structure.source) for ex in result.explanations]
        print(json.dumps({f"seed {seed}": rows[f"seed {seed}"]}), flush=True)
        if args.test_structures is not None:
            rows[f"seed {seed} unseen"], _ = measure(
                run_dir / "unseen", args.test_ligands, structures=str(args.test_structures), sites=str(args.test_sites),
                checkpoint=str(run_dir / "checkpoints" / "residue_cluster.pt"), cache_dir=cache)
            print(json.dumps({f"seed {seed} unseen": rows[f"seed {seed} unseen"]}), flush=True)
    summary = summarise(rows)
    if args.predict:
        checkpoint = args.run_dir / f"seed{args.seeds[0]}" / "checkpoints" / "residue_cluster.pt"
        summary["prediction"] = prediction_speed(args.run_dir / "predict", checkpoint, held_out[:args.predict], cache)
        print(json.dumps({"prediction": summary["prediction"]}), flush=True)
    print(json.dumps({"mean over seeds": summary}, indent=1))
    unseen = "-unseen" if args.test_structures is not None else ""
    write_record("quality_ligand_sites", params=vars(args), variant="seeds=" + "-".join(map(str, args.seeds)) + unseen,
                 title="Ligand-binding sites of real protein–ligand complexes (PoseBusters/Astex): stage 06 with its "
                       "notebook defaults beside the learned pocket predictor PocketNet, cavity detection and random "
                       "on the held-out third (30 % identity split): precision@k, pocket-level DCA, residue MCC.",
                 notes="precision_at_k: 06's site probability with the notebook defaults (the network ensembled "
                       "with PocketNet when it is installed), k = the site's size; own_: the network alone (the "
                       "ablation, same run); peer_: PocketNet's residue scores on the same structures; baseline: "
                       "pyKVFinder cavity residues, largest cavities first; random: random residues; pocket "
                       "metrics (dca_top_n, dca_top_n2: a pocket centre within 4 A of a ligand atom among the top "
                       "n / n + 2, n = molecules in the ligand file; recall, precision, mcc: the top pocket's "
                       "residues) with each predictor's pockets made the same way from its scores, and peer_native_: "
                       "DCA of PocketNet's own pockets (from its surface points); 'unseen' rows: "
                       "the saved model applied unchanged to the --test-structures set; seconds: the whole 06 run "
                       "(PocketNet's scores from its cache when present); prediction: the first seed's model on "
                       "held-out files from the command line, cached features; results: means over seeds.",
                 table=[{"run": name, **r} for name, r in rows.items()],
                 results={**summary, "seeds": list(args.seeds), "peak_rss_gib": peak_rss_gib(),
                          "pocketnet": peer_version() if peer_available() else "not installed"})


if __name__ == "__main__":
    main()
