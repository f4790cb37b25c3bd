"""Stage 07: score protein variants (mutation effects) from homologs and protein language models.

``run(run_dir, **params)`` reads a wild type, its variants (or every single substitution)
and homologs (an alignment), scores every variant with each scorer of
:mod:`protlab.variants.scorers` and writes ``variants.parquet`` (``mutant``, ``DMS_score``
when given, one column per scorer, ``score``), ``variant_metrics.json`` (per scorer
Spearman / NDCG / top-10 % recall against ``DMS_score``, counts, alignment depth and
effective number of sequences), the figures and ``variants.json``.

The default runs on the toy universe: a protein of a toy family, its family's members as
the alignment and, as the toy's measured fitness, the family profile's log-ratio
``log p(mut) − log p(wt)`` (site-independent by construction).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.atomic import atomic_paths, atomic_write_text, jsonable
from protlab.core.errors import InputError
from protlab.core.progress import progress_bar, step_callback
from protlab.core.rundir import RunDir
from protlab.core.runtime import check_device, pick_device, seed_everything
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult, existing_file
from protlab.curate.toy import make_universe
from protlab.plot.export import save_figure
from protlab.plot.structure_export import write_structure_exports
from protlab.plot.variants import (effect_map_figure, mean_by_position, mean_effect_figure,
                                   score_vs_dms_figure)
from protlab.plot.view3d import residue_values_html
from protlab.variants.alignment import (MAX_GAP_FRACTION, MAX_MISMATCHES, THETA, Alignment, alignment_from_rows,
                                       read_alignment)
from protlab.variants.family_lm import FAMILY_LM_STEPS, score_family_lm, train_family_lm
from protlab.variants.homologs import search_alignment, variant_region
from protlab.variants.metrics import score_metrics
from protlab.variants.mutants import Mutant, all_singles, read_variants, read_wildtype
from protlab.variants.scorers import (POTTS_ITERATIONS, SCORERS, combine_z, fit_potts, masked_language_model,
                                      score_independent, score_masked_marginal, score_potts)
from protlab.variants.structure import map_structure

TOY = "toy"
TOY_MEMBERS = 100
TOY_LENGTHS = (60, 90)
COMBINED = "mean_z"


def _wildtype(value: str) -> None:
    if value != TOY:
        read_wildtype(value)  # an InputError's text says what is wrong


STAGE = Stage("variants", "07_variants", "Score protein variants (mutation effects): site-independent and Potts "
              "models of homologs, masked marginals of a protein language model.", (
    Param("wildtype", TOY, "the wild type: a FASTA file (its first record), a protein sequence, or 'toy' (a "
          "protein of the toy universe with its family as the alignment and the family profile as measured "
          "fitness)", "str", check=_wildtype),
    Param("variants", None, "CSV with a 'mutant' column in ProteinGym's notation (A24C, A24C:D30K; 1-based) and "
          "optionally 'DMS_score'; None: every single substitution of the wild type", "str", none=True,
          check=existing_file),
    Param("alignment", None, "homologs already aligned (a2m / a3m, Stockholm, aligned FASTA), the first record the "
          "wild type or a region of it (NAME/start-end)", "str", none=True, check=existing_file),
    Param("homologs", None, "homologs (FASTA; gaps are ignored, so a Pfam family's aligned FASTA serves) that "
          "MMseqs2 searches and aligns to the wild type, when no alignment is given; with variants, to the region "
          "they touch (20 residues either side)", "str", none=True, check=existing_file),
    Param("encoder", None, "masked language model for 'masked_marginal': any ESM spec 02 accepts ('tiny', "
          "'esm2_t33_650M_UR50D', a checkpoint, a Hugging Face directory)", "str|dict", none=True),
    Param("scorers", ["independent", "potts"], "scorers to run, one column each: 'independent', 'potts' (need an "
          "alignment or homologs), 'masked_marginal' (needs an encoder), 'family_lm' (a small language model "
          "trained on the homologs; slower)", "list", items=SCORERS),
    Param("score", COMBINED, "what the 'score' column is: 'mean_z' (the mean of the z-scored scorers that scored "
          "the variant) or one scorer's name", "str", choices=(COMBINED, *SCORERS)),
    Param("theta", THETA, "identity at which homologs count as neighbours for the sequence weights", "float",
          low=0, high=1, low_open=True),
    Param("max_gap_fraction", MAX_GAP_FRACTION, "homologs with more gaps than this share of the modelled columns "
          "are dropped", "float", low=0, high=1),
    Param("max_mismatches", MAX_MISMATCHES, "residues in which the alignment's first record may differ from the wild "
          "type (a polymorphism; listed in variant_metrics.json)", "int", low=0),
    Param("structure", None, "a PDB / mmCIF file of the wild type: the mean effect of substitutions drawn on it "
          "(figures/variants_structure.html, and .pdb with them as B-factors, .pml / .cxc colouring scripts)", "str",
          none=True, check=existing_file),
    Param("structure_chain", None, "the structure's chain of the wild type; None: the chain that aligns best",
          "str", none=True),
    Param("potts_iterations", POTTS_ITERATIONS, "L-BFGS iterations of the Potts pseudo-likelihood fit", "int", low=1),
    Param("family_lm_steps", FAMILY_LM_STEPS, "training batches of the 'family_lm' model", "int", low=1),
    Param("device", "auto", "device of the Potts fit and the masked marginals: 'auto', 'cpu', 'cuda', 'cuda:N'",
          "str", check=check_device),
    Param("seed", 0, "random seed (toy universe, figure subsets)", "int", low=0, high=MAX_SEED),
))
FIGURES = ("effect_map", "mean_effect", "score_vs_dms")


def toy_inputs(seed: int, members: int = TOY_MEMBERS) -> tuple[str, list[str], list[str], np.ndarray]:
    """``(wild type, names, aligned rows, toy fitness of every single)`` of toy family 0:
    member 0 is the wild type; members are aligned through their template positions."""
    universe = make_universe(n_families=1, members_per_family=members, length_range=TOY_LENGTHS, seed=seed)
    family = universe.families[0]
    ids = universe.proteins["id"].tolist()
    sequences = universe.proteins["sequence"].tolist()
    wildtype, template = sequences[0], universe.alignment[ids[0]]
    rows = [wildtype]
    for pid, seq in zip(ids[1:], sequences[1:]):
        at = {int(t): a for t, a in zip(universe.alignment[pid], seq) if t >= 0}
        rows.append("".join(at.get(int(t), "-") if t >= 0 else "-" for t in template))
    log_profile = np.log(np.clip(family.profile, 1e-6, None))
    fitness = []
    for i, wt in enumerate(wildtype):
        for mut in AMINO_ACIDS:
            if mut != wt:
                t = int(template[i])
                fitness.append(0.0 if t < 0 else log_profile[t, AMINO_ACIDS.index(mut)]
                               - log_profile[t, AMINO_ACIDS.index(wt)])
    return wildtype, ids, rows, np.asarray(fitness)


def _inputs(params: dict, record: StageRecord):
    """``(name, wild type, mutants, table, alignment or None, source)``."""
    if params["wildtype"] == TOY:
        if params["alignment"] or params["homologs"] or params["variants"]:
            raise InputError("wildtype='toy' brings its own variants and alignment: give a wildtype FASTA or "
                             "sequence with variants / alignment / homologs")
        wildtype, ids, rows, fitness = toy_inputs(params["seed"])
        mutants = all_singles(wildtype)
        table = pd.DataFrame({"mutant": [m.text for m in mutants], "DMS_score": fitness})
        aln = alignment_from_rows(rows, ids, theta=params["theta"], path="toy family 0")
        return ids[0], wildtype, mutants, table, aln, "toy"
    name, wildtype = read_wildtype(params["wildtype"])
    if Path(params["wildtype"]).is_file():
        record.read(params["wildtype"])
    if params["variants"]:
        mutants, table = read_variants(record.read(params["variants"]), wildtype)
        table = table[["mutant"] + (["DMS_score"] if "DMS_score" in table.columns else [])].copy()
    else:
        mutants = all_singles(wildtype)
        table = pd.DataFrame({"mutant": [m.text for m in mutants]})
    aln, source = None, None
    if params["alignment"]:
        aln = read_alignment(record.read(params["alignment"]), wildtype, max_gap_fraction=params["max_gap_fraction"],
                             theta=params["theta"], max_mismatches=params["max_mismatches"])
        source = "alignment"
    elif params["homologs"]:
        region = (variant_region([pos for m in mutants for pos, _, _ in m.substitutions], len(wildtype))
                  if params["variants"] else None)
        aln = search_alignment(record.read(params["homologs"]), wildtype, region=region,
                               max_gap_fraction=params["max_gap_fraction"], theta=params["theta"])
        source = "homologs"
    return name, wildtype, mutants, table, aln, source


def _check_scorers(params: dict) -> None:
    scorers = params["scorers"]
    if not scorers:
        raise InputError("scorers=[] is not allowed: name at least one of " + ", ".join(SCORERS))
    if len(set(scorers)) != len(scorers):
        raise InputError(f"scorers={scorers!r} names a scorer twice")
    if "masked_marginal" in scorers and params["encoder"] is None:
        raise InputError("scorers includes 'masked_marginal' but encoder=None: give a masked language model "
                         "(e.g. encoder='esm2_t33_650M_UR50D')")
    homolog_based = [s for s in scorers if s in ("independent", "potts", "family_lm")]
    if homolog_based and params["wildtype"] != TOY and not (params["alignment"] or params["homologs"]):
        raise InputError(f"scorers {homolog_based} need homologs: give alignment (aligned) or homologs (FASTA), "
                         "or use scorers=['masked_marginal'] with an encoder")
    if params["score"] != COMBINED and params["score"] not in scorers:
        raise InputError(f"score={params['score']!r} is not among scorers={scorers!r}")


def score_variants(wildtype: str, mutants: list[Mutant], aln: Alignment | None, params: dict, record: StageRecord,
                   device: str) -> tuple[dict[str, np.ndarray], dict]:
    """One array per scorer (NaN: not scored) and what each fit reports."""
    columns, info = {}, {}
    if "independent" in params["scorers"]:
        with record.timed("independent"):
            columns["independent"] = score_independent(aln, mutants)
    if "potts" in params["scorers"]:
        with record.timed("potts"):
            # L-BFGS evaluates the objective about once per iteration, a few more in line searches
            with progress_bar(total=params["potts_iterations"], desc="Potts fit", unit="evaluation",
                              leave=False) as bar:
                model = fit_potts(aln, iterations=params["potts_iterations"], device=device,
                                  progress=step_callback(bar, "objective"))
            columns["potts"] = score_potts(aln, mutants, model)
        info["potts"] = model.info
    if "family_lm" in params["scorers"]:
        with record.timed("family_lm"), progress_bar(total=params["family_lm_steps"], desc="family LM",
                                                     unit="batch", leave=False) as bar:
            lm, lm_alphabet, losses = train_family_lm(aln, steps=params["family_lm_steps"], seed=params["seed"],
                                                      device=device, progress=step_callback(bar, "loss", ".3f"))
            columns["family_lm"] = score_family_lm(wildtype, mutants, aln, lm, lm_alphabet, device=device)
        info["family_lm"] = {"steps": params["family_lm_steps"], "first_loss": losses[0], "last_loss": losses[-1]}
    if "masked_marginal" in params["scorers"]:
        with record.timed("masked_marginal"):
            model, alphabet = masked_language_model(params["encoder"], seed=params["seed"])
            columns["masked_marginal"] = score_masked_marginal(wildtype, mutants, model, alphabet, device=device)
    return columns, info


def _read_structure(params: dict, record: StageRecord, wildtype: str):
    """The structure mapped onto the wild type, None without one; read before the scoring, so
    a wrong structure costs no fit."""
    if not params["structure"]:
        return None
    if params["wildtype"] == TOY:
        raise InputError("structure= needs a real wild type: the toy protein has no structure file")
    return map_structure(record.read(params["structure"]), wildtype, chain=params["structure_chain"])


def _variant_metrics(name: str, wildtype: str, mutants: list[Mutant], params: dict, source: str | None,
                     score: np.ndarray, aln: Alignment | None, mapped) -> dict:
    """``variant_metrics.json`` but the per-scorer entries: the inputs, the alignment and the
    structure."""
    metrics = {"wildtype": name, "length": len(wildtype), "n_variants": len(mutants),
               "n_multiple": sum(len(m.substitutions) > 1 for m in mutants), "score": params["score"],
               "scorers": {}, "alignment": None, "homolog_source": source,
               "n_unscored": int(np.isnan(score).sum())}
    if aln is not None:
        metrics["alignment"] = {"path": aln.path, "depth": aln.depth, "n_eff": round(aln.n_eff, 3),
                                "columns": int(aln.codes.shape[1]), "dropped": aln.dropped, "theta": params["theta"],
                                "mismatches": aln.mismatches,
                                "modelled_positions": [int(aln.positions.min()) + 1, int(aln.positions.max()) + 1]}
        column = aln.column_of()
        metrics["n_outside_alignment"] = sum(any(p not in column for p, _, _ in m.substitutions) for m in mutants)
    if mapped is not None:
        metrics["structure"] = {"path": params["structure"], "chain": mapped.structure.chain,
                                "identity": mapped.identity, "residues_mapped": mapped.n_mapped}
    return metrics


def _scorer_metrics(columns: dict[str, np.ndarray], score: np.ndarray, frame: pd.DataFrame,
                    fit_info: dict) -> dict[str, dict]:
    """Per scorer and for ``score``: how many variants it scored, its agreement with
    ``DMS_score`` when measured, and what its fit reports."""
    out = {}
    for scorer, values in {**columns, "score": score}.items():
        entry = {"n_scored": int(np.isfinite(values).sum())}
        if "DMS_score" in frame.columns:
            entry.update(score_metrics(frame["DMS_score"].to_numpy(float), values))
        if scorer in fit_info:
            entry["fit"] = fit_info[scorer]
        out[scorer] = entry
    return out


def _singles(mutants: list[Mutant]) -> tuple[list[int], list[int]]:
    """``(indices, positions)`` of the single-substitution variants."""
    singles = [k for k, m in enumerate(mutants) if len(m.substitutions) == 1]
    return singles, [mutants[k].substitutions[0][0] for k in singles]


def _variant_figures(wildtype: str, mutants: list[Mutant], score: np.ndarray, frame: pd.DataFrame, metrics: dict,
                     seed: int) -> dict:
    """The effect map and mean effect of the single substitutions and, with ``DMS_score``, the
    score against it."""
    singles, pos = _singles(mutants)
    figures = {"effect_map": effect_map_figure(wildtype, pos, [mutants[k].substitutions[0][2] for k in singles],
                                               score[singles]),
               "mean_effect": mean_effect_figure(len(wildtype), pos, score[singles])}
    if "DMS_score" in frame.columns:
        figures["score_vs_dms"] = score_vs_dms_figure(score, frame["DMS_score"].to_numpy(float),
                                                      frame["mutant"].to_numpy(), name="score",
                                                      spearman=metrics["scorers"]["score"]["spearman"], seed=seed)
    return figures


def _structure_figures(mapped, name: str, mutants: list[Mutant], score: np.ndarray, run_: RunDir,
                       record: StageRecord) -> Path:
    """The structure coloured by intolerance (the page it returns) and its exports, recorded."""
    singles, pos = _singles(mutants)
    intolerance = mean_intolerance(mapped, pos, score[singles])
    structure_view = write_structure_view(mapped, name, intolerance, run_.figure("variants_structure"))
    record.wrote(structure_view)
    for path in write_structure_exports(mapped.structure, intolerance, run_.figure("variants_structure"),
                                        label="minus the mean score of substitutions").values():
        record.wrote(path)
    return structure_view


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    _check_scorers(params)
    record = StageRecord(STAGE, run_dir, params)
    seed_everything(params["seed"])
    device = pick_device(params["device"])
    with record.timed("read"):
        name, wildtype, mutants, table, aln, source = _inputs(params, record)
        mapped = _read_structure(params, record, wildtype)
    columns, fit_info = score_variants(wildtype, mutants, aln, params, record, device)
    score = combine_z(columns) if params["score"] == COMBINED else columns[params["score"]]
    frame = table.reset_index(drop=True).copy()
    for scorer, values in columns.items():
        frame[scorer] = values
    frame["score"] = score
    has_dms = "DMS_score" in frame.columns
    metrics = _variant_metrics(name, wildtype, mutants, params, source, score, aln, mapped)
    metrics["scorers"] = _scorer_metrics(columns, score, frame, fit_info)
    run_ = RunDir(run_dir)
    targets = [run_.writable("variants"), run_.writable("variant_metrics")]
    with atomic_paths(*targets) as (table_tmp, metrics_tmp):
        frame.to_parquet(table_tmp, index=False)
        metrics_tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=jsonable) + "\n")
    for path in targets:
        record.wrote(path)
    with record.timed("figures"):
        figures = _variant_figures(wildtype, mutants, score, frame, metrics, params["seed"])
        for key, fig in figures.items():
            for path in save_figure(fig, run_.figure(f"variants_{key}")).values():
                record.wrote(path)
        structure_view = None if mapped is None else _structure_figures(mapped, name, mutants, score, run_, record)
    record.resolve(device=device, n_eff=None if aln is None else round(aln.n_eff, 3))
    record.results.update({
        "n_variants": len(mutants), "n_unscored": metrics["n_unscored"],
        "n_outside_alignment": metrics.get("n_outside_alignment"),
        "depth": None if aln is None else aln.depth, "n_eff": None if aln is None else round(aln.n_eff, 3),
        "spearman": {s: e.get("spearman") for s, e in metrics["scorers"].items()} if has_dms else None,
        "n_scored": {s: e["n_scored"] for s, e in metrics["scorers"].items()}})
    record.save()
    return StageResult(record, figures, table=frame, metrics=metrics, wildtype=wildtype, alignment=aln,
                       structure_view=structure_view)


def mean_intolerance(mapped, positions, scores) -> np.ndarray:
    """Per residue of the structure, minus the mean single-substitution score at its wild-type
    position (NaN: not mapped or not scored)."""
    return mapped.on_structure(-mean_by_position(len(mapped.residue_of), positions, scores))


def write_structure_view(mapped, name: str, intolerance: np.ndarray, stem: Path) -> Path:
    """``stem.html``: the structure coloured by ``intolerance`` (:func:`mean_intolerance`; darker:
    less tolerant)."""
    page = residue_values_html(mapped.structure, intolerance, low="tolerant", high="intolerant",
                               title=f"mean predicted effect of substitutions in {name} "
                                     f"(chain {mapped.structure.chain})")
    return atomic_write_text(stem.with_suffix(".html"), page)


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: what 07 scored."""
    parts = [f"{results.get('n_variants')} variants scored"]
    if results.get("n_unscored"):
        parts.append(f"{results['n_unscored']} unscored")
    if results.get("depth") is not None:
        parts.append(f"alignment {results['depth']} sequences (Neff {results['n_eff']:.1f})")
    spearman = results.get("spearman") or {}
    if spearman:
        parts.append("Spearman " + ", ".join(f"{k} {v:.3f}" for k, v in spearman.items() if v is not None))
    parts.append(f"{timings.get('total', 0):.0f} s")
    return "; ".join(parts)


run.__doc__ = STAGE.docstring()
