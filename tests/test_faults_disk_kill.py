"""Full disks at any write (a library's own files and torch's writer included), what an
unreadable checkpoint is called, and bad structure files found before 06 trains.

A full disk is simulated by a writer that stops with ENOSPC after part of its data; where
this process may mount a small tmpfs (root), a real full disk is used as well."""
from __future__ import annotations

import errno
import os
import re
import subprocess
from pathlib import Path

import pytest

import protlab
from protlab.core.atomic import WriteError, atomic_path
from protlab.core.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from protlab.core.errors import ProtlabError
from protlab.core.rundir import RunDir

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def small_disk(tmp_path):
    """``(folder, grow)``: a 3 MB tmpfs and ``grow(size)`` to enlarge it, or a skip where
    mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")

    def grow(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)

    yield disk, grow
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture
def no_png(monkeypatch):
    """HTML figures only: these tests are about the HTML and its plotly bundle."""
    from protlab.plot import export

    monkeypatch.setattr(export, "_plotly_png", lambda fig, path, width, height: path)


def figure():
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]))


def plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


# ----------------------------------------------------------------------- plotly's bundle
def test_plotly_bundle_cut_short_by_a_full_disk_is_named_and_not_left(tmp_path, monkeypatch, no_png):
    figures = tmp_path / "figures"
    real_write_bytes = Path.write_bytes

    def half_then_full(self, data):
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise ENOSPC

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    bundle = re.escape(str(figures / "plotly.min.js"))
    with pytest.raises(WriteError, match=rf"^could not write {bundle}: No space left on device \(disk full\?\); "
                                         r"no earlier file exists$"):
        protlab.plot.export.save_figure(figure(), figures / "map")
    monkeypatch.setattr(Path, "write_bytes", real_write_bytes)
    assert sorted(p.name for p in figures.iterdir()) == []  # no cut bundle, no temporary, no HTML
    protlab.plot.export.save_figure(figure(), figures / "map")
    assert (figures / "plotly.min.js").read_bytes() == plotly_js()
    assert 'src="plotly.min.js"' in (figures / "map.html").read_text()


@pytest.mark.parametrize("damage", ["cut", "same size", "another version"])
def test_a_damaged_plotly_bundle_is_rewritten_before_reuse(tmp_path, no_png, damage):
    figures = tmp_path / "figures"
    figures.mkdir()
    good = plotly_js()
    bad = {"cut": good[: len(good) * 2 // 3], "same size": good[:-10] + b" " * 10,
           "another version": b"/* plotly.js v1 */"}[damage]
    (figures / "plotly.min.js").write_bytes(bad)  # as a run on a full disk can leave it
    protlab.plot.export.save_figure(figure(), figures / "map")
    assert (figures / "plotly.min.js").read_bytes() == good


def test_an_intact_plotly_bundle_is_kept(tmp_path, no_png):
    figures = tmp_path / "figures"
    protlab.plot.export.save_figure(figure(), figures / "a")
    before = (figures / "plotly.min.js").stat()
    protlab.plot.export.save_figure(figure(), figures / "b")
    after = (figures / "plotly.min.js").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_plotly_bundle_on_a_really_full_disk(small_disk, no_png):
    disk, grow = small_disk
    figures = disk / "figures"  # 3 MB: plotly.min.js (4.8 MB) does not fit
    with pytest.raises(WriteError, match=rf"could not write {re.escape(str(figures / 'plotly.min.js'))}: .*"
                                         r"\(disk full\?\); no earlier file exists"):
        protlab.plot.export.save_figure(figure(), figures / "map")
    assert list(figures.iterdir()) == []
    grow("16m")  # space freed: the next run writes a whole bundle
    protlab.plot.export.save_figure(figure(), figures / "map")
    assert (figures / "plotly.min.js").read_bytes() == plotly_js()


# ------------------------------------------------------------------ torch checkpoints
TORCH_WRITE_ERRORS = [
    "[enforce fail at inline_container.cc:783] . unexpected pos 128 vs 0",
    "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed",
    "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing central directory",
]


@pytest.mark.parametrize("message", TORCH_WRITE_ERRORS)
def test_torch_writer_errors_keep_the_previous_checkpoint(tmp_path, monkeypatch, message):
    import torch

    path = tmp_path / "m.pt"
    save_checkpoint(path, "scan", {"w": torch.ones(3)})
    before = path.read_bytes()
    real_save = torch.save

    def cut_short(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 part of a zip")
        raise RuntimeError(message)

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(CheckpointError, match=rf"^could not write checkpoint {re.escape(str(path))}: file write "
                                              rf"failed \(disk full\?\); the previous file {re.escape(str(path))} is "
                                              r"intact\. Free space"):
        save_checkpoint(path, "scan", {"w": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_other_torch_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    import torch

    def broken(obj, f, *args, **kwargs):
        raise RuntimeError("cannot pickle a lock")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="cannot pickle a lock") as info:
        save_checkpoint(tmp_path / "m.pt", "scan", {"w": 1})
    assert not isinstance(info.value, ProtlabError) and not list(tmp_path.iterdir())


def test_cluster_on_a_full_disk_during_its_checkpoint(make_toy_run, tmp_path, monkeypatch):
    import torch

    run = RunDir(make_toy_run(kmer_dim=16))

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04" + bytes(124))
        raise RuntimeError(TORCH_WRITE_ERRORS[0])

    monkeypatch.setattr(torch, "save", full)
    first = re.escape(str(run.path("scan_graph_state")))  # the first checkpoint a fit writes (its graph step)
    with pytest.raises(CheckpointError, match=rf"could not write checkpoint {first}: file write failed \(disk full\?\); "
                                              r"no earlier file exists"):
        protlab.cluster.run(run.root, method="scan", epochs=2, self_label_epochs=1, n_heads=2, k=5,
                            map_max_points=0)
    assert not list(run.root.rglob("*.tmp")) and not list(run.root.rglob("scan_*.pt"))


def test_checkpoint_on_a_really_full_disk(small_disk):
    import torch

    disk, _ = small_disk
    path = disk / "m.pt"
    save_checkpoint(path, "scan", {"w": torch.ones(1000)})
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=rf"could not write checkpoint {re.escape(str(path))}: .*\(disk full\?\); "
                                              r"the previous file .*m.pt is intact"):
        save_checkpoint(path, "scan", {"w": torch.ones(1_000_000)})  # 4 MB on a 3 MB disk
    assert path.read_bytes() == before and [p.name for p in disk.iterdir()] == ["m.pt"]


def test_a_full_disk_deep_in_a_library_error_is_a_write_error(tmp_path):
    target = tmp_path / "table.parquet"
    with pytest.raises(WriteError, match=r"could not write .*table.parquet: No space left on device \(disk full\?\); "
                                         r"no earlier file exists"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"PAR1")
            try:
                raise ENOSPC
            except OSError as exc:  # a library that wraps the OSError in its own type
                raise ValueError("Error writing bytes to file") from exc
    with pytest.raises(ValueError, match="not a write"):  # any other error passes through as it is
        with atomic_path(target):
            raise ValueError("not a write")
    assert not list(tmp_path.iterdir())


def test_a_multi_file_write_names_the_file_the_disk_filled_on(tmp_path):
    import time

    from protlab.core.atomic import atomic_paths

    table, record = tmp_path / "t.parquet", tmp_path / "t.json"
    record.write_text("{}")
    with pytest.raises(WriteError, match=rf"^could not write {re.escape(str(record))}: No space left on device "
                                         r"\(disk full\?\); the previous version is intact$"):
        with atomic_paths(table, record) as (tmp_table, tmp_record):
            tmp_table.write_bytes(b"PAR1 whole table PAR1")
            time.sleep(0.05)  # file times are coarse
            tmp_record.write_text('{"rows": ')
            raise ENOSPC  # as a library reports it: no file name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"] and record.read_text() == "{}"


# ------------------------------------------------------------------ unreadable checkpoints
class Hook:
    """A class a pickle refers to: loading it would run this module's code."""


