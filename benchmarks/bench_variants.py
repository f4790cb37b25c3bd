"""Variant-effect scoring (07) on real deep mutational scans beside ProteinGym's published Spearman.

For each ProteinGym set of ``../shared/data/mutations/dms/`` that has homologs here, scores every
mutant with 07's scorers at the stage defaults (``theta``, ``max_gap_fraction``,
``potts_iterations``; ``score`` = ``mean_z``): the four P53_HUMAN sets with EVE's full-length
alignment (``msa/P53_HUMAN_b0.1.a2m``, as ``alignment=``), and the BLAT_ECOLX, DLG4 and GRB2 sets
with the Pfam families PROVENANCE.md names as homologs (as ``homologs=``: MMseqs2 aligns them to
the region the set's variants touch). Sets sharing a wild type and homologs share one fit, as
one 07 run per set would fit the same model.

Two sets are for tuning (``TUNING``: the two Faure 2021 sets, whose published Spearman covers
more than their single substitutions, so is not comparable anyway); the means that judge 07
are over the others. Reports per set and on average each scorer's Spearman beside the
published Site-Independent and EVmutation ones (``reference.tsv``), the coverage (variants in
the modelled columns), alignment depth, effective number of sequences, fit times and peak
memory. ``--encoder`` adds ``masked_marginal`` (an ESM-2 spec).

    python benchmarks/bench_variants.py [--sets P53_HUMAN_Kotler_2018 ...] [--encoder esm2_t6_8M_UR50D]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from records import peak_rss_gib, write_record

from protlab.curate.fasta import read_fasta
from protlab.variants.alignment import read_alignment
from protlab.variants.family_lm import score_family_lm, train_family_lm
from protlab.variants.homologs import search_alignment, variant_region
from protlab.variants.metrics import score_metrics
from protlab.variants.mutants import read_variants, read_wildtype
from protlab.variants.scorers import (combine_z, fit_potts, masked_language_model, score_independent,
                                      score_masked_marginal, score_potts)
from protlab.variants.stage import STAGE

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
MUTATIONS = SHARED / "mutations"
ALIGNMENTS = {"P53_HUMAN": "msa/P53_HUMAN_b0.1.a2m"}  # relative to the mutations folder
HOMOLOGS = {  # relative to ../shared/data/pfam
    "BLAT_ECOLX": ["bitbol_full/PF13354.fasta", "bitbol_seed/PF13354_seed.fasta"],
    "DLG4_HUMAN": ["kortemme_natural/PF00595.align.80.fasta", "bitbol_seed/PF00595_seed.fasta"],
    "DLG4_RAT": ["kortemme_natural/PF00595.align.80.fasta", "bitbol_seed/PF00595_seed.fasta"],
    "GRB2_HUMAN": ["kortemme_natural/PF00018.align.80.fasta"],
}
TUNING = ("DLG4_HUMAN_Faure_2021", "GRB2_HUMAN_Faure_2021")
MISMATCHES = 1  # the Giacomelli P53 sets' wild type carries the R72 polymorphism, EVE's P53_HUMAN P72
PUBLISHED = {"independent": "Site-Independent", "potts": "EVmutation", "masked_marginal": "ESM2 (650M)"}


def protein_of(name: str) -> str | None:
    return next((k for k in (*ALIGNMENTS, *HOMOLOGS) if name.startswith(k + "_")), None)


def homolog_fasta(protein: str, folder: Path) -> Path:
    """The protein's Pfam homologs in one FASTA (ids made unique across the files)."""
    path = folder / f"{protein}_homologs.fasta"
    with path.open("w") as out:
        for n, name in enumerate(HOMOLOGS[protein]):
            for record in read_fasta(SHARED / "pfam" / name):
                out.write(f">{n}_{record.id}\n{record.sequence}\n")
    return path


