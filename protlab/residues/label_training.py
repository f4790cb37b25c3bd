"""Train the residue-clustering network on protein-level labels of real structures.

Structures (one chain each: the chains a :class:`~protlab.residues.label_table.LabelTable`
names, or the first protein chain) get their labels from the table; the network learns them
with cross-entropy (one label per structure) or binary cross-entropy (several), on a split
by sequence identity or given lists, and :func:`label_report` measures the held-out part:
accuracy beside the majority class, or protein-centric Fmax and micro-averaged AUPR (as
DeepFRI and the CVPR 2024 paper report them) beside the training-frequency baseline.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from protlab.core.errors import InputError, ProtlabError
from protlab.core.rundir import RunDir
from protlab.curate.records import Structure
from protlab.curate.structures import pdb_id, read_structure, structure_id, structure_paths
from protlab.residues.features import featurize, residue_embeddings
from protlab.residues.file_sites import file_site_indices
from protlab.residues.graph import check_structure
from protlab.residues.inputs import ResidueInputs
from protlab.residues.label_table import LabelTable, read_label_table
from protlab.residues.network import save_network
from protlab.residues.site_training import read_split_table, split_structures
from protlab.residues.training import fmax, predict, train_residue_model

log = logging.getLogger(__name__)


def _keys(path: Path) -> list[str]:
    stem = structure_id(path).lower()
    return list(dict.fromkeys([stem, pdb_id(stem).lower()]))


def labelled_structures(source, table: LabelTable, *, chain: str | None = None
                        ) -> tuple[list[Structure], list[list[str]], dict[str, str], list[str]]:
    """(structures, labels per structure, skipped file → why, table rows naming no file): every
    chain the table labels in each file (rows without a chain: ``chain`` or the first protein
    chain)."""
    structures, labels, skipped, named = [], [], {}, set()
    for path in structure_paths(source):
        rows = next((table.rows[table.rows["key"] == k] for k in _keys(path)
                     if (table.rows["key"] == k).any()), None)
        if rows is None:
            skipped[str(path)] = f"no row of {table.source} names it"
            continue
        named.add(rows["key"].iloc[0])
        for wanted in dict.fromkeys(c or chain for c in rows["chain"]):
            try:
                s = read_structure(path, chain=wanted)
                check_structure(s)
            except ProtlabError as exc:
                skipped[f"{path}:{wanted}"] = str(exc)
                continue
            found = table.lookup(rows["key"].iloc[0], s.chain)
            if found:
                structures.append(s)
                labels.append(found)
    unnamed = table.rows_naming_none(named)
    for where, why in skipped.items():
        log.warning("not used for training on labels: %s: %s", where, why)
    if unnamed:
        log.warning("not used for training on labels: %d rows of %s name no structure file of %s (e.g. %s)",
                    len(unnamed), table.source, source, unnamed[:3])
    if len(structures) < 2:
        raise InputError(f"{len(structures)} structure chain(s) carry a label of {table.source}; training needs at "
                         "least 2 (its structure column names files or PDB ids, its chain column chains)")
    return structures, labels, skipped, unnamed


def label_targets(labels: Sequence[list[str]], multi: bool) -> list:
    """What :func:`~protlab.residues.training.train_residue_model` takes: a class per structure,
    or a list of labels per structure."""
    return [list(x) for x in labels] if multi else [x[0] for x in labels]


def label_report(model, graphs, labels: Sequence[list[str]], train_labels: Sequence[list[str]]) -> dict:
    """Held-out metrics of a trained label model beside the trivial baseline."""
    classes = list(model.config.class_names)
    index = {c: i for i, c in enumerate(classes)}
    probs = predict(model, graphs).numpy()
    if model.config.task == "single":
        truth = np.array([index.get(x[0], -1) for x in labels])
        counts = np.bincount([index[x[0]] for x in train_labels if x[0] in index], minlength=len(classes))
        return {"task": "single", "n_test": len(graphs), "accuracy": float((probs.argmax(1) == truth).mean()),
                "baseline": "majority class of the training part",
                "baseline_accuracy": float((truth == counts.argmax()).mean())}
    target = np.zeros((len(labels), len(classes)))
    for i, x in enumerate(labels):
        for v in x:
            if v in index:
                target[i, index[v]] = 1
    freq = np.zeros(len(classes))
    for x in train_labels:
        for v in x:
            if v in index:
                freq[index[v]] += 1
    freq = np.tile(freq / max(len(train_labels), 1), (len(labels), 1))
    return {"task": "multi", "n_test": len(graphs), "fmax": fmax(probs, target), "aupr": micro_aupr(probs, target),
            "baseline": "label frequency in the training part", "baseline_fmax": fmax(freq, target),
            "baseline_aupr": micro_aupr(freq, target)}


def micro_aupr(probs: np.ndarray, targets: np.ndarray) -> float:
    """Micro-averaged area under the precision–recall curve (DeepFRI's AUPR), labels seen in
    training only; NaN without any positive."""
    targets = np.asarray(targets) > 0.5
    if not targets.any():
        return float("nan")
    return float(average_precision_score(targets.ravel(), np.asarray(probs, dtype=float).ravel()))


def predicted_labels(model, graphs) -> list[str]:
    """The predicted class (single) or labels ≥ 0.5 (multi) per structure, as text."""
    probs = predict(model, graphs)
    names = model.config.class_names
    if model.config.task == "single":
        return [names[i] for i in probs.argmax(1).tolist()]
    return [";".join(names[j] for j in torch.nonzero(row >= 0.5).flatten().tolist()) for row in probs]


def train_on_labels(run_dir: str | Path, options, shared: dict, cache_dir: Path):
    """06's ``labels`` workflow: learn the structures' protein-level labels (``options.table``) on
    a training part, save the model; returns (model, history, inputs, graphs by id, report): the
    inputs are the held-out structures (sites from their files), the report their accuracy or
    Fmax/AUPR beside the trivial baseline."""
    table = read_label_table(options.table)
    structures, labels, skipped, unnamed = labelled_structures(shared["structures"], table, chain=shared["chain"])
    given, otherwise = read_split_table(options.split) if options.split is not None else (None, None)
    split = split_structures(structures, test_fraction=options.test_fraction, seed=shared["seed"], given=given,
                             otherwise=otherwise)
    train = [i for i, v in enumerate(split) if v == "train"]
    test = [i for i, v in enumerate(split) if v == "test"]
    if len(train) < 2 or not test:
        raise InputError(f"{len(train)} training and {len(test)} test structures: need at least 2 and 1 "
                         "(more labelled structures, or another split)")
    classes = sorted({v for i in train for v in labels[i]})
    if len(classes) < 2:
        raise InputError(f"the {len(train)} training structures carry {len(classes)} label(s) {classes} of "
                         f"{table.source}: a model of one class always predicts it; training needs at least 2 "
                         f"({len(skipped)} files skipped, {len(unnamed)} table rows name no file)")
    run = RunDir(run_dir)
    graphs = featurize(structures, cache_dir=cache_dir, progress=True,
                       esm=residue_embeddings(options.esm, structures, run.path("embedding_cache")))
    multi = table.multi_label
    result = train_residue_model([structures[i] for i in train], label_targets([labels[i] for i in train], multi),
                                 task="multi" if multi else "single", graphs=[graphs[i] for i in train],
                                 epochs=options.epochs, seed=shared["seed"], hidden=options.hidden,
                                 batch_size=options.batch_size, residue_dropout=options.residue_dropout,
                                 log_every=max(1, options.epochs // 10), progress=False, length_buckets=True,
                                 bf16=options.bf16, state_path=run.writable("residue_training_state"),
                                 log_path=run.writable("residue_log"), resume=options.resume,
                                 resume_override=options.resume_override)
    model = result.model
    model.meta.update(trained_on="labels", labels=str(options.table), history=result.history, esm=options.esm,
                      trained=[structures[i].id for i in train], held_out=[structures[i].id for i in test])
    save_network(model, run.writable("residue_network"), **model.meta)
    report = label_report(model, [graphs[i] for i in test], [labels[i] for i in test], [labels[i] for i in train])
    report.update(n_train=len(train), classes=len(model.config.class_names), skipped=len(skipped) + len(unnamed),
                  skipped_rows=len(unnamed))
    if unnamed:  # one entry for the rows: a table may label far more structures than were given
        skipped = {**skipped, f"{table.source}: {len(unnamed)} rows": f"name no structure file of "
                                                                       f"{shared['structures']}, e.g. {unnamed[:3]}"}
    held = [structures[i] for i in test]
    sites = {s.id: idx for s in held if (idx := file_site_indices(s))}
    inputs = ResidueInputs(structures=held, sites=sites, labels={structures[i].id: ";".join(labels[i]) for i in test},
                           source=str(shared["structures"]), skipped=skipped)
    return model, result.history, inputs, {structures[i].id: graphs[i] for i in test}, report
