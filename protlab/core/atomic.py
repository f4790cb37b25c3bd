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


_FULL = (errno.ENOSPC, errno.EDQUOT)
_NO_WRITE = (*_FULL, errno.EROFS, errno.EACCES, errno.EPERM)
# torch's C++ zip writer reports a failed write (a full disk) as a RuntimeError, no OSError
_TORCH_WRITE = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def write_failure(exc: BaseException) -> tuple[int | None, str, str | None] | None:
    """``(errno, reason, filename)`` when ``exc`` is a failed write (an ``OSError``, one with
    errno ENOSPC/EDQUOT anywhere in its chain, or torch's writer error), else None."""
    if isinstance(exc, ProtlabError):
        return None
    found = [e for e in _chain(exc) if isinstance(e, OSError) and not isinstance(e, ProtlabError)]
    full = [e for e in found if e.errno in _FULL]
    if full or isinstance(exc, OSError):
        cause = (full or found)[0]
        return cause.errno, cause.strerror or str(cause), cause.filename
    text = " ".join(str(e) for e in _chain(exc) if isinstance(e, RuntimeError))
    if any(marker in text for marker in _TORCH_WRITE):
        return errno.ENOSPC, "file write failed", None
    return None


def _last_written(tmps: list[Path], targets: list[Path]) -> Path | None:
    """The target whose temporary file was touched last (the one being written when a
    library's error named no file), or None when that is not clear."""
    times = []
    for tmp, target in zip(tmps, targets):
        with contextlib.suppress(OSError):
            times.append((tmp.stat().st_mtime_ns, target))
    times.sort(key=lambda t: t[0])
    if len(times) == len(tmps) and times[-1][0] > times[-2][0]:
        return times[-1][1]
    return None


def _failure_message(cause: tuple, targets: list[Path], tmps: list[Path], current: Path | None,
                     committed: list[Path]) -> str:
    """What failed and what is on disk now: "the previous version is intact" only for a
    target that had one."""
    code, reason, filename = cause
    named = {str(tmp): target for tmp, target in zip(tmps, targets)}
    failed = current
    if filename is not None and (str(filename) in named or code in _NO_WRITE):
        failed = named.get(str(filename), Path(filename))  # or a file the block wrote (a library's asset)
    if failed is None:
        failed = targets[0] if len(targets) == 1 else None
    what = str(failed) if failed is not None else "one of " + ", ".join(map(str, targets))
    left = [t for t in targets if t not in committed]
    intact = [t for t in left if t.exists()]
    if failed in left:
        state = "the previous version is intact" if failed in intact else "no earlier file exists"
        others = [str(t) for t in intact if t != failed]
        if others:
            state += f" (as are {', '.join(others)})" if failed in intact else \
                f"; the previous versions of {', '.join(others)} are intact"
    else:
        state = "; ".join(([f"the previous version of {', '.join(map(str, intact))} is intact"] if intact else [])
                          + ([f"nothing was written to {', '.join(str(t) for t in left if t not in intact)}"]
                             if len(intact) < len(left) else []))
    if committed:
        state = f"already replaced: {', '.join(map(str, committed))}" + (f"; {state}" if left else "")
    hint = " (disk full?)" if code in _FULL else ""
    return f"could not write {what}: {reason}{hint}; {state}"


@contextlib.contextmanager
def atomic_paths(*targets: str | Path, durable: bool = True) -> Iterator[list[Path]]:
    """Yield one temporary path beside each target; when the block and every flush succeed,
    all of them replace their targets (a multi-file artifact is committed as a whole).
    ``durable=False`` skips the fsync: the rename still protects against a killed process,
    not against a power cut (for files that are checked on reading and can be recomputed).

    On any failure the temporary files are removed and every target is left as it was; a
    failed write (:func:`write_failure`: e.g. a full disk, also deep in a library or in
    torch's writer) becomes a :class:`WriteError` naming the file and cause.
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
        for target, tmp in zip(targets, tmps) if durable else ():
            current = target
            with open(tmp, "rb+") as fh:
                fh.flush()
                os.fsync(fh.fileno())
        for target, tmp in zip(targets, tmps):  # renames need no space: all land or a crash shows
            current = target
            os.replace(tmp, target)
            committed.append(target)
    except BaseException as exc:
        cause = write_failure(exc)
        if cause is not None and current is None and len(tmps) > 1:
            current = _last_written(tmps, targets)
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if cause is None:
            raise
        error = WriteError(_failure_message(cause, targets, tmps, current, committed))
        error.errno = cause[0]
        raise error from exc


@contextlib.contextmanager
def atomic_path(target: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """:func:`atomic_paths` for one file: yields its temporary path."""
    with atomic_paths(target, durable=durable) as (tmp,):
        yield tmp


def atomic_write_text(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def _after_last_newline(fh, size: int, block: int = 1 << 16) -> int:
    """The offset just past the last newline before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        cut = fh.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def append_line(target: str | Path, line: str) -> Path:
    """Append one line to a log; a line cut by a kill or a full disk never stays behind.

    A cut last line (no newline: a killed writer) is removed before the new line is added,
    and a failed write is undone (the file is truncated back to where it was), so every line
    a later run reads is whole; a failed write becomes a :class:`WriteError` naming the file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":  # a cut line: back to the end of the last whole one
                size = _after_last_newline(fh, size)
                fh.truncate(size)
        try:
            fh.write(line.rstrip("\n").encode() + b"\n")
            fh.flush()
        except BaseException as exc:
            cause = write_failure(exc)
            with contextlib.suppress(OSError):
                fh.truncate(size)
            if cause is None:
                raise
            hint = " (disk full?)" if cause[0] in _FULL else ""
            error = WriteError(f"could not append to {target}: {cause[1]}{hint}; its earlier lines are intact")
            error.errno = cause[0]
            raise error from exc
    return target


def atomic_write_json(target: str | Path, obj: Any) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")


def atomic_save_npy(target: str | Path, array) -> Path:

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array))
    return Path(target)


def atomic_write_csv(target: str | Path, frame, **options) -> Path:
    """``frame.to_csv`` (``options``: e.g. ``sep="\\t"``), atomically."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, **options)
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
