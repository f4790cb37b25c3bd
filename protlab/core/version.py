"""protlab's version, and the code a record was made with.

``__version__`` is read by pyproject.toml. :func:`code_identity` adds the git commit and
whether the checkout had uncommitted changes, so that a stage or benchmark record names the
code that made it; from an installed wheel there is no checkout and only the version is known.
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.3.0"

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
OUTPUTS = ("benchmarks/results", "benchmarks/RESULTS.md")  # tracked, but written by runs, not code


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_PACKAGE_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_identity() -> dict:
    """``{"version", "commit", "dirty"}``; commit and dirty are None outside a git checkout of protlab.

    Dirty counts changes to tracked files only (runs, caches and other untracked output do
    not change the code), and not to benchmark records, which benchmarks write as they run.
    Cached: a process runs one version of the code.
    """
    identity = {"version": __version__, "commit": None, "dirty": None}
    if not (_PACKAGE_ROOT / ".git").exists() or not (_PACKAGE_ROOT / "protlab" / "__init__.py").is_file():
        return identity
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return identity
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){p}" for p in OUTPUTS))
    identity.update(commit=commit, dirty=None if status is None else bool(status))
    return identity
