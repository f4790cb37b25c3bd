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


def attribute(model: ScanClusterer, ids, sequences, clusters, embeddings, *, reference_index=None,
              threads: int | None = None, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Residue attribution of ``clusters`` (one cluster per protein) by ``model``.

    ``reference_index[i]``: protein ``i``'s row in the model's reference set (left out of its
    own evidence), -1 for a protein the model was not fitted on; None: no protein is a
    reference. Returns the long table (``id``, ``position`` 1-based, ``residue``,
    ``attribution``) and what the attribution rests on.
    """
    problem = supports(model)
    if problem:
        raise InputError(f"residue attribution: {problem}")
    ids, sequences = [str(i) for i in ids], [str(s) for s in sequences]
    clusters = np.asarray(clusters, dtype=np.int64)
    x = normalize_rows(np.asarray(embeddings, dtype=np.float32))
    n, n_ref = len(ids), len(model.graph.reference_sequences)
    if not (len(sequences) == len(clusters) == len(x) == n):
        raise InputError(f"attribution needs one sequence, cluster and embedding per protein (got {n} ids, "
                         f"{len(sequences)} sequences, {len(clusters)} clusters, {len(x)} embeddings)")
    n_clusters = model.model.args["n_clusters"]
    if n and (clusters.min() < 0 or clusters.max() >= n_clusters):
        raise InputError(f"clusters must lie in 0..{n_clusters - 1} (the model's clusters); got "
                         f"{clusters.min()}..{clusters.max()}")
    own = np.full(n, -1, dtype=np.int64) if reference_index is None else np.asarray(reference_index, dtype=np.int64)
    parts, own_weight = neighbour_parts(model)
    cfg = model.config

    # the embedding-neighbour edges (weight 1), the protein itself excluded
    fallback = int(min(cfg["fallback_k"], n_ref - 1 if (own >= 0).any() else n_ref))
    knn, _ = faiss_knn(x, model.graph.reference_embeddings, k=min(fallback + 1, n_ref), exclude_self=False,
                       index=model._reference_index())
    knn = np.where(knn == own[:, None], -1, knn)
    keep = (knn >= 0) & (np.cumsum(knn >= 0, axis=1) <= fallback)
    weak = sp.csr_matrix((np.ones(int(keep.sum())), (np.nonzero(keep)[0], knn[keep])), shape=(n, n_ref))

    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    values = np.zeros(int(offsets[-1]))
    starts = range(0, n, SEARCH_CHUNK)
    if progress:
        starts = progress_bar(starts, desc="attribution", unit="chunk", leave=False)
    explained, unattributed, agree = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for start in starts:
        rows = np.arange(start, min(start + SEARCH_CHUNK, n))
        found = search_alignments([sequences[i] for i in rows], model.graph.reference_sequences, threads=threads,
                                  max_seqs=MAX_HITS + 1)
        found["query"] = rows[found["query"]]
        other = found["target"] != own[found["query"]]
        found = {key: value[other] for key, value in found.items()}
        first = np.unique(np.stack([found["query"], found["target"]], 1), axis=0, return_index=True)[1]
        found = {key: value[np.sort(first)] for key, value in found.items()}  # one alignment per pair
        local = found["query"] - start
        hits = sp.csr_matrix((found["bits"].astype(np.float64), (local, found["target"])), shape=(len(rows), n_ref))
        affinity = (hits + weak[rows]).tocsr()
        mass = np.asarray(affinity.sum(axis=1)).ravel()
        walked = (affinity @ parts) / np.maximum(mass, 1e-12)[:, None]
        feature = walked + own_weight * x[rows] if own_weight else walked
        norm = np.linalg.norm(feature, axis=1)
        scale = np.sqrt(feature.shape[1]) / np.where(norm == 0, 1.0, norm)
        grad, predicted = head_gradients(model, feature * scale[:, None], clusters[rows])
        agree[rows] = predicted == clusters[rows]
        neighbour = (grad[local] * parts[found["target"]]).sum(1) * scale[local] / mass[local]
        hit_weight = found["bits"] * neighbour
        values += spread_over_residues(found, hit_weight, offsets, len(values))
        weak_rows = weak[rows].tocoo()
        weak_part = (grad[weak_rows.row] * parts[weak_rows.col]).sum(1) * scale[weak_rows.row] / mass[weak_rows.row]
        explained[rows] = np.bincount(local, weights=hit_weight, minlength=len(rows))
        unattributed[rows] = np.bincount(weak_rows.row, weights=np.abs(weak_part), minlength=len(rows))
        if own_weight:
            unattributed[rows] += np.abs(own_weight * (grad * x[rows]).sum(1) * scale)
        unattributed[rows] /= np.maximum(np.abs(explained[rows]) + unattributed[rows], 1e-12)
    frame = pd.DataFrame({
        "id": np.repeat(np.asarray(ids, dtype=object), np.diff(offsets)),
        "position": np.concatenate([np.arange(1, len(s) + 1) for s in sequences]) if n else np.zeros(0, np.int64),
        "residue": np.asarray(list("".join(sequences)), dtype=object),
        "attribution": values.astype(np.float32),
    })
    info = {"method": "gradient x input of the own cluster's head score, spread over residues by alignment scores",
            "graph_features": model.graph.kind, "n_proteins": n, "n_residues": int(len(values)),
            "head_agrees_with_clusters": float(agree.mean()) if n else None,
            "unattributed_share_median": float(np.median(unattributed)) if n else None,
            "without_homologs": int(np.sum(explained == 0))}
    return frame, info
