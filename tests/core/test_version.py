"""Records name the code: version, git commit, and whether tracked code was changed."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from protlab.core import version

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    (tmp_path / "protlab").mkdir()
    (tmp_path / "protlab" / "__init__.py").write_text("")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "b.json").write_text("{}\n")
    (tmp_path / "benchmarks" / "RESULTS.md").write_text("# Results\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    monkeypatch.setattr(version, "_PACKAGE_ROOT", tmp_path)
    yield tmp_path
    version.code_identity.cache_clear()


def identity():
    version.code_identity.cache_clear()
    return version.code_identity()


def test_commit_and_dirty_flag_of_a_checkout(checkout):
    clean = identity()
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["version"] == version.__version__
    (checkout / "benchmarks" / "results" / "b.json").write_text('{"n": 1}\n')  # a benchmark's record
    (checkout / "benchmarks" / "RESULTS.md").write_text("# Results\nmore\n")
    (checkout / "runs").mkdir()
    (checkout / "runs" / "out.txt").write_text("untracked output")
    assert identity()["dirty"] is False
    (checkout / "protlab" / "__init__.py").write_text("x = 1\n")  # the code itself
    assert identity()["dirty"] is True


def test_no_checkout_knows_only_the_version(tmp_path, monkeypatch):
    monkeypatch.setattr(version, "_PACKAGE_ROOT", tmp_path)
    assert identity() == {"version": version.__version__, "commit": None, "dirty": None}
    version.code_identity.cache_clear()
