"""Protein embeddings: one encoder interface over k-mer and ESM-2, the embeddings of a proteins
table, and how well their neighbours agree on labels.

``get_encoder(spec)`` returns an object with ``.embed(sequences, *, per_residue=False,
cache_dir=None)``, ``.name``, ``.dim``, ``.layer`` and ``.cache_key``:

* ``"kmer"``: 3-mer TF-IDF + truncated SVD (:mod:`protlab.embed.kmer`), fitted on the input;
* anything :func:`protlab.esm.load.load_esm` accepts (``"tiny"``, a dict of ESM2
  arguments, a pretrained name, a fair-esm ``.pt``, a Hugging Face directory, a protlab
  checkpoint): an :class:`ESMEncoder`.

ESM-2 extraction (batches, windows for long sequences, the cache, torchrun shards) is
described in :mod:`protlab.embed.esm_encoder`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from protlab.core.errors import InputError
from protlab.embed.esm_encoder import ESMEncoder
from protlab.embed.kmer import KmerEncoder
from protlab.esm.load import describe_spec, load_esm

ENCODER_CHOICES = ("kmer", "tiny", "esm2_t6_8M_UR50D", "esm2_t12_35M_UR50D", "esm2_t30_150M_UR50D",
                   "esm2_t33_650M_UR50D", "esm2_t36_3B_UR50D", "esm2_t48_15B_UR50D",
                   "a fair-esm .pt file", "a Hugging Face ESM directory", "a protlab checkpoint",
                   "a dict of ESM2 arguments")


# ------------------------------------------------------------------------ encoders
def get_encoder(spec: Any = "kmer", **opts):
    """An encoder for ``spec``: ``"kmer"``, or any ESM spec :func:`load_esm` accepts.

    ``opts`` go to the encoder (kmer: ``k``, ``dim``, ``seed``; ESM: ``repr_layer``,
    ``device``, ``toks_per_batch``, ``window``, ``stride``, ...). An encoder object passes
    through unchanged.
    """
    if hasattr(spec, "embed") and hasattr(spec, "dim"):
        return spec
    if isinstance(spec, str) and spec.strip().lower() in ("kmer", "kmer3", "3mer"):
        kmer_opts = {k: v for k, v in opts.items() if k in ("k", "dim", "seed", "normalize")}
        return KmerEncoder(**kmer_opts)
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        raise InputError(f"no encoder given; valid choices: {', '.join(ENCODER_CHOICES)}")
    try:
        model, alphabet = load_esm(spec, seed=int(opts.pop("seed", 0)))
    except InputError as exc:
        if "unknown protein encoder" in str(exc):
            raise InputError(f"unknown encoder {spec!r}; valid choices: {', '.join(ENCODER_CHOICES)}") from exc
        raise
    name = describe_spec(spec)
    if isinstance(spec, (str, os.PathLike)) and Path(str(spec)).exists():
        name = "esm:" + Path(str(spec)).name
    opts = {k: v for k, v in opts.items() if k not in ("k", "dim", "normalize")}
    return ESMEncoder(model, alphabet, name=name, spec=spec, **opts)


# --------------------------------------------------------------------- high level
def embed_proteins(proteins, encoder: Any = "kmer", *, cache_dir: str | Path | None = None,
                   per_residue: bool = False, progress: bool = True, **opts):
    """``(ids, embeddings, meta)`` for a proteins table (columns id, sequence) and an encoder spec."""
    if not hasattr(proteins, "columns") or not {"id", "sequence"} <= set(proteins.columns):
        raise InputError("embed_proteins needs a table with columns 'id' and 'sequence' (proteins.parquet)")
    enc = get_encoder(encoder, **opts)
    ids = [str(i) for i in proteins["id"]]
    emb = enc.embed(list(proteins["sequence"]), ids=ids, cache_dir=cache_dir, per_residue=per_residue,
                    progress=progress) if enc.per_residue_supported else enc.embed(list(proteins["sequence"]))
    return ids, emb, embedding_meta(enc)


def neighbour_label_agreement(embeddings, labels, *, k: int = 10) -> dict | None:
    """Share of each protein's ``k`` nearest neighbours (cosine) with its label; None without labels.

    ``{"k", "agreement" (mean over proteins), "top1" (nearest neighbour shares the label),
    "n_labelled"}``; proteins without a label are left out.
    """

    labels = np.array(["" if lab is None or (isinstance(lab, float) and math.isnan(lab)) else str(lab)
                       for lab in labels], dtype=object)
    keep = labels != ""
    x = np.asarray(embeddings, dtype=np.float32)[keep]
    labels = labels[keep]
    if len(labels) < 2 or len(set(labels)) < 2:
        return None
    k = min(k, len(labels) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x)
    idx = idx[:, 1:]  # drop self (or an exact duplicate: either shares the label)
    same = labels[idx] == labels[:, None]
    return {"k": int(k), "agreement": float(same.mean()), "top1": float(same[:, 0].mean()),
            "n_labelled": int(len(labels))}


def embedding_meta(encoder) -> dict:
    """What ``embeddings.json`` records about the encoder (encoder, dim, layer, ...)."""
    if hasattr(encoder, "meta"):
        return encoder.meta()
    meta = {"encoder": encoder.name, "dim": int(encoder.dim), "layer": encoder.layer}
    if hasattr(encoder, "k"):
        meta.update(k=encoder.k, seed=encoder.seed,
                    explained_variance=getattr(encoder, "explained_variance_ratio", None))
    return meta
