"""The shared core: atomic writes, the run-dir contract, figures, notebook tooling."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from protlab.core.rundir import RunDir
from protlab.core.errors import InputError, ParseError
from protlab.core.atomic import atomic_path, atomic_write_json
from protlab.notebooks import strip_outputs, write_notebook
from protlab.plot.export import save_figure


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind


def test_parse_error_names_file_line_and_record():
    err = ParseError("x.fasta", "illegal character '1'", line=7, record="P1")
    assert str(err) == "x.fasta, line 7, record 'P1': illegal character '1'"
    assert isinstance(err, ValueError)


def test_embeddings_round_trip_and_mismatch(tmp_path):
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    RunDir(tmp_path).save_embeddings( ["a", "b", "c"], x, encoder="kmer")
    ids, emb, meta = RunDir(tmp_path).load_embeddings()
    assert ids == ["a", "b", "c"] and emb.dtype == np.float32 and meta["encoder"] == "kmer"
    np.testing.assert_array_equal(emb, x.astype(np.float32))
    with pytest.raises(InputError, match="do not match"):
        RunDir(tmp_path).save_embeddings( ["a"], x)


def test_missing_artifact_names_the_notebook_to_run(tmp_path):
    with pytest.raises(InputError, match="01_curate"):
        RunDir(tmp_path).load_proteins()
    with pytest.raises(InputError, match="lacks columns"):
        RunDir(tmp_path).save_proteins(pd.DataFrame({"id": ["a"]}))


def test_save_figure_writes_html_and_png(tmp_path):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], mode="markers"))
    out = save_figure(fig, tmp_path / "figures" / "scatter")
    assert "plotly.min.js" in out["html"].read_text()
    assert (tmp_path / "figures" / "plotly.min.js").stat().st_size > 1_000_000
    png = out["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_a_hung_png_export_falls_back_to_matplotlib_and_is_not_waited_on_again(tmp_path, monkeypatch, caplog):
    """kaleido is known to hang now and then: the figure still gets its PNG, within the timeout."""
    import threading
    import time

    import plotly.graph_objects as go

    from protlab.plot import export

    never = threading.Event()
    calls = []

    def hang(self, **kwargs):
        calls.append(kwargs)
        never.wait()

    monkeypatch.setattr(go.Figure, "to_image", hang)
    monkeypatch.setattr(export, "find_chromium", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(export, "_kaleido_hung", False)
    monkeypatch.setenv("PROTLAB_PNG_TIMEOUT", "0.5")
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], mode="lines"))
    start = time.monotonic()
    with caplog.at_level("WARNING", logger="protlab.plot.export"):
        first = save_figure(fig, tmp_path / "a")["png"].read_bytes()
        second = save_figure(fig, tmp_path / "b")["png"].read_bytes()
    never.set()
    assert time.monotonic() - start < 10
    assert first[:8] == second[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(calls) == 1  # the second figure does not wait on kaleido again
    assert "kaleido hung (no answer in 0.5 s" in caplog.text


def test_chromium_driver_noise_stays_out_of_notebooks():
    """choreographer logs a traceback for each Chromium message it ignores; protlab silences it."""
    import logging

    from protlab.plot import export  # noqa: F401  (sets the level on import)

    pipe = logging.getLogger("choreographer.channels.pipe")
    assert not pipe.isEnabledFor(logging.ERROR) and pipe.isEnabledFor(logging.CRITICAL)


def test_write_and_strip_notebook(tmp_path):
    import nbformat

    path = write_notebook(tmp_path / "n.ipynb", [("md", "# t"), ("params", "x = 1"), ("code", "print(x)")])
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata.kernelspec["name"] == "python3"
    assert [c.metadata.get("tags", []) for c in nb.cells] == [[], ["parameters"], []]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[2].execution_count = 1
    nbformat.write(nb, str(path))
    assert strip_outputs(path) is True
    assert nbformat.read(str(path), as_version=4).cells[2].outputs == []
    assert strip_outputs(path) is False


def test_kernels_use_private_unix_sockets():
    from protlab.notebooks import _ipc_kernel_manager

    a, b = _ipc_kernel_manager()(), _ipc_kernel_manager()()
    assert a.transport == b.transport == "ipc"
    assert a.ip != b.ip  # no shared "kernel-ipc" prefix in the working directory


def _execute(path_and_out):
    from protlab.notebooks import run_notebook

    path, out = path_and_out
    return str(run_notebook(path, {"x": 3}, output_dir=out, timeout=120))


def test_concurrent_notebook_runs_do_not_cross(tmp_path):
    """Several kernels starting at once (parallel tests, demo beside a lab) each finish with their own result."""
    import concurrent.futures
    import multiprocessing

    import nbformat

    src = write_notebook(tmp_path / "tiny.ipynb",
                         [("params", "x = 1"), ("code", "import os\ny = x * 2\nprint(os.getpid(), y)")])
    jobs = [(str(src), str(tmp_path / f"out{i}")) for i in range(3)]
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        outs = list(pool.map(_execute, jobs, timeout=300))
    pids = set()
    for out in outs:
        cell = nbformat.read(out, as_version=4).cells[-1]
        pid, y = cell.outputs[0]["text"].split()
        assert y == "6"
        pids.add(pid)
    assert len(pids) == 3
