"""What an install provides: console scripts that load and run, and optional packages that are
imported only where used, with an error naming the extra to install.

The wheel itself (built from a clean checkout, core dependencies only, the toy pipeline from
the shell) is checked by ``.ci/wheel_check.sh``, which CI runs before the tests.
"""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
# Imported by name in the subprocess below (tomllib there is 3.11+ too).
OPTIONAL = ("papermill", "nbformat", "jupyter_client", "jupyterlab", "ipykernel", "ipywidgets", "IPython",
            "pyKVFinder", "kaleido", "pocketnet")


def requirement_name(requirement: str) -> str:
    for sep in "<>=!~;[ ":
        requirement = requirement.split(sep)[0]
    return requirement.lower()


def test_torch_is_a_range_and_optional_packages_are_extras():
    core = {requirement_name(r): r for r in PYPROJECT["project"]["dependencies"]}
    assert "==" not in core["torch"], "an exact torch pin replaces a user's CUDA build; pin in constraints.txt"
    for package in ("jupyterlab", "papermill", "ipykernel", "ipywidgets", "pykvfinder", "kaleido"):
        assert package not in core, f"{package} belongs in an extra"
    pinned = (REPO / "constraints.txt").read_text()
    assert any(line.startswith("torch==") for line in pinned.splitlines()), "CI and make pin torch here"


def test_test_extra_pulls_every_runtime_extra():
    assert {"notebooks", "structures", "png", "test", "bench", "all"} <= set(EXTRAS)
    test = " ".join(EXTRAS["test"])
    for extra in ("notebooks", "structures"):
        assert extra in test, f"the test suite needs protlab[{extra}]"
    assert "png" in " ".join(EXTRAS["notebooks"])


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_target_is_a_callable(name):
    target = importlib.metadata.EntryPoint(name=name, value=SCRIPTS[name], group="console_scripts").load()
    assert callable(target), f"{name} = {SCRIPTS[name]} is not callable"


def test_every_stage_has_a_console_script():
    import protlab

    for stage in protlab.STAGES:
        assert SCRIPTS.get(f"protlab-{stage}") == f"protlab.{stage}.__main__:main"


def test_console_script_runs_with_help():
    """The installed script when this environment has it, else its entry point loaded the way
    the script wrapper does."""
    name = "protlab-cluster"
    installed = Path(sys.executable).parent / name
    if installed.is_file():
        cmd = [str(installed), "--help"]
    else:
        module, func = SCRIPTS[name].split(":")
        cmd = [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}(['--help']))"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "--run-dir" in proc.stdout and "--n-heads" in proc.stdout


def test_protlab_imports_without_optional_packages(tmp_path):
    """Every protlab module imports with the extras' packages unavailable; using a feature
    that needs one raises an error naming the extra, and PNG export falls back to matplotlib."""
    code = textwrap.dedent(f"""
        import importlib, logging, pkgutil, sys
        import importlib.abc

        BLOCKED = {OPTIONAL!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        import protlab
        for info in pkgutil.walk_packages(protlab.__path__, "protlab."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded

        from protlab.core.extras import MissingExtraError
        from protlab.curate.records import Structure
        from protlab.notebooks import notebook_parameters, write_notebook
        from protlab.plot import view3d
        from protlab.residues.pockets import find_cavities

        for extra, call in [("notebooks", lambda: notebook_parameters("01")),
                            ("notebooks", lambda: write_notebook("x.ipynb", [])),
                            ("notebooks", lambda: view3d.inspect([])),
                            ("notebooks", lambda: view3d.static_views([])),
                            ("structures", lambda: find_cavities(Structure.__new__(Structure)))]:
            try:
                call()
            except MissingExtraError as exc:
                assert f"pip install 'protlab[{{extra}}]'" in str(exc), exc
                assert isinstance(exc, ImportError)
            else:
                raise AssertionError(f"no error without protlab[{{extra}}]")

        import plotly.graph_objects as go
        from protlab.plot import export
        export.find_chromium = lambda: "/usr/bin/chromium"  # kaleido's absence is the reason given
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        out = export.save_figure(go.Figure(go.Scatter(x=[1, 2], y=[2, 1])), "fig")
        assert out["png"].read_bytes()[:4] == b"\\x89PNG"
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "kaleido is not installed (pip install 'protlab[png]')" in proc.stdout
    assert proc.stdout.rstrip().endswith("ok")
