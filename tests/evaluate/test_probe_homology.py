"""Homology transfer's bookkeeping: the best hit per query, ties, queries without a hit."""
from __future__ import annotations

import numpy as np
import pytest

from protlab.core.errors import InputError
from protlab.core.mmseqs import mmseqs_available
from protlab.evaluate.homology import best_hits, homology_transfer, transfer_labels
from protlab.evaluate.probe import score_predictions


def test_best_hit_per_query_with_ties_to_the_lower_target():
    # query 0: targets 2 (50 bits) and 1 (80); query 2: a tie between 3 and 0; query 1 and 3: no hit
    best = best_hits([0, 0, 2, 2], [2, 1, 3, 0], [50.0, 80.0, 40.0, 40.0], n_queries=4)
    assert best.tolist() == [1, -1, 0, -1]
    assert best_hits([], [], [], n_queries=2).tolist() == [-1, -1]


def test_queries_without_a_hit_are_scored_as_errors():
    predictions = transfer_labels(["q0", "q1", "q2", "q3"], np.array([1, -1, 0, -1]), ["1.1.1.1", "2.7.1.1"])
    assert predictions.tolist() == ["2.7.1.1", None, "1.1.1.1", None]
    truth = {"q0": "2.7.1.1", "q1": "2.7.1.1", "q2": "3.1.1.1", "q3": "1.1.1.1"}
    m = score_predictions(truth, predictions, train_labels=["1.1.1.1", "2.7.1.1"])
    assert (m["n_test"], m["n_correct"], m["n_no_prediction"], m["n_unseen_label"]) == (4, 1, 2, 1)
    assert m["accuracy"] == 0.25


def test_bad_hits_are_refused():
    with pytest.raises(InputError, match="query indices"):
        best_hits([0, 5], [0, 0], [1.0, 1.0], n_queries=2)
    with pytest.raises(InputError, match="query_ids"):
        transfer_labels(["q0"], np.array([0, 0]), ["x"])


@pytest.mark.skipif(not mmseqs_available(), reason="MMseqs2 is not installed")
def test_homologs_transfer_their_label_and_a_stranger_gets_none():
    rng = np.random.default_rng(0)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    family = ["".join(rng.choice(aa, 150)) for _ in range(2)]

    def mutant(seq, share=0.1):
        s = np.array(list(seq))
        at = rng.random(len(s)) < share
        s[at] = rng.choice(aa, at.sum())
        return "".join(s)

    targets = [mutant(family[0]), mutant(family[1])]
    queries = [mutant(family[1]), mutant(family[0]), "".join(rng.choice(aa, 150))]
    predictions, counts = homology_transfer(["q0", "q1", "q2"], queries, targets, ["B", "A"], threads=1)
    assert predictions.tolist() == ["A", "B", None]
    assert counts == {"n_queries": 3, "n_with_hit": 2, "share_without_hit": pytest.approx(1 / 3)}
