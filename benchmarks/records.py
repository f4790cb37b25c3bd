"""Benchmark records: every benchmark writes what it measured as JSON under ``benchmarks/results/``.

A record names the benchmark and its variant, the command line, the parameters, the numbers,
the code (protlab version, git commit, dirty flag), the date and the machine (cores, memory,
GPU). ``benchmarks/RESULTS.md`` is generated from the records (``make results``, i.e.
``python benchmarks/make_results.py``), so numbers are never copied by hand.

    from records import write_record
    write_record("bench_cluster_quality", results={...}, params=vars(args), table=[{...}, ...])
"""
from __future__ import annotations

import json
import os
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """Cores, memory and accelerator of this machine, as a record states them."""
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "memory_gib": memory, "gpu": gpu, "platform": platform.platform(terse=True),
            "python": platform.python_version(), "mmseqs": mmseqs_version()}


def mmseqs_version() -> str | None:
    """The MMseqs2 binary protlab runs and its version: homology hits, and so families and
    splits, can differ between MMseqs2 releases."""
    import subprocess

    from protlab.core.mmseqs import mmseqs_binary

    exe = mmseqs_binary()
    if exe is None:
        return None
    try:
        version = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        version = "unknown version"
    return f"{exe} {version}"


def peak_rss_gib() -> float:
    """Peak resident memory of this process and its finished children, in GiB."""
    import resource

    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(peak / 2**20, 2)  # ru_maxrss is in KiB on Linux


def record_path(benchmark: str, variant: str | None = None) -> Path:
    name = benchmark if not variant else f"{benchmark}--{re.sub(r'[^A-Za-z0-9_.=-]+', '_', str(variant))}"
    return RESULTS / f"{name}.json"


def write_record(benchmark: str, *, results: dict, params: dict | None = None, variant: str | None = None,
                 title: str | None = None, table: list[dict] | None = None, notes: str | None = None) -> Path:
    """Write ``benchmarks/results/<benchmark>[--<variant>].json`` atomically; returns its path.

    ``results``: the headline numbers; ``table``: rows (dicts with the same keys) that RESULTS.md
    shows as a table; ``notes``: one sentence on how to read them (what a method is, which
    split); ``variant`` tells runs of one benchmark apart (a data-set size, a seed set).
    """
    from protlab.core.atomic import atomic_write_text, jsonable
    from protlab.core.version import code_identity

    record = {"benchmark": benchmark, "variant": variant, "title": title, "notes": notes,
              "command": " ".join(["python", *(_relative(a) for a in sys.argv)]),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "code": code_identity(), "machine": machine(), "params": params or {},
              "results": results, "table": table}
    path = record_path(benchmark, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keys in the order given: a table's columns stay in the order the benchmark prints them
    atomic_write_text(path, json.dumps(record, indent=2, default=jsonable) + "\n")
    print(f"record: {path}")
    return path


def _relative(arg: str) -> str:
    repo = str(Path(__file__).resolve().parent.parent) + os.sep
    return arg.replace(repo, "")
