"""What every stage shares: its parameter table, validation, the stage record and the CLI.

A stage (``protlab.curate`` … ``protlab.residues``) declares its parameters once, as a
tuple of :class:`Param`; the notebook's parameters cell, ``run(run_dir, **params)`` and
``python -m protlab.<stage>`` all use that table (a test checks the notebooks' defaults
against it). :meth:`Stage.validate` checks every value before any work starts: an
unknown name, a wrong type, a value out of range or an unknown choice raises
:class:`~protlab.core.errors.InputError` naming the parameter, the value and what is
allowed. :class:`StageRecord`, made before any work too, refuses a ``run_dir`` that cannot
or should not be written (:func:`~protlab.core.paths.writable_dir`). It writes
``run_dir/<stage>.json``: the parameters as given (defaults filled in), the settings they
resolved to (a preset merged, ``None`` replaced by the value used), the code (protlab
version, git commit and dirty flag from a checkout), fingerprints of the inputs read, the
outputs written, the timings and the results.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import math
import numbers
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from protlab.core.atomic import atomic_write_json
from protlab.core.errors import InputError, ProtlabError
from protlab.core.fingerprint import fingerprint
from protlab.core.paths import writable_dir
from protlab.core.version import __version__, code_identity

MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds in [0, 2**32)
_KINDS = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


# Checks shared by stages' Param tables (a ValueError's text says what is allowed); writable_dir
# (protlab.core.paths) checks folders a stage writes into.
def existing_file(value) -> None:
    if not Path(value).is_file():
        raise ValueError(f"no such file: {value}")


def map_points(value: int) -> None:
    """A figure's point budget: 0 (no figure) or at least 10 points."""
    if 0 < value < 10:
        raise ValueError("0 (no map) or at least 10 points")


def regular_expression(value) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from exc


