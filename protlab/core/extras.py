"""Optional dependencies: imported where they are used, with an error naming the extra.

``pip install protlab`` runs every stage; the notebooks, PNG export through kaleido and
pyKVFinder's pocket features come with extras (``pip install 'protlab[notebooks]'``,
``'protlab[png]'``, ``'protlab[structures]'``, or ``'protlab[all]'``).
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from protlab.core.errors import ProtlabError


class MissingExtraError(ProtlabError, ImportError):
    """An optional package is not installed; the message names the extra that brings it."""


def install_hint(extra: str) -> str:
    return f"pip install 'protlab[{extra}]'"


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a half-installed one
        return False


def require(module: str, extra: str, what: str) -> ModuleType:
    """``import module``, or a :class:`MissingExtraError` saying that ``what`` needs ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and module != exc.name and not module.startswith(exc.name + "."):
            raise  # the package is there but one of its own imports failed: show that error as it is
        top = module.split(".")[0]
        raise MissingExtraError(f"{what} needs {top}, which is not installed: {install_hint(extra)}") from exc
