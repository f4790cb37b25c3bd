"""Residue clustering speed: batched forward+backward vs straightforward implementations.

Columns (proteins/s, forward + backward + optimiser step, same model and math):

* ``batched``        ResidueNet.forward on the padded batch (no loop over residues),
* ``per-protein``    the batched code called once per protein (batch of 1, loop over proteins),
* ``straightforward`` protlab.residues.network_reference.forward_per_protein: loops over proteins
  and, inside each, over cluster centres (how the method is usually first written).

    python benchmarks/bench_residue_cluster.py [--batch 16] [--length 300] [--threads N] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from protlab.curate.records import Structure
from protlab.residues.network import ResidueNet, ResidueNetConfig
from protlab.residues.network_reference import forward_per_protein
from protlab.residues.graph import build_graph, collate

from records import peak_rss_gib, write_record


def compact_chain(L: int, seed: int) -> Structure:
    """A compact random Cα trace (3.8 Å steps, kept inside a sphere) with a random sequence."""
    rng = np.random.default_rng(seed)
    radius = 3.0 * L ** (1 / 3) + 4
    ca = [np.zeros(3)]
    while len(ca) < L:
        step = rng.normal(size=3)
        nxt = ca[-1] + 3.8 * step / np.linalg.norm(step)
        if np.linalg.norm(nxt) < radius:
            ca.append(nxt)
    ca = np.array(ca, dtype=np.float32)
    seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), L))
    return Structure(id=f"b{seed}", chain="A", res_ids=np.arange(1, L + 1), ins_codes=np.array([""] * L),
                     res_names=np.array(["ALA"] * L), sequence=seq, ca=ca, centroid=ca)


def timed(step, repeats: int, device: str) -> float:
    step()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-straightforward", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = args.device
    model = ResidueNet(ResidueNetConfig(n_classes=10)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    graphs = [build_graph(compact_chain(args.length, s)) for s in range(args.batch)]
    batch = collate(graphs).to(device)
    singles = [collate([g]).to(device) for g in graphs]
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step(logits_fn):
        def run():
            loss = model.loss(logits_fn(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return run

    rows = [("batched", timed(step(lambda: model(batch)), args.repeats, device))]
    rows.append(("per-protein", timed(step(lambda: torch.cat([model(s) for s in singles])), args.repeats, device)))
    if not args.skip_straightforward and device == "cpu":
        rows.append(("straightforward", timed(step(lambda: forward_per_protein(model, batch)), 1, device)))
    base = rows[0][1]
    print(f"residue clustering, forward+backward, batch {args.batch} x {args.length} residues, device {device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'implementation':<16} {'s/batch':>9} {'proteins/s':>11} {'batched speed-up':>17}")
    for name, sec in rows:
        print(f"{name:<16} {sec:9.3f} {args.batch / sec:11.1f} {sec / base:16.1f}x")
    speed = {name: sec / base for name, sec in rows[1:]}
    write_record("bench_residue_cluster", params=vars(args),
                 variant="-".join([args.device, *(f"{k}={getattr(args, k)}" for k in ("batch", "length", "threads")
                                                  if getattr(args, k) != parser.get_default(k))]),
                 title=f"Residue-clustering network, forward + backward + optimiser step on {args.batch} random "
                       f"compact chains of {args.length} residues ({args.device}): batched vs per-protein vs "
                       "straightforward loops.",
                 notes="Same model and math in each row, timed side by side in one run (best of the repeats); "
                       "batched speed-up: a row's time over the batched time.",
                 table=[{"implementation": name, "s/batch": sec, "proteins/s": args.batch / sec,
                         "batched speed-up": sec / base} for name, sec in rows],
                 results={"batched_proteins_per_s": args.batch / base,
                          **{f"speedup_over_{name.replace('-', '_')}": v for name, v in speed.items()},
                          "torch_threads": torch.get_num_threads(), "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
