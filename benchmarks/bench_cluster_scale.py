"""Family discovery at scale on real Pfam domains with natural family sizes (issue 12).

For each set built by ``benchmarks/pfam_natural_sets.py`` (10^4, 3·10^4, 10^5 domains, …)
runs the stages 01 → 02 (k-mer encoder) → 04 → 05 with their defaults, each as its own
``python -m protlab.<stage>`` process, and measures its wall time and peak RSS; then
``mmseqs easy-cluster`` (default settings) on the same FASTA, and (up to ``--spectral-max``
proteins) scikit-learn spectral clustering of the MMseqs2 homology graph; k-means and PCA +
k-means come from 05's baselines. 04 writes two clusterings from one fit: ``families`` (the
homology graph's families, its default) and ``scan`` (the SCAN heads' own argmax); both are
reported. Quality comes from 05's metrics (labels from the set's ``.labels.tsv``, never seen
by 01–04) and per Pfam family: precision and recall of every family with at least 50
members after Hungarian matching (counted for families of >= 200 and >= 50), and the merges and
splits 04 made to meet ``n_clusters``. The growth exponent of each stage is the slope of
log(seconds) on log(n).

    python benchmarks/bench_cluster_scale.py --sets runs/natural_sets/natural_10000 \
        runs/natural_sets/natural_30000 [--estimate] [--out runs/bench_scale]

``--estimate`` runs 04 with ``n_clusters=None`` (no labels anywhere), so it estimates the
number of families; otherwise the true number (from the labels file) is given.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from records import peak_rss_gib, write_record

REPO = Path(__file__).resolve().parent.parent


# Runs a module as __main__ and reports its peak memory: its own VmHWM (a forked child's
# ru_maxrss would start at this benchmark's own size) or its largest child's (MMseqs2).
PEAK = """import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
finally:
    own = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print(f"PEAK_KB {max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)}", flush=True)
