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
block with the browser's ``DecompressionStream`` (Chrome/Edge 80+, Firefox 113+, Safari 16.4+).

The page also answers to its URL fragment (``#select=<JSON list of ids>``, ``#show=<id>``,
``#search=<text>``, ``#colour=<mode>``) and to ``window.protlabExplorer`` (``select``, ``show``,
``search``, ``colour``, ``tableIds``, ``csv``, ``fasta``), for links into a run and for tests.
"""
from __future__ import annotations

import base64
import html as html_lib
import json
import logging
import re
import struct
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
from protlab.plot.structure_atoms import structure_pdb
from protlab.plot.view3d import page_iframe
from protlab.variants.structure import map_structure

log = logging.getLogger(__name__)
STEM = "explorer"  # figures/explorer.html, 04's page
LABELLED_STEM = "explorer_labelled"  # figures/explorer_labelled.html, 05's copy with the labels it scored
MAX_MAP_POINTS = 20_000  # WebGL draws more without trouble; UMAP time and page size grow with them
MISSING_CLUSTER = -(2 ** 31)
MISSING_CONFIDENCE = 65535  # confidence is stored as uint16 steps of 1/65534
MISSING_ATTRIBUTION = -128  # attribution is stored as int8 in -127..127 times the protein's scale
DATA_ID = "protlab-explorer-data"
PAGE_PARTS = Path(__file__).with_name("explorer_page")  # the page's style, markup and script
_DTYPES = {"|u1": "u1", "|i1": "i1", "<u2": "u2", "<i4": "i4", "<u4": "u4", "<f4": "f4"}
_NUMPY = {v: np.dtype(k) for k, v in _DTYPES.items()}


# ------------------------------------------------------------------------------ paths
def page_part(name: str) -> str:
    """A file of the page (``explorer.css``, ``body.html``, ``app.js``) as text."""
    return (PAGE_PARTS / name).read_text(encoding="utf-8")


def explorer_path(run_dir: str | Path, stem: str = STEM) -> Path:
    """Where the run's explorer page (``stem=LABELLED_STEM``: 05's labelled copy) lives (nothing is created)."""
    return RunDir(run_dir).path("figures") / f"{stem}.html"


# ------------------------------------------------------------------------------ the data block
def _pack(header: dict, sections: dict[str, np.ndarray]) -> str:
    """``header`` (JSON) and the arrays as one zlib-compressed, base64-encoded block: a uint32
    header length, the header, then each array at an offset that is a multiple of 8 from the
    data start (typed arrays need aligned offsets)."""
    blobs, where, pos = [], {}, 0
    for name, array in sections.items():
        array = np.ascontiguousarray(array)
        array = array.astype(array.dtype.newbyteorder("<")) if array.dtype.byteorder == ">" else array
        kind = _DTYPES.get(array.dtype.str)
        if kind is None:
            raise TypeError(f"section {name!r}: dtype {array.dtype} has no typed array in the page")
        pad = (-pos) % 8
        blobs.append(b"\0" * pad)
        pos += pad
        where[name] = [pos, int(array.size), kind]
        data = array.tobytes()
        blobs.append(data)
        pos += len(data)
    head = json.dumps({**header, "sections": where}, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")
    raw = struct.pack("<I", len(head)) + head + b"\0" * ((-(4 + len(head))) % 8) + b"".join(blobs)
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def _unpack(block: str) -> dict:
    raw = zlib.decompress(base64.b64decode(block))
    (size,) = struct.unpack_from("<I", raw)
    header = json.loads(raw[4:4 + size].decode("utf-8"))
    start = 4 + size + (-(4 + size)) % 8
    arrays = {name: np.frombuffer(raw, dtype=_NUMPY[kind], count=count, offset=start + offset)
              for name, (offset, count, kind) in header["sections"].items()}
    return {**header, "arrays": arrays}


def read_explorer(page: str | Path) -> dict:
    """The data of an explorer page (a path or the page's text): its JSON header (``ids``,
    ``labels``, ``summary``, ...) and ``arrays`` (the typed arrays by name)."""
    text = Path(page).read_text(encoding="utf-8") if isinstance(page, Path) else page
    found = re.search(rf'<script type="application/octet-stream" id="{DATA_ID}">([A-Za-z0-9+/=\s]*)</script>', text)
    if found is None:
        raise InputError(f"{page if isinstance(page, Path) else 'the page'} holds no explorer data block")
    return _unpack(found.group(1))


# ------------------------------------------------------------------------------ tables to arrays
def _labels(ids: pd.Index, proteins: pd.DataFrame, labels) -> tuple[list[str], np.ndarray]:
    """``(names, index)``: label names by count (most common first) and each protein's index
    into them (-1: unknown). ``labels`` (id -> label) wins over the ``label`` column."""
    if labels is not None:
        series = (labels if isinstance(labels, pd.Series) else pd.Series(dict(labels), dtype=object))
        series = series.set_axis(series.index.astype(str)).reindex(ids)
    elif "label" in proteins.columns:
        series = pd.Series(proteins["label"].to_numpy(), index=ids)
    else:
        return [], np.full(len(ids), -1, np.int32)
    text = series.astype(str)
    known = series.notna().to_numpy() & (text.str.len() > 0).to_numpy() & (text != "None").to_numpy()
    if not known.any():
        return [], np.full(len(ids), -1, np.int32)
    counts = text[known].value_counts()
    names = sorted(counts.index, key=lambda name: (-counts[name], name))
    codes = pd.Index(names).get_indexer(text)
    return names, np.where(known, codes, -1).astype(np.int32)


def _cluster_arrays(ids: pd.Index, clusters: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(ids)
    if clusters is None or not len(clusters):
        return np.full(n, MISSING_CLUSTER, np.int32), np.full(n, MISSING_CONFIDENCE, np.uint16)
    frame = clusters.assign(id=clusters["id"].astype(str)).drop_duplicates("id", keep="last").set_index("id")
    cluster = pd.to_numeric(frame["cluster"], errors="coerce").reindex(ids).to_numpy(float)
    confidence = (pd.to_numeric(frame["confidence"], errors="coerce").reindex(ids).to_numpy(float)
                  if "confidence" in frame.columns else np.full(n, np.nan))
    lacking = int(np.isnan(cluster).sum())
    if lacking:
        log.info("explorer: %d of %d proteins are in no cluster of the clustering", lacking, n)
    cluster = np.where(np.isnan(cluster), MISSING_CLUSTER, cluster).astype(np.int32)
    steps = np.round(np.clip(confidence, 0.0, 1.0) * (MISSING_CONFIDENCE - 1))
    return cluster, np.where(np.isnan(confidence), MISSING_CONFIDENCE, steps).astype(np.uint16)


def _attribution_arrays(ids: pd.Index, seq_bytes: np.ndarray, seq_length: np.ndarray,
                        attribution: pd.DataFrame | None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Per attributed protein: its index, length (highest position), scale (max |value| / 127)
    and the values as int8 in one array; residue letters that differ from the protein's
    sequence (attribution of another sequence version) by attributed row."""
    empty = {"attr_protein": np.zeros(0, np.uint32), "attr_length": np.zeros(0, np.uint32),
             "attr_scale": np.zeros(0, np.float32), "attr_values": np.zeros(0, np.int8)}
    if attribution is None or not len(attribution):
        return empty, {}
    missing = [c for c in ("id", "position", "attribution") if c not in attribution.columns]
    if missing:
        raise InputError(f"the attribution table lacks columns {missing} (it has {list(attribution.columns)})")
    protein = ids.get_indexer(attribution["id"].astype(str))
    position = pd.to_numeric(attribution["position"], errors="coerce").to_numpy(float)
    keep = (protein >= 0) & np.isfinite(position) & (position >= 1)
    if (protein < 0).any():
        log.warning("explorer: attribution of %d ids that are not proteins of the run left out",
                    len(set(attribution["id"].astype(str)[protein < 0])))
    if not keep.any():
        return empty, {}
    protein, position = protein[keep], position[keep].astype(np.int64)
    seq_start = np.concatenate([[0], np.cumsum(seq_length.astype(np.int64))[:-1]])
    value = pd.to_numeric(attribution["attribution"], errors="coerce").to_numpy(float)[keep]
    residue = attribution["residue"].astype(str).to_numpy()[keep] if "residue" in attribution.columns else None
    order = np.lexsort((position, protein))
    protein, position, value = protein[order], position[order], value[order]
    attributed, starts, counts = np.unique(protein, return_index=True, return_counts=True)
    length = np.maximum.reduceat(position, starts)
    largest = np.maximum.reduceat(np.abs(np.nan_to_num(value)), starts)
    scale = np.where(largest > 0, largest / 127.0, 1.0)
    row = np.repeat(np.arange(len(attributed)), counts)
    offsets = np.concatenate([[0], np.cumsum(length)[:-1]])
    values = np.full(int(length.sum()), MISSING_ATTRIBUTION, np.int8)
    steps = np.round(value / scale[row])
    values[offsets[row] + position - 1] = np.where(np.isfinite(steps), np.clip(steps, -127, 127),
                                                   MISSING_ATTRIBUTION).astype(np.int8)
    residues = {}
    if residue is not None:  # letters are stored only for proteins where they differ from the sequence
        residue = residue[order]
        letter = residue.astype("U1").view(np.uint32)
        inside = position <= seq_length[protein]
        at = np.where(inside, seq_start[protein] + position - 1, 0)
        differ = ~inside | (seq_bytes[at].astype(np.uint32) != letter)
        for k in np.unique(row[differ]):
            span = slice(starts[k], starts[k] + counts[k])
            text = np.full(int(length[k]), "-", dtype=object)
            text[position[span] - 1] = [str(x)[:1] or "-" for x in residue[span]]
            residues[str(int(k))] = "".join(text)
    return {"attr_protein": attributed.astype(np.uint32), "attr_length": length.astype(np.uint32),
            "attr_scale": scale.astype(np.float32), "attr_values": values}, residues


