"""Clustering: baselines and SCAN on the toy universe, inductive predict, save/load, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import protlab
from protlab.cluster.methods import cluster
from protlab.cluster.scan import ScanClusterer
from protlab.cluster.scan_state import ScanStates
from protlab.cluster.stage import STAGE, read_clustering, write_clustering
from protlab.core.rundir import RunDir
from protlab.core.stage import StageRecord
from protlab.core.training_log import read_records
from protlab.core.errors import InputError
from protlab.evaluate.metrics import evaluate, matched_accuracy
from protlab.cluster.heads import ScanHeads, scan_loss, self_label_loss, strong_view, validation_losses
from protlab.cluster.neighbors import faiss_knn, mine_neighbors
from protlab.core.mmseqs import mmseqs_available

needs_mmseqs = pytest.mark.skipif(not mmseqs_available(), reason="mmseqs (MMseqs2) is not installed")
FAST = dict(epochs=5, self_label_epochs=2, n_heads=2, min_steps=150, k=5)


@pytest.fixture(scope="module")
def toy():
    from protlab.curate.toy import make_universe
    from protlab.embed.kmer import KmerEncoder

    proteins = make_universe(4, 25, seed=1).proteins
    return proteins, KmerEncoder(dim=32).embed(proteins["sequence"].tolist())


@pytest.mark.parametrize("method", ["kmeans", "pca_kmeans", "scan"])
def test_methods_recover_toy_families(toy, method):
    proteins, emb = toy
    options = dict(neighbors="faiss", **FAST) if method == "scan" else {}
    result = cluster(emb, method=method, n_clusters=4, **options)
    scores = evaluate(proteins["label"], result.labels, result.probabilities)
    assert scores["acc"] >= 0.95 and scores["nmi"] >= 0.9
    assert result.probabilities.shape == (len(proteins), 4)
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, rtol=1e-5)


def test_scan_is_deterministic_for_a_seed(toy):
    _, emb = toy
    a = cluster(emb, method="scan", n_clusters=4, neighbors="faiss", seed=3, **FAST).probabilities
    b = cluster(emb, method="scan", n_clusters=4, neighbors="faiss", seed=3, **FAST).probabilities
    np.testing.assert_array_equal(a, b)


def test_inductive_predict_and_save_load(toy, tmp_path):
    proteins, emb = toy
    rng = np.random.default_rng(0)
    order = rng.permutation(len(emb))
    fit_idx, new_idx = order[:80], order[80:]
    model = ScanClusterer(n_clusters=4, neighbors="faiss", **FAST).fit(emb[fit_idx])
    labels = proteins["label"].to_numpy()
    assert matched_accuracy(labels[new_idx], model.predict(emb[new_idx])) >= 0.9
    path = model.save(tmp_path / "scan.pt")
    loaded = ScanClusterer.load(path)
    np.testing.assert_allclose(loaded.predict_proba(emb[new_idx]), model.predict_proba(emb[new_idx]), atol=1e-6)
    # one protein at a time gives the same assignment as the batch (no refit, no batch effects)
    single = [int(loaded.predict(emb[i:i + 1])[0]) for i in new_idx[:3]]
    assert single == model.predict(emb[new_idx[:3]]).tolist()


@needs_mmseqs
def test_mmseqs_neighbours_and_inductive_homology(toy, tmp_path):
    proteins, emb = toy
    seqs = proteins["sequence"].tolist()
    order = np.random.default_rng(1).permutation(len(seqs))
    fit_idx, new_idx = order[:80], order[80:]
    model = ScanClusterer(n_clusters=4, neighbors="auto", **FAST).fit(emb[fit_idx], [seqs[i] for i in fit_idx])
    assert model.graph.source == "mmseqs" and model.graph.kind == "spectral"
    loaded = ScanClusterer.load(model.save(tmp_path / "scan.pt"))  # the graph step's state, restored whole
    for name, value in vars(model.graph).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(loaded.graph, name), value)
        else:
            assert getattr(loaded.graph, name) == value, name
    assert model.graph.family_labels is not None and len(model.graph.family_labels) == len(fit_idx)
    pred = model.predict(emb[new_idx], [seqs[i] for i in new_idx])
    assert matched_accuracy(proteins["label"].to_numpy()[new_idx], pred) >= 0.9
    # in chunks (a homology search per chunk): the same probabilities as all at once
    chunked = model.predict_proba(emb[new_idx], [seqs[i] for i in new_idx], chunk_size=7)
    np.testing.assert_allclose(chunked, model.predict_proba(emb[new_idx], [seqs[i] for i in new_idx]), atol=1e-6)


@pytest.mark.parametrize("graph_features", ["auto", "spectral", "diffusion"])
def test_graph_features_place_new_proteins(toy, graph_features):
    proteins, emb = toy
    order = np.random.default_rng(2).permutation(len(emb))
    fit_idx, new_idx = order[:80], order[80:]
    model = ScanClusterer(n_clusters=4, neighbors="faiss", graph_features=graph_features, **FAST).fit(emb[fit_idx])
    assert model.graph.kind == ("none" if graph_features == "auto" else graph_features)
    assert matched_accuracy(proteins["label"].to_numpy()[new_idx], model.predict(emb[new_idx])) >= 0.9


def test_faiss_knn_excludes_self():
    x = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    idx, sims = faiss_knn(x, k=4)
    assert idx.shape == (30, 4) and not (idx == np.arange(30)[:, None]).any()
    assert (np.diff(sims, axis=1) <= 1e-6).all()


def test_large_sets_use_an_inverted_file_index_that_finds_nearly_every_exact_neighbour(monkeypatch):
    """Above EXACT_KNN_MAX rows the all-vs-all kNN is approximate (IVF), so it does not grow as n^2."""
    from protlab.cluster import neighbors

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32))
    x = (centres[rng.integers(0, 40, 6000)] + 0.5 * rng.normal(size=(6000, 32))).astype(np.float32)
    exact, _ = faiss_knn(x, k=10)
    monkeypatch.setattr(neighbors, "EXACT_KNN_MAX", 1000)
    approx, sims = faiss_knn(x, k=10)
    assert approx.shape == (6000, 10) and not (approx == np.arange(6000)[:, None]).any()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9
    assert (np.diff(sims, axis=1) <= 1e-6).all()
    np.testing.assert_array_equal(approx, faiss_knn(x, k=10)[0])  # seeded: the same every time


def test_over_clustering(toy):
    proteins, emb = toy
    result = cluster(emb, method="scan", n_clusters=8, neighbors="faiss", **FAST)
    scores = evaluate(proteins["label"], result.labels)
    assert result.probabilities.shape[1] == 8
    # clusters stay (nearly) pure: each holds one family ...
    frame = pd.DataFrame({"cluster": result.labels, "label": proteins["label"]})
    purity = frame.groupby("cluster")["label"].agg(lambda s: s.value_counts().iloc[0]).sum() / len(frame)
    assert purity >= 0.95
    # ... but only 4 of them can be matched: the rest count as errors
    used = frame["cluster"].nunique()
    assert used > 4 and scores["acc"] < 1.0


def test_heads_keep_a_family_rarer_than_one_member_per_batch(monkeypatch):
    """Three families of 300 and one of 12, batches of 16: the rare family has 0.2 members per
    batch. A size pull on each batch's mean p would hold its own members near p = 0.2."""
    import scipy.sparse as sp

    from protlab.cluster import scan as scan_module
    from protlab.cluster.neighbors import NeighborGraph

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [300, 300, 300, 12])
    x = (4 * rng.normal(size=(4, 16))[labels] + rng.normal(size=(len(labels), 16))).astype(np.float32)
    knn = np.stack([rng.choice(np.flatnonzero((labels == f) & (np.arange(len(labels)) != i)), 8, replace=False)
                    for i, f in enumerate(labels)])
    hits = sp.csr_matrix((np.ones(knn.size), (np.repeat(np.arange(len(labels)), 8), knn.ravel())),
                         shape=(len(labels),) * 2)
    hits = (hits + hits.T).sign().tocsr()
    graph = NeighborGraph(knn=knn, counts=np.full(len(labels), 8), affinity=hits, source="mmseqs", hits=hits,
                          homologous=np.ones(len(labels), dtype=bool))
    monkeypatch.setattr(scan_module, "mine_neighbors", lambda *a, **k: graph)
    model = ScanClusterer(n_clusters=4, neighbors="mmseqs", batch_size=16, epochs=3, self_label_epochs=2, k=8)
    prob = model.fit_predict_proba(x, ["M"] * len(labels))
    families = model.partition.labels
    rare = families[labels == 3]
    assert len(set(rare)) == 1 and (families == rare[0]).sum() == 12  # the graph finds it
    assert (prob[labels == 3].argmax(1) == rare[0]).mean() > 0.9
    assert np.median(prob[labels == 3, rare[0]]) > 0.9


