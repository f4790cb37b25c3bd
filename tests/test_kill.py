"""SIGKILL at a random moment of a stage, then a rerun: the result equals an uninterrupted
run and no temporary file is left behind."""
from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from protlab.core.rundir import RunDir

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