def _summary(cluster: np.ndarray, confidence: np.ndarray, length: np.ndarray, label: np.ndarray,
             names: list[str]) -> list[list]:
    """Per cluster, largest first: cluster, size, mean confidence, median length, purity and
    most common label (None without labelled members), labelled members."""
    member = cluster != MISSING_CLUSTER
    if not member.any():
        return []
    conf = np.where(confidence == MISSING_CONFIDENCE, np.nan, confidence / (MISSING_CONFIDENCE - 1))
    frame = pd.DataFrame({"cluster": cluster, "confidence": conf, "length": length, "label": label})[member]
    groups = frame.groupby("cluster")
    table = pd.DataFrame({"size": groups.size(), "confidence": groups["confidence"].mean(),
                          "length": groups["length"].median()})
    labelled = frame[frame["label"] >= 0]
    table["labelled"] = labelled.groupby("cluster").size().reindex(table.index).fillna(0).astype(int)
    if len(labelled):
        counts = labelled.groupby(["cluster", "label"]).size().rename("n").reset_index()
        top = counts.sort_values(["cluster", "n", "label"], ascending=[True, False, True]).drop_duplicates("cluster")
        top = top.set_index("cluster").reindex(table.index)
        table["purity"] = top["n"] / table["labelled"].where(table["labelled"] > 0)
        table["top"] = top["label"]
    else:
        table["purity"], table["top"] = np.nan, np.nan
    table = table.reset_index().sort_values(["size", "cluster"], ascending=[False, True])

    def number(x, digits):
        return None if pd.isna(x) else round(float(x), digits)

    return [[int(r.cluster), int(r.size), number(r.confidence, 4), number(r.length, 1), number(r.purity, 4),
             None if pd.isna(r.top) else names[int(r.top)], int(r.labelled)] for r in table.itertuples()]