@dataclass(frozen=True)
class Param:
    """One stage parameter.

    ``kind``: ``int``, ``float``, ``str``, ``bool``, ``list``, ``dict`` or ``any`` (checked
    by ``check`` alone); ``str|list`` style unions are allowed. ``low`` / ``high`` bound
    numbers (``low_open``: the bound itself is not allowed, e.g. > 0); ``choices`` lists the
    allowed values; ``items``: the values a list's items may take; ``none``: None is allowed;
    ``check(value)`` may raise a ValueError whose text says what is allowed.
    """

    name: str
    default: Any
    help: str
    kind: str = "any"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    none: bool = False
    check: Callable[[Any], Any] | None = None
    items: tuple | None = None

    def allowed(self) -> str:
        parts = []
        if self.choices is not None:
            parts.append("one of " + ", ".join(repr(c) for c in self.choices))
        elif self.items is not None:
            parts.append("a list of " + ", ".join(repr(c) for c in self.items))
        else:
            parts.append(" or ".join(self.kind.split("|")) if self.kind != "any" else "see the help")
            if self.low is not None:
                parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
            if self.high is not None:
                parts.append(f"<= {self.high:g}")
        if self.none:
            parts.append("or None")
        return " ".join(parts)

    def coerce(self, value: Any) -> Any:
        """``value`` checked and normalised (integral floats to int, ints to float, tuples to lists)."""
        if value is None:
            if self.none:
                return None
            raise self._error(value)
        kinds = self.kind.split("|")
        if kinds != ["any"]:
            value = self._coerce_kind(value, kinds)
        if self.choices is not None and value not in self.choices:
            raise self._error(value)
        if self.items is not None and isinstance(value, list) and any(v not in self.items for v in value):
            unknown = [v for v in value if v not in self.items]
            raise InputError(f"{self.name}={value!r} is not allowed: {unknown} unknown; use {self.allowed()}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or (self.low is not None and (value < self.low or (self.low_open and
                                                                                            value == self.low))) \
                    or (self.high is not None and value > self.high):
                raise self._error(value)
        if self.check is not None:
            try:
                checked = self.check(value)
            except (ValueError, TypeError) as exc:
                raise InputError(f"{self.name}={value!r} is not allowed: {exc}") from exc
            value = value if checked is None else checked
        return value

    def _coerce_kind(self, value, kinds):
        boolean = isinstance(value, (bool, np.bool_))
        for kind in kinds:  # numpy scalars count as the Python numbers they hold
            if kind == "bool" and boolean:
                return bool(value)
            if kind == "int" and not boolean:
                if isinstance(value, numbers.Integral):
                    return int(value)
                if isinstance(value, numbers.Real) and float(value).is_integer():
                    return int(value)
            if kind == "float" and isinstance(value, numbers.Real) and not boolean:
                return float(value)
            if kind == "str" and isinstance(value, (str, Path)):
                return str(value)
            if kind == "list" and isinstance(value, (list, tuple)):
                return list(value)
            if kind == "dict" and isinstance(value, dict):
                return dict(value)
        raise self._error(value)

    def _error(self, value) -> InputError:
        return InputError(f"{self.name}={value!r} is not allowed: use {self.allowed()}")

    def parse_text(self, text: str) -> Any:
        """A command-line value: None / booleans / numbers / JSON lists as the kind says."""
        if self.none and text.strip().lower() in ("none", "null"):
            return None
        kinds = self.kind.split("|")
        for kind in kinds:
            if kind == "bool" and text.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
                return text.strip().lower() in ("true", "yes", "1")
            if kind in ("int", "float"):
                with contextlib.suppress(ValueError):
                    number = float(text)
                    return int(number) if kind == "int" and number.is_integer() else number
            if kind in ("list", "dict", "any"):
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(text)
                    if kind == "any" or isinstance(value, {"list": list, "dict": dict}[kind]):
                        return value
            if kind == "list" and "str" not in kinds:  # a,b or 0.8,0.1,0.1, or [a, b] written without JSON quotes
                inner = text.strip()
                inner = inner[1:-1] if inner.startswith("[") and inner.endswith("]") else inner
                items = [item.strip().strip("'\"") for item in inner.split(",") if item.strip()]
                return [json.loads(item) if _is_number(item) else item for item in items]
        return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class Stage:
    """A pipeline stage: its name, notebook, parameters and what it reads and writes."""

    name: str
    notebook: str
    summary: str
    params: tuple[Param, ...]
    by_name: dict[str, Param] = field(init=False)

    def __post_init__(self):
        self.by_name = {p.name: p for p in self.params}

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Every parameter (defaults filled in), checked; InputError on the first bad one."""
        for name in params:
            if name not in self.by_name:
                close = difflib.get_close_matches(name, list(self.by_name), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"unknown parameter {name!r} for {self.name}{hint}; "
                                 f"{self.name} takes: {', '.join(self.by_name)}")
        return {p.name: p.coerce(params.get(p.name, p.default)) for p in self.params}

    def docstring(self) -> str:
        lines = [self.summary, "", f"Parameters (``protlab.{self.name}.run(run_dir, **params)``; the notebook "
                 f"``{self.notebook}`` and ``python -m protlab.{self.name}`` take the same):", ""]
        for p in self.params:
            lines.append(f"* ``{p.name}`` = ``{p.default!r}``: {p.help} ({p.allowed()})")
        return "\n".join(lines)

    # ------------------------------------------------------------------ command line
    def parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=f"python -m protlab.{self.name}", description=self.summary)
        parser.add_argument("--run-dir", required=True, help="the run directory the notebooks share")
        for p in self.params:
            parser.add_argument("--" + p.name.replace("_", "-"), dest=p.name, default=argparse.SUPPRESS,
                                metavar=p.kind.upper() if p.kind != "any" else "VALUE",
                                help=f"{p.help} (default: {p.default!r}; {p.allowed()})".replace("%", "%%"))
        return parser

    def main(self, run: Callable[..., Any], argv: list[str] | None = None,
             summary: Callable[[dict, dict], str] | None = None) -> int:
        """``python -m protlab.<stage>``: parse, run, print what was found (``summary(results,
        timings)`` of the record) and where the record is; errors exit 2."""
        args = vars(self.parser().parse_args(argv))
        run_dir = args.pop("run_dir")
        try:
            params = {name: self.by_name[name].parse_text(text) for name, text in args.items()}
            result = run(run_dir, **params)
        except ProtlabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if summary is not None and isinstance(result, StageResult) and result.results:  # torchrun workers: none
            print(f"{self.name}: {summary(result.results, result.record.timings)}")
        print(f"{self.name}: done; record {Path(run_dir) / (self.name + '.json')}")
        return 0


# ---------------------------------------------------------------------- the record
class StageRecord:
    """Collects what a stage read, wrote and how long it took; written as ``<stage>.json``."""

    def __init__(self, stage: Stage, run_dir: str | Path, params: dict[str, Any]):
        try:  # every stage makes its record before any work: a folder it cannot write fails now
            writable_dir(run_dir)
        except ValueError as exc:
            raise InputError(f"run_dir={str(run_dir)!r} is not allowed: {exc}") from exc
        self.stage, self.run_dir, self.params = stage, Path(run_dir), params
        self.settings: dict[str, Any] = dict(params)  # what the stage used; see resolve()
        self.inputs: dict[str, dict] = {}
        self.outputs: dict[str, dict] = {}
        self.timings: dict[str, float] = {}
        self.results: dict[str, Any] = {}
        self._start = time.perf_counter()
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def resolve(self, **settings) -> None:
        """Record the values the stage actually used (a preset's value for ``None``, an
        estimated number, the algorithm's constants) beside the parameters as given."""
        self.settings.update(settings)

    def _name(self, path: Path) -> str:
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(path)

    def read(self, path: str | Path) -> Path:
        """Note an input (its fingerprint is taken now); returns the path."""
        path = Path(path)
        if path.exists():
            self.inputs[self._name(path)] = {"sha256": fingerprint(path)}
        return path

    def wrote(self, path: str | Path) -> Path:
        path = Path(path)
        if path.exists():
            self.outputs[self._name(path)] = {"bytes": path.stat().st_size if path.is_file() else None}
        return path

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = round(time.perf_counter() - start, 3)

    def path(self) -> Path:
        return self.run_dir / f"{self.stage.name}.json"

    def save(self) -> Path:
        self.timings["total"] = round(time.perf_counter() - self._start, 3)
        for name, meta in self.outputs.items():  # sizes as they are at the end of the stage
            target = Path(name) if Path(name).is_absolute() else self.run_dir / name
            if target.is_file():
                meta["bytes"] = target.stat().st_size
        record = {"stage": self.stage.name, "notebook": self.stage.notebook, "protlab_version": __version__,
                  "code": code_identity(), "started": self.started, "params": self.params,
                  "settings": self.settings, "inputs": self.inputs,
                  "outputs": self.outputs, "timings": self.timings, "results": self.results}
        return atomic_write_json(self.path(), record)


class StageResult:
    """What ``run`` returns: the record, the figures it saved and the stage's values
    (attributes, e.g. ``result.labels``)."""

    def __init__(self, record: StageRecord, figures: dict[str, Any] | None = None, **values):
        self.record = record
        self.figures = dict(figures or {})
        self.values = values

    def __getattr__(self, name: str):
        if name.startswith("__") or "record" not in self.__dict__:  # copy / pickle probes, half-built objects
            raise AttributeError(name)
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__} of {self.record.stage.name} has no {name!r}; "
                             f"it has {sorted(values)}")

    @property
    def results(self) -> dict:
        return self.record.results

    def __repr__(self) -> str:
        return f"<{self.record.stage.name} result: {self.record.results}>"
