"""The classical baseline encoder: k-mer TF-IDF + truncated SVD (latent semantic analysis).

Each protein is a bag of overlapping k-mers (k = 3 by default), weighted by TF-IDF with
sublinear term frequency, projected to ``dim`` components by a truncated SVD fitted on the
proteins being embedded, and L2-normalised. Deterministic for a seed. Because the SVD is
fitted on the input set, the embedding of a protein depends on its companions, so these
embeddings are never cached per sequence.
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from protlab.core.errors import InputError
from protlab.embed.sequences import clean_sequences

KMER_DIM = 128  # SVD components (02's default too)


class KmerEncoder:
    """``KmerEncoder(k=3, dim=128).embed(sequences)`` → ``(n, dim)`` float32 array."""

    per_residue_supported = False

    def __init__(self, *, k: int = 3, dim: int = KMER_DIM, seed: int = 0, normalize: bool = True):
        if k < 1 or dim < 1:
            raise InputError(f"kmer encoder needs k >= 1 and dim >= 1 (got k={k}, dim={dim})")
        self.k, self.requested_dim, self.seed, self.normalize = int(k), int(dim), int(seed), normalize
        self.dim = self.requested_dim
        self.capped_by: str | None = None  # what limited dim below requested_dim, once fitted
        self.explained_variance_ratio: float | None = None
        self.name = f"kmer{self.k}"
        self.cache_key = None  # fitted on the input set: nothing to cache per sequence
        self.layer = None

    def __repr__(self) -> str:
        return f"KmerEncoder(k={self.k}, dim={self.requested_dim}, seed={self.seed})"

    def embed(self, sequences, *, per_residue: bool = False, **_ignored) -> np.ndarray:
        """Fit TF-IDF + SVD on ``sequences`` and return their embeddings.

        ``dim`` shrinks (``self.dim`` and ``self.capped_by`` say so) when fewer proteins or
        k-mers than ``dim`` exist. A sequence shorter than ``k`` has no k-mer, so no place in
        the space (its row would be all zeros): an :class:`InputError` names it.
        """

        if per_residue:
            raise InputError("the kmer encoder has no per-residue embeddings; use an ESM encoder "
                             "(e.g. encoder='tiny' or an ESM-2 checkpoint) for per_residue=True")
        seqs = clean_sequences(sequences)
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(self.k, self.k), lowercase=False,
                                     sublinear_tf=True, dtype=np.float64)
        try:
            tfidf = vectorizer.fit_transform(seqs)
        except ValueError as exc:  # every sequence shorter than k
            raise InputError(f"no {self.k}-mers in the input: every sequence is shorter than {self.k} residues") from exc
        n, features = tfidf.shape
        empty = np.flatnonzero(tfidf.getnnz(axis=1) == 0)
        if len(empty):
            raise InputError(f"{len(empty)} of {n} sequences are shorter than {self.k} residues (rows "
                             f"{empty[:5].tolist()}, e.g. {seqs[empty[0]]!r}): with no {self.k}-mer the kmer encoder "
                             f"cannot place them; drop them (01_curate min_length={self.k}) or use an ESM encoder")
        dim = min(self.requested_dim, n - 1, features - 1)
        self.capped_by = None if dim == self.requested_dim else (
            f"{n} proteins" if n - 1 <= features - 1 else f"{features} distinct {self.k}-mers")
        if dim < 1:
            raise InputError(f"the kmer encoder needs at least 2 distinct proteins and {self.k}-mers "
                             f"to fit an SVD (got {n} proteins, {features} distinct {self.k}-mers)")
        svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=7, random_state=self.seed)
        out = svd.fit_transform(tfidf)
        # Sign convention: make each component's largest loading positive (run-to-run stable).
        signs = np.sign(out[np.abs(out).argmax(axis=0), np.arange(dim)])
        out *= np.where(signs == 0, 1.0, signs)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms == 0, 1.0, norms)
        self.dim = dim
        self.explained_variance_ratio = float(svd.explained_variance_ratio_.sum())
        return out.astype(np.float32)

    def meta(self) -> dict:
        """What ``embeddings.json`` records: the fitted ``dim`` beside the ``requested_dim`` and,
        when the data capped it, ``dim_capped_by`` (SVD components are at most proteins - 1 and
        distinct k-mers - 1)."""
        return {"encoder": self.name, "dim": int(self.dim), "layer": self.layer, "k": self.k, "seed": self.seed,
                "explained_variance": self.explained_variance_ratio, "requested_dim": self.requested_dim,
                "dim_capped_by": self.capped_by}
