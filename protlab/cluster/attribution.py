"""Residue attribution of the clustering network: which residues make a protein a member.

The trained model places a protein as it places any new one (:meth:`ScanClusterer.transform`):
its head input ``z`` is built from the graph features ``F_j`` of the reference proteins it
is homologous to, weighted by the bit scores of its MMseqs2 alignments to them (plus
weight-1 edges to its nearest embeddings), and the head scores every cluster from ``z``.
The attribution follows that path backwards, with the protein itself left out of the
reference set:

1. **head**: gradient × input of the own cluster's score (logit minus the mean logit, the
   part softmax sees) at ``z``, so each neighbour ``j`` gets ``c_j = g · z_j``, where ``z_j``
   is its share of ``z`` (``z`` is a weighted sum of neighbour features, scaled by one
   number per protein);
2. **alignments**: each homologous neighbour's ``c_j`` is spread over the protein's residues
   in proportion to each aligned residue's BLOSUM62 score in that alignment (a residue that
   matches the neighbour adds to the bit score, a mismatch takes from it; gaps and unaligned
   residues get nothing from it).

A residue's attribution is the sum over neighbours. It is high where the protein's residues
align well to neighbours that the head takes as evidence for the protein's cluster, and
negative where they align to neighbours that pull towards another. No family alignment or
profile enters: conservation is the benchmark's check (``benchmarks/quality_attribution.py``),
not the source. The embedding-neighbour edges carry no residue evidence; their share of the
score is recorded as ``unattributed_share``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from protlab.cluster.graph_features import DIFFUSION_ALPHA
from protlab.cluster.scan import ScanClusterer
from protlab.cluster.neighbors import MAX_HITS, faiss_knn, normalize_rows
from protlab.core.alphabet import AMINO_ACIDS, BLOSUM62
from protlab.core.errors import InputError
from protlab.core.mmseqs import search_alignments
from protlab.core.progress import progress_bar

COLUMNS = ("id", "position", "residue", "attribution")
SEARCH_CHUNK = 4000  # queries per alignment search: bounds the alignment strings held at once
_SCORES = np.zeros((256, 256), dtype=np.float32)  # BLOSUM62 by byte; anything else (X, gaps) scores 0
_CODES = np.frombuffer(AMINO_ACIDS.encode(), dtype=np.uint8)
_SCORES[np.ix_(_CODES, _CODES)] = np.asarray(BLOSUM62, dtype=np.float32)


def supports(model: ScanClusterer) -> str | None:
    """Why ``model`` cannot be attributed to residues, or None when it can."""
    if model.graph.source != "mmseqs" or model.graph.reference_sequences is None:
        return ("the model placed proteins by embedding neighbours only (neighbors='faiss'): residue attribution "
                "follows homology alignments; fit 04 with neighbors='mmseqs' (the default with sequences)")
    return None


def neighbour_parts(model: ScanClusterer) -> tuple[np.ndarray, float]:
    """``(F', own)``: each reference protein's features as they enter a new protein's head
    input (before the per-protein scaling) and the weight of the protein's own embedding."""
    features = model.graph.reference_features.astype(np.float64)
    if model.graph.kind == "spectral":
        return features * model.graph.spectral_scale[None, :].astype(np.float64), 0.0
    if model.graph.kind == "diffusion":
        return (1 - DIFFUSION_ALPHA) * features, DIFFUSION_ALPHA
    raise InputError(f"graph_features={model.graph.kind!r}: the head input holds no homology evidence to attribute")


def head_gradients(model: ScanClusterer, z: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(g, predicted)``: the gradient of each row's own-cluster score (logit minus the mean
    logit) at the head input ``z``, and the head's argmax there."""
    import torch

    net = model.model.eval()
    inputs = torch.from_numpy(z.astype(np.float32)).requires_grad_(True)
    logits = net(inputs)[0]
    own = logits.gather(1, torch.from_numpy(clusters.astype(np.int64))[:, None])[:, 0]
    (own - logits.mean(dim=1)).sum().backward()  # rows are independent: BatchNorm runs in eval mode
    return inputs.grad.numpy().astype(np.float64), logits.argmax(dim=1).numpy()


def aligned_columns(alignments: dict) -> dict[str, np.ndarray]:
    """Every column of every alignment at once: ``which`` alignment, the query and target
    residue bytes and their 0-based positions in their sequences (meaningful where the
    byte is not a gap)."""
    qaln, taln = alignments["qaln"], alignments["taln"]
    lengths = np.fromiter((len(a) for a in qaln), dtype=np.int64, count=len(qaln))
    q = np.frombuffer("".join(qaln).encode("ascii"), dtype=np.uint8)
    t = np.frombuffer("".join(taln).encode("ascii"), dtype=np.uint8)
    if len(q) != len(t):
        raise InputError("MMseqs2 returned query and target alignment strings of different lengths")
    which = np.repeat(np.arange(len(qaln)), lengths)
    ends = np.cumsum(lengths) - 1

    def positions(chars: np.ndarray, start: np.ndarray) -> np.ndarray:
        seen = np.cumsum(chars != ord("-"))  # residues up to and including each column
        before = np.concatenate([[0], seen[ends[:-1]]]) if len(lengths) else seen[:0]
        return start[which] - 1 + seen - before[which] - 1

    return {"which": which, "q": q, "t": t, "qpos": positions(q, alignments["qstart"]),
            "tpos": positions(t, alignments["tstart"]) if "tstart" in alignments else None}


def spread_over_residues(alignments: dict, weights: np.ndarray, offsets: np.ndarray, total: int) -> np.ndarray:
    """Each alignment's weight spread over its query's residues by their BLOSUM62 share of the
    alignment's score; ``offsets[q]`` is query ``q``'s first slot in the flat output."""
    cols = aligned_columns(alignments)
    which, q, t = cols["which"], cols["q"], cols["t"]
    score = _SCORES[q, t] * (t != ord("-"))
    total_score = np.bincount(which, weights=score, minlength=len(alignments["qaln"]))
    usable = total_score[which] > 0
    share = np.where(usable, score / np.where(usable, total_score[which], 1.0), 0.0)
    slot = offsets[alignments["query"][which]] + cols["qpos"]
    keep = (q != ord("-")) & usable
    return np.bincount(slot[keep], weights=(weights[which] * share)[keep], minlength=total)


def _checked_inputs(model: ScanClusterer, ids, sequences, clusters, embeddings) -> tuple:
    """``(ids, sequences, clusters, x)`` as strings, cluster indices and unit embeddings, once they fit
    together and the model."""
    problem = supports(model)
    if problem:
        raise InputError(f"residue attribution: {problem}")
    ids, sequences = [str(i) for i in ids], [str(s) for s in sequences]
    clusters = np.asarray(clusters, dtype=np.int64)
    x = normalize_rows(np.asarray(embeddings, dtype=np.float32))
    n = len(ids)
    if not (len(sequences) == len(clusters) == len(x) == n):
        raise InputError(f"attribution needs one sequence, cluster and embedding per protein (got {n} ids, "
                         f"{len(sequences)} sequences, {len(clusters)} clusters, {len(x)} embeddings)")
    n_clusters = model.model.args["n_clusters"]
    if n and (clusters.min() < 0 or clusters.max() >= n_clusters):
        raise InputError(f"clusters must lie in 0..{n_clusters - 1} (the model's clusters); got "
                         f"{clusters.min()}..{clusters.max()}")
    return ids, sequences, clusters, x


def _embedding_edges(model: ScanClusterer, x: np.ndarray, own: np.ndarray) -> sp.csr_matrix:
    """The embedding-neighbour edges (weight 1) of each protein, the protein itself excluded."""
    n, n_ref = len(x), len(model.graph.reference_sequences)
    fallback = int(min(model.config["fallback_k"], n_ref - 1 if (own >= 0).any() else n_ref))
    knn, _ = faiss_knn(x, model.graph.reference_embeddings, k=min(fallback + 1, n_ref), exclude_self=False,
                       index=model._reference_index())
    knn = np.where(knn == own[:, None], -1, knn)
    keep = (knn >= 0) & (np.cumsum(knn >= 0, axis=1) <= fallback)
    return sp.csr_matrix((np.ones(int(keep.sum())), (np.nonzero(keep)[0], knn[keep])), shape=(n, n_ref))


def _alignments_to_others(model: ScanClusterer, sequences: list[str], rows: np.ndarray, own: np.ndarray,
                          threads: int | None) -> dict:
    """The alignments of the proteins ``rows`` to the reference set, ``query`` renumbered to
    protein indices, without each protein's own reference row and with one alignment per pair."""
    found = search_alignments([sequences[i] for i in rows], model.graph.reference_sequences, threads=threads,
                              max_seqs=MAX_HITS + 1)
    found["query"] = rows[found["query"]]
    other = found["target"] != own[found["query"]]
    found = {key: value[other] for key, value in found.items()}
    first = np.unique(np.stack([found["query"], found["target"]], 1), axis=0, return_index=True)[1]
    return {key: value[np.sort(first)] for key, value in found.items()}


def _head_inputs(affinity: sp.csr_matrix, parts: np.ndarray, own_weight: float,
                 x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, scale, mass)``: each row's head input as the model builds it from its ``affinity``
    to the reference proteins, the per-protein scaling in it and the row's affinity mass."""
    mass = np.asarray(affinity.sum(axis=1)).ravel()
    walked = (affinity @ parts) / np.maximum(mass, 1e-12)[:, None]
    feature = walked + own_weight * x if own_weight else walked
    norm = np.linalg.norm(feature, axis=1)
    scale = np.sqrt(feature.shape[1]) / np.where(norm == 0, 1.0, norm)
    return feature * scale[:, None], scale, mass


def _edge_contributions(grad: np.ndarray, parts: np.ndarray, row: np.ndarray, col: np.ndarray, scale: np.ndarray,
                        mass: np.ndarray) -> np.ndarray:
    """Gradient × input of each edge ``row -> col``: its share of the row's head input times the gradient
    (per unit edge weight)."""
    return (grad[row] * parts[col]).sum(1) * scale[row] / mass[row]


def _unattributed_share(grad: np.ndarray, parts: np.ndarray, weak: sp.csr_matrix, scale: np.ndarray,
                        mass: np.ndarray, own_part: np.ndarray | None, explained: np.ndarray) -> np.ndarray:
    """Each row's share of the score that no alignment carries: its embedding-neighbour edges
    ``weak`` and, with ``own_part``, its own embedding."""
    edges = weak.tocoo()
    weak_part = _edge_contributions(grad, parts, edges.row, edges.col, scale, mass)
    out = np.bincount(edges.row, weights=np.abs(weak_part), minlength=len(grad))
    if own_part is not None:
        out += np.abs(own_part)
    return out / np.maximum(np.abs(explained) + out, 1e-12)


def _residue_table(ids: list[str], sequences: list[str], offsets: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """The long table: one row per residue (``id``, ``position`` 1-based, ``residue``, ``attribution``)."""
    return pd.DataFrame({
        "id": np.repeat(np.asarray(ids, dtype=object), np.diff(offsets)),
        "position": np.concatenate([np.arange(1, len(s) + 1) for s in sequences]) if ids else np.zeros(0, np.int64),
        "residue": np.asarray(list("".join(sequences)), dtype=object),
        "attribution": values.astype(np.float32),
    })


def attribute(model: ScanClusterer, ids, sequences, clusters, embeddings, *, reference_index=None,
              threads: int | None = None, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Residue attribution of ``clusters`` (one cluster per protein) by ``model``.

    ``reference_index[i]``: protein ``i``'s row in the model's reference set (left out of its
    own evidence), -1 for a protein the model was not fitted on; None: no protein is a
    reference. Returns the long table (``id``, ``position`` 1-based, ``residue``,
    ``attribution``) and what the attribution rests on.
    """
    ids, sequences, clusters, x = _checked_inputs(model, ids, sequences, clusters, embeddings)
    n, n_ref = len(ids), len(model.graph.reference_sequences)
    own = np.full(n, -1, dtype=np.int64) if reference_index is None else np.asarray(reference_index, dtype=np.int64)
    parts, own_weight = neighbour_parts(model)
    weak = _embedding_edges(model, x, own)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    values = np.zeros(int(offsets[-1]))
    starts = range(0, n, SEARCH_CHUNK)
    if progress:
        starts = progress_bar(starts, desc="attribution", unit="chunk", leave=False)
    explained, unattributed, agree = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for start in starts:
        rows = np.arange(start, min(start + SEARCH_CHUNK, n))
        found = _alignments_to_others(model, sequences, rows, own, threads)
        local = found["query"] - start
        hits = sp.csr_matrix((found["bits"].astype(np.float64), (local, found["target"])), shape=(len(rows), n_ref))
        z, scale, mass = _head_inputs((hits + weak[rows]).tocsr(), parts, own_weight, x[rows])
        grad, predicted = head_gradients(model, z, clusters[rows])
        agree[rows] = predicted == clusters[rows]
        hit_weight = found["bits"] * _edge_contributions(grad, parts, local, found["target"], scale, mass)
        values += spread_over_residues(found, hit_weight, offsets, len(values))
        explained[rows] = np.bincount(local, weights=hit_weight, minlength=len(rows))
        own_part = own_weight * (grad * x[rows]).sum(1) * scale if own_weight else None
        unattributed[rows] = _unattributed_share(grad, parts, weak[rows], scale, mass, own_part, explained[rows])
    info = {"method": "gradient x input of the own cluster's head score, spread over residues by alignment scores",
            "graph_features": model.graph.kind, "n_proteins": n, "n_residues": int(len(values)),
            "head_agrees_with_clusters": float(agree.mean()) if n else None,
            "unattributed_share_median": float(np.median(unattributed)) if n else None,
            "without_homologs": int(np.sum(explained == 0))}
    return _residue_table(ids, sequences, offsets, values), info