"""


def timed_module(module: str, args: list[str]) -> tuple[float, float]:
    """``(seconds, peak RSS in GB)`` of ``python -m module args`` (fails loudly when it fails)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, module, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"{module} {' '.join(args)} failed:\n{out[-3000:]}")
    peak_kb = int(out.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1024**2


def family_recovery(labels: np.ndarray, clusters: np.ndarray, min_size: int = 200) -> pd.DataFrame:
    """05's per-family precision and recall after Hungarian matching, for the families of at
    least ``min_size`` members."""
    from protlab.evaluate.metrics import per_family

    table = per_family(labels, clusters)
    return table[table["size"] >= min_size].reset_index(drop=True)


def heads_agreement_by_family(families: pd.DataFrame, heads: pd.DataFrame, truth: pd.Series,
                              min_size: int = 50) -> dict:
    """How often the SCAN heads' argmax (``heads``: 04's ``scan`` clustering) equals the protein's
    homology-graph family (``families``; 04 trains the heads towards those families, so the
    indices are shared): over all proteins, and per family of at least ``min_size`` members, by
    04's families and by the true labels (the lowest share and how many families fall under 0.9)."""
    frame = pd.DataFrame({"family": families["cluster"].to_numpy(),
                          "label": truth.reindex(families["id"].astype(str)).to_numpy(),
                          "agree": heads.set_index("id")["cluster"].reindex(families["id"]).to_numpy()
                          == families["cluster"].to_numpy()})
    out = {"heads_agreement": float(frame["agree"].mean())}
    for by in ("family", "label"):
        groups = frame.groupby(by)["agree"].agg(["mean", "size"])
        groups = groups[groups["size"] >= min_size]
        out[f"heads_agreement_min_{by}"] = float(groups["mean"].min()) if len(groups) else None
        out[f"heads_agreement_under_90_{by}"] = int((groups["mean"] < 0.9).sum())
        out[f"heads_agreement_{by}_count"] = len(groups)
    return out


def artifact_megabytes(run_dir: Path) -> dict:
    """Megabytes on disk of the run directory's artifacts (caches left out) and of 04's clusterings."""
    def size(path: Path) -> float:
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        return sum(f.stat().st_size for f in files) / 1e6

    entries = [p for p in run_dir.iterdir() if p.name != "cache"]
    return {"artifacts_mb": round(sum(size(p) for p in entries), 1),
            "clusters_mb": round(size(run_dir / "clusters"), 1) if (run_dir / "clusters").is_dir() else None,
            "artifacts_by_entry_mb": {p.name: round(size(p), 1) for p in sorted(entries)}}


def spectral_peer(run_dir: Path, labels_tsv: Path, n_clusters: int) -> dict:
    """scikit-learn spectral clustering of the MMseqs2 homology graph 04 builds (its own search).

    The eigenvectors come from LOBPCG with an algebraic-multigrid preconditioner when pyamg is
    installed (``pip install -e '.[bench]'``: the same NMI/ACC as ARPACK's shift-invert, which
    does not finish in reasonable time at 10^5 proteins), else ARPACK."""
    import importlib.util

    from sklearn.cluster import SpectralClustering

    from protlab.cluster.neighbors import mine_neighbors
    from protlab.cluster.stage import aligned_inputs
    from protlab.core.rundir import RunDir
    from protlab.evaluate import evaluate

    proteins, ids, emb, _ = aligned_inputs(RunDir(run_dir))
    truth = pd.read_csv(labels_tsv, sep="\t", dtype=str).set_index("id")["label"].reindex(ids).to_numpy()
    start = time.perf_counter()
    graph = mine_neighbors(emb, proteins["sequence"].astype(str).tolist(), source="mmseqs")
    solver = "amg" if importlib.util.find_spec("pyamg") else "arpack"
    labels = SpectralClustering(n_clusters, affinity="precomputed", random_state=0, eigen_solver=solver,
                                assign_labels="cluster_qr").fit_predict(graph.affinity)
    scores = evaluate(truth, labels)
    return {"spectral_s": time.perf_counter() - start, "spectral_nmi": scores["nmi"], "spectral_acc": scores["acc"],
            "spectral_solver": solver}


def bench_set(fasta: Path, labels_tsv: Path, out: Path, *, n_clusters: int | None, spectral_max: int = 0) -> dict:
    run_dir = out / fasta.stem
    shutil.rmtree(run_dir, ignore_errors=True)
    stages = [("curate", ["--source", str(fasta)]), ("embed", []),
              ("cluster", [] if n_clusters is None else ["--n-clusters", str(n_clusters)]),
              ("evaluate", ["--labels", str(labels_tsv)])]
    row = {"set": fasta.stem}
    for stage, extra in stages:
        seconds, rss = timed_module(f"protlab.{stage}", ["--run-dir", str(run_dir), *extra])
        row[f"{stage}_s"], row[f"{stage}_gb"] = seconds, rss
        print(f"  {fasta.stem} {stage}: {seconds:.0f} s, peak {rss:.2f} GB", flush=True)
    from protlab.cluster import read_clustering
    from protlab.core.mmseqs import easy_cluster
    from protlab.core.rundir import RunDir
    from protlab.evaluate import evaluate

    run = RunDir(run_dir)
    proteins = run.load_proteins()
    row["n"] = len(proteins)
    truth = pd.read_csv(labels_tsv, sep="\t", dtype=str).set_index("id")["label"]
    row["pfam_families"] = int(truth.reindex(proteins["id"].astype(str)).nunique())
    scores = json.loads(run.stage_record("evaluate").read_text())["results"]["per_method"]  # 05's scores
    info = json.loads(run.clustering("families", ".json").read_text())
    row["families_estimate"] = info.get("n_clusters_estimated")
    recovery, clusterings = {}, {}
    for method in ("families", "scan"):  # scan: when the fit gave the heads' clustering too
        if method == "families" or method in run.clustering_methods():
            clusters = clusterings[method] = read_clustering(run_dir, method)
            labels = truth.reindex(clusters["id"].astype(str)).to_numpy()
            row.update({f"{method}_{k}": scores[method][k] for k in ("nmi", "acc", "ari")})
            row[f"{method}_clusters"] = int(clusters["cluster"].nunique())
            fams = recovery[method] = family_recovery(labels, clusters["cluster"].to_numpy(), min_size=50)
            found = (fams["precision"] >= 0.8) & (fams["recall"] >= 0.8)
            row[f"{method}_recovered_200"] = int(found[fams["size"] >= 200].sum())
            row[f"{method}_recovered_50"] = int(found.sum())
    judged = recovery["families"]
    row["pfam_200"] = int((judged["size"] >= 200).sum())
    row["pfam_50"] = len(judged)
    row["families_min_precision"] = float(judged["precision"].min()) if len(judged) else None
    row["families_min_recall"] = float(judged["recall"].min()) if len(judged) else None
    listed = judged[["family", "size", "precision", "recall"]].itertuples(index=False)
    row["families_per_family"] = [[str(f), int(n), round(float(p), 4), round(float(r), 4)] for f, n, p, r in listed]
    steps = info.get("families_fit_steps") or []
    row["fit_merges"] = sum("merged" in step for step in steps)
    row["fit_splits"] = sum("split" in step for step in steps)
    row["fit_promotions"] = sum("promoted" in step for step in steps)
    row["agreement_heads_families"] = info.get("agreement_heads_families")
    if "scan" in clusterings:
        row.update(heads_agreement_by_family(clusterings["families"], clusterings["scan"], truth))
    row.update(artifact_megabytes(run_dir))

    sequences = proteins["sequence"].tolist()
    start = time.perf_counter()
    peer = easy_cluster(sequences, identity=None, coverage=None, threads=os.cpu_count() or 1)
    row["mmseqs_cluster_s"] = time.perf_counter() - start
    ids = proteins["id"].astype(str)
    row["mmseqs_cluster_nmi"] = evaluate(truth.reindex(ids).to_numpy(), peer)["nmi"]
    baselines = pd.read_csv(run_dir / "metrics_table.csv").set_index("method")
    for method in ("kmeans", "pca_kmeans"):
        row[f"{method}_nmi"], row[f"{method}_acc"] = baselines.loc[method, "nmi"], baselines.loc[method, "acc"]
    if spectral_max and row["n"] <= spectral_max:
        row.update(spectral_peer(run_dir, labels_tsv, row["pfam_families"]))
    print(f"Pfam families of >= 50 members, families clustering:\n{recovery['families'].to_string(index=False)}",
          flush=True)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", required=True, help="set stems (PATH/natural_10000 → .fasta + .labels.tsv)")
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_scale"))
    parser.add_argument("--estimate", action="store_true", help="04 with n_clusters=None")
    parser.add_argument("--spectral-max", type=int, default=200_000,
                        help="run the spectral-clustering peer up to this many proteins (0: never)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = []
    for stem in args.sets:
        fasta, labels = Path(f"{stem}.fasta"), Path(f"{stem}.labels.tsv")
        n_families = pd.read_csv(labels, sep="\t", dtype=str)["label"].nunique()
        rows.append(bench_set(fasta, labels, out, n_clusters=None if args.estimate else n_families,
                              spectral_max=args.spectral_max))
        print(json.dumps(rows[-1], default=float), flush=True)
    table = pd.DataFrame(rows)
    if len(table) >= 2:
        logn = np.log(table["n"].to_numpy(float))
        for col in [c for c in table.columns if c.endswith("_s")]:
            seconds = table[col].to_numpy(float)
            if np.isnan(seconds).sum() > len(seconds) - 2:
                continue
            ok = ~np.isnan(seconds)
            slope = np.polyfit(logn[ok], np.log(seconds[ok]), 1)[0]
            print(f"growth exponent {col[:-2]}: n^{slope:.2f}")
            table[f"{col[:-2]}_exponent"] = slope
    print(table.to_string(index=False))
    out.mkdir(parents=True, exist_ok=True)
    table.to_json(out / "scale.json", orient="records", indent=2)
    exponents = {c[:-len("_exponent")]: float(table[c].iloc[0]) for c in table.columns if c.endswith("_exponent")}
    headline = ("n", "families_nmi", "families_acc", "families_recovered_200", "pfam_200", "families_recovered_50",
                "pfam_50", "families_min_precision", "families_min_recall", "families_per_family",
                "families_estimate", "fit_merges", "fit_promotions", "fit_splits", "scan_nmi",
                "heads_agreement",
                "heads_agreement_min_family", "heads_agreement_under_90_family", "heads_agreement_family_count",
                "heads_agreement_min_label", "heads_agreement_under_90_label", "artifacts_mb", "clusters_mb",
                "curate_s", "embed_s", "cluster_s", "evaluate_s")
    write_record("bench_cluster_scale", params=vars(args),
                 variant="-".join([*(Path(s).name for s in args.sets), *(["estimate"] if args.estimate else [])]),
                 title="Family discovery at natural Pfam family sizes: stages 01 → 02 (k-mer) → 04 → 05 with their "
                       "defaults, each its own process, beside mmseqs easy-cluster, spectral clustering and k-means.",
                 notes="'families' (04's default) and 'scan' (the SCAN heads' argmax) come from one 04 fit; "
                       "<stage>_s / <stage>_gb: wall time and peak RSS of each stage's process; recovered_200 / _50: Pfam "
                       "families of >= 200 / >= 50 members (pfam_200 / pfam_50 of them) matched at precision and "
                       "recall >= 0.8; families_min_precision / _min_recall: the lowest over those of >= 50 members, "
                       "families_per_family: [family, members, precision, recall] of each; pfam_families: the "
                       "number of labelled families (the target of "
                       "families_estimate); fit_merges / fit_promotions / fit_splits: what 04 did to meet n_clusters; "
                       "heads_agreement: share "
                       "of proteins whose heads' argmax is their family (min / under_90 over families of >= 50 members, "
                       "by 04's families and by the true labels); artifacts_mb: the run directory without its "
                       "caches, clusters_mb: 04's clusterings.",
                 table=json.loads(table.to_json(orient="records")),
                 results={"sets": {row["set"]: {k: row[k] for k in headline if k in row} for row in rows},
                          "growth_exponents": exponents or None, "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
