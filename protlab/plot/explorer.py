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
from protlab.plot.view3d import page_iframe, structure_pdb
from protlab.variants.structure import map_structure

log = logging.getLogger(__name__)
STEM = "explorer"  # figures/explorer.html
MAX_MAP_POINTS = 20_000  # WebGL draws more without trouble; UMAP time and page size grow with them
MISSING_CLUSTER = -(2 ** 31)
MISSING_CONFIDENCE = 65535  # confidence is stored as uint16 steps of 1/65534
MISSING_ATTRIBUTION = -128  # attribution is stored as int8 in -127..127 times the protein's scale
DATA_ID = "protlab-explorer-data"
_DTYPES = {"|u1": "u1", "|i1": "i1", "<u2": "u2", "<i4": "i4", "<u4": "u4", "<f4": "f4"}
_NUMPY = {v: np.dtype(k) for k, v in _DTYPES.items()}


# ------------------------------------------------------------------------------ paths
def explorer_path(run_dir: str | Path) -> Path:
    """Where the run's explorer page lives (nothing is created)."""
    return RunDir(run_dir).path("figures") / f"{STEM}.html"


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
            f"<title>{escaped}</title>\n<style>{_CSS}</style></head>\n<body>\n"
            f"{_BODY.replace('@TITLE@', escaped)}\n"
            f'<script type="application/octet-stream" id="{DATA_ID}">{block}</script>\n'
            f"<script>{plotly}</script>\n" + (f"<script>{mol}</script>\n" if mol else "")
            + f"<script>{_APP}</script>\n</body></html>\n")


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
                   coordinates: pd.DataFrame | None = None, _structure_entries: list[dict] | None = None) -> Path:
    """Write the explorer page of ``run_dir`` to ``figures/explorer.html`` (atomically) and
    return its path.

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
    path = run.figure(STEM).with_suffix(".html")
    return atomic_write_text(path, page)


def refresh_explorer(run_dir: str | Path, *, labels: Mapping | pd.Series | None = None) -> Path | None:
    """Rewrite an existing explorer page of ``run_dir`` with ``labels`` (05's labels), keeping
    its map (when made from the same embeddings) and its structures; None when the run has no
    page, or when rewriting it fails (logged: the page is a view, not a result)."""
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
                              seed=int(old.get("seed", 0)), coordinates=coordinates, _structure_entries=kept)
    except (ProtlabError, OSError, ValueError, KeyError, zlib.error) as exc:
        log.warning("explorer page %s not rewritten: %s", path, exc)
        return None


def show_explorer(run_dir: str | Path, *, width: int = 1280, height: int = 1400, max_mb: float = 60.0):
    """The run's explorer page for a notebook: the page in an iframe (below ``max_mb``), or a
    line naming the file, or saying how to write it when it is not there."""
    HTML = require("IPython.display", "notebooks", "show_explorer()").HTML

    path = explorer_path(run_dir)
    where = html_lib.escape(str(path))
    if not path.is_file():
        return HTML(f"<p>No explorer page at <code>{where}</code>: "
                    "<code>protlab.plot.explorer.write_explorer(run_dir)</code> writes it.</p>")
    size = path.stat().st_size / 1e6
    line = f"<p>Explorer page: <code>{where}</code> ({size:.1f} MB; open it in a browser for a full window)</p>"
    if size > max_mb:
        return HTML(line)
    return HTML(line + page_iframe(path.read_text(encoding="utf-8"), width, height))


# ------------------------------------------------------------------------------ page parts
_CSS = """
body{margin:0;font-family:system-ui,sans-serif;font-size:13px;color:#222}
header{padding:8px 12px;border-bottom:1px solid #ddd}
h1{font-size:17px;margin:0 0 4px 0}
#status{color:#555}#status.error{color:#a50f15;font-weight:bold}
#notes{margin:2px 0 0 0;padding-left:18px;color:#666}
.row{display:flex;flex-wrap:wrap;gap:12px;padding:8px 12px}
#map-box{flex:3 1 560px;min-width:0}#protein-box{flex:2 1 420px;min-width:0}
#map{height:520px}#strip{height:220px}
#structure{height:320px;width:100%;position:relative;display:none;border:1px solid #eee}
#legend{font-size:12px;line-height:1.7;max-height:74px;overflow:auto}
.swatch{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;vertical-align:middle}
h2{font-size:14px;margin:4px 0}
.note{color:#666;margin:4px 0}
.table-box{max-height:420px;overflow:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{padding:2px 8px;text-align:left;border-bottom:1px solid #f0f0f0;white-space:nowrap}
th{position:sticky;top:0;background:#fafafa;cursor:pointer;user-select:none}
tbody tr{cursor:pointer}tbody tr:hover{background:#f3f7ff}tr.current{background:#ffefc2}
td.num,th.num{text-align:right}
.controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:4px 0}
button{font-size:12px}
"""

_BODY = """<header><h1 id="title">@TITLE@</h1><div id="status">reading the page's data…</div>
<ul id="notes"></ul></header>
<div class="row">
 <div id="map-box">
  <div class="controls"><label>colour by <select id="colour"></select></label>
   <span class="note">lasso or box on the map selects proteins; a click shows one</span></div>
  <div id="map"></div><div id="legend"></div>
 </div>
 <div id="protein-box">
  <h2 id="protein-title">no protein shown</h2><div id="protein-facts" class="note">click a protein on the map or
   in a table</div>
  <div id="strip-note" class="note"></div><div id="strip"></div>
  <div id="structure-note" class="note"></div><div id="structure"></div>
 </div>
</div>
<div class="row"><div style="flex:1 1 600px;min-width:0">
 <h2>Proteins</h2>
 <div class="controls"><input id="search" type="search" placeholder="search ids and labels" size="30">
  <label>in <select id="scope"><option value="all">all proteins</option><option value="selection">the selection
  </option></select></label>
  <button id="export-csv" type="button">export CSV</button><button id="export-fasta" type="button">export
   FASTA</button><button id="clear" type="button">clear selection</button>
  <span id="table-status" class="note"></span></div>
 <div class="table-box"><table id="proteins"><thead></thead><tbody></tbody></table></div>
</div>
<div style="flex:1 1 420px;min-width:0">
 <h2>Clusters</h2><div id="summary-status" class="note"></div>
 <div class="table-box"><table id="clusters"><thead></thead><tbody></tbody></table></div>
</div></div>"""

_APP = r"""
(function () {
"use strict";
var root = document.documentElement;
var api = window.protlabExplorer = {};
var TYPES = {u1: Uint8Array, i1: Int8Array, u2: Uint16Array, i4: Int32Array, u4: Uint32Array, f4: Float32Array};
var MISSING_CLUSTER = -2147483648, MISSING_CONFIDENCE = 65535, MISSING_ATTRIBUTION = -128, TABLE_ROWS = 1000;
var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
  "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#fdae6b"];
var NONE_COLOUR = "#d0d0d0";
var D = null, viewer = null;
var state = {selection: [], query: "", scope: "all", sort: null, sortDir: 1, current: -1, colour: "cluster",
  summarySort: null, summaryDir: 1};

function $(id) { return document.getElementById(id); }
function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function status(text, error) { var s = $("status"); s.textContent = text; s.className = error ? "error" : ""; }
// plotly draws hover text as markup: ids and labels go in as text
function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

async function decode() {
  if (typeof DecompressionStream === "undefined")
    throw new Error("this browser cannot read the page's data (no DecompressionStream): open it in a current " +
                    "Chrome, Edge, Firefox or Safari");
  var text = $("protlab-explorer-data").textContent.replace(/\s+/g, "");
  var bin = atob(text), bytes = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  var buf = await new Response(stream).arrayBuffer();
  var size = new DataView(buf).getUint32(0, true);
  var h = JSON.parse(new TextDecoder("utf-8").decode(new Uint8Array(buf, 4, size)));
  var start = Math.ceil((4 + size) / 8) * 8, a = {};
  Object.keys(h.sections).forEach(function (name) {
    var s = h.sections[name];
    a[name] = new TYPES[s[2]](buf, start + s[0], s[1]);
  });
  return prepare(h, a);
}

function prepare(h, a) {
  var n = h.ids.length, i, k;
  var d = {h: h, a: a, n: n, index: new Map(), seqStart: new Float64Array(n + 1), attrOf: new Int32Array(n).fill(-1),
    attrStart: new Float64Array(a.attr_protein.length + 1), onMap: new Int32Array(n).fill(-1), structureOf: new Map(),
    idsLower: new Array(n), labelsLower: h.labels.map(function (s) { return s.toLowerCase(); }),
    clusterRank: new Map(), members: null, ascii: new TextDecoder("latin1")};
  for (i = 0; i < n; i++) {
    d.index.set(h.ids[i], i);
    d.idsLower[i] = h.ids[i].toLowerCase();
    d.seqStart[i + 1] = d.seqStart[i] + a.length[i];
  }
  for (k = 0; k < a.attr_protein.length; k++) {
    d.attrOf[a.attr_protein[k]] = k;
    d.attrStart[k + 1] = d.attrStart[k] + a.attr_length[k];
  }
  for (k = 0; k < a.map_protein.length; k++) d.onMap[a.map_protein[k]] = k;
  h.structures.forEach(function (s) { d.structureOf.set(s.protein, s); });
  h.summary.forEach(function (row, r) { d.clusterRank.set(row[0], r); });
  return d;
}

function sequence(i) { return D.ascii.decode(D.a.sequences.subarray(D.seqStart[i], D.seqStart[i + 1])); }
function clusterOf(i) { var c = D.a.cluster[i]; return c === MISSING_CLUSTER ? null : c; }
function labelOf(i) { var l = D.a.label[i]; return l < 0 ? "" : D.h.labels[l]; }
function confidenceOf(i) {
  var c = D.a.confidence[i];
  return c === MISSING_CONFIDENCE ? NaN : c / (MISSING_CONFIDENCE - 1);
}
function lengthOf(i) { return D.a.length[i]; }
function fmt(x, digits) { return isNaN(x) ? "" : x.toFixed(digits); }

// ---------------------------------------------------------------- map
var COLOURS = {cluster: "cluster", label: "label", confidence: "confidence", length: "length"};
function mapValues(mode) {
  var m = D.a.map_protein.length, out = new Array(m), j, i;
  for (j = 0; j < m; j++) {
    i = D.a.map_protein[j];
    if (mode === "cluster") {
      var c = clusterOf(i);
      out[j] = c === null ? NONE_COLOUR : PALETTE[D.clusterRank.get(c) % PALETTE.length];
    }
    else if (mode === "label") { var l = D.a.label[i]; out[j] = l < 0 ? NONE_COLOUR : PALETTE[l % PALETTE.length]; }
    else if (mode === "confidence") out[j] = confidenceOf(i);
    else out[j] = lengthOf(i);
  }
  return out;
}

function legend(mode) {
  var box = $("legend");
  box.textContent = "";
  var entries = [], more = 0;
  if (mode === "cluster") {
    D.h.summary.forEach(function (row, r) {
      if (r < 40) entries.push(["cluster " + row[0] + " (" + row[1] + ")", PALETTE[r % PALETTE.length]]); else more++;
    });
  } else if (mode === "label") {
    D.h.labels.forEach(function (name, r) {
      if (r < 40) entries.push([name, PALETTE[r % PALETTE.length]]); else more++;
    });
  } else {
    box.appendChild(el("span", mode === "confidence" ? "confidence of the cluster assignment (0..1)" :
                                                       "sequence length (residues)", "note"));
    return;
  }
  entries.forEach(function (e) {
    var s = el("span", null, "swatch"); s.style.background = e[1];
    box.appendChild(s); box.appendChild(el("span", e[0]));
  });
  if (more || entries.length > PALETTE.length) box.appendChild(el("span", " … " + (more ? more + " more; " : "") +
    "colours repeat every " + PALETTE.length + " (hover a point for its " + mode + ")", "note"));
}

function colour(mode) {
  if (!COLOURS[mode]) return;
  state.colour = mode;
  $("colour").value = mode;
  legend(mode);
  if (!D.a.map_protein.length) return;
  var numeric = mode === "confidence" || mode === "length";
  var update = {"marker.color": [mapValues(mode)], "marker.showscale": numeric};
  if (numeric) {
    update["marker.colorscale"] = "Viridis";
    update["marker.colorbar"] = {title: {text: mode}, thickness: 12};
    update["marker.cmin"] = mode === "confidence" ? 0 : null;
    update["marker.cmax"] = mode === "confidence" ? 1 : null;
  }
  Plotly.restyle("map", update, [0]);
}

function drawMap() {
  var m = D.a.map_protein.length;
  if (!m) {
    $("map").style.height = "auto";
    $("map").appendChild(el("p", "no map (no embeddings, or max_map_points=0)", "note"));
    return Promise.resolve();
  }
  var x = new Float32Array(m), y = new Float32Array(m), text = new Array(m), j, i;
  for (j = 0; j < m; j++) {
    i = D.a.map_protein[j];
    x[j] = D.a.map_xy[2 * j]; y[j] = D.a.map_xy[2 * j + 1];
    var c = clusterOf(i), l = labelOf(i);
    text[j] = esc(D.h.ids[i]) + "<br>cluster " + (c === null ? "–" : c) + (l ? "<br>label " + esc(l) : "") +
      "<br>confidence " + fmt(confidenceOf(i), 3) + "<br>length " + lengthOf(i);
  }
  var traces = [
    {type: "scattergl", mode: "markers", x: x, y: y, hovertext: text, hoverinfo: "text",
     marker: {size: m > 5000 ? 3 : 5, color: mapValues(state.colour)}, selected: {marker: {opacity: 1}},
     unselected: {marker: {opacity: 0.15}}},
    {type: "scattergl", mode: "markers", x: [], y: [], hoverinfo: "skip",
     marker: {size: 15, symbol: "circle-open", color: "#000", line: {width: 2}}}];
  var name = D.h.map_method || "map";
  var layout = {dragmode: "lasso", hovermode: "closest", showlegend: false, margin: {l: 45, r: 10, t: 10, b: 40},
    xaxis: {title: {text: name + " 1"}, zeroline: false}, yaxis: {title: {text: name + " 2"}, zeroline: false}};
  return Plotly.newPlot("map", traces, layout, {displaylogo: false, responsive: true}).then(function (gd) {
    gd.on("plotly_selected", function (ev) {
      if (!ev || !ev.points) return;
      var sel = [];
      ev.points.forEach(function (p) { if (p.curveNumber === 0) sel.push(D.a.map_protein[p.pointIndex]); });
      setSelection(sel, false);
    });
    gd.on("plotly_deselect", function () { setSelection([], false); });
    gd.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (p && p.curveNumber === 0) show(D.a.map_protein[p.pointIndex]);
    });
  });
}

// ---------------------------------------------------------------- proteins table
var COLUMNS = [["id", "id"], ["cluster", "cluster"], ["label", "label"], ["confidence", "confidence", "num"],
  ["length", "length", "num"]];
function cell(i, key) {
  if (key === "id") return D.h.ids[i];
  if (key === "cluster") return clusterOf(i);
  if (key === "label") return labelOf(i);
  if (key === "confidence") return confidenceOf(i);
  return lengthOf(i);
}
function matches(i, q) {
  if (D.idsLower[i].indexOf(q) >= 0) return true;
  var l = D.a.label[i];
  return l >= 0 && D.labelsLower[l].indexOf(q) >= 0;
}
function tableRows() {
  var q = state.query.trim().toLowerCase(), rows = [], i;
  if (!q) rows = state.selection.slice();
  else if (state.scope === "selection") rows = state.selection.filter(function (i) { return matches(i, q); });
  else for (i = 0; i < D.n; i++) if (matches(i, q)) rows.push(i);
  if (state.sort) {
    var key = state.sort, dir = state.sortDir;
    rows.sort(function (a, b) {
      var x = cell(a, key), y = cell(b, key);
      if (x === y) return a - b;
      if (x === null || (typeof x === "number" && isNaN(x))) return 1;
      if (y === null || (typeof y === "number" && isNaN(y))) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  return rows;
}
function header(table, columns, sortKey, dir, onSort) {
  var head = table.querySelector("thead"), tr = el("tr");
  head.textContent = "";
  columns.forEach(function (c) {
    var th = el("th", c[1] + (sortKey === c[0] ? (dir > 0 ? " ▲" : " ▼") : ""), c[2]);
    th.addEventListener("click", function () { onSort(c[0]); });
    tr.appendChild(th);
  });
  head.appendChild(tr);
}
function renderTable() {
  var rows = tableRows(), table = $("proteins"), body = table.querySelector("tbody");
  header(table, COLUMNS, state.sort, state.sortDir, function (key) {
    state.sortDir = state.sort === key ? -state.sortDir : 1; state.sort = key; renderTable();
  });
  body.textContent = "";
  var frag = document.createDocumentFragment();
  rows.slice(0, TABLE_ROWS).forEach(function (i) {
    var tr = el("tr", null, i === state.current ? "current" : "");
    tr.dataset.index = i;
    COLUMNS.forEach(function (c) {
      var v = cell(i, c[0]);
      tr.appendChild(el("td", c[0] === "confidence" ? fmt(v, 3) : (v === null ? "–" : v), c[2]));
    });
    tr.addEventListener("click", function () { show(i); });
    frag.appendChild(tr);
  });
  body.appendChild(frag);
  var q = state.query.trim(), what;
  if (q) what = rows.length + " protein" + (rows.length === 1 ? "" : "s") + " match “" + q + "”" +
    (state.scope === "selection" ? " in the selection" : "");
  else what = state.selection.length ? rows.length + " protein" + (rows.length === 1 ? "" : "s") + " selected" :
    "select proteins on the map (lasso or box), click a cluster, or search";
  if (rows.length > TABLE_ROWS) what += " (the first " + TABLE_ROWS + " shown; the exports hold all)";
  $("table-status").textContent = what;
  return rows;
}
function setSelection(indices, fromApi) {
  var seen = new Set(), sel = [];
  indices.forEach(function (i) { if (i >= 0 && i < D.n && !seen.has(i)) { seen.add(i); sel.push(i); } });
  state.selection = sel;
  if (fromApi && D.a.map_protein.length) {
    var points = [];
    sel.forEach(function (i) { if (D.onMap[i] >= 0) points.push(D.onMap[i]); });
    Plotly.restyle("map", {selectedpoints: [sel.length ? points : null]}, [0]);
  }
  renderTable();
}

function csvField(v) {
  v = v === null || v === undefined ? "" : String(v);
  return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
}
function csv(rows) {
  var lines = ["id,cluster,label,confidence,length"];
  rows.forEach(function (i) {
    lines.push([D.h.ids[i], clusterOf(i), labelOf(i), fmt(confidenceOf(i), 4), lengthOf(i)].map(csvField).join(","));
  });
  return lines.join("\n") + "\n";
}
function fasta(rows) {
  var out = [];
  rows.forEach(function (i) {
    var s = sequence(i), l = labelOf(i), c = clusterOf(i);
    out.push(">" + D.h.ids[i].replace(/[\r\n]+/g, " ") + " cluster=" + (c === null ? "none" : c) +
      (l ? " label=" + l.replace(/[\r\n]+/g, " ") : ""));
    for (var p = 0; p < s.length; p += 60) out.push(s.slice(p, p + 60));
  });
  return out.join("\n") + "\n";
}
function download(name, text, type) {
  var a = el("a"), url = URL.createObjectURL(new Blob([text], {type: type}));
  a.href = url; a.download = name; a.style.display = "none";
  document.body.appendChild(a); a.click();
  setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 2000);
}

// ---------------------------------------------------------------- one protein
function diverging(t) {  // -1..1 -> blue, white, red
  var end = t < 0 ? [33, 102, 172] : [178, 24, 43], f = Math.min(1, Math.abs(t));
  var c = end.map(function (e) { return Math.round(255 + (e - 255) * f); });
  return "rgb(" + c.join(",") + ")";
}
function attribution(i) {
  var k = D.attrOf[i];
  if (k < 0) return null;
  var L = D.a.attr_length[k], scale = D.a.attr_scale[k];
  var q = D.a.attr_values.subarray(D.attrStart[k], D.attrStart[k] + L), values = new Array(L);
  for (var p = 0; p < L; p++) values[p] = q[p] === MISSING_ATTRIBUTION ? null : q[p] * scale;
  return {values: values, largest: 127 * scale, residues: D.h.attr_residues[String(k)] || sequence(i)};
}
function show(i) {
  if (typeof i !== "number" || i < 0 || i >= D.n) return false;
  state.current = i;
  var c = clusterOf(i), l = labelOf(i);
  $("protein-title").textContent = D.h.ids[i];
  $("protein-facts").textContent = "cluster " + (c === null ? "–" : c) + (l ? " · label " + l : "") +
    " · confidence " + (fmt(confidenceOf(i), 3) || "–") + " · " + lengthOf(i) + " residues" +
    (D.onMap[i] >= 0 ? "" : " · not on the map (subsample)");
  if (D.a.map_protein.length) {
    var j = D.onMap[i];
    Plotly.restyle("map", {x: [j >= 0 ? [D.a.map_xy[2 * j]] : []], y: [j >= 0 ? [D.a.map_xy[2 * j + 1]] : []]}, [1]);
  }
  Array.prototype.forEach.call(document.querySelectorAll("#proteins tbody tr"), function (tr) {
    tr.className = Number(tr.dataset.index) === i ? "current" : "";
  });
  var attr = attribution(i), strip = $("strip");
  if (!attr) {
    Plotly.purge(strip);
    strip.style.display = "none";
    $("strip-note").textContent = D.a.attr_protein.length ? "no residue attribution for this protein" :
      "no residue attribution for this protein (the run has none: 04 writes it for the families and scan methods)";
  } else {
    var x = [], y = [], text = [], colours = [], p;
    for (p = 0; p < attr.values.length; p++) {
      var v = attr.values[p];
      if (v === null) continue;
      var r = attr.residues.charAt(p) || "?";
      x.push(p + 1); y.push(v); colours.push(diverging(v / (attr.largest || 1)));
      text.push(esc(r) + " " + (p + 1) + ": " + v.toPrecision(3));
    }
    strip.style.display = "block";
    $("strip-note").textContent = "residue attribution along the sequence (" + x.length + " residues; red: towards " +
      "the protein's cluster, blue: away)";
    Plotly.react(strip, [{type: "bar", x: x, y: y, hovertext: text, hoverinfo: "text", marker: {color: colours}}],
      {margin: {l: 50, r: 10, t: 6, b: 36}, bargap: 0,
       xaxis: {title: {text: "position"}, range: [0.5, attr.values.length + 0.5]},
       yaxis: {title: {text: "attribution"}, zeroline: true}}, {displaylogo: false, responsive: true});
  }
  draw3d(i, attr);
  return true;
}
function draw3d(i, attr) {
  var box = $("structure"), note = $("structure-note"), s = D.structureOf.get(i);
  if (!s) {
    box.style.display = "none";
    note.textContent = D.h.structure_notes[String(i)] || D.h.structure_notes.all ||
      (D.h.structures.length ? "no structure given for this protein" : "");
    return;
  }
  if (typeof $3Dmol === "undefined") {
    box.style.display = "none";
    note.textContent = "3Dmol.js is not in this page";
    return;
  }
  box.style.display = "block";
  note.textContent = "structure " + s.name + " (" + Math.round(100 * s.identity) +
    "% identical over the aligned residues)" +
    (attr ? ", coloured by attribution; grey: no value" : ": no attribution to colour it by");
  if (!viewer) viewer = $3Dmol.createViewer(box, {backgroundColor: "white"});
  viewer.clear();
  viewer.addModel(s.pdb, "pdb");
  var pos = s.atom_position, style = s.full ? {} : {style: "trace", thickness: 0.6};
  style.colorfunc = function (atom) {
    var p = pos[atom.serial - 1];
    var v = attr && p ? attr.values[p - 1] : null;
    return v === null || v === undefined ? "#cccccc" : diverging(v / (attr.largest || 1));
  };
  viewer.setStyle({}, {cartoon: style});
  viewer.zoomTo();
  viewer.render();
}

// ---------------------------------------------------------------- clusters
var SUMMARY = [["cluster", "cluster", "num", 0], ["size", "size", "num", 1],
  ["confidence", "mean confidence", "num", 2], ["length", "median length", "num", 3]];
function renderSummary() {
  var rows = D.h.summary.slice(), columns = SUMMARY.slice();
  if (D.h.labels.length) columns.push(["purity", "purity", "num", 4], ["top", "label", "", 5]);
  if (state.summarySort) {
    var col = columns.filter(function (c) { return c[0] === state.summarySort; })[0], dir = state.summaryDir;
    rows.sort(function (a, b) {
      var x = a[col[3]], y = b[col[3]];
      if (x === y) return a[0] - b[0];
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  var table = $("clusters"), body = table.querySelector("tbody");
  header(table, columns, state.summarySort, state.summaryDir, function (key) {
    state.summaryDir = state.summarySort === key ? -state.summaryDir : 1; state.summarySort = key; renderSummary();
  });
  body.textContent = "";
  var frag = document.createDocumentFragment();
  rows.slice(0, 5000).forEach(function (row) {
    var tr = el("tr");
    columns.forEach(function (c) {
      var v = row[c[3]];
      var text = v === null ? "–" : (c[0] === "confidence" || c[0] === "purity") ? v.toFixed(3) : v;
      tr.appendChild(el("td", text, c[2]));
    });
    tr.addEventListener("click", function () { selectCluster(row[0]); });
    frag.appendChild(tr);
  });
  body.appendChild(frag);
  $("summary-status").textContent = rows.length ? rows.length + " clusters" +
    (D.h.method ? " (" + D.h.method + ")" : "") +
    (rows.length > 5000 ? ", the 5000 first shown" : "") + "; a click on one selects its members" +
    (D.h.labels.length ? "; purity: the share of its labelled members carrying its most common label" : "") :
    "no clusters";
}
function selectCluster(c) {
  var members = [];
  for (var i = 0; i < D.n; i++) if (D.a.cluster[i] === c) members.push(i);
  setSelection(members, true);
}

// ---------------------------------------------------------------- api
api.select = function (ids) {
  var idx = [];
  (ids || []).forEach(function (id) { var i = D.index.get(String(id)); if (i !== undefined) idx.push(i); });
  setSelection(idx, true);
  return idx.length;
};
api.show = function (id) { var i = D.index.get(String(id)); return i === undefined ? false : show(i); };
api.search = function (text, scope) {
  state.query = String(text || ""); $("search").value = state.query;
  if (scope) { state.scope = scope; $("scope").value = scope; }
  renderTable();
};
api.colour = colour;
api.tableIds = function () { return tableRows().map(function (i) { return D.h.ids[i]; }); };
api.csv = function () { return csv(tableRows()); };
api.fasta = function () { return fasta(tableRows()); };
api.selectCluster = selectCluster;

function applyHash() {
  var hash = location.hash.replace(/^#/, "");
  if (!hash) return;
  var params = new URLSearchParams(hash);
  if (params.has("colour")) colour(params.get("colour"));
  if (params.has("select")) api.select(JSON.parse(params.get("select")));
  if (params.has("search")) api.search(params.get("search"), params.get("scope"));
  if (params.has("show")) api.show(params.get("show"));
}

function controls() {
  var select = $("colour");
  Object.keys(COLOURS).forEach(function (mode) {
    if (mode === "label" && !D.h.labels.length) return;
    var opt = el("option", mode);
    opt.value = mode;
    select.appendChild(opt);
  });
  select.addEventListener("change", function () { colour(select.value); });
  var timer = null;
  $("search").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.query = $("search").value; renderTable(); }, 150);
  });
  $("scope").addEventListener("change", function () { state.scope = $("scope").value; renderTable(); });
  $("export-csv").addEventListener("click", function () { download("proteins.csv", csv(tableRows()), "text/csv"); });
  $("export-fasta").addEventListener("click", function () {
    download("proteins.fasta", fasta(tableRows()), "text/plain");
  });
  $("clear").addEventListener("click", function () { setSelection([], true); });
}

api.ready = decode().then(function (d) {
  D = d;
  var h = D.h, n = D.n;
  status(n + " proteins · " + h.summary.length + " clusters" + (h.method ? " (" + h.method + ")" : "") + " · " +
    D.a.map_protein.length + " on the map" + (D.a.map_protein.length ? " (" + h.map_method + ")" : "") + " · " +
    D.a.attr_protein.length + " with residue attribution" + (h.structures.length ? " · " + h.structures.length +
    " structures" : "") + (h.labels.length ? " · " + h.labels.length + " labels" : ""));
  h.notes.forEach(function (note) { $("notes").appendChild(el("li", note)); });
  controls();
  renderTable();
  renderSummary();
  return drawMap();
}).then(function () {
  colour(state.colour);
  applyHash();
  window.addEventListener("hashchange", applyHash);
  root.dataset.state = "ready";
}).catch(function (err) {
  root.dataset.state = "error";
  status("the explorer could not start: " + (err && err.message ? err.message : err), true);
  console.error(err);
});
})();
"""
