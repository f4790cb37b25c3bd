"""One progress and log format for every training loop (03's steps, 04's heads, 06's epochs).

A :class:`TrainingLog` shows a bar (live in terminals and notebooks, whole lines in other
logs: :func:`~protlab.core.progress.progress_bar`), prints each logged record as one line
``[name] unit position/total  key value ...`` (what papermill's log keeps), and appends it
to a JSONL file in the run directory. A resumed training keeps the file's records up to where
it resumes; a fresh one starts the file again. Only the main rank writes or prints.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from protlab.core.atomic import append_line, atomic_write_text
from protlab.core.errors import InputError
from protlab.core.progress import progress_bar


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def record_line(name: str, unit: str, position: int, total: int, record: dict, shown=None) -> str:
    """``[name] unit position/total  key value ...`` for a record's numbers (only the keys in
    ``shown``, in their order, when given)."""
    keys = [k for k in record if k != unit] if shown is None else [k for k in shown if k in record]
    values = "  ".join(f"{k} {_value(record[k])}" for k in keys
                       if isinstance(record[k], (int, float)) and not isinstance(record[k], bool))
    return f"[{name}] {unit} {position}/{total}" + (f"  {values}" if values else "")


def read_records(path: str | Path, *, say=None) -> list[dict]:
    """The records of a JSONL training log, oldest first; [] when there is none. A last line cut
    short (the record a killed run was writing) is left out, and ``say`` (when given) is told so;
    any other line that is not JSON is an :class:`InputError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if index == len(lines) - 1:
                if say is not None:
                    say(f"{path}, line {number}: cut short (a killed run); ignored")
                break
            raise InputError(f"{path}, line {number}: not a JSON record ({exc.msg}); delete the line or the "
                             "file (resume=False)") from exc
    return records


class TrainingLog:
    """Progress of one training: ``total`` ``unit``\\ s (epochs, steps), starting after ``start``
    (a resumed run). ``path``: the JSONL log (None: none); ``every``: print every that many
    positions and the last (0: print none); ``bar``: show a progress bar; ``main``: False on the other ranks
    of a distributed run, which then neither write nor print; ``shown``: the keys a printed line
    gives (None: every number of the record; the JSONL file always has them all)."""

    def __init__(self, name: str, *, unit: str, total: int, path: str | Path | None = None, start: int = 0,
                 every: int = 1, bar: bool = True, main: bool = True, shown=None):
        self.name, self.unit, self.total, self.every, self.main = name, unit, total, every, main
        self.shown = None if shown is None else tuple(shown)
        self.path = Path(path) if path is not None else None
        if main and self.path is not None:
            if start:  # records written after the saved state belong to a run that did not get that far
                kept = [r for r in read_records(self.path, say=self.say) if r.get(unit, 0) <= start]
                atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
            else:
                self.path.unlink(missing_ok=True)
        self.bar = (progress_bar(total=total, initial=start, desc=name, leave=False, dynamic_ncols=True)
                    if main and bar else None)

    def say(self, message: str) -> None:
        """One line of what the training does (resumes, skips, notes)."""
        if self.main:
            print(f"[{self.name}] {message}", flush=True)

    def advance(self, n: int = 1, **postfix) -> None:
        """Move the bar on ``n`` units, showing ``postfix``."""
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)

    def record(self, position: int, values: dict, *, line: bool | None = None) -> dict:
        """Log ``{unit: position, **values}``: appended to the JSONL file, printed every ``every``
        positions and at the last (``line`` forces or silences the print). Returns the record."""
        record = {self.unit: position, **values}
        if not self.main:
            return record
        if self.path is not None:
            append_line(self.path, json.dumps(record))
        if line if line is not None else (self.every > 0 and (position % self.every == 0 or position == self.total)):
            print(record_line(self.name, self.unit, position, self.total, record, self.shown), flush=True)
        return record

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
