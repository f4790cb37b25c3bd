"""Residue graphs of many structures, cached on disk.

:func:`featurize` turns structures into :class:`~protlab.residues.graph.ResidueGraph`\\ s,
optionally with the pocket columns of :mod:`protlab.residues.pockets` (what a site model
needs; pyKVFinder takes about a second per structure). With ``cache_dir`` each graph is saved
as one ``.npz`` named by a hash of the file's bytes, the chains read and the feature
settings, written atomically: a rerun, or another run on the same files, reads the graphs
back instead of computing them, a killed run loses at most the structure in flight, and an
edited file gets a new key. Generated structures (no file) are not cached.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from protlab.core.progress import progress_bar

from protlab.core.atomic import atomic_path
from protlab.core.errors import InputError
from protlab.curate.records import Structure
from protlab.embed.encoders import get_encoder
from protlab.residues.graph import ResidueGraph, build_graph, checked_esm
from protlab.residues.pockets import (N_CAVITY_COLUMNS, N_POCKET_FEATURES, cavity_baseline, pocket_context,
                                     pocket_features)

log = logging.getLogger(__name__)
FEATURE_VERSION = 2  # bump when node or pocket features change: old cache entries are then ignored
_ARRAYS = ("aa", "feats", "ca", "frames")


def graph_key(structure: Structure, *, pockets: bool) -> str | None:
    """Cache key of a structure read from a file (None for generated structures)."""
    if not structure.source or not Path(structure.source).is_file():
        return None
    digest = hashlib.sha256(Path(structure.source).read_bytes()).hexdigest()[:24]
    settings = f"{structure.chain}|{len(structure)}|pockets={pockets}|v{FEATURE_VERSION}"
    return f"{digest}-{hashlib.sha1(settings.encode()).hexdigest()[:12]}"


def _load(path: Path, structure: Structure) -> ResidueGraph | None:
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in _ARRAYS}
    except Exception as err:  # a damaged entry is computed again
        log.warning("ignoring unreadable cache entry %s (%s)", path, err)
        return None
    return ResidueGraph(id=structure.id, **arrays)


def _save(path: Path, graph: ResidueGraph) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: getattr(graph, k) for k in _ARRAYS})


def featurize(structures: Sequence[Structure], *, esm: dict | None = None, pockets: bool = False,
              cache_dir: str | Path | None = None, progress: bool = False) -> list[ResidueGraph]:
    """Residue graphs of ``structures`` (``esm``: optional id → (L, E) embeddings, added after
    the cache; ``pockets``: append the pocket columns and their 10 Å neighbourhood means)."""
    graphs = []
    for s in progress_bar(structures, desc="residue graphs", disable=not progress):
        key = graph_key(s, pockets=pockets) if cache_dir is not None else None
        path = Path(cache_dir) / f"{key}.npz" if key else None
        graph = _load(path, s) if path is not None and path.is_file() else None
        if graph is None:
            graph = build_graph(s, extra=pocket_features(s)[0] if pockets else None)
            if path is not None:
                _save(path, graph)
        if pockets:  # the pocket columns' neighbourhood means, computed from the cached columns
            own = graph.feats[:, -N_POCKET_FEATURES:]
            graph = ResidueGraph(graph.id, graph.aa, np.concatenate([graph.feats, pocket_context(graph.ca, own)], 1),
                                 graph.ca, graph.frames)
        if esm is not None:
            graph = ResidueGraph(graph.id, graph.aa, graph.feats, graph.ca, graph.frames,
                                 checked_esm(graph.id, esm[s.id], len(graph)))
        graphs.append(graph)
    return graphs


def baseline_scores(graph: ResidueGraph) -> np.ndarray:
    """The cavity-detection baseline of a graph :func:`featurize` built with pocket columns."""
    own = graph.feats[:, -2 * N_POCKET_FEATURES:-N_POCKET_FEATURES]
    return cavity_baseline(own[:, -N_CAVITY_COLUMNS:])


def residue_embeddings(spec: str | None, structures: Sequence[Structure], cache_dir) -> dict | None:
    """id → (L, E) per-residue embeddings of ``spec`` (an encoder as 02 names it: an ESM-2
    checkpoint or model), cached in ``cache_dir``; None without a spec."""
    if spec is None:
        return None
    encoder = get_encoder(spec)
    if not getattr(encoder, "per_residue_supported", False):
        raise InputError(f"esm={spec!r} gives no per-residue embeddings: name an ESM-2 checkpoint or model")
    rows = encoder.embed([s.sequence for s in structures], per_residue=True, ids=[s.id for s in structures],
                         cache_dir=cache_dir, progress=True)
    return {s.id: np.asarray(r, dtype=np.float32) for s, r in zip(structures, rows)}