def _structures(ids: pd.Index, sequences: list[str], structures: Mapping | None) -> tuple[list[dict], dict]:
    """Each given structure as PDB text with each atom's sequence position (0: none), mapped by
    a local alignment of its chains to the protein's sequence; ``notes``: why one is not drawn."""
    entries, notes = [], {}
    if not structures:
        return entries, notes
    if find_3dmol_js() is None:
        log.warning("3Dmol.js is not installed (python -m protlab.plot.assets): the explorer draws no structures")
        return entries, {"all": "3Dmol.js was not installed where the page was made (python -m "
                                "protlab.plot.assets), so no structure is drawn"}
    for pid, path in structures.items():
        k = ids.get_indexer([str(pid)])[0]
        if k < 0:
            log.warning("explorer: structure of %r left out: not a protein of the run", pid)
            continue
        try:
            mapped = map_structure(path, sequences[k])
        except (ProtlabError, OSError) as exc:
            log.warning("explorer: structure %s of %r not drawn: %s", path, pid, exc)
            notes[str(k)] = f"structure {Path(path).name} not drawn: {exc}"
            continue
        pdb, atoms = structure_pdb(mapped.structure)
        position_of = np.zeros(len(mapped.structure), np.int64)
        found = mapped.residue_of >= 0
        position_of[mapped.residue_of[found]] = np.flatnonzero(found) + 1
        entries.append({"protein": int(k), "pdb": pdb, "full": bool(atoms["full"]), "name": Path(path).name,
                        "atom_position": position_of[atoms["residue"]].tolist(), "identity": mapped.identity})
    return entries, notes


