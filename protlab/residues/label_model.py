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
from protlab.curate.records import Structure
from protlab.curate.structures import read_structure, structure_id, structure_paths
from protlab.residues.graph import check_structure
from protlab.residues.label_table import LabelTable
from protlab.residues.training import fmax, predict

log = logging.getLogger(__name__)


def chain_name(structure: Structure) -> str:
    """``PDBID-CHAIN`` as DeepFRI names a chain (file stem up to the first ``_`` or ``-``)."""
    stem = structure.id.split("_")[0].split("-")[0]
    return f"{stem.upper()}-{structure.chain}"


def _keys(path: Path) -> list[str]:
    stem = structure_id(path).lower()
    return list(dict.fromkeys([stem, stem.split("_")[0].split("-")[0][:4]]))


def labelled_structures(source, table: LabelTable, *, chain: str | None = None
                        ) -> tuple[list[Structure], list[list[str]], dict[str, str]]:
    """(structures, labels per structure, skipped file → why): every chain the table labels
    in each file (rows without a chain: ``chain`` or the first protein chain)."""
    structures, labels, skipped = [], [], {}
    for path in structure_paths(source):
        rows = next((table.rows[table.rows["key"] == k] for k in _keys(path)
                     if (table.rows["key"] == k).any()), None)
        if rows is None:
            skipped[str(path)] = f"no row of {table.source} names it"
            continue
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
    for where, why in skipped.items():
        log.warning("not used for training on labels: %s: %s", where, why)
    if len(structures) < 2:
        raise InputError(f"{len(structures)} structure chain(s) carry a label of {table.source}; training needs at "
                         "least 2 (its structure column names files or PDB ids, its chain column chains)")
    return structures, labels, skipped


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
