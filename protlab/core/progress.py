"""Progress bars that suit where they are shown.

In a terminal or a notebook a live bar (``tqdm.auto``); elsewhere (a log file, CI, a pipe) a
bar redrawn with carriage returns becomes one long line of noise, so there the bar is written
as whole lines, at most one per ``LOG_INTERVAL`` seconds plus the first and the last.
"""
from __future__ import annotations

import sys

from tqdm import tqdm as _plain_tqdm
from tqdm.auto import tqdm as _live_tqdm

LOG_INTERVAL = 30.0  # seconds between the lines of a bar written to a log


class _LogLines(_plain_tqdm):
    """tqdm written as whole lines without carriage returns."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("mininterval", LOG_INTERVAL)
        kwargs.setdefault("ascii", True)
        kwargs.update(dynamic_ncols=False, ncols=kwargs.get("ncols") or 100)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing the line: nothing to clear in a log
            return True
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        return True

    def close(self):
        if not self.disable and not self.leave and self.n != self.last_print_n:
            self.display()  # the last state, even for a bar that would vanish in a terminal
        super().close()


def _interactive() -> bool:
    if "ipykernel" in sys.modules:  # a Jupyter kernel (also under papermill): widget or text bars
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)`` for terminals and notebooks, whole log lines elsewhere."""
    if _interactive():
        return _live_tqdm(iterable, **kwargs)
    return _LogLines(iterable, **kwargs)


def step_callback(bar, name: str, fmt: str = ".4f"):
    """A ``progress(done, total, value)`` callback for long fits: one step of ``bar``, with
    ``value`` shown as ``name``."""
    def advance(done: int, total: int, value: float) -> None:
        bar.set_postfix({name: format(value, fmt)}, refresh=False)
        bar.update(1)

    return advance
