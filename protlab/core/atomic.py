"""Atomic file writes and small I/O helpers shared by every module.

A crash, a full disk or a killed kernel never leaves a half-written artifact: data goes to
a temporary file in the same directory, is flushed and fsynced, then renamed over the
target (``os.replace`` is atomic on POSIX and Windows). A multi-file artifact
(:func:`atomic_paths`) is renamed into place only once every file is complete. Files get
the permissions the umask gives (shared servers), not ``mkstemp``'s 0600. Temporary names
carry the host and process id, so the next write into a folder removes what a killed
writer left there.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from protlab.core.errors import ProtlabError


class WriteError(ProtlabError, OSError):
    """An artifact could not be written (full disk, no permission, ...); the previous
    version of every file in the write is intact."""


_HOST = socket.gethostname().replace(".", "_")
_TMP = re.compile(r"^\..+\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed writers on this host left in ``folder``
    (their process is gone); returns what was removed. Live writers' files are kept."""
    removed = []
    if os.name != "posix":  # os.kill(pid, 0) is no liveness probe there
        return removed
    for path in Path(folder).glob(".*.tmp"):
        match = _TMP.match(path.name)
        if match and match["host"] == _HOST and int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
            with contextlib.suppress(OSError):  # best effort: another user's file, a racing sweep
                path.unlink()
                removed.append(path)
    return removed


def _file_mode() -> int:
    """The permissions a new file gets under the process umask (mkstemp would give 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_paths(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield one temporary path beside each target; when the block and every flush succeed,
    all of them replace their targets (a multi-file artifact is committed as a whole).

    On any failure the temporary files are removed and every target is left as it was; an
    ``OSError`` (e.g. a full disk) becomes a :class:`WriteError` naming the file and cause.
    """
    targets = [Path(t) for t in targets]
    tmps: list[Path] = []
    committed: list[Path] = []
    current = targets[0] if targets else None
    try:
        mode = _file_mode()
        for target in targets:
            current = target
            target.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temporaries(target.parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_HOST}-{os.getpid()}.", suffix=".tmp",
                                       dir=target.parent)
            os.close(fd)
            tmps.append(Path(tmp))
            os.chmod(tmp, mode)
        current = None  # while the caller writes, any of the files may fail
        yield list(tmps)
        for target, tmp in zip(targets, tmps):
            current = target
            with open(tmp, "rb+") as fh:
                fh.flush()
                os.fsync(fh.fileno())
        for target, tmp in zip(targets, tmps):  # renames need no space: all land or a crash shows
            current = target
            os.replace(tmp, target)
            committed.append(target)
    except BaseException as exc:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, ProtlabError):
            what = str(current) if current is not None else (
                str(targets[0]) if len(targets) == 1 else "one of " + ", ".join(map(str, targets)))
            kept = [str(t) for t in targets if t not in committed and t != current]
            state = ("the previous version is intact" + (f" (as are {', '.join(kept)})" if kept else "")
                     if not committed else
                     f"already replaced: {', '.join(map(str, committed))}; left as they were: "
                     f"{', '.join(str(t) for t in targets if t not in committed)}")
            error = WriteError(f"could not write {what}: {exc.strerror or exc}"
                               + (" (disk full?)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "")
                               + f"; {state}")
            error.errno = exc.errno
            raise error from exc
        raise


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """:func:`atomic_paths` for one file: yields its temporary path."""
    with atomic_paths(target) as (tmp,):
        yield tmp


def atomic_write_text(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def atomic_write_json(target: str | Path, obj: Any) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")


def atomic_save_npy(target: str | Path, array) -> Path:

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array))
    return Path(target)


def atomic_write_csv(target: str | Path, frame) -> Path:
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(target)


def atomic_write_parquet(target: str | Path, frame) -> Path:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(target)


def jsonable(obj: Any):

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
