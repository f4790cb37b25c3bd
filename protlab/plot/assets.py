"""Offline assets: plotly's bundle beside HTML figures, and for 3D views the 3Dmol.js build
matching the installed py3Dmol.

``plotly_bundle(folder)`` writes ``plotly.min.js`` atomically and rewrites one whose size or
hash is not the installed plotly's (a copy cut short by a full disk breaks every figure there).

py3Dmol's HTML loads ``3Dmol-min.js`` from a CDN, which offline machines cannot reach.
``python -m protlab.plot.assets`` installs the npm package ``3dmol`` of the same version into
``.cache/3dmol`` (npm registry), so exported views can inline the script.
``find_3dmol_js()`` returns its path, or None with the reason logged.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

from protlab.core.atomic import atomic_path

log = logging.getLogger(__name__)
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "3dmol"


@functools.lru_cache(maxsize=1)
def _plotly_js() -> tuple[bytes, str]:
    from plotly.offline import get_plotlyjs

    data = get_plotlyjs().encode("utf-8")  # as plotly writes it
    return data, hashlib.sha256(data).hexdigest()


_checked: dict[Path, tuple[int, int]] = {}  # bundle -> (size, mtime_ns) found whole in this process


def plotly_bundle(folder: str | Path) -> Path:
    """``folder/plotly.min.js`` as the installed plotly ships it: written atomically when
    missing, rewritten when its size or SHA-256 differs; returns its path."""
    path = Path(folder) / "plotly.min.js"
    data, digest = _plotly_js()
    try:
        stat = path.stat()
        found = (stat.st_size, stat.st_mtime_ns)
        if _checked.get(path) == found or (
                stat.st_size == len(data) and hashlib.sha256(path.read_bytes()).hexdigest() == digest):
            _checked[path] = found
            return path
        log.warning("rewriting %s: not the bundle of the installed plotly (cut short or another version)", path)
    except FileNotFoundError:
        pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    stat = path.stat()
    _checked[path] = (stat.st_size, stat.st_mtime_ns)
    return path


def py3dmol_version() -> str:

    return version("py3Dmol")


def find_3dmol_js() -> Path | None:
    for candidate in (CACHE / "node_modules" / "3dmol" / "build" / "3Dmol-min.js",):
        if candidate.is_file():
            return candidate
    return None


def install_3dmol_js() -> Path | None:
    found = find_3dmol_js()
    if found:
        return found
    npm = shutil.which("npm")
    if not npm:
        log.warning("npm not found: exported 3D views will load 3Dmol.js from its CDN (needs internet)")
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    spec = f"3dmol@{py3dmol_version()}"
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), spec],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        log.warning("npm install %s failed: %s", spec, proc.stderr.strip()[-400:])
        return None
    return find_3dmol_js()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    path = install_3dmol_js()
    print(f"3Dmol.js: {path}" if path else "3Dmol.js: not installed (views fall back to the CDN)")