def test_scan_loss_values():
    k = 6
    uniform = torch.zeros(10, k)
    total, consistency, entropy = scan_loss(uniform, uniform, entropy_weight=5.0)
    assert consistency.item() == pytest.approx(np.log(k), rel=1e-5)
    assert entropy.item() == pytest.approx(np.log(k), rel=1e-5)
    assert total.item() == pytest.approx(np.log(k) - 5 * np.log(k), rel=1e-5)
    confident = torch.full((4, k), -20.0)
    confident[torch.arange(4), torch.tensor([0, 1, 2, 3])] = 20.0
    assert scan_loss(confident, confident)[1].item() < 1e-6


def test_validation_losses_are_scan_losses_in_any_chunks():
    torch.manual_seed(0)
    model = ScanHeads(8, 5, n_heads=3, hidden=16).eval()
    x = torch.randn(60, 8)
    anchors = torch.arange(0, 60, 2)
    prior = torch.tensor([0.4, 0.3, 0.1, 0.1, 0.1])
    partner = torch.randint(0, 60, (60, 1))  # one neighbour each: exactly scan_loss with a prior
    with torch.no_grad():
        logits = model(x)
    expected = [scan_loss(o[anchors], o[partner[anchors, 0]], entropy_weight=2.0, prior=prior)[0].item()
                for o in logits]
    got = validation_losses(model, x, partner, anchors, entropy_weight=2.0, prior=prior, chunk=7)
    assert got == pytest.approx(expected, rel=1e-5)
    knn = torch.randint(0, 60, (60, 6))
    knn[::3, 4:] = -1  # padding is left out, whatever the chunk
    whole = validation_losses(model, x, knn, anchors, entropy_weight=2.0, chunk=1000)
    assert validation_losses(model, x, knn, anchors, entropy_weight=2.0, chunk=4) == pytest.approx(whole, rel=1e-6)
    assert whole != pytest.approx(validation_losses(model, x, knn.clamp_min(0), anchors, entropy_weight=2.0))


