"""The run directory: how notebooks hand artifacts to each other.

Each notebook reads from and writes to one ``run_dir``. This module names every artifact
so no notebook hard-codes a path, and loads each with a clear error when the notebook
that writes it has not run yet.

=================  ======================================  ============
written by         artifact                                 function
=================  ======================================  ============
01 curate          ``proteins.parquet``                     save_proteins / load_proteins
02 embed           ``embeddings.npy`` + ``embeddings.json``  save_embeddings / load_embeddings
03 pretrain        ``checkpoints/``                          (protlab.pretrain.loop)
04 cluster         ``clusters.parquet`` (+ ``clusters/``)    (protlab.cluster.methods)
05 evaluate        ``metrics.json``                          (protlab.evaluate.metrics)
06 residues 3D     ``residues/``, ``residue_metrics.json``   (protlab.residues.analysis)
=================  ======================================  ============

Figures go to ``run_dir/figures/``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protlab.core.atomic import atomic_save_npy, atomic_write_json, atomic_write_parquet
from protlab.core.errors import InputError

PROTEINS = "proteins.parquet"
EMBEDDINGS = "embeddings.npy"
EMBEDDINGS_META = "embeddings.json"
CLUSTERS = "clusters.parquet"
METRICS = "metrics.json"
FIGURES = "figures"
CHECKPOINTS = "checkpoints"

# Columns every proteins.parquet has; UniProt text fields and toy ground truth are extra.
PROTEIN_COLUMNS = ("id", "sequence", "label", "split")


def run_path(run_dir: str | Path, name: str = "") -> Path:
    """``run_dir/name`` with ``run_dir`` created."""
    root = Path(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root / name if name else root


def figures_dir(run_dir: str | Path) -> Path:
    path = run_path(run_dir, FIGURES)
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(run_dir: str | Path, name: str, *, written_by: str) -> Path:
    """The path of an artifact that must exist, or an error naming the notebook to run."""
    path = Path(run_dir) / name
    if not path.exists():
        raise InputError(f"{path} does not exist: run {written_by} with run_dir={str(run_dir)!r} first")
    return path


def save_proteins(run_dir: str | Path, frame) -> Path:
    missing = [c for c in PROTEIN_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"proteins table lacks columns {missing}")
    return atomic_write_parquet(run_path(run_dir, PROTEINS), frame)


def load_proteins(run_dir: str | Path):
    import pandas as pd

    return pd.read_parquet(require(run_dir, PROTEINS, written_by="01_curate.ipynb"))


def save_embeddings(run_dir: str | Path, ids, embeddings, **meta) -> Path:
    """Write ``embeddings.npy`` (float32, one row per id) and ``embeddings.json`` (ids + meta)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    ids = [str(i) for i in ids]
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
        raise InputError(f"embeddings of shape {embeddings.shape} do not match {len(ids)} ids")
    atomic_write_json(run_path(run_dir, EMBEDDINGS_META), {"ids": ids, "dim": int(embeddings.shape[1]), **meta})
    return atomic_save_npy(run_path(run_dir, EMBEDDINGS), embeddings)


def load_embeddings(run_dir: str | Path):
    """``(ids, embeddings, meta)`` as written by :func:`save_embeddings`."""
    path = require(run_dir, EMBEDDINGS, written_by="02_embed.ipynb")
    meta = json.loads(require(run_dir, EMBEDDINGS_META, written_by="02_embed.ipynb").read_text())
    embeddings = np.load(path)
    ids = meta.pop("ids")
    if len(ids) != embeddings.shape[0]:
        raise InputError(f"{path} has {embeddings.shape[0]} rows but {EMBEDDINGS_META} lists {len(ids)} ids; rerun 02_embed")
    return ids, embeddings, meta
