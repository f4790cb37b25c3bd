"""What stage 06 explains and with which model.

* :func:`toy_inputs`: the toy universe with its planted sites and the conservation baseline;
* :func:`read_structure_inputs`: PDB/mmCIF files (or ``"toy"``), with sites from a
  ``sites`` table when one is given; :func:`check_structure_files` parses them before training;
* :func:`pfam_domain_inputs`: Pfam-domain structures with their family labels (fine-tuning);
* :func:`held_out`: the toy proteins a model never trained on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from protlab.core.errors import InputError, ProtlabError
from protlab.core.rundir import RunDir
from protlab.curate.records import Structure
from protlab.curate.structures import read_complex, read_structure, structure_paths
from protlab.curate.toy import make_universe
from protlab.residues.features import baseline_scores, featurize, residue_embeddings
from protlab.residues.file_sites import file_site_indices
from protlab.residues.graph import check_structure
from protlab.residues.network import ResidueNet
from protlab.residues.pockets import CAVITY_BASELINE
from protlab.residues.site_table import read_site_table, site_residues
from protlab.residues.sites import CONSERVATION, conservation_scores

log = logging.getLogger(__name__)
TOY_SHAPE = ("n_families", "members_per_family", "length_range", "families_per_superfamily")


@dataclass
class ResidueInputs:
    """Structures to explain and, where known, their sites and a conservation baseline."""

    structures: list[Structure]
    sites: dict[str, list[int]] = field(default_factory=dict)       # id -> 0-based site residues
    baseline: dict[str, np.ndarray] = field(default_factory=dict)   # id -> conservation score
    labels: dict[str, str] = field(default_factory=dict)            # id -> family (toy)
    baseline_name: str = CONSERVATION
    source: str = "toy"
    skipped: dict[str, str] = field(default_factory=dict)           # file -> why it was not used
    peer: dict[str, np.ndarray] | None = None                       # id -> a learned peer's residue scores
    peer_name: str | None = None
    peer_note: str | None = None                                    # why no peer was measured


def toy_inputs(*, n_families: int = 8, members_per_family: int = 50, length_range: Sequence[int] = (80, 140),
               seed: int = 0, families_per_superfamily: int = 8) -> ResidueInputs:
    """The toy universe with its planted sites and the conservation baseline (gold alignment).

    ``families_per_superfamily`` > 1: families of one superfamily share fold and profile
    and differ only at the planted site (see :func:`protlab.curate.toy.make_universe`)."""
    u = make_universe(n_families=n_families, members_per_family=members_per_family,
                      length_range=tuple(int(v) for v in length_range), seed=seed,
                      families_per_superfamily=int(families_per_superfamily))
    p = u.proteins
    ids = p["id"].tolist()
    base = conservation_scores(p["sequence"].tolist(), p["family"].tolist(), alignment=u.alignment, ids=ids)
    return ResidueInputs(structures=u.structures(), sites=dict(zip(ids, p["site"].map(list))),
                         baseline=dict(zip(ids, base)), labels=dict(zip(ids, p["label"])), source="toy")


def read_structure_inputs(structures="toy", *, chain: str | None = None, sites: str | Path | None = None,
                          complexes: bool = False, **toy) -> ResidueInputs:
    """``structures``: "toy" (``toy`` options go to :func:`toy_inputs`), a PDB/mmCIF file, a
    directory of them, or a list of files.

    In a directory or list, files without a usable protein chain are skipped with a warning
    (listed in ``skipped``); an error is raised only when none is usable. Each file is read with
    every protein chain as one structure, unless ``chain`` names one to read alone
    (``complexes`` reads every chain whatever ``chain`` says). Sites of files
    come from the ``sites`` table when one is given (:mod:`protlab.residues.site_table`);
    without it from the files themselves (SITE records and residues within 4 Å of a bound
    ligand, :mod:`protlab.residues.file_sites`)."""
    if isinstance(structures, str) and structures == "toy":
        if sites is not None:
            raise InputError("sites is for structure files; the toy universe has its own planted sites "
                             "(use sites=None with structures='toy')")
        return toy_inputs(**toy)
    table = read_site_table(sites) if sites is not None else None
    every_chain = complexes or chain is None
    read = (lambda p: read_complex(p)) if every_chain else (lambda p: read_structure(p, chain=chain))  # noqa: E731
    if isinstance(structures, (str, Path)) and Path(structures).is_file():
        loaded, skipped = [read(structures)], {}
        check_structure(loaded[0])
    else:
        if isinstance(structures, (str, Path)) and not Path(structures).is_dir():
            raise InputError(f"structures={str(structures)!r} is neither 'toy', a file nor a directory")
        loaded, skipped = [], {}
        for p in structure_paths(structures):  # one unusable file (e.g. nucleic acid) must not stop the rest
            try:  # a file that reads but cannot become a residue graph (e.g. 1 residue) is skipped too
                structure = read(p)
                check_structure(structure)
                loaded.append(structure)
            except ProtlabError as exc:
                skipped[str(p)] = str(exc)
        for p, why in skipped.items():
            log.warning("skipped %s: %s", p, why)
    if not loaded:
        raise InputError(f"no usable protein structure in {structures!r}: "
                         + "; ".join(f"{p}: {why}" for p, why in skipped.items()))
    known = {}
    for s in loaded:  # a site table when given, else the files' own SITE records and ligand contacts
        idx = site_residues(s, table) if table is not None else file_site_indices(s)
        if idx:
            known[s.id] = idx
    source = str(structures) if isinstance(structures, (str, Path)) else f"{len(structures)} files"
    return ResidueInputs(structures=loaded, sites=known, source=source, skipped=skipped)


def check_structure_files(structures, *, chain: str | None = None) -> None:
    """Parse every structure file of ``structures`` now, so that a bad file is named before
    minutes of training rather than after (a directory's unusable files are skipped with a
    warning, as :func:`read_structure_inputs` does). ``"toy"`` needs no check."""
    if not (isinstance(structures, str) and structures == "toy"):
        read_structure_inputs(structures, chain=chain)


def pfam_domain_inputs(directory: str | Path) -> tuple[list[Structure], list[str]]:
    """The Pfam-domain structures (``PFxxxxx_PDBID_CHAIN.pdb``) with their family labels."""
    directory = Path(directory)
    files = sorted(directory.glob("PF*_*.pdb"))
    if not files:
        raise InputError(f"no PFxxxxx_PDBID_CHAIN.pdb files in {directory}")
    structures, labels = [], []
    for f in files:
        family, _pdb, chain = f.stem.split("_")[:3]
        structures.append(read_structure(f, chain=chain))
        labels.append(family)
    return structures, labels


def held_out(inputs: ResidueInputs, model: ResidueNet) -> ResidueInputs:
    """Toy inputs restricted to the proteins ``model`` held out in training (its checkpoint's
    ``held_out`` ids), so site metrics are measured on proteins it never fitted. Inputs that
    are not the toy universe, or a model without that record, come back unchanged."""
    keep = set(getattr(model, "meta", {}).get("held_out") or [])
    if inputs.source != "toy" or not keep & {s.id for s in inputs.structures}:
        return inputs
    structures = [s for s in inputs.structures if s.id in keep]
    log.info("explaining the %d toy proteins held out in training", len(structures))
    pick = lambda d: {k: v for k, v in d.items() if k in keep}  # noqa: E731
    return ResidueInputs(structures=structures, sites=pick(inputs.sites), baseline=pick(inputs.baseline),
                         labels=pick(inputs.labels), source=inputs.source, skipped=inputs.skipped)


def explain_inputs(model: ResidueNet, options, shared: dict, cache_dir: Path, run_dir):
    """The structures a loaded or toy-trained model explains, with graphs built as it was trained
    (pocket columns, its own per-residue embeddings), their sites and, for a site model, the
    cavity baseline; returns (inputs, graphs by id or None). ``options`` carry the known
    ``sites`` table and the toy universe's shape; ``shared`` the structures, chain and seed."""
    site_model = model.config.task == "residue"
    inputs = read_structure_inputs(shared["structures"], chain=shared["chain"], sites=options.sites,
                                   complexes=site_model, seed=shared["seed"],
                                   **{k: getattr(options, k) for k in TOY_SHAPE})
    inputs = held_out(inputs, model)  # toy: only the proteins the model did not train on
    spec = (getattr(model, "meta", None) or {}).get("esm")
    if model.config.esm_dim and not spec:
        raise InputError("this model was trained with per-residue embeddings but its checkpoint does not name the "
                         "encoder; load it in Python and pass esm= to explain_structures")
    if not site_model and not spec:
        return inputs, None
    graphs = featurize(inputs.structures, pockets=site_model, cache_dir=cache_dir,
                       esm=residue_embeddings(spec, inputs.structures, RunDir(run_dir).path("embedding_cache")))
    if site_model:  # graphs with pocket columns: the cavity baseline comes with them
        inputs.baseline = {s.id: baseline_scores(g) for s, g in zip(inputs.structures, graphs)}
        inputs.baseline_name = CAVITY_BASELINE
    return inputs, {s.id: g for s, g in zip(inputs.structures, graphs)}