def test_self_label_loss_uses_only_confident():
    weak = torch.tensor([[10.0, -10.0], [0.1, 0.0]])
    strong = torch.tensor([[0.0, 0.0], [5.0, -5.0]])
    loss, n_conf = self_label_loss(weak, strong, threshold=0.99)
    assert n_conf == 1 and loss.item() == pytest.approx(np.log(2), rel=1e-4)
    loss, n_conf = self_label_loss(torch.zeros(3, 2), strong[:1].repeat(3, 1))
    assert n_conf == 0 and loss.item() == 0.0
    x = torch.ones(4, 16)
    assert not torch.equal(strong_view(x, generator=torch.Generator().manual_seed(0)), x)


@pytest.mark.parametrize("embeddings, message", [
    (np.zeros((0, 4)), "no proteins"),
    (np.ones((1, 4)), "single protein"),
    (np.random.default_rng(0).normal(size=(3, 4)), "fewer proteins"),
    (np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]), "NaN"),
    (np.ones((10, 4)), "identical"),
])
@pytest.mark.parametrize("method", ["kmeans", "pca_kmeans", "scan"])
def test_bad_input_is_a_clear_error(embeddings, message, method):
    with pytest.raises(InputError, match=message):
        cluster(embeddings, method=method, n_clusters=4, **({"neighbors": "faiss"} if method == "scan" else {}))


