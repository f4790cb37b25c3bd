"""Critical residues vs known sites: precision@k beside random and a conservation baseline.

1. toy universe (families differ in fold, profile and site): train on family classification;
1b. toy superfamily (make_universe(families_per_superfamily=...)): family = site residues;
2. toy site-subfamilies (one fold; subfamilies differ only at the planted site);
3. real: fine-tune the toy model on the 20 Pfam-domain structures (family labels from the
   file names), then score every structure with SITE records (protein residues only).

    python benchmarks/quality_residue_sites.py [--epochs 12] [--members 20] [--threads 1]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from protlab import residues

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "structures"


def measure(name, model, inputs, rows, k=None):
    ex = residues.explain_structures(model, inputs.structures)
    with_site = [e for e in ex if inputs.sites.get(e.id)]
    base = [inputs.baseline[e.id] for e in with_site] if inputs.baseline else None
    m = residues.site_metrics(with_site, [inputs.sites[e.id] for e in with_site], baseline=base, k=k)
    rows.append((name, m["n_proteins"], m["precision_at_k"], m["random_precision_at_k"],
                 m.get("baseline_precision_at_k", float("nan"))))
    print("  measured:", *rows[-1], flush=True)
    return m


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--families", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, start = [], time.perf_counter()
    # 1. toy families
    toy = residues.toy_inputs(n_families=args.families, members_per_family=args.members, seed=args.seed)
    fit = residues.train_residue_model(toy.structures, [toy.labels[s.id] for s in toy.structures],
                                       epochs=args.epochs, seed=args.seed, progress=False)
    measure(f"toy families (acc {fit.history[-1]['train_accuracy']:.2f})", fit.model, toy, rows)
    # 1b. toy superfamilies: families share fold and profile, differ only at the planted site
    sup = residues.toy_inputs(n_families=args.families, members_per_family=args.members, seed=args.seed,
                              families_per_superfamily=args.families)
    fit1b = residues.train_residue_model(sup.structures, [sup.labels[s.id] for s in sup.structures],
                                         epochs=max(args.epochs, 30), seed=args.seed, progress=False,
                                         val_fraction=0.2, residue_dropout=0.15)
    h = fit1b.history[-1]
    measure(f"toy superfamily (val acc {h.get('val_accuracy', float('nan')):.2f})", fit1b.model, sup, rows)
    # 2. site subfamilies
    sub = residues.site_subfamily_inputs(n_subfamilies=4, members_per_subfamily=args.members, seed=args.seed)
    fit2 = residues.train_residue_model(sub.structures, [sub.labels[s.id] for s in sub.structures],
                                        epochs=max(args.epochs, 30), seed=args.seed, progress=False,
                                        val_fraction=0.2)
    h = fit2.history[-1]
    measure(f"toy site-subfamilies (val acc {h.get('val_accuracy', float('nan')):.2f})", fit2.model, sub, rows)
    # 3. real structures
    if SHARED.is_dir():
        structures, labels = residues.pfam_domain_inputs(SHARED / "pfam_domains")
        fit3 = residues.train_residue_model(structures, labels, epochs=max(args.epochs, 20), init=fit.model,
                                            seed=args.seed, progress=False, batch_size=4)
        real = residues.load_inputs(SHARED / "pdb")
        real.structures = [s for s in real.structures if s.id in real.sites]
        for name, model in (("SITE records, toy model", fit.model), ("SITE records, Pfam fine-tuned", fit3.model)):
            measure(name, model, real, rows)
    print(f"critical residues vs known sites (precision@k, k = site size), {time.perf_counter() - start:.0f} s")
    print(f"{'setting':<44} {'n':>4} {'model':>7} {'random':>7} {'conservation':>13}")
    for name, n, p, r, b in rows:
        print(f"{name:<44} {n:>4} {p:7.3f} {r:7.3f} {b:13.3f}")


if __name__ == "__main__":
    main()
