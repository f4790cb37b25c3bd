"""The run directory: the one place that names every artifact a stage writes or reads.

Each notebook (stage) reads from and writes to one ``run_dir``; what one writes the next
reads. :class:`RunDir` owns every file name, so no other module and no notebook spells
one, and loading an artifact that is not there names the stage to run first.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from protlab.core.atomic import atomic_save_npy, atomic_write_json, atomic_write_parquet
from protlab.core.errors import InputError

# key: (path inside run_dir, the stage that writes it)
ARTIFACTS: dict[str, tuple[str, str]] = {
    "proteins": ("proteins.parquet", "curate"),
    "curation_report": ("curation_report.json", "curate"),
    "embeddings": ("embeddings.npy", "embed"),
    "embeddings_meta": ("embeddings.json", "embed"),
    "embedding_cache": ("cache/embeddings", "embed"),
    "checkpoints": ("checkpoints", "pretrain"),
    "pretrain_checkpoint": ("checkpoints/last.pt", "pretrain"),
    "protein_encoder": ("checkpoints/protein_encoder.pt", "pretrain"),
    "pretrain_config": ("pretrain_config.json", "pretrain"),
    "pretrain_log": ("pretrain_log.jsonl", "pretrain"),
    "pretrain_metrics": ("pretrain_metrics.json", "pretrain"),
    "pretrain_untrained_metrics": ("pretrain_untrained_metrics.json", "pretrain"),
    "clusters": ("clusters.parquet", "cluster"),
    "clusterings": ("clusters", "cluster"),
    "scan_model": ("clusters/scan_model.pt", "cluster"),
    "metrics": ("metrics.json", "evaluate"),
    "metrics_table": ("metrics_table.csv", "evaluate"),
    "per_family": ("per_family.csv", "evaluate"),
    "residue_network": ("checkpoints/residue_cluster.pt", "residues"),
    "critical_residues": ("residues/critical_residues.parquet", "residues"),
    "residue_metrics": ("residue_metrics.json", "residues"),
    "figures": ("figures", "any stage"),
    "executed": ("executed", "protlab.demo"),
}
NOTEBOOKS = {"curate": "01_curate", "embed": "02_embed", "pretrain": "03_pretrain", "cluster": "04_cluster",
             "evaluate": "05_evaluate", "residues": "06_critical_residues"}
# Columns every proteins.parquet has; UniProt text fields and toy ground truth are extra.
PROTEIN_COLUMNS = ("id", "sequence", "label", "split")


class RunDir:
    """A run directory and its artifacts: ``RunDir(path).path("proteins")`` etc."""

    def __init__(self, root: str | Path):
        if isinstance(root, RunDir):
            root = root.root
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        """Where artifact ``key`` lives (nothing is created)."""
        try:
            return self.root / ARTIFACTS[key][0]
        except KeyError:
            raise KeyError(f"unknown artifact {key!r}; known: {', '.join(ARTIFACTS)}") from None

    def writable(self, key: str) -> Path:
        """:meth:`path`, with its parent folder created (for writing)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, key: str) -> Path:
        """The path of an artifact that must exist, or an error naming the stage to run."""
        path = self.path(key)
        if not path.exists():
            stage = ARTIFACTS[key][1]
            how = (f"run {NOTEBOOKS[stage]}.ipynb (protlab.{stage}.run) with run_dir={str(self.root)!r} first"
                   if stage in NOTEBOOKS else f"run {stage} first")
            raise InputError(f"{path} does not exist: {how}")
        return path

    def figure(self, stem: str) -> Path:
        """``figures/<stem>`` (no suffix: a figure is saved as .html and .png), folder created."""
        folder = self.path("figures")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / stem

    def clustering(self, method: str, suffix: str = ".parquet") -> Path:
        """``clusters/<method>.parquet`` (or ``.json``: its parameters and timings)."""
        return self.path("clusterings") / f"{method}{suffix}"

    def clustering_methods(self) -> list[str]:
        folder = self.path("clusterings")
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []

    def stage_record(self, stage: str) -> Path:
        return self.root / f"{stage}.json"

    # ---------------------------------------------------------------- tables
    def save_proteins(self, frame: pd.DataFrame) -> Path:
        missing = [c for c in PROTEIN_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(f"proteins table lacks columns {missing}")
        return atomic_write_parquet(self.writable("proteins"), frame)

    def load_proteins(self) -> pd.DataFrame:
        return pd.read_parquet(self.require("proteins"))

    def save_embeddings(self, ids, embeddings, **meta) -> Path:
        """Write ``embeddings.npy`` (float32, one row per id) and ``embeddings.json`` (ids + meta)."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        ids = [str(i) for i in ids]
        if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
            raise InputError(f"embeddings of shape {embeddings.shape} do not match {len(ids)} ids")
        atomic_write_json(self.writable("embeddings_meta"), {"ids": ids, "dim": int(embeddings.shape[1]), **meta})
        return atomic_save_npy(self.writable("embeddings"), embeddings)

    def load_embeddings(self) -> tuple[list[str], np.ndarray, dict]:
        """``(ids, embeddings, meta)`` as written by :meth:`save_embeddings`."""
        path = self.require("embeddings")
        meta_path = self.require("embeddings_meta")
        meta = json.loads(meta_path.read_text())
        embeddings = np.load(path)
        ids = meta.pop("ids")
        if len(ids) != embeddings.shape[0]:
            raise InputError(f"{path} has {embeddings.shape[0]} rows but {meta_path.name} lists {len(ids)} ids; "
                             "rerun 02_embed")
        return ids, embeddings, meta

    def load_json(self, key: str) -> dict:
        return json.loads(self.require(key).read_text())
