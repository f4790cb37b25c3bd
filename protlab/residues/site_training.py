"""Train the residue-clustering network to find functional sites, and measure it.

Structures (every protein chain of each file, :func:`~protlab.curate.structures.read_complex`)
with site residues from a table (:mod:`protlab.residues.site_table`) are split by sequence
identity (whole identity clusters on one side; :func:`split_structures`), the network learns
``task="residue"`` (a site probability per residue, binary cross-entropy) with pocket
features (:mod:`protlab.residues.pockets`); :func:`train_on_sites` does all of this for
stage 06, whose site metrics then measure the held-out structures: precision@k with k = the
site's size, beside the learned peer PocketNet when it is installed
(:mod:`protlab.residues.pocket_peer`; by default ensembled with the network), the
cavity-detection baseline (pyKVFinder, largest cavities first) and random picks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.curate.records import Structure
from protlab.curate.split import split_by_identity
from protlab.residues.features import baseline_scores, featurize, residue_embeddings
from protlab.residues.graph import ResidueGraph
from protlab.residues.inputs import ResidueInputs, read_structure_inputs
from protlab.residues.label_table import chain_name
from protlab.residues.network import save_network
from protlab.residues.pocket_peer import ABSENT, PEER, peer_cache, peer_scores
from protlab.residues.pockets import CAVITY_BASELINE
from protlab.residues.training import TrainResult, train_residue_model

log = logging.getLogger(__name__)
SPLIT_IDENTITY = 0.3   # structures whose chains share ≥ 30 % identity stay on one side


@dataclass
class SiteData:
    """Structures with known sites, their graphs (pocket columns included) and 0/1 site arrays."""

    structures: list[Structure]
    graphs: list[ResidueGraph]
    sites: list[np.ndarray]                  # (L,) 0/1 per structure
    split: list[str] = field(default_factory=list)  # "train" / "test" per structure

    def part(self, name: str) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == name]


def split_structures(structures: Sequence[Structure], *, test_fraction: float, seed: int = 0,
                     given: dict[str, str] | None = None, otherwise: str | None = None) -> list[str]:
    """"train" / "test" per structure: ``given`` (structure id, or ``PDBID-CHAIN``, → split) when
    passed (structures it does not name get ``otherwise``, an error when None), else whole
    clusters at :data:`SPLIT_IDENTITY` sequence identity (MMseqs2), about ``test_fraction`` tested."""
    if given is not None:
        lookup = {k.lower(): v for k, v in given.items()}
        names = [next((lookup[n] for n in (s.id.lower(), chain_name(s).lower()) if n in lookup), otherwise)
                 for s in structures]
        missing = [s.id for s, v in zip(structures, names) if v is None]
        if missing:
            raise InputError(f"the split list names no split for {len(missing)} structure(s), e.g. {missing[:5]}")
        bad = sorted(set(names) - {"train", "test"})
        if bad:
            raise InputError(f"split values {bad}: use 'train' or 'test'")
        return names
    frame = pd.DataFrame({"id": [s.id for s in structures], "sequence": [s.sequence for s in structures]})
    out = split_by_identity(frame, identity=SPLIT_IDENTITY, fractions=(1 - test_fraction, 0.0, test_fraction),
                            seed=seed, stratify=None)
    return ["test" if v == "test" else "train" for v in out["split"]]


def site_data(structures: Sequence[Structure], sites: Sequence[Sequence[int]], *, cache_dir=None,
              progress: bool = True, esm: dict | None = None) -> SiteData:
    """Graphs with pocket columns (and ``esm`` per-residue embeddings when given) and 0/1 site
    arrays of structures whose sites are known."""
    graphs = featurize(structures, pockets=True, cache_dir=cache_dir, progress=progress, esm=esm)
    arrays = []
    for s, site in zip(structures, sites):
        y = np.zeros(len(s), dtype=np.float32)
        y[np.asarray(list(site), dtype=int)] = 1.0
        arrays.append(y)
    return SiteData(list(structures), graphs, arrays)


def train_site_model(data: SiteData, *, epochs: int, seed: int = 0, log_every: int = 0,
                     **options) -> TrainResult:
    """Train a ``task="residue"`` network on the ``train`` part of ``data``."""
    train = data.part("train") if data.split else list(range(len(data.structures)))
    if len(train) < 2:
        raise InputError(f"{len(train)} structure(s) with known sites to train on: need at least 2")
    return train_residue_model([data.structures[i] for i in train], [data.sites[i] for i in train],
                               graphs=[data.graphs[i] for i in train], task="residue", pocket_features=True,
                               epochs=epochs, seed=seed, log_every=log_every, length_buckets=True, **options)


def cavity_baseline_scores(data: SiteData) -> dict[str, np.ndarray]:
    """id → the cavity-detection baseline's residue scores (from the cached pocket columns)."""
    return {s.id: baseline_scores(g) for s, g in zip(data.structures, data.graphs)}


