"""The explorer: one offline HTML page per run to browse its proteins, clusters and residue attribution.

:func:`write_explorer` reads a run directory (proteins, embeddings, the chosen clustering and,
when 04 wrote it, the residue attribution) and writes ``figures/explorer.html`` atomically;
:func:`explorer_html` makes the page from tables. The page holds:

* the 2D map of the proteins (:func:`~protlab.plot.embed.project_2d` on a seeded subsample of
  at most ``max_map_points``), a WebGL scatter coloured by cluster, label, confidence or length;
* a table filled by lasso / box selection on the map (or a click on a cluster of the summary),
  searchable over every protein (also those not on the map) by id or label, exported as CSV
  or FASTA by links the page makes from its own data;
* for the protein clicked (on the map or in a table), its attribution along the sequence and,
  when a structure file was given for it, its residues coloured by attribution in 3D;
* a per-cluster summary: size, mean confidence, median length and, with labels, purity (the
  share of the labelled members carrying the cluster's most common label) and that label.

Everything the page shows travels inside it (plotly.js, and 3Dmol.js when structures are
drawn), so it opens offline from a file. The data is one zlib-compressed, base64-encoded
binary block (a JSON header, then typed arrays: sequences as bytes, attribution as int8 with
one scale per protein); base64 holds no character HTML or JS could misread, whatever the
protein ids contain, and the ids reach the page's DOM as text only. The page decodes the
block with the browser's ``DecompressionStream`` (Chrome/Edge 80+, Firefox 113+, Safari 16.4+);
:mod:`protlab.plot.explorer_data` makes the block from the tables and reads it back.

The page also answers to its URL fragment (``#select=<JSON list of ids>``, ``#show=<id>``,
``#search=<text>``, ``#colour=<mode>``) and to ``window.protlabExplorer`` (``select``, ``show``,
``search``, ``colour``, ``tableIds``, ``csv``, ``fasta``), for links into a run and for tests.
"""
from __future__ import annotations

import html as html_lib
import logging
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from protlab.core.atomic import atomic_write_text
from protlab.core.errors import InputError, ProtlabError
from protlab.core.extras import require
from protlab.core.rundir import RunDir
from protlab.plot.assets import _plotly_js, find_3dmol_js
from protlab.plot.embed import project_2d
from protlab.plot.explorer_data import DATA_ID, cluster_summary, page_data, read_explorer
from protlab.plot.view3d import page_iframe

log = logging.getLogger(__name__)
STEM = "explorer"  # figures/explorer.html, 04's page
LABELLED_STEM = "explorer_labelled"  # figures/explorer_labelled.html, 05's copy with the labels it scored
MAX_MAP_POINTS = 20_000  # WebGL draws more without trouble; UMAP time and page size grow with them
# each protein's id and sequence travel in the page: beyond this many it holds a sample
MAX_PAGE_PROTEINS = 100_000
PAGE_PARTS = Path(__file__).with_name("explorer_page")  # the page's style, markup and script


# ------------------------------------------------------------------------------ paths
def page_part(name: str) -> str:
    """A file of the page (``explorer.css``, ``body.html``, ``app.js``) as text."""
    return (PAGE_PARTS / name).read_text(encoding="utf-8")


def explorer_path(run_dir: str | Path, stem: str = STEM) -> Path:
    """Where the run's explorer page (``stem=LABELLED_STEM``: 05's labelled copy) lives (nothing is created)."""
    return RunDir(run_dir).path("figures") / f"{stem}.html"


# ------------------------------------------------------------------------------ the page
def explorer_html(proteins: pd.DataFrame, *, clusters: pd.DataFrame | None = None,
                  attribution: pd.DataFrame | None = None, coordinates: pd.DataFrame | None = None,
                  labels: Mapping | pd.Series | None = None, structures: Mapping | None = None,
                  title: str = "protlab explorer", map_method: str = "map", notes: list[str] | None = None,
                  extra: dict | None = None, _structure_entries: list[dict] | None = None,
                  _summary: list[list] | None = None) -> str:
    """The explorer page (see the module docstring) as one self-contained HTML string.

    ``proteins``: id, sequence (and label); ``clusters``: id, cluster, confidence (method);
    ``attribution``: id, position (1-based), residue, attribution (long form); ``coordinates``:
    id, x, y of the proteins on the map (None: no map); ``labels``: id -> label, else the
    ``label`` column; ``structures``: id -> PDB/mmCIF path of the proteins to draw in 3D
    (each mapped to its sequence by :func:`~protlab.variants.structure.map_structure`);
    ``map_method`` names the map's axes; ``notes`` are listed under the title; ``extra``
    goes into the data header as it is (e.g. what made the map, for a later rewrite)."""
    block, entries = page_data(proteins, clusters=clusters, attribution=attribution, coordinates=coordinates,
                               labels=labels, structures=structures, title=title, map_method=map_method,
                               notes=notes, extra=extra, structure_entries=_structure_entries, summary=_summary)
    plotly = _plotly_js()[0].decode("utf-8").replace("</script", "<\\/script")
    mol = ""
    if entries:
        mol = find_3dmol_js().read_text(encoding="utf-8").replace("</script", "<\\/script")
    escaped = html_lib.escape(str(title))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escaped}</title>\n<style>{page_part('explorer.css')}</style></head>\n<body>\n"
            f"{page_part('body.html').replace('@TITLE@', escaped)}\n"
            f'<script type="application/octet-stream" id="{DATA_ID}">{block}</script>\n'
            f"<script>{plotly}</script>\n" + (f"<script>{mol}</script>\n" if mol else "")
            + f"<script>{page_part('app.js')}</script>\n</body></html>\n")


