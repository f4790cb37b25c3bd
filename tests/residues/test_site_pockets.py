"""Pockets from residue scores and the pocket-level metrics (DCA, residue recall / MCC)."""
import numpy as np
import pytest

from protlab.core.errors import InputError
from protlab.residues.site_pockets import (dca_success, pocket_metrics, pocket_ranks, read_ligands,
                                           residue_agreement, score_pockets)


def _two_pockets():
    """Forty residues on a line 3 Å apart; a strong group at 0-3 and a weaker one at 30-33."""
    centroids = np.stack([np.arange(40) * 3.0, np.zeros(40), np.zeros(40)], 1)
    scores = np.zeros(40)
    scores[[0, 1, 2, 3]] = [0.9, 0.8, 0.9, 0.7]
    scores[[30, 31, 32, 33]] = 0.5
    return centroids, scores


def test_pockets_are_groups_of_top_residues_ranked_by_their_summed_scores():
    centroids, scores = _two_pockets()
    pockets = score_pockets(centroids, scores)
    assert [p.rank for p in pockets] == [1, 2]
    assert pockets[0].residues.tolist() == [0, 1, 2, 3] and pockets[1].residues.tolist() == [30, 31, 32, 33]
    assert pockets[0].score == pytest.approx(3.3) and pockets[1].score == pytest.approx(2.0)
    assert pockets[0].centre[0] == pytest.approx((0 * 0.9 + 3 * 0.8 + 6 * 0.9 + 9 * 0.7) / 3.3)
    ranks = pocket_ranks(40, pockets)
    assert ranks[[0, 31, 20]].tolist() == [1, 2, 0]
    assert score_pockets(centroids, np.zeros(40)) == []  # nothing scored: no pocket
    with pytest.raises(InputError, match="3 scores for 40 residues"):
        score_pockets(centroids, np.zeros(3))


def test_dca_counts_a_centre_within_4A_of_a_ligand_atom_among_the_top_n_and_n_plus_2():
    centroids, scores = _two_pockets()
    pockets = score_pockets(centroids, scores)
    near_second = np.array([[94.0, 2.0, 0.0]])  # ~2.1 Å from pocket 2's centre (x = 94.5)
    assert dca_success(pockets, near_second) == {"dca_top_n": 0.0, "dca_top_n2": 1.0}
    assert dca_success(pockets, near_second, n_ligands=2)["dca_top_n"] == 1.0
    assert dca_success(pockets, np.array([[50.0, 0, 0]])) == {"dca_top_n": 0.0, "dca_top_n2": 0.0}
    assert dca_success([], near_second) == {"dca_top_n": 0.0, "dca_top_n2": 0.0}


def test_residue_agreement_of_the_top_pocket():
    assert residue_agreement([0, 1, 2, 3], [2, 3, 4, 5], 10) == pytest.approx(
        {"recall": 0.5, "precision": 0.5, "mcc": (2 * 4 - 2 * 2) / np.sqrt(4 * 4 * 6 * 6)})
    assert residue_agreement([], [1], 5)["mcc"] == 0.0
    centroids, scores = _two_pockets()
    metrics = pocket_metrics(centroids, scores, [0, 1, 2, 3, 4], [np.array([[4.0, 1.0, 0.0]])])
    assert metrics["recall"] == pytest.approx(0.8) and metrics["precision"] == 1.0
    assert metrics["dca_top_n"] == 1.0 and metrics["n_pockets"] == 2


def test_ligand_files_are_read_by_molecule_and_a_damaged_one_is_named(shared_data, tmp_path):
    folder = shared_data / "structures" / "ligand_sites" / "ligands"
    primary = read_ligands(folder / "1G9V_RQ3_ligand.sdf")
    assert len(primary) == 1 and primary[0].shape == (25, 3)  # ligands.tsv: 25 heavy atoms
    bad = tmp_path / "bad.sdf"
    bad.write_text("not a molecule\n")
    with pytest.raises(InputError, match="bad.sdf"):
        read_ligands(bad)
