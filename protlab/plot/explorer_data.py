"""The explorer page's data: the run's tables as typed arrays and a JSON header in one block,
and the block read back.

The block is zlib-compressed and base64-encoded: a uint32 header length, the JSON header, then
typed arrays (sequences as bytes, attribution as int8 with one scale per protein) at 8-byte
aligned offsets. The page's script (``explorer_page/app.js``) decodes it and shares the
``MISSING_*`` values with this module.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import struct
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from protlab.core.errors import InputError, ProtlabError
from protlab.plot.assets import find_3dmol_js
from protlab.plot.structure_atoms import structure_pdb
from protlab.variants.structure import map_structure

log = logging.getLogger(__name__)
MISSING_CLUSTER = -(2 ** 31)
MISSING_CONFIDENCE = 65535  # confidence is stored as uint16 steps of 1/65534
MISSING_ATTRIBUTION = -128  # attribution is stored as int8 in -127..127 times the protein's scale
DATA_ID = "protlab-explorer-data"
_DTYPES = {"|u1": "u1", "|i1": "i1", "<u2": "u2", "<i4": "i4", "<u4": "u4", "<f4": "f4"}
_NUMPY = {v: np.dtype(k) for k, v in _DTYPES.items()}


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


# ------------------------------------------------------------------------------ the page's data
def cluster_summary(proteins: pd.DataFrame, clusters: pd.DataFrame | None,
                    labels: Mapping | pd.Series | None = None) -> list[list]:
    """The page's per-cluster summary rows (see :func:`_summary`) of every protein of ``proteins``."""
    ids = pd.Index(proteins["id"].astype(str).to_numpy())
    length = proteins["sequence"].astype(str).str.len().to_numpy(np.uint32)
    names, label = _labels(ids, proteins, labels)
    return _summary(*_cluster_arrays(ids, clusters), length, label, names)


def page_data(proteins: pd.DataFrame, *, clusters: pd.DataFrame | None, attribution: pd.DataFrame | None,
              coordinates: pd.DataFrame | None, labels: Mapping | pd.Series | None, structures: Mapping | None,
              title: str, map_method: str, notes: list[str] | None, extra: dict | None,
              structure_entries: list[dict] | None, summary: list[list] | None = None) -> tuple[str, list[dict]]:
    """``(block, entries)``: the data block of :func:`~protlab.plot.explorer.explorer_html`'s page
    (which says what each table holds) and the structures it draws (``structure_entries``, when
    given, are used as they are instead of reading ``structures``). ``summary``: the cluster
    summary rows when the page holds a sample of the proteins (None: made from ``proteins``)."""
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
    entries, structure_notes = (structure_entries, {}) if structure_entries is not None else \
        _structures(ids, sequences, structures)
    method = (str(clusters["method"].iloc[0]) if clusters is not None and "method" in clusters.columns
              and len(clusters) else None)
    header = {
        "title": str(title), "ids": ids.tolist(), "labels": names, "method": method, "map_method": map_method,
        "summary": _summary(cluster, confidence, length, label, names) if summary is None else summary,
        "attr_residues": residues,
        "structures": entries, "structure_notes": structure_notes, "notes": list(notes or []),
        "labels_given": labels is not None, **(extra or {})}
    sections = {"sequences": sequence_bytes, "length": length, "cluster": cluster, "confidence": confidence,
                "label": label, "map_protein": map_protein, "map_xy": map_xy, **attr}
    block = _pack(header, sections)
    return block, entries