def map_coordinates(ids, embeddings, *, max_points: int = MAX_MAP_POINTS, seed: int = 0
                    ) -> tuple[pd.DataFrame, str]:
    """``(frame of id, x, y; method)``: :func:`~protlab.plot.embed.project_2d` of a seeded random
    subset of at most ``max_points`` proteins (0: none)."""
    ids = [str(i) for i in ids]
    x = np.asarray(embeddings)
    if max_points <= 0 or not len(ids):
        return pd.DataFrame({"id": [], "x": [], "y": []}), "none"
    rows = _subset(len(ids), max_points, seed)
    coords, method = project_2d(x[rows], seed=seed)
    return pd.DataFrame({"id": [ids[i] for i in rows], "x": coords[:, 0], "y": coords[:, 1]}), method


def _subset(n: int, max_points: int, seed: int) -> np.ndarray:
    if max_points <= 0:
        return np.zeros(0, np.int64)
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


# ------------------------------------------------------------------------------ run directory
def write_explorer(run_dir: str | Path, *, labels: Mapping | pd.Series | None = None,
                   structures: Mapping | None = None, max_map_points: int = MAX_MAP_POINTS, seed: int = 0,
                   coordinates: pd.DataFrame | None = None, stem: str = STEM,
                   max_page_proteins: int = MAX_PAGE_PROTEINS, _structure_entries: list[dict] | None = None) -> Path:
    """Write the explorer page of ``run_dir`` to ``figures/<stem>.html`` (default
    ``figures/explorer.html``; atomically) and return its path.

    Reads ``proteins.parquet``, the embeddings, ``clusters.parquet`` and, when there,
    ``clusters/attribution.parquet``. ``labels``: id -> label (default: the ``label`` column of
    the proteins); ``structures``: id -> PDB/mmCIF path of proteins to draw in 3D;
    ``max_map_points``: the map shows a seeded subsample of at most this many proteins (every
    protein the page holds stays in the table and its search); ``max_page_proteins``: above this many proteins
    the page holds a seeded sample of them, the map's among them, and its cluster summary still
    counts every protein; ``coordinates``: a frame of id, x, y to map
    instead of projecting the embeddings (``coordinates.attrs``: ``method`` names the axes,
    ``embeddings_sha256`` the embeddings they were made from)."""
    run = RunDir(run_dir)
    proteins = run.load_proteins_checked()
    clusters = run.read_parquet(run.require("clusters"), "clusters")
    for column in ("id", "cluster"):
        if column not in clusters.columns:
            raise InputError(f"{run.path('clusters')} lacks column {column!r}; {run.rerun('clusters')}")
    attribution_path = run.path("attribution")
    attribution = run.read_parquet(attribution_path, "attribution") if attribution_path.is_file() else None
    notes, fingerprint = [], None
    if coordinates is not None:
        method = coordinates.attrs.get("method", "given")
        fingerprint = coordinates.attrs.get("embeddings_sha256")
        coordinates = coordinates.iloc[_subset(len(coordinates), max_map_points, seed)]
    elif run.path("embeddings").is_file():
        emb_ids, embeddings, meta = run.load_embeddings()
        fingerprint = meta.get("array_sha256")
        coordinates, method = map_coordinates(emb_ids, embeddings, max_points=max_map_points, seed=seed)
    else:
        coordinates, method = None, "none"
        notes.append("no embeddings in the run directory: no map")
    summary, total = None, len(proteins)
    if total > max_page_proteins:
        summary = cluster_summary(proteins, clusters, labels)
        rows = _page_rows(proteins["id"].astype(str), max_page_proteins, seed, coordinates, attribution, structures,
                          _structure_entries)
        proteins = proteins.iloc[rows].reset_index(drop=True)
        if _structure_entries is not None:
            position = dict(zip(rows.tolist(), range(len(rows))))
            _structure_entries = [{**entry, "protein": position[entry["protein"]]} for entry in _structure_entries]
        notes.append(f"the page holds a seeded random sample of {len(proteins)} of {total} proteins "
                     "(max_page_proteins), the map's among them; the cluster summary counts them all, and the "
                     "run's tables hold every protein")
    elif coordinates is not None and 0 < len(coordinates) < len(proteins):
        notes.append(f"the map shows a seeded random subsample of {len(coordinates)} of {len(proteins)} proteins "
                     "(max_map_points); the table and its search hold them all")
    page = explorer_html(proteins, clusters=clusters, attribution=attribution, coordinates=coordinates,
                         labels=labels, structures=structures, title=f"protlab explorer: {run.root.name}",
                         map_method=method.upper(), notes=notes, _structure_entries=_structure_entries,
                         _summary=summary, extra={"embeddings_sha256": fingerprint, "seed": int(seed),
                                                  "max_map_points": int(max_map_points),
                                                  "max_page_proteins": int(max_page_proteins)})
    path = run.figure(stem).with_suffix(".html")
    return atomic_write_text(path, page)


