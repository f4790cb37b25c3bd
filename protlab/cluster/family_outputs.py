"""What 04 writes beside the clusters to explain them: the residue attribution of each
protein's cluster (``clusters/attribution.parquet``) and each family's profile and mean
attribution strip (``clusters/family_profiles.parquet``, ``clusters/family_strips.parquet``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from protlab.cluster.attribution import attribute, supports
from protlab.cluster.methods import Clustering
from protlab.cluster.profiles import attribution_strips, family_summary
from protlab.cluster.scan import ScanClusterer
from protlab.core.atomic import atomic_paths, jsonable
from protlab.core.rundir import RunDir
from protlab.core.stage import StageRecord


def write_attribution(run_dir: str | Path, result: Clustering, ids: list[str], sequences: list[str],
                      embeddings: np.ndarray, limit: int,
                      record: StageRecord | None = None) -> tuple[dict, pd.DataFrame | None]:
    """Residue attribution of ``result``'s clusters by its fitted model (``ids``, ``sequences``
    and ``embeddings`` in the clustering's row order), written to ``clusters/attribution.parquet``
    (+ ``.json``) when the run has at most ``limit`` proteins; returns what was done (or why
    not), which 04's record keeps, and the table (None when not made)."""
    run = RunDir(run_dir)
    model = result.model
    n = len(result.labels)
    why = (f"method {result.method!r} has no clustering network" if not isinstance(model, ScanClusterer) else
           f"off (attribution_max={limit})" if limit == 0 else
           f"{n} proteins > attribution_max={limit}" if n > limit else supports(model))
    if why is not None:
        for stale in (run.path("attribution"), run.path("attribution_meta"), run.path("family_strips")):
            stale.unlink(missing_ok=True)  # an earlier run's attribution belongs to other clusters
        if isinstance(model, ScanClusterer):
            print(f"04: no residue attribution: {why}", flush=True)
        return {"written": False, "why": why}, None
    print(f"04: residue attribution of {n} proteins", flush=True)
    frame, info = attribute(model, ids, sequences, result.labels, embeddings,
                            reference_index=np.arange(n), progress=True)
    info = {**info, "clusters_method": result.method}
    with atomic_paths(run.writable("attribution"), run.writable("attribution_meta")) as (table, meta):
        frame.to_parquet(table, index=False)
        meta.write_text(json.dumps(info, indent=2, sort_keys=True, default=jsonable) + "\n")
    if record is not None:
        record.wrote(run.path("attribution"))
        record.wrote(run.path("attribution_meta"))
    return {"written": True, **info}, frame


def write_family_profiles(run_dir: str | Path, result: Clustering, ids: list[str], sequences: list[str],
                          attribution: pd.DataFrame | None,
                          record: StageRecord | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Each cluster's summary (``clusters/family_profiles.parquet``) and, with the residue
    ``attribution``, its mean along the representative (``clusters/family_strips.parquet``)."""
    run = RunDir(run_dir)
    summary = family_summary(ids, sequences, result.labels, result.confidence)
    strips = None
    targets = [run.writable("family_profiles")]
    if attribution is not None:
        strips = attribution_strips(summary, ids, sequences, result.labels, attribution)
        targets.append(run.writable("family_strips"))
    with atomic_paths(*targets) as tmps:
        summary.to_parquet(tmps[0], index=False)
        if strips is not None:
            strips.to_parquet(tmps[1], index=False)
    if record is not None:
        for path in targets:
            record.wrote(path)
    return summary, strips
