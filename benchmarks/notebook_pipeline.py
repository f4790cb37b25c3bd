"""The notebooks 01 → 02 → 04 with their defaults, as the family benchmarks run them."""
from __future__ import annotations

import shutil
import time
from pathlib import Path


def run_01_02_04(run_dir: Path, source: str, n_clusters: int | None) -> dict[str, float]:
    """``run_dir`` made afresh by the notebooks (only ``source`` and ``n_clusters`` given);
    seconds per notebook."""
    from protlab.notebooks import run_notebook

    shutil.rmtree(run_dir, ignore_errors=True)
    times = {}
    for nb, params in (("01_curate", {"source": source}), ("02_embed", {}), ("04_cluster", {"n_clusters": n_clusters})):
        start = time.perf_counter()
        run_notebook(nb, {**params, "run_dir": str(run_dir)}, output_dir=run_dir / "executed")
        times[nb] = time.perf_counter() - start
        print(f"{nb}: {times[nb]:.1f} s", flush=True)
    return times
