"""Fixed-encoder probes: known answers on real-valued toy embeddings, and the bookkeeping of
labels a probe cannot predict."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from protlab.core.errors import InputError
from protlab.evaluate.probe import probe, score_predictions

CENTRES = {"a": (4.0, 0.0), "b": (-4.0, 0.0), "c": (0.0, 4.0)}


def blobs(per_class: int = 20, *, seed: int = 0, spread: float = 0.5):
    """Three well-separated Gaussian blobs in 2-D: ids, embeddings, labels."""
    rng = np.random.default_rng(seed)
    ids, rows, labels = [], [], {}
    for label, centre in CENTRES.items():
        for i in range(per_class):
            ids.append(f"{label}{i}")
            rows.append(np.asarray(centre) + spread * rng.standard_normal(2))
            labels[f"{label}{i}"] = label
    return ids, np.stack(rows), labels


def halves(ids):
    """Even members train, odd members test."""
    return {i: "train" if int(i[1:]) % 2 == 0 else "test" for i in ids}


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_separable_blobs_are_recovered(model):
    ids, emb, labels = blobs()
    result = probe(ids, emb, labels, halves(ids), model=model)
    m = result.metrics
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["accuracy_seen"] == 1.0
    assert (m["n_train"], m["n_test"], m["n_unseen_label"], m["n_train_classes"]) == (30, 30, 0, 3)
    assert (result.predictions == pd.Series(labels)[result.predictions.index]).all()


def test_labels_without_signal_score_near_chance():
    ids, emb, _ = blobs(per_class=60)
    rng = np.random.default_rng(1)
    shuffled = dict(zip(ids, rng.permutation([i[0] for i in ids])))
    m = probe(ids, emb, shuffled, halves(ids)).metrics
    assert m["accuracy"] < 0.6  # chance is 1/3


def test_a_label_absent_from_train_counts_as_an_error_and_is_reported():
    ids, emb, labels = blobs()
    # one test protein sits in blob 'a' but carries a label no train protein has
    labels["a1"] = "d"
    m = probe(ids, emb, labels, halves(ids)).metrics
    assert m["n_test"] == 30 and m["n_unseen_label"] == 1 and m["unseen_labels"] == ["d"]
    assert m["accuracy"] == pytest.approx(29 / 30) and m["accuracy_seen"] == 1.0
    # macro-F1 over the 4 classes present in the test labels: 'd' scores 0; 'a' has 9 of 10 predictions
    # right (precision 9/10, recall 1), 'b' and 'c' are perfect
    f1_a = 2 * 0.9 * 1.0 / 1.9
    assert m["macro_f1"] == pytest.approx((f1_a + 1 + 1 + 0) / 4)


def test_unlabelled_ids_are_left_out_and_counted():
    ids, emb, labels = blobs()
    labels["a0"], labels["b3"] = None, ""
    split = {**halves(ids), "x": "other"}  # an id of another split is ignored
    m = probe(ids, emb, labels, split).metrics
    assert (m["n_train"], m["n_train_unlabelled"], m["n_test"], m["n_test_unlabelled"]) == (29, 1, 29, 1)


def test_labels_and_split_may_be_series_or_a_labels_file(tmp_path):
    ids, emb, labels = blobs()
    path = tmp_path / "labels.tsv"
    pd.DataFrame({"id": list(labels), "label": list(labels.values())}).to_csv(path, sep="\t", index=False)
    m = probe(ids, emb, path, pd.Series(halves(ids))).metrics
    assert m["accuracy"] == 1.0


def test_score_predictions_counts_missing_predictions_as_errors():
    truth = {"p1": "x", "p2": "y", "p3": "z", "p4": "x"}
    m = score_predictions(truth, {"p1": "x", "p2": None, "p3": "x"}, train_labels=["x", "y"])
    assert (m["n_test"], m["n_correct"], m["n_no_prediction"], m["n_unseen_label"]) == (4, 1, 2, 1)
    assert m["accuracy"] == 0.25 and m["accuracy_seen"] == pytest.approx(1 / 3)
    # x: precision 1/2, recall 1/2 -> 0.5; y, z: 0
    assert m["macro_f1"] == pytest.approx(0.5 / 3)


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "embeddings": a["embeddings"][:-1]}, "one row per id"),
    (lambda a: {**a, "split": {**a["split"], "zz": "train"}}, "have no embedding"),
    (lambda a: {**a, "split": {i: "train" for i in a["ids"]}}, "no id is in the test split"),
    (lambda a: {**a, "labels": {i: "a" for i in a["ids"]}}, "1 distinct label"),
    (lambda a: {**a, "model": "forest"}, "model='forest'"),
    (lambda a: {**a, "ids": a["ids"][:-1] + [a["ids"][0]]}, "appear more than once"),
])
def test_bad_inputs_are_refused_naming_the_parameter(change, message):
    ids, emb, labels = blobs(per_class=4)
    args = change({"ids": ids, "embeddings": emb, "labels": labels, "split": halves(ids), "model": "linear"})
    with pytest.raises(InputError, match=message):
        probe(args["ids"], args["embeddings"], args["labels"], args["split"], model=args["model"])
