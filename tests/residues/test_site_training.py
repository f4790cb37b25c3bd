"""Training the residue-clustering network on real structures: sites (residue level) and labels
(protein level), pocket features, the cavity baseline, cached featurisation, complexes."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import protlab.residues as residues
from protlab.core.errors import InputError
from protlab.core.training_log import read_records
from protlab.curate.structures import read_complex, read_structure
from protlab.residues import features, pocket_peer, pockets
from protlab.residues.explain import explain_batch
from protlab.residues.graph import collate
from protlab.residues.label_training import label_report, micro_aupr
from protlab.residues.label_table import read_label_table, read_split_lists
from protlab.residues.network import ResidueNet, ResidueNetConfig
from protlab.residues.site_training import site_data, train_site_model
from protlab.residues.training import length_batches


@pytest.fixture(scope="module")
def ligand_sites(shared_data):
    return shared_data / "structures" / "ligand_sites"


@pytest.fixture()
def six_complexes(ligand_sites, tmp_path):
    """Six real protein–ligand complexes (copies: the cache tests edit them)."""
    folder = tmp_path / "structures"
    folder.mkdir()
    for path in sorted((ligand_sites / "structures").glob("*.pdb"))[:6]:
        shutil.copy(path, folder / path.name)
    return folder


def test_a_complex_holds_every_protein_chain(ligand_sites):
    s = read_complex(ligand_sites / "structures" / "1G9V_RQ3_protein.pdb")
    assert s.chain == "A,B,C,D" and len(s) == 574 and sorted(set(s.residue_chains())) == ["A", "B", "C", "D"]
    keys = s.residue_keys()
    assert len(set(keys)) == len(keys) and keys[0] == ("A", "1")
    one = read_structure(ligand_sites / "structures" / "1G9V_RQ3_protein.pdb", chain="B")
    assert [k for k in keys if k[0] == "B"] == one.residue_keys()


def test_the_cavity_baseline_finds_the_ligand_pocket(ligand_sites):
    """On 1G9V (haemoglobin with RQ3) the residues lining the largest cavities hit the site far above
    random, and the cavity columns rank exactly as the baseline scores."""
    s = read_complex(ligand_sites / "structures" / "1G9V_RQ3_protein.pdb")
    feats, baseline = pockets.pocket_features(s)
    assert feats.shape == (len(s), pockets.N_POCKET_FEATURES) and np.isfinite(feats).all()
    table = residues.read_site_table(ligand_sites / "binding_sites_primary.tsv")
    site = residues.site_residues(s, table)
    assert len(site) == 10
    k = len(site)
    top = np.argsort(-baseline, kind="stable")[:k]
    assert np.isin(top, site).mean() > 3 * k / len(s)  # random picks: k / L
    in_cavity = feats[:, pockets.POCKET_FEATURES.index("in_cavity")] > 0
    assert ((baseline > 0) == in_cavity).all()
    buried = feats[:, pockets.POCKET_FEATURES.index("atoms_within_10A")]
    assert buried[site].mean() > buried.mean()  # binding residues are buried


def test_pocket_features_need_a_file():
    toy = residues.toy_inputs(n_families=2, members_per_family=1).structures[0]
    with pytest.raises(InputError, match="pocket features need its PDB/mmCIF file"):
        pockets.pocket_features(toy)


def test_graphs_are_cached_by_file_content(six_complexes, tmp_path, monkeypatch):
    structures = [read_complex(p) for p in sorted(six_complexes.glob("*.pdb"))[:2]]
    cache = tmp_path / "cache"
    first = features.featurize(structures, pockets=True, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    monkeypatch.setattr(features, "pocket_features", lambda s: pytest.fail("recomputed a cached graph"))
    again = features.featurize(structures, pockets=True, cache_dir=cache)
    for a, b in zip(first, again):
        assert np.array_equal(a.feats, b.feats) and np.array_equal(a.aa, b.aa) and a.id == b.id
    # an edited file gets a new key; without pockets another key again
    path = structures[0].source
    before = features.graph_key(structures[0], pockets=True)
    with open(path, "a") as fh:
        fh.write("REMARK edited\n")
    assert features.graph_key(read_complex(path), pockets=True) != before
    assert features.graph_key(structures[1], pockets=False) != features.graph_key(structures[1], pockets=True)
    (cache / f"{features.graph_key(structures[1], pockets=True)}.npz").write_bytes(b"damaged")
    monkeypatch.setattr(features, "pocket_features", pockets.pocket_features)
    repaired = features.featurize([structures[1]], pockets=True, cache_dir=cache)[0]
    assert np.array_equal(repaired.feats, first[1].feats)


def test_the_residue_task_scores_every_residue_and_ignores_padding():
    torch.manual_seed(0)
    inputs = residues.toy_inputs(n_families=2, members_per_family=2, length_range=(50, 70))
    graphs = features.featurize(inputs.structures)
    model = ResidueNet(ResidueNetConfig(n_classes=1, task="residue", hidden=16)).eval()
    batch = collate(graphs)
    logits = model(batch)
    assert logits.shape == batch.mask.shape and torch.isinf(logits[~batch.mask]).all()
    alone = model(collate(graphs[:1]))
    n = len(graphs[0])
    assert torch.allclose(alone[0, :n], logits[0, :n], atol=1e-5)  # padding does not leak
    target = torch.zeros(batch.mask.shape)
    target[0, :5] = 1
    assert torch.isfinite(model.loss(logits, target))
    ex = explain_batch(model, batch)  # the site probability itself
    assert torch.allclose(ex["importance"][batch.mask], torch.sigmoid(logits[batch.mask]))


def test_length_batches_cover_every_protein_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 1500, size=103)
    parts = length_batches(lengths, 16, rng)
    flat = np.concatenate(parts)
    assert sorted(flat.tolist()) == list(range(103)) and max(len(p) for p in parts) == 16
    spread = np.mean([np.ptp(lengths[p]) for p in parts])
    assert spread < 0.5 * np.ptp(lengths)  # similar lengths share a batch


def test_training_on_sites_measures_held_out_structures_beside_the_cavity_baseline(six_complexes, ligand_sites,
                                                                                   tmp_path, capsys):
    run = tmp_path / "run"
    split = tmp_path / "split.tsv"
    ids = sorted(p.stem for p in six_complexes.glob("*.pdb"))
    split.write_text("id\tsplit\n" + "".join(f"{i}\t{'test' if n >= 4 else 'train'}\n" for n, i in enumerate(ids)))
    result = residues.run(run, structures=str(six_complexes), sites=str(ligand_sites / "binding_sites_primary.tsv"),
                          split=str(split), epochs=2, hidden=16, max_views=1, top_k=5)
    assert "[residues] epoch 2/2  loss" in capsys.readouterr().out  # progress reaches papermill's log
    assert result.mode == "sites" and [r["epoch"] for r in read_records(run / "residues" / "training_log.jsonl")] \
        == [1, 2]
    assert [ex.id for ex in result.explanations] == ids[4:]
    metrics = json.loads((run / "residue_metrics.json").read_text())
    assert metrics.get("peer_note") == pocket_peer.ABSENT or metrics["peer"] == pocket_peer.PEER  # said either way
    for key in ("precision_at_k", "random_precision_at_k", "baseline_precision_at_k"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["baseline"] == pockets.CAVITY_BASELINE and metrics["n_proteins"] == 2
    assert result.results["model_task"] == "residue" and result.results["model_trained_on"] == "sites"
    assert (run / "residues" / "training.csv").is_file() and (run / "figures" / "residue_training.html").is_file()
    assert (run / "figures" / f"residues_3d_{ids[4]}.html").is_file()
    # every chain is scored and drawn: the residue table and the view's atoms name them all
    from protlab.plot.structure_atoms import structure_pdb

    complex_ = result.explanations[0].structure
    assert set(result.explanations[0].table()["chain"]) == set(complex_.residue_chains())
    pdb, _ = structure_pdb(complex_)
    assert {line[21] for line in pdb.splitlines() if line.startswith("ATOM")} == set(complex_.residue_chains())
    # the saved model explains without training, with the same scores
    again = residues.run(tmp_path / "again", structures=str(six_complexes / f"{ids[5]}.pdb"),
                         checkpoint=str(run / "checkpoints" / "residue_cluster.pt"),
                         sites=str(ligand_sites / "binding_sites_primary.tsv"), max_views=1)
    assert not (tmp_path / "again" / "checkpoints").exists()
    assert np.allclose(again.explanations[0].importance, result.explanations[1].importance, atol=1e-5)
    assert again.metrics["baseline_precision_at_k"] == pytest.approx(
        metrics["per_protein"][1]["baseline_precision_at_k"])


def test_sites_that_name_no_structure_are_a_clear_error(six_complexes, tmp_path):
    table = tmp_path / "sites.tsv"
    table.write_text("pdb_id\tchain\tres_num\tins_code\n9xyz\tA\t12\t\n")
    with pytest.raises(InputError, match=r"names site residues of 0 of the 6 structures"):
        residues.run(tmp_path / "run", structures=str(six_complexes), sites=str(table), epochs=1)


def test_deepfri_annotations_are_read_as_they_are(shared_data):
    folder = shared_data / "benchmarks" / "deepfri_ec"
    table = read_label_table(folder / "nrPDB-EC_2020.04_annot.train_valid_only.tsv")
    assert len(table.vocabulary) > 500 and "4.2.1.1" in table.vocabulary and table.multi_label
    assert table.lookup("4pr3", "A") == ["3.2.2.-", "3.2.2.9"] and table.lookup("4pr3", "Z") is None
    lists = read_split_lists({"train": folder / "nrPDB-EC_2020.04_train.txt",
                              "valid": folder / "nrPDB-EC_2020.04_valid.txt"})
    assert len(lists) == 17280 and lists[("4pr3", "A")] == "train"


def test_label_tables_and_their_errors(tmp_path):
    good = tmp_path / "labels.tsv"
    good.write_text("structure\tchain\tlabels\n1abc.pdb\tA\tEC:1; EC:2\n2xyz\t\tkinase\n")
    table = read_label_table(good)
    assert table.lookup("1abc", "A") == ["EC:1", "EC:2"] and table.lookup("2xyz", "Q") == ["kinase"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("structure\tlabel\n1abc\t\n")
    with pytest.raises(InputError, match=r"bad.tsv: row 1 \('1abc'\) has no label"):
        read_label_table(bad)
    bad.write_text("name\tvalue\n1abc\tx\n")
    with pytest.raises(InputError, match="need a structure column"):
        read_label_table(bad)


def test_label_metrics_beside_the_trivial_baselines():
    assert micro_aupr(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1, 0], [0, 1]])) == pytest.approx(1.0)

    class Fixed:  # a model whose predictions are given
        def __init__(self, task, probs):
            self.config = type("C", (), {"task": task, "class_names": ["a", "b"]})
            self.probs = torch.tensor(probs)

    import protlab.residues.label_training as lm

    original = lm.predict
    try:
        lm.predict = lambda model, graphs: model.probs
        single = label_report(Fixed("single", [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]), [0, 1, 2],
                              [["a"], ["b"], ["b"]], [["a"], ["a"], ["b"]])
        assert single["accuracy"] == 1.0 and single["baseline_accuracy"] == pytest.approx(1 / 3)
        multi = label_report(Fixed("multi", [[0.9, 0.1], [0.2, 0.9]]), [0, 1], [["a"], ["b"]], [["a"], ["a", "b"]])
        assert multi["fmax"] == 1.0 and multi["aupr"] == 1.0 and multi["baseline_fmax"] < 1.0
    finally:
        lm.predict = original


def test_training_on_labels_of_real_structures(shared_data, tmp_path):
    """Pfam-domain structures labelled by family (single label), then with two labels each
    (multi-label: Fmax and AUPR)."""
    folder = shared_data / "structures" / "pfam_domains"
    files = sorted(folder.glob("PF*_*.pdb"))
    single = tmp_path / "families.tsv"
    single.write_text("file\tchain\tlabel\n" + "".join(f"{f.name}\t{f.stem.split('_')[2]}\t{f.stem[:7]}\n"
                                                       for f in files))
    tested = tmp_path / "test_chains.txt"  # a split list as DeepFRI writes them: the test chains, PDBID-CHAIN
    tested.write_text("".join(f"{f.stem.split('_')[1]}-{f.stem.split('_')[2]}\n" for f in files[:5]))
    result = residues.run(tmp_path / "single", structures=str(folder), labels=str(single), epochs=2, hidden=16,
                          max_views=1, split=str(tested))
    report = json.loads((tmp_path / "single" / "label_metrics.json").read_text())
    assert report["task"] == "single" and report["n_test"] == 5 and report["n_train"] == len(files) - 5
    assert sorted(ex.id for ex in result.explanations) == sorted(f.stem for f in files[:5])
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["baseline_accuracy"] <= 1
    assert result.results["model_trained_on"] == "labels" and result.label_metrics == report
    multi = tmp_path / "two.tsv"
    multi.write_text("file\tlabels\n" + "".join(f"{f.name}\t{f.stem[:7]};{'even' if n % 2 else 'odd'}\n"
                                                for n, f in enumerate(files)))
    residues.run(tmp_path / "multi", structures=str(folder), labels=str(multi), epochs=2, hidden=16, max_views=1)
    report = json.loads((tmp_path / "multi" / "label_metrics.json").read_text())
    assert report["task"] == "multi" and {"fmax", "aupr", "baseline_fmax", "baseline_aupr"} <= set(report)


def test_esm_features_train_and_come_back_with_the_checkpoint(six_complexes, ligand_sites, tmp_path):
    """A small ESM-2 checkpoint in the real format: per-residue embeddings join the node features,
    are cached in the run directory, and a saved model embeds new structures with its own encoder."""
    from protlab.esm.load import new_esm, save_esm

    model, alphabet = new_esm({"num_layers": 1, "embed_dim": 16, "attention_heads": 2}, seed=0)
    ckpt = save_esm(model, alphabet, tmp_path / "tiny_esm.pt")
    sites = str(ligand_sites / "binding_sites_primary.tsv")
    run = tmp_path / "run"
    result = residues.run(run, structures=str(six_complexes), sites=sites, esm=str(ckpt), epochs=1, hidden=16,
                          max_views=1, test_fraction=0.34)
    assert result.model.config.esm_dim == 16 and result.model.meta["esm"] == str(ckpt)
    assert any((run / "cache" / "embeddings").rglob("*.npz"))
    one = sorted(six_complexes.glob("*.pdb"))[0]
    again = residues.run(tmp_path / "again", structures=str(one), checkpoint=str(run / "checkpoints" /
                                                                                 "residue_cluster.pt"))
    assert len(again.explanations[0].importance) == len(read_complex(one))
    with pytest.raises(InputError, match="esm=.*a checkpoint brings its own"):
        residues.run(tmp_path / "x", structures=str(one), esm=str(ckpt),
                     checkpoint=str(run / "checkpoints" / "residue_cluster.pt"))


def test_a_killed_training_resumes_to_the_same_model(tmp_path, monkeypatch):
    """The state saved after each epoch: a run killed after epoch 2 of 3 and started again ends
    with the weights and history of an uninterrupted run; bf16 autocast trains too."""
    import protlab.residues.training as training

    inputs = residues.toy_inputs(n_families=2, members_per_family=4, length_range=(50, 60))
    labels = [inputs.labels[s.id] for s in inputs.structures]
    options = dict(epochs=3, hidden=16, batch_size=4, progress=False, seed=3, residue_dropout=0.1)
    whole = residues.train_residue_model(inputs.structures, labels, **options)
    state, log_path = tmp_path / "state.pt", tmp_path / "log.jsonl"
    save = training._Fit.save

    def killed_after_two(fit, path, epoch):
        save(fit, path, epoch)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training._Fit, "save", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        residues.train_residue_model(inputs.structures, labels, state_path=state, log_path=log_path, **options)
    assert state.is_file() and [r["epoch"] for r in read_records(log_path)] == [1, 2]
    monkeypatch.setattr(training._Fit, "save", save)
    with pytest.raises(InputError, match=r"state.pt was trained with other settings or data \(lr: 0.003 -> 0.001\)"
                                         r".*resume_override=True"):  # one policy with 03's and 04's
        residues.train_residue_model(inputs.structures, labels, state_path=state, **{**options, "lr": 1e-3})
    assert state.is_file()
    resumed = residues.train_residue_model(inputs.structures, labels, state_path=state, log_path=log_path,
                                           **options)
    assert not state.is_file() and resumed.history == whole.history
    logged = read_records(log_path)  # the log goes on where the state was saved: one record per epoch
    assert [r["epoch"] for r in logged] == [1, 2, 3] and logged[-1]["loss"] == whole.history[-1]["loss"]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    bf16 = residues.train_residue_model(inputs.structures, labels, bf16=True, **{**options, "epochs": 1})
    assert np.isfinite(bf16.history[-1]["loss"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_site_training_on_the_gpu_in_bf16(six_complexes, ligand_sites):
    structures = [read_complex(p) for p in sorted(six_complexes.glob("*.pdb"))]
    table = residues.read_site_table(ligand_sites / "binding_sites_primary.tsv")
    data = site_data(structures, [residues.site_residues(s, table) for s in structures], progress=False)
    result = train_site_model(data, epochs=2, hidden=32, device="cuda", bf16=True)
    assert np.isfinite(result.history[-1]["loss"]) and next(result.model.parameters()).device.type == "cpu"