def test_unknown_options():
    with pytest.raises(InputError, match="method"):
        cluster(np.eye(4), method="dbscan", n_clusters=2)
    with pytest.raises(InputError, match="neighbors"):
        cluster(np.eye(4), method="scan", n_clusters=2, neighbors="blast")


def _write_run(run_dir, proteins, emb, *, labels=True):
    """A run dir holding exactly these proteins and embeddings (the fixture's own data)."""
    frame = proteins[["id", "sequence", "label"]].assign(split="train")
    if not labels:
        frame = frame.assign(label=None)
    RunDir(run_dir).save_proteins(frame)
    RunDir(run_dir).save_embeddings(frame["id"], emb, encoder="kmer")


def test_cluster_run_writes_artifacts(toy, tmp_path):
    proteins, emb = toy
    _write_run(tmp_path, proteins, emb)
    record = StageRecord(STAGE, tmp_path, {})
    result = write_clustering(tmp_path, method="scan", neighbors="faiss", record=record, **FAST)
    assert result.info["n_clusters"] == 4 and result.info["neighbors"] == "faiss"
    # the heads' training log: one record per epoch of each pass (faiss neighbours: no warm start)
    log = read_records(RunDir(tmp_path).path("scan_log"))
    fitted = result.model.info
    assert [r["epoch"] for r in log] == list(range(1, len(log) + 1))
    assert [r["loss"] for r in log if r["pass"] == "scan"] == fitted["scan_loss_history"]
    assert [r["confident_fraction"] for r in log if r["pass"] == "self_label"] == \
        fitted["self_label_confident_fraction"]
    assert [r["pass_epoch"] for r in log if r["pass"] == "self_label"] == [1, 2]
    assert str(RunDir(tmp_path).path("scan_log").relative_to(tmp_path)) in record.outputs
    main = read_clustering(tmp_path)
    assert list(main.columns[:3]) == ["id", "cluster", "confidence"]
    assert main["id"].tolist() == proteins["id"].tolist()
    assert len(main["probabilities"].iloc[0]) == 4
    pd.testing.assert_frame_equal(main, read_clustering(tmp_path, "scan"))
    assert (tmp_path / "clusters" / "scan_model.pt").exists() and (tmp_path / "clusters" / "scan.json").exists()
    loaded = ScanClusterer.load(tmp_path / "clusters" / "scan_model.pt")
    assert (loaded.predict(emb) == main["cluster"].to_numpy()).mean() >= 0.95


def test_a_resumed_fit_keeps_the_heads_log_up_to_its_saved_epoch(toy, tmp_path, monkeypatch):
    """Stopped after a SCAN epoch's record but before its state was saved, a rerun resumes at
    the epoch before, drops that record and logs on: the log equals an uninterrupted fit's."""
    _, emb = toy

    def fit(name):
        run = tmp_path / name
        return ScanClusterer(n_clusters=4, neighbors="faiss", state_files=(run / "graph.pt", run / "heads.pt"),
                             log_file=run / "log.jsonl", **FAST).fit(emb)

    straight = fit("straight")
    real_save = ScanStates.save_training

    def stop_at_epoch_7(self, position, *args, **kwargs):
        if position == {"pass": "scan", "epoch": 7}:
            raise KeyboardInterrupt("stopped")
        return real_save(self, position, *args, **kwargs)

    monkeypatch.setattr(ScanStates, "save_training", stop_at_epoch_7)
    with pytest.raises(KeyboardInterrupt):
        fit("stopped")
    assert read_records(tmp_path / "stopped" / "log.jsonl")[-1]["pass_epoch"] == 7
    monkeypatch.setattr(ScanStates, "save_training", real_save)
    resumed = fit("stopped")
    logs = [read_records(tmp_path / name / "log.jsonl") for name in ("straight", "stopped")]
    assert logs[0] == logs[1] and len(logs[0]) == 152  # 150 SCAN epochs (min_steps), 2 self-labelling
    assert resumed.info["scan_loss_history"] == straight.info["scan_loss_history"]


