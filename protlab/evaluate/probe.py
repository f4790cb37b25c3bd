"""Fixed-encoder probes: how much of a labelling an embedding holds, as ProtST and ProtCLIP judge encoders.

:func:`probe` takes any embeddings (ids + matrix), a labels table (id → label) and a split
(id → split name), fits a classifier on the train ids' embeddings — ``"linear"``: multinomial
logistic regression; ``"mlp"``: one hidden layer — with the encoder fixed, and scores the test
ids (:func:`score_predictions`). Features are standardised on the train ids first, so the
probe sees every encoder on the same scale.

Bookkeeping is explicit rather than silent: a test id whose label never appears among the
train ids cannot be predicted by any probe; it stays in ``accuracy`` as an error and is
counted (``n_unseen_label``), and ``accuracy_seen`` scores the rest. Train or test ids
without a label are left out and counted (``n_train_unlabelled``, ``n_test_unlabelled``).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from protlab.core.errors import InputError
from protlab.evaluate.labels import read_labels

PROBES = ("linear", "mlp")


@dataclass
class ProbeResult:
    """``metrics`` (see :func:`score_predictions`, plus the probe's settings) and the
    predicted label of every scored test id."""

    metrics: dict
    predictions: pd.Series = field(repr=False)


def _series(values, name: str) -> pd.Series:
    """``values`` (a Series, a mapping, or for labels a TSV/CSV path) as an id-indexed Series of str ids."""
    if isinstance(values, (str, Path)):
        values = read_labels(values)
    if isinstance(values, Mapping):
        values = pd.Series(dict(values), dtype=object)
    if not isinstance(values, pd.Series):
        raise InputError(f"{name}: a pandas Series or a mapping of id -> value, not {type(values).__name__}")
    out = values.copy()
    out.index = out.index.astype(str)
    duplicated = out.index[out.index.duplicated()].unique().tolist()
    if duplicated:
        raise InputError(f"{name}: ids {duplicated[:5]} appear more than once")
    return out


def _known(labels: pd.Series) -> pd.Series:
    """The labels that are set (not None, NaN or blank), as str."""
    text = labels.astype(object).where(labels.notna(), None)
    keep = text.map(lambda v: v is not None and str(v).strip() != "")
    return text[keep].astype(str)


def score_predictions(truth, predictions, train_labels) -> dict:
    """Accuracy and macro-F1 of ``predictions`` (id → label; None or a missing id: no prediction)
    against ``truth`` (id → label) over every id of ``truth``.

    ``train_labels``: the labels a predictor could have learnt. A truth label outside them is
    an error that no predictor can avoid; it counts against ``accuracy`` and in
    ``n_unseen_label``, and ``accuracy_seen`` is the accuracy over the other ids. An id
    without a prediction (no hit, no class) is an error too (``n_no_prediction``).
    ``macro_f1`` averages the per-class F1 over the classes present in ``truth``.
    """
    truth = _series(truth, "truth").astype(str)
    predictions = _series(predictions, "predictions").reindex(truth.index)
    has_prediction = predictions.notna().to_numpy()
    predicted = np.where(has_prediction, predictions.astype(str).to_numpy(), "\x00none")
    correct = predicted == truth.to_numpy()
    seen = truth.isin(set(map(str, train_labels))).to_numpy()
    classes = sorted(set(truth))
    n = len(truth)
    return {
        "accuracy": float(correct.mean()) if n else None,
        "accuracy_seen": float(correct[seen].mean()) if seen.any() else None,
        "macro_f1": float(f1_score(truth.to_numpy(), predicted, labels=classes, average="macro",
                                   zero_division=0)) if n else None,
        "n_test": n,
        "n_correct": int(correct.sum()),
        "n_unseen_label": int((~seen).sum()),
        "n_no_prediction": int((~has_prediction).sum()),
        "n_test_classes": len(classes),
        "unseen_labels": sorted(set(truth[~seen]))[:20],
    }


def _classifier(model: str, seed: int, max_iter: int, hidden: int):
    if model == "linear":
        head = LogisticRegression(max_iter=max_iter, random_state=seed)
    else:
        # no early stopping: its held-out share is drawn stratified, which fails on classes
        # with one train member (most EC numbers)
        head = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=max_iter, random_state=seed)
    return make_pipeline(StandardScaler(), head)


def probe(ids, embeddings, labels, split, *, model: str = "linear", train_split: str = "train",
          test_split: str = "test", seed: int = 0, max_iter: int | None = None, hidden: int = 256) -> ProbeResult:
    """Fit a ``model`` probe on the ``train_split`` ids of ``split`` and score the ``test_split`` ids.

    ``ids`` name the rows of ``embeddings`` (n × d); ``labels``: id → label (a Series, a
    mapping, or a TSV/CSV / FASTA labels file as 05 reads them); ``split``: id → split name
    (ids of other splits are ignored). ``max_iter``: solver iterations (None: 1000 for
    ``"linear"``, 200 for ``"mlp"``); ``hidden``: the MLP's hidden units.
    """
    if model not in PROBES:
        raise InputError(f"model={model!r}: choose one of {list(PROBES)}")
    if train_split == test_split:
        raise InputError(f"train_split and test_split are both {train_split!r}: a probe is scored on ids it was "
                         "not fitted on")
    ids = [str(i) for i in ids]
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
        raise InputError(f"embeddings: shape {embeddings.shape} does not give one row per id ({len(ids)} ids)")
    if not np.isfinite(embeddings).all():
        raise InputError("embeddings: holds NaN or infinite values")
    row_of = pd.Series(np.arange(len(ids)), index=ids)
    if row_of.index.duplicated().any():
        raise InputError(f"ids: {row_of.index[row_of.index.duplicated()].unique().tolist()[:5]} appear more than once")
    labels, split = _known(_series(labels, "labels")), _series(split, "split").astype(str)
    train_ids, test_ids = split.index[split == train_split], split.index[split == test_split]
    for name, wanted, chosen in (("train", train_split, train_ids), ("test", test_split, test_ids)):
        if not len(chosen):
            raise InputError(f"split: no id is in the {name} split {wanted!r} (its splits: {sorted(set(split))[:10]})")
        missing = chosen[~chosen.isin(row_of.index)]
        if len(missing):
            raise InputError(f"split: {len(missing)} {name} id(s) have no embedding (e.g. {missing[:3].tolist()})")
    fit_ids, score_ids = train_ids[train_ids.isin(labels.index)], test_ids[test_ids.isin(labels.index)]
    train_labels = labels[fit_ids]
    if train_labels.nunique() < 2:
        raise InputError(f"labels: the train ids carry {train_labels.nunique()} distinct label(s); a probe needs 2+")
    if not len(score_ids):
        raise InputError(f"labels: none of the {len(test_ids)} test ids has a label")
    classifier = _classifier(model, seed, max_iter or (1000 if model == "linear" else 200), hidden)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(embeddings[row_of[fit_ids].to_numpy()], train_labels.to_numpy())
    predicted = pd.Series(classifier.predict(embeddings[row_of[score_ids].to_numpy()]), index=score_ids, dtype=object)
    metrics = score_predictions(labels[score_ids], predicted, train_labels.unique())
    metrics.update(model=model, n_train=len(fit_ids), n_train_classes=int(train_labels.nunique()),
                   n_train_unlabelled=len(train_ids) - len(fit_ids), n_test_unlabelled=len(test_ids) - len(score_ids),
                   dim=int(embeddings.shape[1]),
                   converged=not any(issubclass(w.category, ConvergenceWarning) for w in caught))
    return ProbeResult(metrics, predicted)