# ------------------------------------------------------------------------------ the page
def explorer_html(proteins: pd.DataFrame, *, clusters: pd.DataFrame | None = None,
                  attribution: pd.DataFrame | None = None, coordinates: pd.DataFrame | None = None,
                  labels: Mapping | pd.Series | None = None, structures: Mapping | None = None,
                  title: str = "protlab explorer", map_method: str = "map", notes: list[str] | None = None,
                  extra: dict | None = None, _structure_entries: list[dict] | None = None) -> str:
    """The explorer page (see the module docstring) as one self-contained HTML string.

    ``proteins``: id, sequence (and label); ``clusters``: id, cluster, confidence (method);
    ``attribution``: id, position (1-based), residue, attribution (long form); ``coordinates``:
    id, x, y of the proteins on the map (None: no map); ``labels``: id -> label, else the
    ``label`` column; ``structures``: id -> PDB/mmCIF path of the proteins to draw in 3D
    (each mapped to its sequence by :func:`~protlab.variants.structure.map_structure`);
    ``map_method`` names the map's axes; ``notes`` are listed under the title; ``extra``
    goes into the data header as it is (e.g. what made the map, for a later rewrite)."""
    for column in ("id", "sequence"):
        if column not in proteins.columns:
            raise InputError(f"the proteins table lacks column {column!r}")
    ids = pd.Index(proteins["id"].astype(str).to_numpy())
    if ids.has_duplicates:
        raise InputError(f"protein ids repeat (e.g. {ids[ids.duplicated()][:3].tolist()}): ids must be unique")
    sequences = proteins["sequence"].astype(str).tolist()
    # one byte per residue keeps lengths and offsets in step; letters outside ASCII become '?'
    sequence_bytes = np.frombuffer("".join(sequences).encode("ascii", errors="replace"), np.uint8)
    length = np.fromiter(map(len, sequences), dtype=np.uint32, count=len(sequences))
    cluster, confidence = _cluster_arrays(ids, clusters)
    names, label = _labels(ids, proteins, labels)
    attr, residues = _attribution_arrays(ids, sequence_bytes, length, attribution)
    if coordinates is not None and len(coordinates):
        on_map = ids.get_indexer(coordinates["id"].astype(str))
        keep = on_map >= 0
        map_protein = on_map[keep].astype(np.uint32)
        map_xy = np.stack([coordinates["x"].to_numpy(np.float32)[keep],
                           coordinates["y"].to_numpy(np.float32)[keep]], axis=1).reshape(-1)
    else:
        map_protein, map_xy = np.zeros(0, np.uint32), np.zeros(0, np.float32)
    entries, structure_notes = (_structure_entries, {}) if _structure_entries is not None else \
        _structures(ids, sequences, structures)
    method = (str(clusters["method"].iloc[0]) if clusters is not None and "method" in clusters.columns
              and len(clusters) else None)
    header = {
        "title": str(title), "ids": ids.tolist(), "labels": names, "method": method, "map_method": map_method,
        "summary": _summary(cluster, confidence, length, label, names), "attr_residues": residues,
        "structures": entries, "structure_notes": structure_notes, "notes": list(notes or []),
        "labels_given": labels is not None, **(extra or {})}
    sections = {"sequences": sequence_bytes, "length": length, "cluster": cluster, "confidence": confidence,
                "label": label, "map_protein": map_protein, "map_xy": map_xy, **attr}
    block = _pack(header, sections)
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
                   _structure_entries: list[dict] | None = None) -> Path:
    """Write the explorer page of ``run_dir`` to ``figures/<stem>.html`` (default
    ``figures/explorer.html``; atomically) and return its path.

    Reads ``proteins.parquet``, the embeddings, ``clusters.parquet`` and, when there,
    ``clusters/attribution.parquet``. ``labels``: id -> label (default: the ``label`` column of
    the proteins); ``structures``: id -> PDB/mmCIF path of proteins to draw in 3D;
    ``max_map_points``: the map shows a seeded subsample of at most this many proteins (every
    protein stays in the table and its search); ``coordinates``: a frame of id, x, y to map
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
    if coordinates is not None and 0 < len(coordinates) < len(proteins):
        notes.append(f"the map shows a seeded random subsample of {len(coordinates)} of {len(proteins)} proteins "
                     "(max_map_points); the table and its search hold them all")
    page = explorer_html(proteins, clusters=clusters, attribution=attribution, coordinates=coordinates,
                         labels=labels, structures=structures, title=f"protlab explorer: {run.root.name}",
                         map_method=method.upper(), notes=notes, _structure_entries=_structure_entries,
                         extra={"embeddings_sha256": fingerprint, "max_map_points": int(max_map_points),
                                "seed": int(seed)})
    path = run.figure(stem).with_suffix(".html")
    return atomic_write_text(path, page)


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
