"""The error types protlab raises for bad input.

Every error a user can cause derives from :class:`ProtlabError`, so notebooks and scripts
can catch one type. Messages name the file and, where known, the record and line.
"""
from __future__ import annotations

from pathlib import Path


class ProtlabError(Exception):
    """Base class of every error caused by input protlab cannot use."""


class InputError(ProtlabError, ValueError):
    """A file, parameter or value cannot be used; the message says what to do."""


class ParseError(ProtlabError, ValueError):
    """A file could not be parsed.

    Attributes ``path``, ``line`` (1-based, or None) and ``record`` (an id, or None) say
    where; ``reason`` says what was wrong.
    """

    def __init__(self, path: str | Path | None, reason: str, *, line: int | None = None,
                 record: str | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.record = record
        self.reason = reason
        where = self.path or "<input>"
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record!r}"
        super().__init__(f"{where}: {reason}")