def _page_rows(ids: pd.Series, limit: int, seed: int, coordinates: pd.DataFrame | None,
               attribution: pd.DataFrame | None, structures: Mapping | None,
               structure_entries: list[dict] | None) -> np.ndarray:
    """Sorted rows of the proteins a page holds: those on the map, with an attribution or a
    structure, and a seeded sample of the others up to ``limit`` in all."""
    wanted = pd.Index([])
    for frame in (coordinates, attribution):
        if frame is not None and len(frame):
            wanted = wanted.union(pd.Index(frame["id"].astype(str).unique()))
    if structures:
        wanted = wanted.union(pd.Index([str(i) for i in structures]))
    index = pd.Index(ids.to_numpy())
    chosen = index.get_indexer(wanted)
    chosen = np.union1d(chosen[chosen >= 0], [e["protein"] for e in structure_entries or []]).astype(np.int64)
    others = np.setdiff1d(np.arange(len(ids)), chosen)
    extra = max(0, min(len(others), limit - len(chosen)))
    return np.sort(np.concatenate([chosen, np.random.default_rng(seed).choice(others, size=extra, replace=False)]))


def labelled_explorer(run_dir: str | Path, *, labels: Mapping | pd.Series | None = None) -> Path | None:
    """04's explorer page of ``run_dir`` again with ``labels`` (05's labels), as
    ``figures/explorer_labelled.html``, keeping its map (when made from the same embeddings) and
    its structures; 04's page is left as it is. None when the run has no page, or when writing
    the copy fails (logged: the page is a view, not a result)."""
    path = explorer_path(run_dir)
    if not path.is_file():
        return None
    try:
        old = read_explorer(path)
        run = RunDir(run_dir)
        coordinates = None
        if old.get("embeddings_sha256") and run.path("embeddings_meta").is_file() and \
                run.load_json("embeddings_meta").get("array_sha256") == old["embeddings_sha256"]:
            rows, xy = old["arrays"]["map_protein"], old["arrays"]["map_xy"].reshape(-1, 2)
            coordinates = pd.DataFrame({"id": [old["ids"][i] for i in rows], "x": xy[:, 0], "y": xy[:, 1]})
            coordinates.attrs.update(method=old.get("map_method", "map"), embeddings_sha256=old["embeddings_sha256"])
        entries = [{**entry, "protein": old["ids"][entry["protein"]]} for entry in old.get("structures", [])]
        ids = pd.Index(run.load_proteins()["id"].astype(str))
        kept = [{**entry, "protein": int(ids.get_indexer([entry["protein"]])[0])} for entry in entries
                if entry["protein"] in ids]
        return write_explorer(run_dir, labels=labels, max_map_points=int(old.get("max_map_points", MAX_MAP_POINTS)),
                              seed=int(old.get("seed", 0)), coordinates=coordinates, stem=LABELLED_STEM,
                              max_page_proteins=int(old.get("max_page_proteins", MAX_PAGE_PROTEINS)),
                              _structure_entries=kept)
    except (ProtlabError, OSError, ValueError, KeyError, zlib.error) as exc:
        log.warning("explorer page %s not copied with labels: %s", path, exc)
        return None


def show_explorer(run_dir: str | Path, *, width: int = 1280, height: int = 1400, max_mb: float = 60.0,
                  stem: str = STEM):
    """The run's explorer page (``stem=LABELLED_STEM``: 05's labelled copy) for a notebook: the
    page in an iframe (below ``max_mb``), or a line naming the file, or saying how to write it
    when it is not there."""
    HTML = require("IPython.display", "notebooks", "show_explorer()").HTML

    path = explorer_path(run_dir, stem)
    where = html_lib.escape(str(path))
    if not path.is_file():
        return HTML(f"<p>No explorer page at <code>{where}</code>: "
                    "<code>protlab.plot.explorer.write_explorer(run_dir)</code> writes it.</p>")
    size = path.stat().st_size / 1e6
    line = f"<p>Explorer page: <code>{where}</code> ({size:.1f} MB; open it in a browser for a full window)</p>"
    if size > max_mb:
        return HTML(line)
    return HTML(line + page_iframe(path.read_text(encoding="utf-8"), width, height))
