"""Critical residues vs known sites: precision@k beside random and a conservation baseline.

1. toy universe, notebook 06 defaults: 8 families of one fold that differ only in the
   combination of their planted site residues; trained on family classification with 20 %
   held out; precision@k (k = site size) on the held-out proteins for every importance
   score (occlusion, the default; cluster attribution; nomination);
2. toy universe with one fold per family (families_per_superfamily=1): the site is one of
   many family signals, so a family classifier has no reason to single it out;
3. real: fine-tune the toy model on the 20 Pfam-domain structures (family labels from the
   file names), then score every structure with SITE records (protein residues only) of
   ``--site-records`` (default ``../shared/data/structures/site_records.tsv``; skipped when absent).

    python benchmarks/quality_residue_sites.py [--epochs 60] [--members 50] [--threads 1] [--structures DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from protlab.residues.explain import explain_structures
from protlab.residues.inputs import held_out, pfam_domain_inputs, read_structure_inputs, toy_inputs
from protlab.residues.toy_training import train_on_toy
from protlab.residues.network import SCORES
from protlab.residues.sites import site_metrics
from protlab.residues.training import train_residue_model

from records import peak_rss_gib, write_record

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "structures"


def measure(name, model, inputs, rows, score="occlusion"):
    start = time.perf_counter()
    ex = explain_structures(model, inputs.structures, score=score)
    seconds = time.perf_counter() - start
    with_site = [e for e in ex if inputs.sites.get(e.id)]
    base = [inputs.baseline[e.id] for e in with_site] if inputs.baseline else None
    m = site_metrics(with_site, [inputs.sites[e.id] for e in with_site], baseline=base)
    rows.append((f"{name} [{score}]", m["n_proteins"], m["precision_at_k"], m["random_precision_at_k"],
                 m.get("baseline_precision_at_k", float("nan")), seconds))
    print("  measured:", *rows[-1], flush=True)
    return m


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--families", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--structures", type=Path, default=SHARED,
                        help="folder holding pdb/ and pfam_domains/ (default: ../shared/data/structures)")
    parser.add_argument("--site-records", type=Path, default=None,
                        help="SITE records TSV (default: STRUCTURES/site_records.tsv)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, start = [], time.perf_counter()
    # 1. the notebook's toy: one superfamily, family = combination of site residues
    toy = dict(n_families=args.families, members_per_family=args.members, seed=args.seed,
               families_per_superfamily=args.families)
    fit = train_on_toy(epochs=args.epochs, progress=False, **toy)
    held = held_out(toy_inputs(**toy), fit.model)
    name = f"toy superfamily, held out (val acc {fit.history[-1]['val_accuracy']:.2f})"
    headline = {"toy_superfamily": {score: measure(name, fit.model, held, rows, score)["precision_at_k"]
                                    for score in SCORES},
                "toy_superfamily_val_accuracy": fit.history[-1]["val_accuracy"]}
    # 2. one fold per family
    folds = dict(toy, families_per_superfamily=1)
    fit2 = train_on_toy(epochs=args.epochs, progress=False, **folds)
    headline["toy_one_fold_per_family"] = measure(
        f"toy, one fold per family (val acc {fit2.history[-1]['val_accuracy']:.2f})", fit2.model,
        held_out(toy_inputs(**folds), fit2.model), rows)["precision_at_k"]
    # 3. real structures, sites from the SITE records given explicitly
    site_records = args.site_records or args.structures / "site_records.tsv"
    if args.structures.is_dir() and site_records.is_file():
        structures, labels = pfam_domain_inputs(args.structures / "pfam_domains")
        fit3 = train_residue_model(structures, labels, epochs=20, init=fit.model, seed=args.seed,
                                   progress=False, batch_size=4)
        real = read_structure_inputs(args.structures / "pdb", sites=site_records)
        real.structures = [s for s in real.structures if s.id in real.sites]
        for key, name, model in (("site_records_toy_model", "SITE records, toy model", fit.model),
                                 ("site_records_pfam_finetuned", "SITE records, Pfam fine-tuned", fit3.model)):
            m = measure(name, model, real, rows)
            headline[key] = {k: m.get(k) for k in ("precision_at_k", "random_precision_at_k",
                                                   "baseline_precision_at_k", "n_proteins")}
    else:
        print(f"  skipped the real structures: {args.structures} or {site_records} is absent", flush=True)
    print(f"critical residues vs known sites (precision@k, k = site size), {time.perf_counter() - start:.0f} s")
    print(f"{'setting':<66} {'n':>4} {'model':>7} {'random':>7} {'conservation':>13} {'explain s':>10}")
    for name, n, p, r, b, s in rows:
        print(f"{name:<66} {n:>4} {p:7.3f} {r:7.3f} {b:13.3f} {s:10.1f}")
    changed = [f"{k}={getattr(args, k)}" for k in ("epochs", "members", "families", "seed")
               if getattr(args, k) != parser.get_default(k)]
    write_record("quality_residue_sites", params=vars(args), variant="-".join(changed) or None,
                 title="Critical residues vs known sites: precision@k (k = site size) of 06's importance scores on "
                       "held-out toy proteins with planted sites, and on real structures with SITE records.",
                 notes="model: the importance score in brackets (occlusion is 06's default); random: random residues; "
                       "conservation: the conservation baseline where the inputs have one; explain s: time to score.",
                 table=[{"setting": name, "n": n, "model": p, "random": r, "conservation": None if b != b else b,
                         "explain s": s} for name, n, p, r, b, s in rows],
                 results={**headline, "seconds": time.perf_counter() - start, "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
