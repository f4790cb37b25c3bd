"""Checks of the folders a stage writes into, made before any work starts.

:func:`writable_dir` refuses a folder a stage could not write, or should not: an empty
name (which would mean the working directory), a file, a folder that is not writable or
cannot be created, and a folder holding files git tracks (the repository root,
``notebooks/``, ...), where a stage's artifacts would land among, and overwrite, source
files. A folder of its own inside the repository, e.g. the git-ignored ``runs/...``, is fine.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def writable_dir(value) -> None:
    """Nothing, or a ValueError saying why ``value`` cannot be a folder a stage writes into."""
    if str(value).strip() == "":
        raise ValueError("the name is empty (it would mean the working directory); give a folder, e.g. runs/my_run")
    path = Path(value).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, so the folder {path} cannot be created in it")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"is not writable, so the folder {path} cannot be created"
        raise ValueError(f"{existing} {what} (permission denied)")
    tracked = tracked_files(existing.resolve()) if existing == path else []
    if tracked:
        raise ValueError(f"{path} holds files git tracks (e.g. {', '.join(tracked[:3])}); a stage's artifacts would "
                         "land among them and overwrite any of the same name: give a folder of its own, e.g. "
                         "runs/my_run")


def tracked_files(folder: Path) -> list[str]:
    """Files git tracks in ``folder`` and below (relative to it); [] outside a git checkout.

    Without a usable git the checkout's root itself counts as tracked, so that a run
    directory never is the repository.
    """
    top = next((p for p in (folder, *folder.parents) if (p / ".git").exists()), None)
    if top is None:
        return []
    try:
        out = subprocess.run(["git", "-C", str(top), "ls-files", "-z", "--", str(folder.relative_to(top))],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is None or out.returncode != 0:
        return [".git"] if folder == top else []
    prefix = "" if folder == top else str(folder.relative_to(top)) + "/"
    return [name.removeprefix(prefix) for name in out.stdout.split("\0") if name]
