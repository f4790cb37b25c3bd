"""Appending to a log: a cut line (a kill) or a failed write (a full disk) never stays behind."""
from __future__ import annotations

import errno
import json

import pytest

from protlab.core.atomic import WriteError, append_line


def test_lines_are_appended_whole_and_a_cut_last_line_is_dropped(tmp_path):
    log = tmp_path / "log.jsonl"
    append_line(log, json.dumps({"step": 1}))
    append_line(log, json.dumps({"step": 2}) + "\n")
    with open(log, "a") as fh:
        fh.write('{"step": 3, "lo')  # a writer killed mid-line
    append_line(log, json.dumps({"step": 3}))
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]
    only_cut = tmp_path / "cut.jsonl"
    only_cut.write_text('{"st')
    append_line(only_cut, "{}")
    assert only_cut.read_text() == "{}\n"
    long_cut = tmp_path / "long.jsonl"  # a cut line longer than one read block
    long_cut.write_text('{"a": 1}\n' + "x" * 200_000)
    append_line(long_cut, "{}")
    assert long_cut.read_text() == '{"a": 1}\n{}\n'


def test_a_failed_append_leaves_the_earlier_lines_and_names_the_file(tmp_path, monkeypatch):
    import builtins

    log = tmp_path / "log.jsonl"
    append_line(log, '{"step": 1}')
    real_open = builtins.open

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[:5])  # part of the line lands, then the disk is full
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda *a, **k: FullDisk(real_open(*a, **k)))
    with pytest.raises(WriteError, match=r"log\.jsonl.*disk full.*earlier lines are intact"):
        append_line(log, '{"step": 2}')
    monkeypatch.undo()
    assert log.read_text() == '{"step": 1}\n'