def _custom_object_checkpoint(path: Path) -> Path:
    import torch

    torch.save({"format": "protlab", "kind": "scan", "hook": Hook()}, path)
    return path


@pytest.mark.parametrize("content", ["python objects", "cut short", "garbage"])
def test_an_unreadable_checkpoint_is_named_and_never_loaded_unsafely(tmp_path, content):
    import torch

    path = tmp_path / "model.pt"
    if content == "python objects":
        _custom_object_checkpoint(path)
    elif content == "cut short":
        save_checkpoint(path, "scan", {"w": torch.ones(100)})
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(b"\x80\x04not a checkpoint at all")
    with pytest.raises(ProtlabError) as info:
        read_checkpoint(path, "scan")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "not a protlab checkpoint, or a damaged one" in message
    assert "weights_only" not in message and "trust" not in message.lower() and "\x1b" not in message


# ------------------------------------------------------------------ 06's structure files
def test_a_garbage_structure_file_is_named_before_any_training(tmp_path, monkeypatch):
    from protlab.residues import toy_training

    junk = tmp_path / "junk.pdb"
    junk.write_text("HEADER    not really\nATOM      1  CA  ALA A   1\nnonsense\n")

    def no_training(**kwargs):
        raise AssertionError("06 trained before reading the structure files")

    monkeypatch.setattr(toy_training, "train_on_toy", no_training)
    with pytest.raises(ProtlabError, match=rf"^{re.escape(str(junk))}, line 2: ATOM record cut short"):
        protlab.residues.run(tmp_path / "run", structures=str(junk), toy_model=True, epochs=1, hidden=8,
                             max_views=1)
