"""PocketNet, the learned pocket predictor a user would pick today, measured beside 06.

PocketNet (PyPI ``pocketnet``, MIT; a five-model ensemble that ships its weights) scores every
residue of a structure file. :func:`peer_scores` gives those scores for the residues of 06's
structures, in 06's residue order, cached per file content because one prediction takes
seconds to tens of seconds on a CPU. It is an optional dependency: without it 06 says so
(:data:`ABSENT`) and measures the cavity baseline and random picks only.

Its scores are also input features of 06's site model (:func:`peer_columns`, as P2Rank builds
on fpocket): the score, its rank within the protein and its mean over the residues within
10 Å. A model trained with them needs PocketNet wherever it is applied
(:func:`scores_for_model`).
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from protlab.core.atomic import atomic_path
from protlab.core.errors import InputError
from protlab.core.progress import progress_bar
from protlab.curate.records import Structure
from protlab.residues.pockets import pocket_context

PEER = "PocketNet (learned pocket predictor, pip install pocketnet): its residue scores"
ABSENT = "PocketNet is not installed (pip install pocketnet): the learned peer is not measured"
CACHE_VERSION = 1  # bump when the scores kept per file change meaning
PEER_FEATURES = ("peer_score", "peer_rank_in_protein", "peer_score_within_10A")
N_PEER_FEATURES = len(PEER_FEATURES)
MODES = ("features", "measure", "off")  # 06's `peer`: its scores as inputs and measured, measured only, neither
NEEDED = ("this model was trained with PocketNet's residue scores as input features (peer='features'): install "
          "PocketNet (pip install 'protlab[peers]') to apply it")


def peer_available() -> bool:
    return importlib.util.find_spec("pocketnet") is not None


def _version() -> str:
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
    keys = [f"{c}:{label}" for c, label in zip(structure.residue_chains(), structure.residue_labels())]
    return np.array([float(by_key.get(k, 0.0)) for k in keys], dtype=np.float32)


def peer_cache(graph_cache: str | Path | None) -> Path | None:
    """Where PocketNet's scores are kept: beside the residue graphs of the same files, so runs
    sharing a graph cache (e.g. a benchmark's seeds) predict each file once."""
    return None if graph_cache is None else Path(graph_cache) / "pocketnet"


def peer_scores(structures: Sequence[Structure], cache_dir: str | Path | None, *, device: str = "cpu",
                progress: bool = True) -> dict[str, np.ndarray] | None:
    """``{structure id: PocketNet's score per residue}`` for structures read from files; None
    when PocketNet is not installed. Scores are cached in ``cache_dir`` (None: not kept) by file content."""
    if not peer_available():
        return None
    from pocketnet import PocketPredictor

    version, predictor, out = _version(), None, {}
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    for s in progress_bar(structures, desc="PocketNet (peer)", disable=not progress):
        if not s.source or not Path(s.source).is_file():
            raise InputError(f"structure {s.id!r}: PocketNet's scores need its PDB/mmCIF file (generated "
                             "structures, like the toy universe, have none)")
        path = cache_dir / f"{cache_key(s, version)}.npy" if cache_dir is not None else None
        if path is not None and path.is_file():
            scores = np.load(path)
            if len(scores) == len(s):
                out[s.id] = scores
                continue
        predictor = predictor or PocketPredictor(device=device)
        result = predictor.predict(str(s.source), chains=sorted(set(s.residue_chains())))
        out[s.id] = residue_scores(s, {str(k): v for k, v in result.residue_scores.items()})
        if path is not None:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, out[s.id])
    return out


def scores_for_model(peer_features: bool, structures: Sequence[Structure], cache_dir) -> dict | None:
    """PocketNet's scores of ``structures`` when a model was trained with them (``peer_features``),
    else None; an error saying what to install when it needs them and PocketNet is absent."""
    if not peer_features:
        return None
    scores = peer_scores(structures, cache_dir)
    if scores is None:
        raise InputError(NEEDED)
    return scores


def peer_columns(scores: np.ndarray, ca: np.ndarray) -> np.ndarray:
    """(L, 3) input columns from one protein's PocketNet scores (:data:`PEER_FEATURES`): the
    score, its rank within the protein (0 lowest, 1 highest; ties share their mean rank) and
    its mean over the residues within 10 Å (Cα)."""
    scores = np.asarray(scores, dtype=np.float32)
    if len(scores) != len(ca):
        raise InputError(f"{len(scores)} PocketNet scores for {len(ca)} residues")
    rank = ((rankdata(scores) - 1) / max(len(scores) - 1, 1)).astype(np.float32)  # ties: their mean rank
    return np.concatenate([scores[:, None], rank[:, None], pocket_context(ca, scores[:, None])], 1)
