"""Stage 01: read proteins, clean and filter them, and split them without redundancy.

``run(run_dir, **params)`` reads ``source`` (the toy universe or a FASTA / Stockholm /
UniProt / TSV / CSV / structure file; a table's ``text_column`` gives 03's protein–text
pairs, as UniProt properties do), cleans residues and filters
(:mod:`protlab.curate.filters`), optionally applies ProtCLIP property-driven sampling
(:mod:`protlab.curate.sampling`), splits train / valid / test by sequence identity
(:mod:`protlab.curate.split`) and writes ``proteins.parquet``, ``curation_report.json``,
the dataset figures and ``curate.json``.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

from protlab.core.atomic import atomic_write_json
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult, regular_expression
from protlab.curate.filters import POLICIES, curate, load_source, require_proteins
from protlab.curate.report import summary
from protlab.curate.sampling import protclip_annotate
from protlab.curate.split import METHODS as SPLIT_METHODS
from protlab.curate.split import split_by_identity
from protlab.plot.curate import dataset_figures
from protlab.plot.export import save_figure

log = logging.getLogger(__name__)



def _fractions(value):
    if len(value) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError("three non-negative numbers (train, valid, test)")
    if abs(sum(value) - 1) > 1e-6:
        raise ValueError(f"they must sum to 1 (they sum to {sum(value):g})")
    return [float(v) for v in value]


def _defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}


# the functions' own defaults, written once in their signatures
LOAD, CURATE, SPLIT = _defaults(load_source), _defaults(curate), _defaults(split_by_identity)
STAGE = Stage("curate", "01_curate", "Read, clean, filter and split proteins into run_dir/proteins.parquet.", (
    Param("source", "toy", "'toy' (the seeded toy universe) or a FASTA/Stockholm/UniProt/TSV/CSV/PDB/mmCIF path",
          "str"),
    Param("n_families", LOAD["n_families"], "toy universe: number of families", "int", low=2),
    Param("members_per_family", LOAD["members_per_family"], "toy universe: proteins per family", "int", low=1),
    Param("seed", 0, "random seed (toy universe, subsets, sampling, split)", "int", low=0, high=MAX_SEED),
    Param("label_regex", None, "regex on the FASTA header / sequence name whose first group is the label",
          "str", none=True, check=regular_expression),
    Param("label_field", None, "header token index or UniProt/table field holding the label", "str|int", none=True),
    Param("id_column", LOAD["id_column"], "TSV/CSV: the column holding the protein id", "str"),
    Param("sequence_column", LOAD["sequence_column"], "TSV/CSV: the column holding the sequence", "str"),
    Param("text_column", "text", "TSV/CSV: the column holding each protein's text (the protein-text pairs 03 "
          "trains on; rows with blank text are dropped); optional under its default name; None: no text",
          "str", none=True),
    Param("max_records", None, "seeded random subset of at most this many records (None: all)", "int",
          low=1, none=True),
    Param("min_length", CURATE["min_length"], "shortest sequence kept (residues)", "int", low=1),
    Param("max_length", None, "longest sequence kept (None: no bound; 02 windows long proteins, 03 crops them)",
          "int", low=1, none=True),
    Param("nonstandard", CURATE["nonstandard"], "non-standard residues: map to X, drop the record, or keep", "str",
          choices=POLICIES),
    Param("max_x_fraction", CURATE["max_x_fraction"], "largest share of unknown residues (X) kept", "float", low=0,
          high=1),
    Param("dedup", CURATE["dedup"], "drop exact duplicate sequences", "bool"),
    Param("protclip_sampling", None, "ProtCLIP property-driven sampling; None: on for UniProt input only",
          "bool", none=True),
    Param("split_identity", SPLIT["identity"], "sequence identity that keeps proteins in one split", "float", low=0,
          low_open=True, high=1),
    Param("split_fractions", list(SPLIT["fractions"]), "train / valid / test fractions", "list", check=_fractions),
    Param("split_method", SPLIT["method"], "identity clustering: MMseqs2 ('auto' when available) or the k-mer fallback",
          "str", choices=SPLIT_METHODS),
))


def run(run_dir: str | Path, **params) -> StageResult:
    params = STAGE.validate(params)
    if params["max_length"] is not None and params["max_length"] < params["min_length"]:
        raise InputError(f"max_length={params['max_length']} is below min_length={params['min_length']}")
    p = params
    record = StageRecord(STAGE, run_dir, params)
    run_ = RunDir(run_dir)
    source = p["source"]
    with record.timed("read"):
        raw, kind = load_source(source, n_families=p["n_families"], members_per_family=p["members_per_family"],
                                seed=p["seed"], label_regex=p["label_regex"], label_field=p["label_field"],
                                max_records=p["max_records"], id_column=p["id_column"],
                                sequence_column=p["sequence_column"], text_column=p["text_column"])
    if source != "toy":
        record.read(source)
    print(f"{len(raw)} records from {source!r} ({kind})")
    with record.timed("filter"):
        proteins, report = curate(raw, min_length=p["min_length"], max_length=p["max_length"],
                                  nonstandard=p["nonstandard"], max_x_fraction=p["max_x_fraction"], dedup=p["dedup"],
                                  require_text=kind in ("tsv", "csv") and "text" in raw.columns)
        proteins = require_proteins(proteins, report, source=source, step="curation")
    dropped = {k: v for k, v in report["dropped"].items() if v}
    print(f"kept {report['kept']} of {report['input']}" + (f"; dropped {dropped}" if dropped else ""))
    use_sampling = (kind == "uniprot") if p["protclip_sampling"] is None else p["protclip_sampling"]
    if use_sampling:  # marks the pairs 03 trains on; every protein stays for 02 / 04 / 05
        with record.timed("protclip_sampling"):
            proteins, selection = protclip_annotate(proteins, seed=p["seed"])
            report["protclip_sampling"] = {**selection, "rows_kept": int(len(proteins)),
                                           "note": "nothing deleted: 03 pretrains on protclip_selected rows"}
        print(f"ProtCLIP sampling selects {selection['kept']} of {selection['input']} pairs for 03 "
              f"(column protclip_selected); every protein is kept")
    with record.timed("split"):
        proteins = split_by_identity(proteins, identity=p["split_identity"], fractions=tuple(p["split_fractions"]),
                                     seed=p["seed"], method=p["split_method"])
    report.update(split=proteins.attrs["split"], summary=summary(proteins), source=str(source), format=kind)
    record.wrote(run_.save_proteins(proteins))
    record.wrote(atomic_write_json(run_.writable("curation_report"), report))
    figures = dataset_figures(proteins)
    with record.timed("figures"):
        for stem, fig in figures.items():
            for path in save_figure(fig, run_.figure(stem)).values():
                record.wrote(path)
    record.results.update(report["summary"], format=kind, dropped=dropped, input=report["input"])
    record.save()
    return StageResult(record, {name.removeprefix("curate_"): fig for name, fig in figures.items()},
                       proteins=proteins, report=report, format=kind)


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: what 01 kept and found."""
    dropped = results.get("dropped") or {}
    labels = results.get("labels", 0)
    splits = ", ".join(f"{k} {v}" for k, v in sorted((results.get("splits") or {}).items()))
    return (f"kept {results.get('proteins')} of {results.get('input')} {results.get('format')} records"
            + (f" (dropped {sum(dropped.values())}: {dropped})" if dropped else "")
            + (f"; {labels} labels" if labels else "; no labels (05 then needs labels=...)")
            + (f"; splits {splits}" if splits else "") + f"; {timings.get('total', 0):.0f} s")


run.__doc__ = STAGE.docstring()
