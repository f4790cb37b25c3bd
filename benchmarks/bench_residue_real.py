"""Residue-clustering speed on real structures: featurisation and training throughput.

Featurisation (structures/s from PDB/mmCIF files, every protein chain of a file as one
structure): ``--n`` structures, cycling through the shared real files
(``../shared/data/structures``: 221 protein–ligand complexes, 33 PDB/mmCIF entries, 21 Pfam
domains) and featurising each from scratch; time split into reading, residue-graph features and
pocket features (burial + pyKVFinder cavities), and the rate when the graphs come from the cache.

Training (proteins/s, forward + backward + optimiser step of the residue-level site model on
those graphs): the batched network with length-bucketed batches, the same code called once per
protein, and the straightforward implementation (``forward_per_protein``: loops over proteins
and cluster centres) on a sample.

    python benchmarks/bench_residue_real.py [--n 1000] [--threads 2] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from protlab.core.errors import ProtlabError
from protlab.curate.structures import read_complex, structure_paths
from protlab.residues.features import featurize
from protlab.residues.graph import build_graph, check_structure, collate
from protlab.residues.network import ResidueNet, ResidueNetConfig
from protlab.residues.network_reference import forward_per_protein
from protlab.residues.pockets import pocket_features
from protlab.residues.training import length_batches

from records import peak_rss_gib, write_record

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures"


def real_files() -> tuple[list[Path], list[str]]:
    """The shared structure files with a protein chain, and those without (e.g. RNA)."""
    files, skipped = [], []
    for folder in ("ligand_sites/structures", "pdb", "pfam_domains"):
        for path in structure_paths(SHARED / folder):
            try:
                check_structure(read_complex(path))
                files.append(path)
            except ProtlabError:
                skipped.append(path.name)
    return files, skipped


def featurisation(files: list[Path], n: int) -> tuple[dict, list]:
    """Seconds per phase over ``n`` structures, the rates, and the graphs."""
    seconds = {"read": 0.0, "graph": 0.0, "pockets": 0.0}
    graphs, structures = [], []
    for i in range(n):
        t0 = time.perf_counter()
        s = read_complex(files[i % len(files)])
        t1 = time.perf_counter()
        build_graph(s)
        t2 = time.perf_counter()
        extra, _ = pocket_features(s)
        t3 = time.perf_counter()
        seconds["read"] += t1 - t0
        seconds["graph"] += t2 - t1
        seconds["pockets"] += t3 - t2
        structures.append(s)
        if i < len(files):
            graphs.append(build_graph(s, extra=extra))
    total = sum(seconds.values())
    out = {"structures": n, "distinct files": len(files), "seconds": {k: round(v, 1) for k, v in seconds.items()},
           "structures/s without pockets": round(n / (seconds["read"] + seconds["graph"]), 1),
           "structures/s with pockets": round(n / total, 2),
           "share of time in pockets": round(seconds["pockets"] / total, 3)}
    with tempfile.TemporaryDirectory() as cache:
        unique = structures[:len(files)]
        featurize(unique, pockets=True, cache_dir=cache)
        start = time.perf_counter()
        featurize(unique, pockets=True, cache_dir=cache)
        out["structures/s from the cache"] = round(len(unique) / (time.perf_counter() - start), 1)
    return out, graphs


def training(graphs: list, *, batch_size: int, device: str, sample: int) -> dict:
    torch.manual_seed(0)
    n_features = graphs[0].feats.shape[1]
    model = ResidueNet(ResidueNetConfig(n_classes=1, task="residue", n_features=n_features)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    targets = {id(g): (rng.random(len(g)) < 0.05).astype(np.float32) for g in graphs}

    def step(batch_graphs):
        batch = collate(batch_graphs).to(device)
        y = torch.zeros(batch.mask.shape, device=device)
        for row, g in enumerate(batch_graphs):
            y[row, :len(g)] = torch.from_numpy(targets[id(g)]).to(device)
        loss = model.loss(model(batch), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def rate(parts) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for part in parts:
            step([graphs[i] for i in part])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return round(sum(len(p) for p in parts) / (time.perf_counter() - start), 2)

    step(graphs[:2])  # warm-up
    lengths = [len(g) for g in graphs]
    out = {"proteins": len(graphs), "mean residues": round(float(np.mean(lengths))),
           "batched (length buckets)": rate(length_batches(lengths, batch_size, rng)),
           "batched (random batches)": rate([p for p in np.array_split(rng.permutation(len(graphs)),
                                                                         max(1, len(graphs) // batch_size))]),
           "per protein (batch of 1)": rate([[i] for i in range(len(graphs))])}
    few = rng.choice(len(graphs), size=min(sample, len(graphs)), replace=False)
    # the straightforward reference computes the protein-level network (it has no residue head);
    # the cluster iterations, where the time goes, are the same
    classic = ResidueNet(ResidueNetConfig(n_classes=2, n_features=graphs[0].feats.shape[1])).to(device)
    opt_classic = torch.optim.AdamW(classic.parameters(), lr=1e-3)
    start = time.perf_counter()
    for i in few:
        logits = forward_per_protein(classic, collate([graphs[i]]).to(device))
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(1, dtype=torch.long, device=device))
        opt_classic.zero_grad()
        loss.backward()
        opt_classic.step()
    out[f"straightforward (loops over proteins and centres; {len(few)} proteins)"] = round(
        len(few) / (time.perf_counter() - start), 3)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="structures featurised")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sample", type=int, default=8, help="proteins for the straightforward implementation")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    files, skipped = real_files()
    feats, graphs = featurisation(files, args.n)
    feats["files without a protein chain (not used)"] = skipped
    print(json.dumps({"featurisation": feats}, indent=1), flush=True)
    train = training(graphs, batch_size=args.batch, device=args.device, sample=args.sample)
    print(json.dumps({"training": train}, indent=1))
    table = [{"step": f"featurise: {k.split('/s ', 1)[1]}", "unit": "structures/s", "rate": v}
             for k, v in feats.items() if k.startswith("structures/s")]
    table += [{"step": f"train: {k}", "unit": "proteins/s", "rate": v} for k, v in train.items()
              if k not in ("proteins", "mean residues")]
    write_record("bench_residue_real", params=vars(args),
                 variant="-".join([args.device, *(f"{k}={getattr(args, k)}" for k in ("n", "threads", "batch")
                                                  if getattr(args, k) != parser.get_default(k))]),
                 title=f"Residue-level site model on real structures ({len(files)} shared PDB/mmCIF files): "
                       f"featurisation rate over {args.n} structures and training throughput ({args.device}).",
                 notes="Rates measured side by side in one run; featurisation cycles through the files, each "
                       "featurised from scratch; the straightforward training row runs on a sample of proteins.",
                 table=table, results={"featurisation": feats, "training": train, "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