def _wt_row(aln, wildtype):
    from protlab.variants.alignment import STATES

    return np.array([STATES.index(wildtype[p]) for p in aln.positions], dtype=aln.codes.dtype)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(MUTATIONS))
    parser.add_argument("--sets", nargs="*", default=None, help="set names (default: every set with homologs here)")
    parser.add_argument("--encoder", default=None, help="ESM spec for masked_marginal (default: none)")
    parser.add_argument("--potts-iterations", type=int, default=STAGE.by_name["potts_iterations"].default)
    parser.add_argument("--family-lm", action="store_true", help="add the family_lm scorer (slower)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    reference = pd.read_csv(data / "reference.tsv", sep="\t").set_index("dms_set")
    sets = args.sets or sorted(p.stem for p in (data / "dms").glob("*.csv") if protein_of(p.stem))
    theta, max_gaps = STAGE.by_name["theta"].default, STAGE.by_name["max_gap_fraction"].default
    fits, rows, timings = {}, [], {}
    model = masked_language_model(args.encoder) if args.encoder else None
    scratch = tempfile.TemporaryDirectory()
    for name in sets:
        protein = protein_of(name)
        _, wildtype = read_wildtype(str(data / "dms" / f"{name}.fasta"))
        mutants, table = read_variants(data / "dms" / f"{name}.csv", wildtype)
        region = None
        if protein in HOMOLOGS:
            region = variant_region([pos for m in mutants for pos, _, _ in m.substitutions], len(wildtype))
        key = (protein, region)
        if key not in fits:
            start = time.perf_counter()
            if protein in ALIGNMENTS:
                aln = read_alignment(data / ALIGNMENTS[protein], wildtype, theta=theta, max_gap_fraction=max_gaps,
                                     max_mismatches=MISMATCHES)
            else:
                aln = search_alignment(homolog_fasta(protein, Path(scratch.name)), wildtype, region=region,
                                       theta=theta, max_gap_fraction=max_gaps)
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            potts = fit_potts(aln, iterations=args.potts_iterations)
            timings[name] = {"alignment_and_weights_s": round(read_s, 1),
                             "potts_fit_s": round(time.perf_counter() - start, 1),
                             "potts_evaluations": potts.info["evaluations"], "columns": int(aln.codes.shape[1]),
                             "sequences": aln.depth}
            lm = None
            if args.family_lm:
                start = time.perf_counter()
                lm = train_family_lm(aln, steps=STAGE.by_name["family_lm_steps"].default)[:2]
                timings[name]["family_lm_train_s"] = round(time.perf_counter() - start, 1)
            fits[key] = (aln, potts, lm)
            print(f"{name}: {aln.depth} sequences, Neff {aln.n_eff:.1f}, {aln.codes.shape[1]} columns; "
                  f"Potts fit {timings[name]['potts_fit_s']} s", flush=True)
        aln, potts, lm = fits[key]
        if protein in ALIGNMENTS:
            aln = dataclasses.replace(aln, codes=aln.codes.copy())
            aln.codes[0] = _wt_row(aln, wildtype)  # ΔE from this set's wild type (P72 or R72)
        start = time.perf_counter()
        columns = {"independent": score_independent(aln, mutants), "potts": score_potts(aln, mutants, potts)}
        if model is not None:
            columns["masked_marginal"] = score_masked_marginal(wildtype, mutants, *model)
        if lm is not None:
            columns["family_lm"] = score_family_lm(wildtype, mutants, aln, *lm)
        columns["score"] = combine_z(columns)
        score_s = time.perf_counter() - start
        dms = table["DMS_score"].to_numpy(float)
        ref = reference.loc[name]
        row = {"set": name, "use": "tuning" if name in TUNING else "report",
               "homologs": "alignment" if protein in ALIGNMENTS else "Pfam", "variants": len(mutants),
               "coverage": round(float(np.isfinite(columns["independent"]).mean()), 4),
               "depth": aln.depth, "Neff": round(aln.n_eff, 1)}
        for scorer, values in columns.items():
            m = score_metrics(dms, values)
            row[f"{scorer} ρ"] = m["spearman"]
            if scorer == "score":
                row["score NDCG"] = m["ndcg"]
                row["score top10 recall"] = m["top10_recall"]
            if scorer in PUBLISHED:
                published = float(ref[PUBLISHED[scorer]])
                row[f"published {PUBLISHED[scorer]} ρ"] = published if bool(ref["PG_spearman_is_singles_only"]) else None
        row["scoring s"] = round(score_s, 2)
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    numeric = [k for k in rows[0] if k.endswith("ρ") or k in ("score NDCG", "score top10 recall")]

    def mean_of(label: str, chosen: list[dict]) -> dict:
        return {"set": label, **{k: float(np.mean(v)) if (v := [r[k] for r in chosen if r[k] is not None]) else None
                                 for k in numeric}}

    report = [r for r in rows if r["use"] == "report"]
    means = [mean_of("mean (report sets)", report),
             mean_of("mean (report sets, Pfam homologs)", [r for r in report if r["homologs"] == "Pfam"]),
             mean_of("mean (report sets, full-length alignment)", [r for r in report if r["homologs"] == "alignment"]),
             mean_of("mean (tuning sets)", [r for r in rows if r["use"] == "tuning"])]
    means = [m for m in means if any(v is not None for k, v in m.items() if k != "set")]
    for m in means:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()})
    variant = "+".join(([f"encoder={args.encoder}"] if args.encoder else []) + (["family_lm"] if args.family_lm else []))
    write_record("bench_variants", variant=variant or None,
                 params=vars(args), table=rows + means,
                 title="Variant-effect scoring (07, stage defaults) on ProteinGym deep mutational scans, with EVE's "
                       "P53 alignment or Pfam families as homologs, beside ProteinGym's published Spearman of the "
                       "same kind of model.",
                 notes="ρ: Spearman with DMS_score over the variants a scorer covers; 'score' is the default mean of "
                       "z-scored scorers (chosen a priori). 'tuning' sets were the only ones looked at while choosing "
                       "defaults; the report means leave them out. Published Site-Independent / EVmutation used "
                       "ProteinGym's own full-length alignments (shown only where ProteinGym's number covers single "
                       "substitutions only); Pfam homologs cover one domain, so their coverage is lower. The P53 sets "
                       "share one fit (EVE's alignment, its first record P72; the Giacomelli sets' R72 allowed as one "
                       "mismatch and used as the reference of ΔE).",
                 results={"mean_spearman": {m["set"]: {k: v for k, v in m.items() if k != "set"} for m in means},
                          "fits": timings, "peak_rss_gib": peak_rss_gib(), "sets": sets})


if __name__ == "__main__":
    main()
