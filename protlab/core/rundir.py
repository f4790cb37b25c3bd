"""The run directory: the one place that names every artifact a stage writes or reads.

Each notebook (stage) reads from and writes to one ``run_dir``; what one writes the next
reads. :class:`RunDir` owns every file name, so no other module and no notebook spells
one, and loading an artifact that is not there names the stage to run first. Reading one
that is unreadable, cut short or lacks what every reader needs is an
:class:`~protlab.core.errors.InputError` naming the file, what is wrong and the stage to rerun.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from protlab.core.atomic import atomic_paths, atomic_write_parquet, jsonable
from protlab.core.fingerprint import fingerprint
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
    "scan_log": ("clusters/scan_log.jsonl", "cluster"),  # the SCAN heads' training, one record per epoch
    "scan_graph_state": ("checkpoints/scan_graph_state.pt", "cluster"),  # while a fit runs (resume)
    "scan_training_state": ("checkpoints/scan_training_state.pt", "cluster"),
    "attribution": ("clusters/attribution.parquet", "cluster"),
    "attribution_meta": ("clusters/attribution.json", "cluster"),
    "family_profiles": ("clusters/family_profiles.parquet", "cluster"),
    "family_strips": ("clusters/family_strips.parquet", "cluster"),
    "metrics": ("metrics.json", "evaluate"),
    "metrics_table": ("metrics_table.csv", "evaluate"),
    "per_family": ("per_family.csv", "evaluate"),
    "cluster_report": ("cluster_report.csv", "evaluate"),
    "baselines": ("baselines", "evaluate"),  # 05's baseline clusterings, laid out as clusters/
    "residue_network": ("checkpoints/residue_cluster.pt", "residues"),
    "residue_graph_cache": ("cache/residue_graphs", "residues"),
    "residue_training_state": ("checkpoints/residue_training_state.pt", "residues"),
    "residue_training": ("residues/training.csv", "residues"),
    "residue_log": ("residues/training_log.jsonl", "residues"),
    "label_metrics": ("label_metrics.json", "residues"),
    "critical_residues": ("residues/critical_residues.parquet", "residues"),
    "residue_tables": ("residues/by_structure", "residues"),  # one TSV per structure: residue, score, pocket
    "site_pockets": ("residues/pockets.tsv", "residues"),     # a site model's pockets: rank, score, centre
    "residue_metrics": ("residue_metrics.json", "residues"),
    "variants": ("variants.parquet", "variants"),
    "variant_metrics": ("variant_metrics.json", "variants"),
    "figures": ("figures", "any stage"),
    "executed": ("executed", "protlab.demo"),
}
NOTEBOOKS = {"curate": "01_curate", "embed": "02_embed", "pretrain": "03_pretrain", "cluster": "04_cluster",
             "evaluate": "05_evaluate", "residues": "06_critical_residues",
             "variants": "07_variants"}
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

    def clustering(self, method: str, suffix: str = ".parquet", folder: str = "clusterings") -> Path:
        """``clusters/<method>.parquet`` (or ``.json``: its parameters and timings); ``folder="baselines"``:
        05's ``baselines/<method>.*``."""
        return self.path(folder) / f"{method}{suffix}"

    def clustering_methods(self, folder: str = "clusterings") -> list[str]:
        """The clusterings in ``clusters/`` (or 05's ``baselines/``): its tables other than the
        explanations 04 writes beside them."""
        folder = self.path(folder)
        beside = {Path(ARTIFACTS[key][0]).name for key in ("attribution", "family_profiles", "family_strips")}
        return sorted(p.stem for p in folder.glob("*.parquet") if p.name not in beside) if folder.is_dir() else []

    def stage_record(self, stage: str) -> Path:
        return self.root / f"{stage}.json"

    def rerun(self, key: str) -> str:
        """How to make artifact ``key`` again: the notebook and command of the stage writing it."""
        stage = ARTIFACTS[key][1]
        return (f"rerun {NOTEBOOKS[stage]} (python -m protlab.{stage} --run-dir {self.root})" if stage in NOTEBOOKS
                else f"rerun {stage}")

    def read_parquet(self, path: str | Path, key: str) -> pd.DataFrame:
        """The table at ``path`` (artifact ``key`` or one of its files), or an error naming it."""
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise InputError(f"{path} is unreadable or cut short ({type(exc).__name__}: {exc}); "
                             f"{self.rerun(key)}") from exc

    def read_json(self, path: str | Path, key: str) -> dict:
        """The JSON object at ``path`` (artifact ``key`` or one of its files), or an error naming it."""
        try:
            value = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise InputError(f"{path} is unreadable or cut short ({type(exc).__name__}: {exc}); "
                             f"{self.rerun(key)}") from exc
        if not isinstance(value, dict):
            raise InputError(f"{path} holds a JSON {type(value).__name__}, not an object; {self.rerun(key)}")
        return value

    # ---------------------------------------------------------------- tables
    def save_proteins(self, frame: pd.DataFrame) -> Path:
        missing = [c for c in PROTEIN_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(f"proteins table lacks columns {missing}")
        return atomic_write_parquet(self.writable("proteins"), frame)

    def load_proteins(self) -> pd.DataFrame:
        """``proteins.parquet``, refused when it lacks an id or a sequence for some row."""
        path = self.require("proteins")
        proteins = self.read_parquet(path, "proteins")
        missing = [c for c in ("id", "sequence") if c not in proteins.columns]
        problem = (f"it has no column {missing}" if missing else
                   f"{int(proteins['id'].isna().sum())} rows have no id" if proteins["id"].isna().any() else
                   f"column 'sequence' holds {proteins['sequence'].dtype} values, not text"
                   if len(proteins) and not pd.api.types.is_string_dtype(proteins["sequence"]) else
                   f"{int(proteins['sequence'].isna().sum())} rows have no sequence"
                   if proteins["sequence"].isna().any() else None)
        if problem is not None:
            raise InputError(f"{path}: {problem}; {self.rerun('proteins')}")
        return proteins

    def save_embeddings(self, ids, embeddings, *, proteins_sha256: str | None = None, **meta) -> Path:
        """Write ``embeddings.npy`` (float32, one row per id) and ``embeddings.json`` (ids, meta,
        the array's SHA-256 and ``proteins_sha256``, the fingerprint of the proteins embedded)
        as one artifact: both land or neither does."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        ids = [str(i) for i in ids]
        if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
            raise InputError(f"embeddings of shape {embeddings.shape} do not match {len(ids)} ids")
        with atomic_paths(self.writable("embeddings"), self.writable("embeddings_meta")) as (array, header):
            with open(array, "wb") as fh:
                np.save(fh, embeddings)
            record = {"ids": ids, "dim": int(embeddings.shape[1]), "array_sha256": fingerprint(array),
                      "proteins_sha256": proteins_sha256, **meta}
            header.write_text(json.dumps(record, indent=2, sort_keys=True, default=jsonable) + "\n")
        return self.path("embeddings")

    def load_embeddings(self) -> tuple[list[str], np.ndarray, dict]:
        """``(ids, embeddings, meta)`` as written by :meth:`save_embeddings`, checked to belong together."""
        path = self.require("embeddings")
        meta_path = self.require("embeddings_meta")
        rerun = self.rerun("embeddings")
        meta = self.read_json(meta_path, "embeddings_meta")
        ids = meta.pop("ids", None)
        if not isinstance(ids, list):
            raise InputError(f"{meta_path} lists no ids; {rerun}")
        try:
            embeddings = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path} is unreadable or cut short ({exc}); {rerun}") from exc
        expected = meta.get("array_sha256")
        if expected is not None and fingerprint(path) != expected:
            raise InputError(f"{path} and {meta_path.name} are from different runs of 02_embed (a write was "
                             f"interrupted or a file was replaced); {rerun}")
        if embeddings.ndim != 2 or len(ids) != embeddings.shape[0] or meta.get("dim", embeddings.shape[1]) != \
                embeddings.shape[1]:
            raise InputError(f"{path} holds an array of shape {embeddings.shape} but {meta_path.name} lists "
                             f"{len(ids)} ids of dim {meta.get('dim')}; {rerun}")
        return ids, embeddings, meta

    def load_proteins_checked(self) -> pd.DataFrame:
        """``proteins.parquet``, refused when it repeats an id (every later artifact keys on ids)."""
        proteins = self.load_proteins()
        ids = proteins["id"].astype(str)
        duplicated = ids[ids.duplicated()].unique().tolist()
        if duplicated:
            raise InputError(f"{self.path('proteins')} repeats ids {duplicated[:5]} ({len(duplicated)} in all): "
                             f"ids must be unique; {self.rerun('proteins')}")
        return proteins

    def load_json(self, key: str) -> dict:
        return self.read_json(self.require(key), key)
