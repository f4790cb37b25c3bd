"""PocketNet, the learned pocket predictor a user would pick today, measured beside 06.

PocketNet (PyPI ``pocketnet``, MIT; a five-model ensemble that ships its weights) scores every
residue of a structure file. :func:`peer_scores` gives those scores for the residues of 06's
structures, in 06's residue order, cached per file content because one prediction takes
seconds to tens of seconds on a CPU. It is an optional dependency: without it 06 says so
(:data:`ABSENT`) and measures the cavity baseline and random picks only.

By default 06's site probability is ensembled with PocketNet's (:func:`ensemble`): the two
predictors err on different residues. The weight was chosen on validation splits drawn from
training parts of the shared complexes (docs/methods/residues.md says how), not fitted per run.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from protlab.core.atomic import atomic_save_npy
from protlab.core.errors import InputError
from protlab.core.progress import progress_bar
from protlab.curate.records import Structure

PEER = "PocketNet (learned pocket predictor, pip install pocketnet): its residue scores"
ABSENT = ("PocketNet is not installed (pip install 'protlab[peers]'): the learned peer is not measured and the "
          "site probability is 06's network alone")
CACHE_VERSION = 1  # bump when the scores kept per file change meaning
MODES = ("ensemble", "measure", "off")  # 06's `peer`: ensembled and measured, measured only, neither
PEER_WEIGHT = 0.7  # PocketNet's share of the ensembled site probability
ENSEMBLE = (f"site probability: 06's network x {1 - PEER_WEIGHT:.1f} + PocketNet's residue score x {PEER_WEIGHT:.1f}")


def peer_available() -> bool:
    return importlib.util.find_spec("pocketnet") is not None


def peer_version() -> str:
    """The installed PocketNet's version (PocketNet must be installed)."""
    import pocketnet

    return str(getattr(pocketnet, "__version__", "unknown"))


def cache_key(structure: Structure, version: str) -> str:
    """The file's bytes, the chains read and PocketNet's version: a changed one is predicted again."""
    digest = hashlib.sha256(Path(structure.source).read_bytes())
    digest.update(repr((sorted(set(structure.residue_chains())), version, CACHE_VERSION)).encode())
    return digest.hexdigest()[:32]


def residue_scores(structure: Structure, by_key: dict[str, float]) -> np.ndarray:
    """PocketNet's ``{"chain:number[insertion]": score}`` as one score per residue of ``structure``
    (0 for a residue it does not list)."""
    keys = [f"{c}:{label}" for c, label in structure.residue_keys()]
    return np.array([float(by_key.get(k, 0.0)) for k in keys], dtype=np.float32)


def peer_cache(graph_cache: str | Path | None) -> Path | None:
    """Where PocketNet's scores are kept: beside the residue graphs of the same files, so runs
    sharing a graph cache (e.g. a benchmark's seeds) predict each file once."""
    return None if graph_cache is None else Path(graph_cache) / "pocketnet"


def cache_paths(cache_dir: Path, structure: Structure, version: str) -> tuple[Path, Path]:
    """A structure's cache entry: its residue scores and PocketNet's own pockets (the pockets are
    written first, so a scores file marks a full entry)."""
    key = cache_key(structure, version)
    return cache_dir / f"{key}.npy", cache_dir / f"{key}.pockets.npy"


def peer_scores(structures: Sequence[Structure], cache_dir: str | Path | None, *, device: str = "cpu",
                progress: bool = True) -> dict[str, np.ndarray] | None:
    """``{structure id: PocketNet's score per residue}`` for structures read from files; None
    when PocketNet is not installed. Scores are cached in ``cache_dir`` (None: not kept) by file content."""
    if not peer_available():
        return None
    from pocketnet import PocketPredictor

    version, predictor, out = peer_version(), None, {}
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    for s in progress_bar(structures, desc="PocketNet (peer)", disable=not progress):
        if not s.source or not Path(s.source).is_file():
            raise InputError(f"structure {s.id!r}: PocketNet's scores need its PDB/mmCIF file (generated "
                             "structures, like the toy universe, have none)")
        path, pockets_path = cache_paths(cache_dir, s, version) if cache_dir is not None else (None, None)
        if path is not None and path.is_file():
            scores = np.load(path)
            if len(scores) == len(s):
                out[s.id] = scores
                continue
        predictor = predictor or PocketPredictor(device=device)
        result = predictor.predict(str(s.source), chains=sorted(set(s.residue_chains())))
        out[s.id] = residue_scores(s, {str(k): v for k, v in result.residue_scores.items()})
        if path is not None:
            atomic_save_npy(pockets_path, native_pockets(result))
            atomic_save_npy(path, out[s.id])
    return out


def native_pockets(result) -> np.ndarray:
    """PocketNet's own ranked pockets of one prediction: (P, 4) score and centre (x, y, z), best first."""
    rows = [[float(p.score), *map(float, p.center)] for p in result.pockets]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def peer_pockets(structures: Sequence[Structure], cache_dir: str | Path) -> dict[str, np.ndarray] | None:
    """``{structure id: PocketNet's own ranked pockets}`` (:func:`native_pockets`, from its
    surface points rather than 06's residue grouping), from the cache of :func:`peer_scores`
    (predicted there when missing); None when PocketNet is not installed."""
    if not peer_available():
        return None
    version, cache_dir, out = peer_version(), Path(cache_dir), {}
    for s in structures:
        scores_path, path = cache_paths(cache_dir, s, version)
        if not path.is_file():
            scores_path.unlink(missing_ok=True)
            peer_scores([s], cache_dir, progress=False)
        out[s.id] = np.load(path)
    return out


def ensemble(own: np.ndarray, peer: np.ndarray) -> np.ndarray:
    """The ensembled site probability of one protein's residues (:data:`PEER_WEIGHT`)."""
    own, peer = np.asarray(own, dtype=np.float64), np.asarray(peer, dtype=np.float64)
    if own.shape != peer.shape:
        raise InputError(f"{len(peer)} PocketNet scores for {len(own)} residues")
    return (1 - PEER_WEIGHT) * own + PEER_WEIGHT * peer
