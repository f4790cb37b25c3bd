"""Faults users meet: stale or mismatched artifacts, interrupted writes, full disks, umasks."""
from __future__ import annotations

import errno
import re
import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

import protlab
from protlab.core.atomic import WriteError, atomic_paths, atomic_write_json
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir


@pytest.fixture(scope="module")
def embedded(make_toy_run):
    """A curated and embedded toy run (4 families x 12, 16-dimensional k-mer embeddings)."""
    return make_toy_run(kmer_dim=16)


def copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_clustering_refuses_embeddings_of_a_subset(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    ids, emb, meta = run.load_embeddings()
    run.save_embeddings(ids[:20], emb[:20], **{k: v for k, v in meta.items() if k not in ("dim", "array_sha256")})
    with pytest.raises(InputError, match=r"embeddings.npy was not made from .*proteins.parquet.*48 proteins, the "
                                         r"embeddings 20.*python -m protlab.embed"):
        protlab.cluster.run(run.root, method="kmeans")


def test_clustering_refuses_sequences_changed_after_embedding(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    proteins = run.load_proteins()
    proteins.loc[3, "sequence"] = proteins.loc[3, "sequence"][:-5]
    run.save_proteins(proteins)
    with pytest.raises(InputError, match="ids or sequences changed since they were embedded"):
        protlab.cluster.run(run.root, method="kmeans")


def test_duplicate_ids_are_refused(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    proteins = run.load_proteins()
    proteins.loc[1, "id"] = proteins.loc[0, "id"]
    run.save_proteins(proteins)
    with pytest.raises(InputError, match="repeats ids"):
        protlab.embed.run(run.root)
    with pytest.raises(InputError, match="repeats ids"):
        protlab.cluster.run(run.root, method="kmeans")


def test_new_header_beside_old_array_is_detected(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    header = json.loads(run.path("embeddings_meta").read_text())
    np.save(run.path("embeddings"), np.zeros((48, 32), np.float32))  # another run's array, same ids
    with pytest.raises(InputError, match="from different runs of 02_embed"):
        run.load_embeddings()
    header.pop("array_sha256")  # artifacts written before fingerprints: the shape is still checked
    atomic_write_json(run.path("embeddings_meta"), header)
    with pytest.raises(InputError, match=r"shape \(48, 32\).*dim 16"):
        run.load_embeddings()


def test_truncated_embeddings_name_the_file(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    data = run.path("embeddings").read_bytes()
    run.path("embeddings").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"embeddings.npy .*(unreadable or cut short|different runs)"):
        run.load_embeddings()
    run.path("embeddings_meta").write_text('{"ids": ["a", ')
    with pytest.raises(InputError, match=r"embeddings.json is unreadable or cut short"):
        run.load_embeddings()


def test_full_disk_during_a_multi_file_write_keeps_the_previous_version(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.save_embeddings(["a", "b"], np.ones((2, 3)), encoder="kmer")
    before = (run.path("embeddings").read_bytes(), run.path("embeddings_meta").read_text())
    real_fsync = os.fsync
    calls = []

    def full_on_second(fd):  # the array is written, the header's flush finds the disk full
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_on_second)
    with pytest.raises(WriteError, match=r"could not write .*embeddings.json: No space left on device \(disk full\?\); "
                                         r"the previous version is intact \(as are .*embeddings.npy\)"):
        run.save_embeddings(["a", "b", "c"], np.zeros((3, 5)), encoder="kmer")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert (run.path("embeddings").read_bytes(), run.path("embeddings_meta").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.json", "embeddings.npy"]  # no *.tmp left
    ids, emb, _ = run.load_embeddings()
    assert ids == ["a", "b"] and emb.shape == (2, 3)


def test_artifacts_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_paths(tmp_path / "a.json", tmp_path / "b.json") as (a, b):
            a.write_text("{}")
            b.write_text("{}")
        atomic_write_json(tmp_path / "c.json", {})
    finally:
        os.umask(old)
    for name in ("a.json", "b.json", "c.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_evaluate_checks_labels_before_computing_baselines(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    protlab.cluster.run(run.root, method="kmeans")
    proteins = run.load_proteins().assign(label=None)
    run.save_proteins(proteins)
    report = protlab.evaluate.run(run.root)  # a label-free report, not baselines and then a failure
    assert report.metrics["labelled"] is False and "no family labels" in report.headline
    assert run.clustering_methods() == ["kmeans"]  # no baseline was computed
    assert isinstance(pd.read_parquet(run.path("clusters")), pd.DataFrame)


def test_a_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from protlab.core.atomic import _HOST, sweep_stale_temporaries

    # a writer killed (SIGKILL) inside atomic_path leaves its temporary behind
    code = ("import os, signal, sys\nfrom protlab.core.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.json")])
    left = list(tmp_path.glob(".a.json.*.tmp"))
    assert len(left) == 1 and not (tmp_path / "a.json").exists()
    live = tmp_path / f".c.json.{_HOST}-{os.getpid()}.x1y2.tmp"  # this (live) process's
    live.write_text("a live writer's file")
    atomic_write_json(tmp_path / "b.json", {})  # any later write into the folder sweeps
    assert not left[0].exists() and live.exists()
    assert sweep_stale_temporaries(tmp_path) == []


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("stage,params", [
    ("curate", {"n_families": 3, "members_per_family": 6, "split_method": "kmer", "split_identity": 0.9}),
    ("embed", {"encoder": "tiny", "umap_max_points": 10}),
    ("cluster", {"method": "kmeans"}),
    ("evaluate", {}),
    ("residues", {"epochs": 1, "n_families": 3, "members_per_family": 3, "length_range": [50, 60], "hidden": 8,
                  "max_views": 1}),
])
def test_full_disk_in_any_stage_is_a_write_error_naming_the_file(embedded, tmp_path, monkeypatch, stage, params):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    protlab.cluster.run(run.root, method="kmeans")
    before = {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file()}
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(WriteError, match=rf"could not write (checkpoint )?{re.escape(str(run.root))}/.*No space left "
                                         r"on device \(disk full\?\); (the previous version is intact|no earlier file)"):
        getattr(protlab, stage).run(run.root, **params)
    monkeypatch.undo()
    after = {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file() and p in before}
    assert after == before  # every complete artifact is as it was
    assert not list(run.root.rglob("*.tmp"))


def test_torch_full_disk_error_becomes_a_checkpoint_error(tmp_path, monkeypatch):
    import torch

    from protlab.core.checkpoint import CheckpointError, save_checkpoint

    def enforce_fail(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", enforce_fail)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*m.pt: file write failed \(disk full\?\); "
                                              r"no earlier file exists"):
        save_checkpoint(tmp_path / "m.pt", "scan", {"w": 1})
    assert not list(tmp_path.iterdir())


def test_evaluation_refuses_clusters_of_other_proteins(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    protlab.cluster.run(run.root, method="kmeans")
    info = json.loads(run.clustering("kmeans", ".json").read_text())
    assert info["embeddings_sha256"] == json.loads(run.path("embeddings_meta").read_text())["array_sha256"]
    proteins = run.load_proteins()
    proteins.loc[0, "sequence"] = "M" + proteins.loc[0, "sequence"]
    run.save_proteins(proteins)
    with pytest.raises(InputError, match=r"clusters.parquet does not match .*proteins.parquet \(made from another "
                                         r"proteins.parquet.*rerun 02_embed and 04_cluster"):
        protlab.evaluate.run(run.root)


def test_stale_baselines_are_recomputed_and_stale_clusterings_skipped(embedded, tmp_path):
    run = RunDir(copy_run(embedded, tmp_path / "run"))
    protlab.cluster.run(run.root, method="pca_kmeans", map_max_points=0)  # an older clustering
    protlab.cluster.run(run.root, method="kmeans", map_max_points=0)
    first = protlab.evaluate.run(run.root, baselines=[])
    assert set(first.table.index) == {"kmeans", "pca_kmeans"}
    protlab.embed.run(run.root, kmer_dim=8, umap_max_points=0)  # re-embedded: 16 -> 8 dimensions
    protlab.cluster.run(run.root, method="kmeans", map_max_points=0)
    again = protlab.evaluate.run(run.root, baselines=[])
    assert set(again.table.index) == {"kmeans"} and again.metrics["skipped_stale"] == {
        "pca_kmeans": "made from another embeddings.npy"}
    stale = run.clustering("pca_kmeans").read_bytes()
    redone = protlab.evaluate.run(run.root, baselines=["pca_kmeans"])  # a stale baseline is recomputed, in 05's folder
    assert set(redone.table.index) == {"kmeans", "pca_kmeans"} and redone.metrics["skipped_stale"] == {}
    assert run.clustering("pca_kmeans").read_bytes() == stale  # 04's table is left as it is
    assert run.clustering("pca_kmeans", folder="baselines").is_file()
    assert "baselines/pca_kmeans.parquet" in redone.record.outputs
