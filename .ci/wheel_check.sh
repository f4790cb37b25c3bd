#!/usr/bin/env bash
# What `pip install protlab` gives a user: a wheel built from a clean checkout, installed with
# its core dependencies only (no extras) into a fresh virtual environment, then checked:
#   * the wheel holds the package and nothing else (no tests/, notebooks/, benchmarks/);
#   * its metadata takes torch as a range and keeps the optional packages in extras;
#   * every console script answers --help, and `python -m protlab.curate --help` works;
#   * the toy pipeline 01 -> 02 -> 04 -> 05 runs from the shell (tiny settings, as the tests')
#     without Jupyter, papermill, pyKVFinder or kaleido installed, and without loading py3Dmol;
#   * the optional features missing here fail with an error naming the extra to install.
# torch comes from constraints.txt (the CPU build CI tests). The checkout is `git clone` of
# HEAD, so uncommitted changes are not seen; WHEEL_CHECK_WORKTREE=1 builds from the working
# tree's files instead (tracked and untracked, ignored ones left out). Any failure exits non-zero.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/protlab-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
say() { echo "[wheel] $*"; }
fail() { echo "[wheel] FAILED: $*" >&2; exit 1; }
step() { say "$* ($((SECONDS - START)) s)"; }
pip_() {  # pip, less the warning per package that an index with missing folders prints
  local rc=0
  "$@" >"$WORK/pip.log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither a file nor a directory" "$WORK/pip.log" || true
  return $rc
}

# ------------------------------------------------------------------ a clean source tree
if [ "${WHEEL_CHECK_WORKTREE:-0}" = 1 ]; then
  step "source: the working tree's files (WHEEL_CHECK_WORKTREE=1)"
  "$PYTHON" - "$ROOT" "$WORK/src" <<'PY' || fail "copying the working tree"
import shutil, subprocess, sys
from pathlib import Path
root, dest = Path(sys.argv[1]), Path(sys.argv[2])
listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                        capture_output=True, check=True).stdout.decode().split("\0")
for name in filter(None, listed):
    if (root / name).is_file():  # a tracked file deleted in the working tree is left out
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
PY
elif git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  step "source: git clone of $(git -C "$ROOT" rev-parse --short HEAD)"
  git clone -q --no-hardlinks "$ROOT" "$WORK/src"
else
  fail "$ROOT is not a git checkout (set WHEEL_CHECK_WORKTREE=1 to build from its files)"
fi