def measure_peer(tested: ResidueInputs, mode: str, cache_dir: Path) -> None:
    """PocketNet's scores of the tested structures for the ``peer`` mode (``"ensemble"`` or
    ``"measure"``; ``"off"``: none), or why there are none (said once)."""
    if mode == "off":
        return
    tested.peer = peer_scores(tested.structures, peer_cache(cache_dir))
    if tested.peer is None:
        tested.peer_note = ABSENT
        log.warning(ABSENT)
    else:
        tested.peer_name = PEER


def read_split_table(path: str | Path) -> tuple[dict[str, str], str | None]:
    """(``{structure id or PDBID-CHAIN: "train" | "test"}``, the split of structures it does not
    name): a TSV with columns id and split names every structure (None), a plain list of ids,
    one per line (e.g. DeepFRI's ``*_valid.txt`` / ``*_test.txt``), names the test part and the
    rest is trained on ("train")."""
    lines = Path(path).read_text().splitlines()
    if lines and lines[0].split("\t")[:2] == ["id", "split"]:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        return dict(zip(frame["id"], frame["split"].str.strip().str.lower())), None
    ids = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    bad = [i for i in ids if "\t" in i or " " in i]
    if bad or not ids:
        raise InputError(f"split={str(path)!r}: give a TSV with columns id and split (train/test), or a list of test "
                         f"ids, one per line" + (f"; line {lines.index(bad[0]) + 1} is {bad[0]!r}" if bad else ""))
    return {i: "test" for i in ids}, "train"


def train_on_sites(run_dir: str | Path, options, shared: dict, cache_dir: Path):
    """06's ``sites`` workflow: read every chain of the structures, learn their known sites
    (``options.table``) on a training part, save the model; returns (model, history, inputs,
    graphs by id): the inputs are the held-out structures with their sites and the cavity baseline."""
    inputs = read_structure_inputs(shared["structures"], sites=options.table, complexes=True)
    known = [s for s in inputs.structures if s.id in inputs.sites]
    if len(known) < 3:
        raise InputError(f"sites={options.table!r} names site residues of {len(known)} of the "
                         f"{len(inputs.structures)} structures; training needs at least 3 (the table's pdb_id/file "
                         "and chain columns must name the structures' files and chains)")
    unnamed = len(inputs.structures) - len(known)
    if unnamed:
        log.warning("%d structure(s) without a site in %s: not used for training or measuring", unnamed,
                    options.table)
    run = RunDir(run_dir)
    data = site_data(known, [inputs.sites[s.id] for s in known], cache_dir=cache_dir,
                     esm=residue_embeddings(options.esm, known, run.path("embedding_cache")))
    given, otherwise = read_split_table(options.split) if options.split is not None else (None, None)
    data.split = split_structures(known, test_fraction=options.test_fraction, seed=shared["seed"], given=given,
                                  otherwise=otherwise)
    result = train_site_model(data, epochs=options.epochs, seed=shared["seed"], hidden=options.hidden,
                              batch_size=options.batch_size, residue_dropout=options.residue_dropout,
                              log_every=max(1, options.epochs // 10), progress=False, bf16=options.bf16,
                              state_path=run.writable("residue_training_state"), log_path=run.writable("residue_log"),
                              resume=options.resume, resume_override=options.resume_override)
    model = result.model
    test = data.part("test")
    model.meta.update(trained_on="sites", sites=str(options.table), history=result.history, esm=options.esm,
                      trained=[data.structures[i].id for i in data.part("train")],
                      held_out=[data.structures[i].id for i in test])
    save_network(model, run.writable("residue_network"), **model.meta)
    baseline = cavity_baseline_scores(data)
    held = [data.structures[i] for i in test]
    tested = ResidueInputs(structures=held, sites={s.id: inputs.sites[s.id] for s in held},
                           baseline={s.id: baseline[s.id] for s in held}, source=inputs.source,
                           skipped=inputs.skipped, baseline_name=CAVITY_BASELINE)
    measure_peer(tested, options.peer, cache_dir)
    return model, result.history, tested, {i: data.graphs[k] for k, i in enumerate([s.id for s in known])}
