"""Variant-effect scoring (07) on real deep mutational scans beside ProteinGym's published Spearman.

For each ProteinGym set of ``../shared/data/mutations/dms/`` that has an alignment here (the
four P53_HUMAN sets with EVE's ``msa/P53_HUMAN_b0.1.a2m``), scores every mutant with 07's
scorers at the stage defaults (``theta``, ``max_gap_fraction``, ``potts_iterations``;
``score`` = ``mean_z``); sets sharing a wild type and alignment share one fit, as one 07 run
per set would fit the same model. Reports per set and on average each scorer's Spearman beside
the published Site-Independent and EVmutation ones (``reference.tsv``), the coverage (variants
in the alignment's modelled columns), alignment depth, effective number of sequences, fit
times and peak memory. ``--encoder`` adds ``masked_marginal`` (an ESM-2 spec).

    python benchmarks/bench_variants.py [--sets P53_HUMAN_Kotler_2018 ...] [--encoder esm2_t6_8M_UR50D]
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from records import peak_rss_gib, write_record

from protlab.variants.alignment import read_alignment
from protlab.variants.metrics import score_metrics
from protlab.variants.mutants import read_variants, read_wildtype
from protlab.variants.scorers import (combine_z, fit_potts, masked_language_model, score_independent,
                                      score_masked_marginal, score_potts)
from protlab.variants.stage import STAGE

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = REPO.parent / "shared" / "data" / "mutations"
ALIGNMENTS = {"P53_HUMAN": "P53_HUMAN_b0.1.a2m"}
MISMATCHES = 1  # the Giacomelli P53 sets' wild type carries the R72 polymorphism, EVE's P53_HUMAN P72
PUBLISHED = {"independent": "Site-Independent", "potts": "EVmutation", "masked_marginal": "ESM2 (650M)"}


def _wt_row(aln, wildtype):
    from protlab.variants.alignment import STATES

    return np.array([STATES.index(wildtype[p]) for p in aln.positions], dtype=aln.codes.dtype)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(MUTATIONS))
    parser.add_argument("--sets", nargs="*", default=None, help="set names (default: every set with an alignment)")
    parser.add_argument("--encoder", default=None, help="ESM spec for masked_marginal (default: none)")
    parser.add_argument("--potts-iterations", type=int, default=STAGE.by_name["potts_iterations"].default)
    args = parser.parse_args(argv)
    data = Path(args.data)
    reference = pd.read_csv(data / "reference.tsv", sep="\t").set_index("dms_set")
    sets = args.sets or sorted(p.stem for p in (data / "dms").glob("*.csv")
                               if any(p.stem.startswith(k) for k in ALIGNMENTS))
    theta, max_gaps = STAGE.by_name["theta"].default, STAGE.by_name["max_gap_fraction"].default
    fits, rows, timings = {}, [], {}
    model = None
    if args.encoder:
        model = masked_language_model(args.encoder)
    for name in sets:
        protein = next(k for k in ALIGNMENTS if name.startswith(k))
        _, wildtype = read_wildtype(str(data / "dms" / f"{name}.fasta"))
        mutants, table = read_variants(data / "dms" / f"{name}.csv", wildtype)
        if protein not in fits:
            start = time.perf_counter()
            aln = read_alignment(data / "msa" / ALIGNMENTS[protein], wildtype, theta=theta, max_gap_fraction=max_gaps,
                                 max_mismatches=MISMATCHES)
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            potts = fit_potts(aln, iterations=args.potts_iterations)
            fits[protein] = (aln, potts)
            timings[name] = {"read_and_weights_s": round(read_s, 1), "potts_fit_s": round(time.perf_counter() - start, 1),
                                "potts_evaluations": potts.info["evaluations"]}
            print(f"{name}: {aln.depth} sequences, Neff {aln.n_eff:.1f}, {aln.codes.shape[1]} columns; "
                  f"Potts fit {timings[name]['potts_fit_s']} s", flush=True)
        aln, potts = fits[protein]
        aln = dataclasses.replace(aln, codes=aln.codes.copy())
        aln.codes[0] = _wt_row(aln, wildtype)  # ΔE from this set's wild type (P72 or R72)
        start = time.perf_counter()
        columns = {"independent": score_independent(aln, mutants), "potts": score_potts(aln, mutants, potts)}
        if model is not None:
            columns["masked_marginal"] = score_masked_marginal(wildtype, mutants, *model)
        columns["score"] = combine_z(columns)
        score_s = time.perf_counter() - start
        dms = table["DMS_score"].to_numpy(float)
        ref = reference.loc[name]
        row = {"set": name, "variants": len(mutants),
               "coverage": round(float(np.isfinite(columns["independent"]).mean()), 4),
               "depth": aln.depth, "Neff": round(aln.n_eff, 1)}
        for scorer, values in columns.items():
            m = score_metrics(dms, values)
            row[f"{scorer} ρ"] = m["spearman"]
            if scorer == "score":
                row["score NDCG"] = m["ndcg"]
                row["score top10 recall"] = m["top10_recall"]
            if scorer in PUBLISHED:
                row[f"published {PUBLISHED[scorer]} ρ"] = float(ref[PUBLISHED[scorer]])
        row["scoring s"] = round(score_s, 2)
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    numeric = [k for k in rows[0] if k.endswith("ρ") or k in ("score NDCG", "score top10 recall")]
    mean = {"set": "mean", **{k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in numeric}}
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in mean.items()})
    table_rows = rows + [mean]
    write_record("bench_variants", variant=None if not args.encoder else f"encoder={args.encoder}",
                 params=vars(args), table=table_rows,
                 title="Variant-effect scoring (07, stage defaults) on ProteinGym deep mutational scans with the "
                       "alignments shipped here, beside ProteinGym's published Spearman of the same kind of model.",
                 notes="ρ: Spearman with DMS_score over the variants a scorer covers; 'score' is the default "
                       "mean of z-scored scorers (chosen a priori, not tuned on these sets). Published "
                       "Site-Independent / EVmutation used ProteinGym's own alignment, not EVE's. The P53 sets share one "
                       "fit (EVE's alignment, its first record P72; the Giacomelli sets' R72 allowed as one mismatch "
                       "and used as the reference of ΔE).",
                 results={"mean_spearman": {k: v for k, v in mean.items() if k != "set"}, "fits": timings,
                          "peak_rss_gib": peak_rss_gib(), "sets": sets})


if __name__ == "__main__":
    main()