# ------------------------------------------------------------------ build
step "building the wheel (pip wheel --no-deps)"
pip_ "$PYTHON" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/src" || fail "pip wheel"
WHEELS=("$WORK"/dist/protlab-*.whl)
[ ${#WHEELS[@]} -eq 1 ] && [ -f "${WHEELS[0]}" ] || fail "expected one protlab wheel in $WORK/dist"
WHEEL=${WHEELS[0]}
say "built $(basename "$WHEEL")"

step "checking the wheel's files and metadata"
"$PYTHON" - "$WHEEL" "$WORK/src/pyproject.toml" <<'PY' || fail "wheel contents or metadata"
import sys, zipfile
from email.parser import Parser
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

wheel, pyproject = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(wheel).namelist()
tops = sorted({n.split("/")[0] for n in names})
stray = [t for t in tops if t != "protlab" and not t.endswith(".dist-info")]
assert not stray, f"the wheel holds more than the package: {stray}"
assert "protlab/__init__.py" in names and "protlab/core/extras.py" in names, "package modules missing"
for stage in ("curate", "embed", "pretrain", "cluster", "evaluate", "residues", "variants"):
    assert f"protlab/{stage}/__main__.py" in names, f"protlab/{stage}/__main__.py missing"
bad = [n for n in names if n.endswith((".ipynb", ".pyc")) or "/tests/" in n or "__pycache__" in n]
assert not bad, f"files a wheel should not hold: {bad[:10]}"
print(f"[wheel]   {len(names)} files, top level: {', '.join(tops)}")

info = next(n for n in names if n.endswith(".dist-info/METADATA"))
meta = Parser().parsestr(zipfile.ZipFile(wheel).read(info).decode())
requires = meta.get_all("Requires-Dist") or []
core = [r for r in requires if "extra ==" not in r]
torch = [r for r in core if r.split(">")[0].split("=")[0].split("<")[0].strip().lower() == "torch"]
assert torch and "==" not in torch[0], f"torch must be a range, not a pin: {torch}"
optional = ("jupyterlab", "papermill", "ipykernel", "ipywidgets", "nbformat", "pykvfinder", "kaleido")
leaked = [r for r in core if any(r.lower().startswith(o) for o in optional)]
assert not leaked, f"optional packages among the core requirements: {leaked}"
extras = set(meta.get_all("Provides-Extra") or [])
assert {"notebooks", "structures", "png", "test", "bench", "all"} <= extras, f"extras: {sorted(extras)}"
print(f"[wheel]   {torch[0]}; {len(core)} core requirements; extras: {', '.join(sorted(extras))}")

entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
text = zipfile.ZipFile(wheel).read(entry).decode()
with open(pyproject, "rb") as fh:
    scripts = tomllib.load(fh)["project"]["scripts"]
missing = [s for s in scripts if f"{s} = {scripts[s]}" not in text]
assert not missing, f"console scripts missing from the wheel: {missing}"
PY

# ------------------------------------------------------------------ install, core only
VENV="$WORK/venv"
step "fresh venv; pip install -c constraints.txt <wheel> (core dependencies only)"
"$PYTHON" -m venv "$VENV"
pip_ "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" "$WHEEL" || fail "pip install of the wheel"
pip_ "$VENV/bin/python" -m pip check || fail "pip check: broken requirements"
"$VENV/bin/python" - <<'PY' || fail "the core install holds optional packages, so the checks below prove nothing"
import importlib.util
import torch
absent = ("jupyterlab", "jupyter_client", "papermill", "nbformat", "ipykernel", "ipywidgets", "pyKVFinder", "kaleido")
present = [m for m in absent if importlib.util.find_spec(m) is not None]
assert not present, f"installed without an extra: {present}"
print(f"[wheel]   torch {torch.__version__}; not installed: {', '.join(absent)}")
PY

# Everything below runs outside the source tree, so only the installed wheel is imported.
cd "$WORK"
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg
PY="$VENV/bin/python"

step "console scripts --help"
mapfile -t SCRIPT_NAMES < <("$PY" - "$WORK/src/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
with open(sys.argv[1], "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["scripts"]))
PY
)
[ ${#SCRIPT_NAMES[@]} -gt 0 ] || fail "no [project.scripts] read from pyproject.toml"
for script in "${SCRIPT_NAMES[@]}"; do
  [ -x "$VENV/bin/$script" ] || fail "$script was not installed"
  out=$("$VENV/bin/$script" --help 2>&1) || { echo "$out" >&2; fail "$script --help"; }
  grep -q -- "--" <<<"$out" || fail "$script --help printed no options"
  say "  $script --help: ok"
done
"$PY" -m protlab.curate --help >/dev/null || fail "python -m protlab.curate --help"
say "  python -m protlab.curate --help: ok"

# ------------------------------------------------------------------ the toy pipeline
# -X importtime lists every module a stage imports, and also the guarded attempts at absent
# ones; only the optional modules installed here (py3Dmol, a core dependency for 06) can load.
OPTIONAL="jupyterlab jupyter_client jupyter_server notebook nbclient nbformat papermill ipykernel IPython ipywidgets
          py3Dmol pyKVFinder kaleido choreographer"
LOADABLE=$("$PY" -c 'import importlib.util, sys; print("|".join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))' \
           $OPTIONAL)
say "  optional modules installed here, which 01-05 must not load: ${LOADABLE:-none}"
RUN="$WORK/run"
stage() {  # stage NAME ARGS...: run `python -m protlab.NAME`, then look for optional imports
  local name=$1; shift
  step "python -m protlab.$name --run-dir run $*"
  "$PY" -X importtime -m "protlab.$name" --run-dir "$RUN" "$@" 2>"$WORK/$name.err" \
    || { grep -v '^import time:' "$WORK/$name.err" | tail -40 >&2; fail "protlab.$name"; }
  if [ -n "$LOADABLE" ] && grep -E "\| +($LOADABLE)(\.|$)" "$WORK/$name.err" >"$WORK/$name.optional"; then
    cat "$WORK/$name.optional" >&2
    fail "protlab.$name imported optional modules (above)"
  fi
  [ -f "$RUN/$name.json" ] || fail "protlab.$name wrote no $name.json"
}
stage curate --n-families 4 --members-per-family 12 --split-method kmer --split-identity 0.9
stage embed
stage cluster --epochs 5 --self-label-epochs 2 --n-heads 2 --k 5
stage evaluate
"$PY" - "$RUN" <<'PY' || fail "the toy run's records"
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
for stage in ("curate", "embed", "cluster", "evaluate"):
    record = json.loads((run / f"{stage}.json").read_text())
    assert record["stage"] == stage, record.get("stage")
pngs = sorted(p.name for p in (run / "figures").glob("*.png"))
assert pngs, "no PNG figures (the matplotlib fallback should draw them)"
results = json.loads((run / "evaluate.json").read_text()).get("results", {})
print(f"[wheel]   records: curate, embed, cluster, evaluate; {len(pngs)} PNGs; evaluate results: "
      + ", ".join(f"{k}={v:.3f}" for k, v in list(results.items())[:6] if isinstance(v, (int, float))))
PY

# ------------------------------------------------------------------ optional features
step "missing extras fail naming the extra"
"$PY" - <<'PY' || fail "errors for missing extras"
from protlab.core.extras import MissingExtraError
from protlab.curate.records import Structure
from protlab.notebooks import run_notebook
from protlab.residues.pockets import find_cavities

checks = [("protlab[notebooks]", lambda: run_notebook("01_curate", {}, output_dir=".")),
          ("protlab[structures]", lambda: find_cavities(Structure.__new__(Structure)))]
for extra, call in checks:
    try:
        call()
    except MissingExtraError as exc:
        assert extra in str(exc), f"{exc} does not name {extra}"
        print(f"[wheel]   {exc}")
    else:
        raise AssertionError(f"no error where {extra} is missing")
PY

step "all checks passed"
