"""Scorers: independent and Potts on a planted coupling, masked marginals equal fair-esm's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from protlab.core.alphabet import AMINO_ACIDS
from protlab.esm.load import new_esm
from protlab.variants.alignment import alignment_from_rows
from protlab.variants.metrics import ndcg, score_metrics, top_recall
from protlab.variants.mutants import all_singles, parse_mutant
from protlab.variants.scorers import (combine_z, fit_potts, masked_log_probs, score_independent,
                                      score_masked_marginal, score_potts, window_of)

LENGTH, I, J = 12, 2, 8  # columns I and J co-vary: (A, K) or (E, R), never mixed


@pytest.fixture(scope="module")
def planted(one_torch_thread):
    rng = np.random.default_rng(0)
    wildtype = "MKALVSGDKTWY"  # A at I, K at J
    rows = [wildtype]
    for _ in range(300):  # every other column: its wild-type residue in 70 % of the homologs, else any
        seq = [a if rng.random() < 0.7 else str(rng.choice(list(AMINO_ACIDS))) for a in wildtype]
        seq[I], seq[J] = ("A", "K") if rng.random() < 0.5 else ("E", "R")
        rows.append("".join(seq))
    aln = alignment_from_rows(rows)
    return aln, fit_potts(aln, iterations=30)


def test_potts_recovers_the_planted_pair_and_independent_cannot(planted):
    aln, model = planted
    blocks = model.J.reshape(LENGTH, 21, LENGTH, 21)
    strength = np.sqrt((blocks[:, 1:, :, 1:] ** 2).sum(axis=(1, 3)))  # Frobenius norm per pair, gaps left out
    assert np.allclose(strength, strength.T) and np.all(np.diag(strength) == 0)
    mean = strength.sum(1) / (LENGTH - 1)  # average product correction, as EVcouplings ranks pairs
    strength = strength - np.outer(mean, mean) / (strength.sum() / (LENGTH * (LENGTH - 1)))
    iu = np.triu_indices(LENGTH, 1)
    ranked = sorted(zip(strength[iu], iu[0], iu[1]), reverse=True)
    assert (ranked[0][1], ranked[0][2]) == (I, J) and ranked[0][0] > 3 * ranked[1][0]
    mutants = [parse_mutant(t, aln_wt(aln)) for t in ("A3E", "K9R", "A3E:K9R")]
    potts = score_potts(aln, mutants, model)
    independent = score_independent(aln, mutants)
    # the compensated double mutant: Potts sees it fitter than its singles' sum, independent cannot
    assert independent[2] == pytest.approx(independent[0] + independent[1])
    assert potts[2] - potts[0] - potts[1] > 2.0
    assert potts[2] > potts[0] and potts[2] > potts[1]


def aln_wt(aln) -> str:
    return "".join(("-" + AMINO_ACIDS)[c] for c in aln.codes[0])


def test_potts_delta_energy_equals_energy_difference(planted):
    aln, model = planted
    wt = aln.codes[0].astype(np.int64)
    mutant = parse_mutant("M1W:A3E:K9R", aln_wt(aln))
    [delta] = score_potts(aln, [mutant], model)
    changed = wt.copy()
    for pos, _, mut in mutant.substitutions:
        changed[pos] = ("-" + AMINO_ACIDS).index(mut)
    assert delta == pytest.approx(model.energy(changed) - model.energy(wt), abs=1e-3)


def test_independent_uses_weighted_frequencies_and_skips_unmodelled_positions():
    rows = ["ACDE", "ACDE", "ACDF", "GCDF"]
    aln = alignment_from_rows(rows)
    aln.positions = np.array([0, 1, 2, 3])
    mutants = [parse_mutant("E4F", "ACDEK"), parse_mutant("A1G", "ACDEK"), parse_mutant("K5A", "ACDEK")]
    scores = score_independent(aln, mutants)
    assert scores[0] > scores[1] and np.isnan(scores[2])


def reference_masked_marginal(model, alphabet, sequence, mutant):
    """fair-esm's examples/variant-prediction/predict.py, masked-marginals strategy."""
    batch_converter = alphabet.get_batch_converter()
    _, _, batch_tokens = batch_converter([("protein", sequence)])
    all_token_probs = []
    for i in range(batch_tokens.size(1)):
        batch_tokens_masked = batch_tokens.clone()
        batch_tokens_masked[0, i] = alphabet.mask_idx
        with torch.no_grad():
            token_probs = torch.log_softmax(model(batch_tokens_masked)["logits"], dim=-1)
        all_token_probs.append(token_probs[:, i])
    token_probs = torch.cat(all_token_probs, dim=0).unsqueeze(0)
    score = 0.0
    for sub in mutant.split(":"):
        wt, idx, mt = sub[0], int(sub[1:-1]) - 1, sub[-1]
        assert sequence[idx] == wt
        score += (token_probs[0, 1 + idx, alphabet.get_idx(mt)] - token_probs[0, 1 + idx, alphabet.get_idx(wt)]).item()
    return score


def test_masked_marginal_equals_fair_esm(one_torch_thread):
    model, alphabet = new_esm({"num_layers": 2, "embed_dim": 32, "attention_heads": 4}, seed=3)
    sequence = "MKTAYIAKQRQISFVKSHFSRQ"
    texts = ["M1A", "K8D", "Q22W", "A4C:F14L"]
    mutants = [parse_mutant(t, sequence) for t in texts]
    ours = score_masked_marginal(sequence, mutants, model, alphabet, batch_size=3)
    expected = [reference_masked_marginal(model, alphabet, sequence, t) for t in texts]
    assert ours == pytest.approx(expected, abs=1e-5)
    singles = score_masked_marginal(sequence, all_singles(sequence)[:40], model, alphabet)
    assert np.isfinite(singles).all()


def test_long_proteins_are_scored_in_windows_centred_on_the_site(one_torch_thread):
    assert window_of(5, 100, 30) == (0, 30) and window_of(50, 100, 30) == (35, 65) and window_of(99, 100, 30) == (70, 100)
    model, alphabet = new_esm({"num_layers": 1, "embed_dim": 16, "attention_heads": 2}, seed=0)
    sequence = "".join(np.random.default_rng(1).choice(list(AMINO_ACIDS), 60))
    windowed = masked_log_probs(model, alphabet, sequence, [40], window=20)
    direct = masked_log_probs(model, alphabet, sequence[30:50], [10], window=20)
    assert windowed[40] == pytest.approx(direct[10], abs=1e-5)


def test_metrics_as_proteingym_computes_them():
    y = np.arange(100, dtype=float)
    assert ndcg(y, y) == pytest.approx(1.0) and top_recall(y, y) == pytest.approx(1.0)
    assert top_recall(y, -y) == 0.0 and ndcg(y, -y) < 0.2
    m = score_metrics(np.r_[y, np.nan], np.r_[y, 1.0])
    assert m["n"] == 100 and m["spearman"] == pytest.approx(1.0)
    z = combine_z({"a": np.array([1.0, 2.0, np.nan]), "b": np.array([10.0, 30.0, 20.0])})
    assert np.isfinite(z).all() and z[0] < z[1]