def test_cluster_run_without_labels_needs_n_clusters(toy, tmp_path):
    proteins, emb = toy
    _write_run(tmp_path, proteins, emb, labels=False)
    with pytest.raises(InputError, match="n_clusters"):
        write_clustering(tmp_path, method="kmeans")
    assert write_clustering(tmp_path, method="kmeans", n_clusters=4).labels.max() == 3
    report = protlab.evaluate.run(tmp_path)  # no labels anywhere: a label-free report, no baselines
    assert report.metrics["labelled"] is False and report.metrics["n_clusters"] == 4 and report.metrics["n"] == len(proteins)
    assert report.per_family is None and report.table["size"].sum() == len(proteins) and "labels=" in report.headline
    assert 0.9 <= report.metrics["neighbour_share"] <= 1 and RunDir(tmp_path).clustering_methods() == ["kmeans"]
    assert (tmp_path / "cluster_report.csv").is_file()
    # labels from elsewhere, without re-running 01-04: a TSV (id, label) or a FASTA with labels in its headers
    (tmp_path / "labels.tsv").write_text("id\tlabel\n" + "".join(f"{i}\t{lab}\n" for i, lab in
                                                                 zip(proteins["id"], proteins["label"])))
    scored = protlab.evaluate.run(tmp_path, labels=str(tmp_path / "labels.tsv"), baselines=[])
    assert scored.metrics["nmi"] > 0.9 and scored.metrics["n_unlabelled"] == 0
    (tmp_path / "labels.fasta").write_text("".join(f">{i} family={lab}\n{s}\n" for i, lab, s in
                                                   zip(proteins["id"][::3], proteins["label"][::3],
                                                       proteins["sequence"][::3])))  # 34 of 100, every family
    partial = protlab.evaluate.run(tmp_path, labels=str(tmp_path / "labels.fasta"), label_regex=r"family=(\S+)",
                                   baselines=[])
    assert partial.metrics["n"] == 34 and partial.metrics["n_unlabelled"] == len(proteins) - 34
    (tmp_path / "other.tsv").write_text("id\tlabel\nnobody\tx\n")
    with pytest.raises(InputError, match="none of its ids"):
        protlab.evaluate.run(tmp_path, labels=str(tmp_path / "other.tsv"))


def test_few_real_pfam_families(shared_data):
    """SCAN with default neighbours on 4 real Pfam families (40 sequences each)."""
    from protlab.curate.formats import read_proteins
    from protlab.embed.kmer import KmerEncoder

    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    frame = frame[frame["label"].isin(["PF00004", "PF00072", "PF00595", "PF07679"])]
    frame = frame.groupby("label").head(40).reset_index(drop=True)
    emb = KmerEncoder(dim=64).embed(frame["sequence"].tolist())
    graph = mine_neighbors(emb, frame["sequence"].tolist(), source="mmseqs" if mmseqs_available() else "faiss")
    assert graph.purity(frame["label"]) >= (0.99 if graph.source == "mmseqs" else 0.8)
    result = cluster(emb, frame["sequence"].tolist(), method="scan", n_clusters=4, **FAST)
    assert evaluate(frame["label"], result.labels)["acc"] >= 0.9


