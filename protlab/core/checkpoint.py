"""The one checkpoint envelope every protlab model file uses.

A checkpoint is a ``torch.save`` dict ``{"format": "protlab", "kind": KIND, "version": N,
"protlab_version": ..., **payload}`` holding only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)`` (no pickled code runs). Kinds:

==================  ===============================================  ==================
kind                what                                              written by
==================  ===============================================  ==================
``esm2``            an ESM-2 protein encoder (``esm_args``, weights)  03 (protein tower)
``pretrain``        a ProtCLIP training state (resumable)             03
``scan``            a fitted SCAN clusterer                           04
``scan-train``      a SCAN fit's graph step / heads' training state   04
``residue-cluster`` a residue-clustering network                      06
``residue-train``   a residue-clustering training state (resumable)   06
==================  ===============================================  ==================

Files written before the envelope (``"format": "protlab-esm2"`` etc.) are still read.
Writes are atomic: a full disk (also when torch's own writer reports it) raises
:class:`CheckpointError` naming the file and leaves the previous file as it was.
"""
from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

from protlab.core.atomic import WriteError, atomic_path
from protlab.core.errors import InputError
from protlab.core.version import __version__

FORMAT = "protlab"
VERSION = 1
KINDS = ("esm2", "pretrain", "scan", "scan-train", "residue-cluster", "residue-train")
_LEGACY = {f"protlab-{kind}": kind for kind in KINDS}  # version 0: "format": "protlab-<kind>"
_ENVELOPE_KEYS = ("format", "kind", "version", "protlab_version")


class CheckpointError(WriteError):
    """A checkpoint could not be written (e.g. full disk); the previous one is intact."""


def checkpoint_kind(data: Any) -> str | None:
    """The kind of a loaded checkpoint dict, or None when it is not a protlab checkpoint."""
    if not isinstance(data, dict):
        return None
    if data.get("format") == FORMAT:
        return data.get("kind")
    return _LEGACY.get(data.get("format"))


def save_checkpoint(path: str | Path, kind: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` in the envelope, atomically."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; one of {KINDS}")
    clash = [k for k in _ENVELOPE_KEYS if k in payload]
    if clash:
        raise ValueError(f"payload keys {clash} are reserved for the checkpoint envelope")
    path = Path(path)
    state = {"format": FORMAT, "kind": kind, "version": VERSION, "protlab_version": __version__, **payload}
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)  # torch's own write errors are recognised by atomic_path
    except WriteError as exc:
        message = str(exc).replace("could not write ", "could not write checkpoint ", 1).replace(
            "the previous version is intact", f"the previous file {path} is intact")
        error = CheckpointError(message + (". Free space and run again." if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                                           else ""))
        error.errno = exc.errno
        raise error from exc.__cause__
    return path


def load_torch_file(path: str | Path, *, safe_globals: tuple = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, or an InputError naming the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of many kinds
        raise InputError(f"{path}: not a readable checkpoint: not a protlab checkpoint, or a damaged one (cut short, "
                         f"overwritten) ({_load_failure(exc)})") from exc


def _load_failure(exc: Exception) -> str:
    """torch.load's reason without its advice (loading with pickled code enabled, which
    protlab never suggests: a checkpoint of its own never needs it)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s+Please|\n\n|$)", text, re.S)
    detail = " ".join((found.group(1) if found else text.split(". ")[0]).split())[:200]
    if not detail or "weights_only" in detail or "trust" in detail:
        detail = "unreadable"
    return f"{type(exc).__name__}: {detail}"


def read_checkpoint(path: str | Path, kind: str) -> dict[str, Any]:
    """The payload of a protlab checkpoint of ``kind`` (envelope keys included)."""
    data = load_torch_file(path)
    found = checkpoint_kind(data)
    if found != kind:
        what = f"a protlab {found!r} checkpoint" if found else (
            f"not a protlab checkpoint (format {data.get('format')!r})" if isinstance(data, dict)
            else f"a {type(data).__name__}, not a checkpoint dict")
        raise InputError(f"{path}: is {what}; expected a protlab {kind!r} checkpoint")
    if data.get("format") == FORMAT and int(data.get("version", 0)) > VERSION:
        raise InputError(f"{path}: checkpoint version {data['version']} was written by a newer protlab "
                         f"({data.get('protlab_version')}); this is {__version__}: upgrade protlab")
    return data
