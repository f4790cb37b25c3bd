"""Run and write the numbered notebooks (papermill), shared by ``make demo`` and the tests.

Jupyter state is kept inside the project (``.jupyter/``) so runs are hermetic, and the
kernel is the ``python3`` kernel of the interpreter running this code (the project's
virtual environment).

Paths given to a notebook follow one rule: a relative path (``run_dir``, an input file such
as ``source``, ``structures``, ``sites``) is read from the repository root, the folder
holding ``notebooks/``; an absolute path is used as it is. JupyterLab starts a notebook's
kernel in ``notebooks/`` and papermill in whatever directory it is called from, so the
working directory is not used: :func:`parameters_from`, which every notebook's run cell
calls, applies the rule (:func:`resolve_paths`).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Iterable

from protlab.core.atomic import atomic_write_text
from protlab.core.errors import InputError
from protlab.core.extras import require
from protlab.core.stage import StageResult

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (protlab)", "language": "python"}


def hermetic_jupyter_env(root: Path = REPO) -> None:
    """Point Jupyter/IPython config and runtime dirs inside ``root/.jupyter``."""
    base = root / ".jupyter"
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        os.environ.setdefault(var, str(base / sub))
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")


def notebook_path(name: str) -> Path:
    """``"01"``, ``"01_curate"`` or ``"01_curate.ipynb"`` → the notebook's path (a path to an
    existing ``.ipynb`` is returned as it is)."""
    if name.endswith(".ipynb") and Path(name).is_file():
        return Path(name)
    matches = sorted(NOTEBOOK_DIR.glob(f"{Path(name).stem}*.ipynb"))
    if not matches:
        raise InputError(f"no notebook matching {name!r} in {NOTEBOOK_DIR}")
    return matches[0]


def _ipc_kernel_manager():
    """A kernel manager talking to the kernel over unix sockets instead of TCP ports.

    With TCP, jupyter_client picks free ports before the kernel binds them; when several
    kernels start at once (parallel tests, a demo beside a notebook server) another process
    can take a port in between, and the run then hangs with both sides idle. Unix sockets
    have unique file names, so that race cannot happen.
    """

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    if os.name != "posix":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _unique_socket_prefix(self):
            # jupyter_client's default ("kernel-ipc" in the working directory) is shared by
            # every kernel started from one directory; a private short temp dir is not.
            return os.path.join(tempfile.mkdtemp(prefix="protlab-kernel-"), "k")

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(os.path.dirname(self.ip), ignore_errors=True)

    return IPCKernelManager


# Parameters that always name a file or folder ("toy" names the toy universe, not a path).
PATH_PARAMETERS = frozenset({"run_dir", "source", "structures", "checkpoint", "sites", "labels", "split",
                             "cache_dir", "variants", "alignment", "homologs"})
# Parameters that take a model name or a path: a path when the repository holds it.
NAME_OR_PATH_PARAMETERS = frozenset({"encoder", "esm", "protein_encoder", "text_encoder", "wildtype"})
NOT_A_PATH = frozenset({"toy"})


def repo_path(value: str | Path) -> str:
    """``value`` as an absolute path: a relative one is read from the repository root."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else REPO / path)


def resolve_paths(parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` with relative paths read from the repository root (see the module
    docstring); absolute paths, names ("toy", "kmer", model names) and other values unchanged."""
    def one(name: str, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and name == "structures":
            return [one(name, v) for v in value]
        if not isinstance(value, (str, Path)) or str(value) in NOT_A_PATH or not str(value):
            return value
        if name in PATH_PARAMETERS or (name in NAME_OR_PATH_PARAMETERS and Path(repo_path(value)).exists()):
            return repo_path(value)
        return value

    return {name: one(name, value) for name, value in parameters.items()}


_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open", "display"})


def parameters_from(namespace: dict[str, Any]) -> dict[str, Any]:
    """A notebook's parameters: the globals its parameters cell and papermill's injected
    cell defined (modules, functions, IPython's names and stage results are left out).

    The notebook passes them all to its stage's ``run``, so a parameter given to papermill
    that the stage does not take is an error naming it, not a silently unused variable.
    Relative paths come back read from the repository root (:func:`resolve_paths`), so a
    notebook finds ``runs/demo`` from JupyterLab, papermill or any working directory.
    """
    return resolve_paths({name: value for name, value in namespace.items()
                          if not name.startswith("_") and name not in _IPYTHON_NAMES
                          and not isinstance(value, (types.ModuleType, StageResult)) and not callable(value)})


def notebook_parameters(name: str) -> dict[str, Any]:
    """``{name: default}`` of a notebook's parameters cell (papermill's own reading of it)."""
    pm = require("papermill", "notebooks", "running notebooks")

    return {n: p["default"] for n, p in pm.inspect_notebook(str(notebook_path(name))).items()}


def check_parameters(name: str, parameters: dict[str, Any]) -> None:
    """An error naming every parameter the notebook's parameters cell does not define."""
    known = notebook_parameters(name)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise InputError(f"{notebook_path(name).name} has no parameter(s) {unknown}; it takes: {', '.join(known)}")


def run_notebook(name: str, parameters: dict[str, Any], *, output_dir: str | Path,
                 timeout: int | None = None, progress: bool = False, cwd: str | Path = REPO) -> Path:
    """Execute a notebook with papermill; the executed copy lands in ``output_dir``.

    ``cwd``: the kernel's working directory (JupyterLab uses ``notebooks/``); relative paths
    in ``parameters`` are read from the repository root whatever it is.

    ``timeout``: seconds one cell may run (default ``PROTLAB_CELL_TIMEOUT`` or 1800); a cell
    past it fails naming itself. ``PROTLAB_NOTEBOOK_LOG=1`` sends the cells' outputs to the
    ``papermill`` logger as they come (the tests do, so a failing run shows how far it got).
    """
    pm = require("papermill", "notebooks", "running notebooks")

    if timeout is None:
        timeout = int(os.environ.get("PROTLAB_CELL_TIMEOUT", "1800"))

    hermetic_jupyter_env()
    check_parameters(name, parameters)
    src = notebook_path(name)
    out = Path(output_dir) / src.name
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(src), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(cwd), progress_bar=progress, execution_timeout=timeout,
        log_output=os.environ.get("PROTLAB_NOTEBOOK_LOG") == "1", kernel_manager_class=_ipc_kernel_manager(),
    )
    return out


def write_notebook(path: str | Path, cells: Iterable[tuple[str, str]]) -> Path:
    """Write a notebook from ``(kind, source)`` pairs; kind is ``md``, ``params`` or ``code``.

    Used to (re)generate the committed notebooks: outputs are empty, the kernelspec is set,
    and exactly the ``params`` cell carries the papermill ``parameters`` tag.
    """
    nbformat = require("nbformat", "notebooks", "writing notebooks")

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        source = source.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"cell-{i:02d}"
    nbformat.validate(nb)
    return atomic_write_text(path, nbformat.writes(nb) + "")


def strip_outputs(path: str | Path) -> bool:
    """Remove outputs and execution counts from a notebook; True when it changed."""
    nbformat = require("nbformat", "notebooks", "writing notebooks")

    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
        for key in ("execution", "papermill"):
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
    for key in ("papermill",):
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    if changed:
        atomic_write_text(path, nbformat.writes(nb))
    return changed


if __name__ == "__main__":  # python -m protlab.notebooks notebooks/*.ipynb  (strip outputs)
    for arg in sys.argv[1:]:
        if strip_outputs(arg):
            print(f"stripped {arg}")