def test_kmeans_baselines_restart_less_and_fit_on_a_sample_at_scale(monkeypatch):
    """10 restarts on ordinary sets; above KMEANS_RESTARTS_MAX one; above KMEANS_FIT_MAX the
    centres come from a sample and every protein gets its nearest one (recorded)."""
    import protlab.cluster.methods as methods

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 5
    x = (centres[np.repeat(np.arange(3), 40)] + rng.normal(size=(120, 8))).astype(np.float32)
    truth = np.repeat(np.arange(3), 40)
    full = cluster(x, method="kmeans", n_clusters=3)
    assert full.info["n_init"] == 10 and "fitted_on" not in full.info
    monkeypatch.setattr(methods, "KMEANS_RESTARTS_MAX", 50)
    monkeypatch.setattr(methods, "KMEANS_FIT_MAX", 30)
    for method in ("kmeans", "pca_kmeans"):
        sampled = cluster(x, method=method, n_clusters=3)
        assert sampled.info["n_init"] == 1 and sampled.info["fitted_on"] == 30
        assert len(sampled.labels) == 120 and evaluate(truth, sampled.labels)["acc"] == 1.0
        assert (sampled.probabilities.argmax(1) == sampled.labels).all()


@pytest.mark.skipif(not mmseqs_available(), reason="mmseqs (MMseqs2) is not installed")
def test_orphans_keep_at_most_k_neighbours_below_fallback_k(shared_data):
    """k below fallback_k: proteins without homology hits get k embedding neighbours, not a crash."""
    from protlab.curate.formats import read_proteins
    from protlab.embed.kmer import KmerEncoder

    frame = read_proteins(shared_data / "pfam" / "pfam_shared_labeled.fasta", label_regex=r"\s(PF\d+)")
    seqs = frame[frame["label"].isin(["PF00072", "PF00595"])].groupby("label").head(15)["sequence"].tolist()
    rng = np.random.default_rng(0)
    seqs += ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 60)) for _ in range(3)]  # no homologues
    graph = mine_neighbors(KmerEncoder(dim=16).embed(seqs), seqs, source="mmseqs", k=3, fallback_k=5)
    assert graph.knn.shape[1] == 3 and (graph.counts[-3:] == 3).all() and (graph.knn[-3:] >= 0).all()


def test_families_without_mmseqs_is_refused_before_the_fit(toy, tmp_path, monkeypatch):
    """'auto' neighbours without MMseqs2 are embedding neighbours: no homology graph, no families."""
    import protlab.cluster.neighbors as neighbors
    import protlab.cluster.stage as stage

    proteins, emb = toy
    _write_run(tmp_path, proteins, emb)
    monkeypatch.setattr(neighbors, "mmseqs_available", lambda: False)
    monkeypatch.setattr(stage, "fit_graph_methods", lambda *a, **k: pytest.fail("fitted before refusing"))
    with pytest.raises(InputError, match="method='families' needs the homology graph.*method='scan'"):
        write_clustering(tmp_path, method="families", n_clusters=4)


def test_saved_model_keeps_a_per_cluster_sample_of_references(toy, tmp_path):
    """Above ``max_references`` fitted proteins the saved model keeps a sample of them, every cluster
    represented, and still places new proteins as the whole reference set does."""
    proteins, emb = toy
    order = np.random.default_rng(4).permutation(len(emb))
    fit_idx, new_idx = order[:80], order[80:]
    model = ScanClusterer(n_clusters=4, neighbors="faiss", graph_features="diffusion", **FAST).fit(emb[fit_idx])
    clusters = model.fitted_clusters()
    np.testing.assert_array_equal(clusters, model.fit_predict_proba(emb[fit_idx]).argmax(1))
    thin = ScanClusterer.load(model.save(tmp_path / "thin.pt", max_references=40, per_cluster=5))
    rows = thin.graph.reference_rows
    assert len(rows) == len(thin.graph.reference_embeddings) and 38 <= len(rows) <= 44
    assert np.all(np.diff(rows) > 0) and set(clusters[rows]) == set(clusters)
    np.testing.assert_array_equal(thin.graph.reference_features, model.graph.reference_features[rows])
    assert thin.info["fitted_proteins"] == 80 and thin.info["saved_references"] == len(rows)
    agree = (thin.predict(emb[new_idx]) == model.predict(emb[new_idx])).mean()
    assert agree >= 0.95
    whole = ScanClusterer.load(model.save(tmp_path / "whole.pt"))
    assert whole.graph.reference_rows is None and whole.info["saved_references"] == 80
