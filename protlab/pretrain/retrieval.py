"""Evaluation of protein–text alignment: retrieval (MRR, R@1, R@10) and zero-shot classes.

Proteins longer than the crop length are embedded by overlapping windows whose pooled
states are averaged (weighted by window length) before projection. Identical texts give
tied scores; ranks are then the expectation under random tie-breaking, so a model cannot
gain or lose from the order of duplicates.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from protlab.core.errors import InputError
from protlab.core.windows import sliding_windows
from protlab.curate.records import TEXT_FIELDS
from protlab.pretrain.data import Collator, compose_text

TIE_TOL = 1e-5


@torch.no_grad()
def encode_proteins(model, sequences, collator: Collator, *, crop_length: int, stride: int | None = None,
                   batch_size: int = 32, device: str = "cpu", autocast=None) -> np.ndarray:
    """Normalised shared-space embeddings (N, d) of sequences of any length."""
    pieces, owner, sizes = [], [], []
    for i, seq in enumerate(sequences):
        for start, end in sliding_windows(len(seq), crop_length, stride):
            pieces.append(seq[start:end])
            owner.append(i)
            sizes.append(end - start)
    order = np.argsort([len(p) for p in pieces], kind="stable")  # length-sorted batches pad less
    pooled = [None] * len(pieces)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        tokens = collator.encode_sequences([pieces[j] for j in idx]).to(device)
        with autocast() if autocast else _null():
            states, _ = model.protein_states(tokens)
            vec = model.pool_protein(states, tokens).float()
        for j, v in zip(idx, vec):
            pooled[j] = v
    dim = pooled[0].shape[-1]
    total = torch.zeros(len(sequences), dim, device=device)
    weight = torch.zeros(len(sequences), 1, device=device)
    for v, i, n in zip(pooled, owner, sizes):
        total[i] += n * v
        weight[i] += n
    with autocast() if autocast else _null():
        out = model.protein_proj(total / weight)
    return F.normalize(out.float(), dim=-1).cpu().numpy()


@torch.no_grad()
def embed_texts(model, texts, collator: Collator, *, max_length: int, batch_size: int = 32,
                device: str = "cpu", autocast=None) -> np.ndarray:
    out = []
    texts = list(texts)
    for b in range(0, len(texts), batch_size):
        ids, mask = collator.encode_texts(texts[b:b + batch_size], max_length)
        with autocast() if autocast else _null():
            out.append(model.embed_text(ids.to(device), mask.to(device)).float().cpu())
    return torch.cat(out).numpy()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def expected_ranks(scores: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: ``(#candidates scoring strictly higher, #other candidates tied)`` with the truth."""
    s_true = scores[np.arange(len(true)), true][:, None]
    higher = (scores > s_true + TIE_TOL).sum(1)
    tied = (np.abs(scores - s_true) <= TIE_TOL).sum(1) - 1
    return higher, tied


def ranking_metrics(scores: np.ndarray, true: np.ndarray, ks=(1, 10)) -> dict[str, float]:
    """MRR and recall@k, expectations under random tie-breaking."""
    higher, tied = expected_ranks(scores, true)
    rr = [np.mean(1.0 / np.arange(g + 1, g + t + 2)) for g, t in zip(higher, tied)]
    out = {"mrr": float(np.mean(rr))}
    for k in ks:
        out[f"recall_at_{k}"] = float(np.mean(np.clip(k - higher, 0, tied + 1) / (tied + 1)))
    return out


def retrieval_metrics(protein_emb: np.ndarray, text_emb: np.ndarray) -> dict:
    """Protein→text (top-level keys) and text→protein (``text_to_protein``) retrieval of pair i."""
    if protein_emb.shape != text_emb.shape:
        raise InputError(f"{protein_emb.shape[0]} protein vs {text_emb.shape[0]} text embeddings: pairs must align")
    scores = protein_emb @ text_emb.T
    true = np.arange(len(scores))
    out = ranking_metrics(scores, true)
    out["text_to_protein"] = ranking_metrics(scores.T, true)
    out["n_pairs"] = int(len(scores))
    return out


def class_prompts(train_pairs: pd.DataFrame, *, field: str = "all",
                  template: str = "{label}") -> dict[str, str | list[str]]:
    """Text prompt(s) per label, built from the training pairs of that label only.

    ``field="ensemble"``: every distinct training text of the label (a CLIP-style prompt
    ensemble: the class embedding is the mean of their embeddings, see :func:`prompt_embeddings`);
    ``field="all"``: the label's most common value of each property, in the pretraining text
    format (``PROTEIN NAME: …; FUNCTION: …; …``); a property name (e.g. ``"similarity"``):
    that property's most common value. ``template`` (``{label}``) when nothing is known.
    """
    def modal(group, name):
        if name not in group.columns:
            return None
        values = group[name].dropna().astype(str)
        values = values[values.str.strip() != ""]
        return str(values.value_counts().index[0]) if len(values) else None

    prompts = {}
    if "label" not in train_pairs.columns:
        return prompts
    labelled = train_pairs[has_label(train_pairs["label"])]
    for label, group in labelled.groupby(labelled["label"].astype(str), sort=True):
        if field == "ensemble":
            texts = [t for t in dict.fromkeys(group["text"].dropna().astype(str)) if t.strip()]
            prompts[str(label)] = texts or [template.format(label=label)]
            continue
        if field == "all":
            text = compose_text({f: modal(group, f) for f in TEXT_FIELDS})
        else:
            text = modal(group, field)
        prompts[str(label)] = text or template.format(label=label)
    return prompts


def prompt_embeddings(model, prompts: dict[str, str | list[str]], classes, collator: Collator, *,
                      max_length: int, batch_size: int = 32, device: str = "cpu", autocast=None) -> np.ndarray:
    """One normalised embedding per class: its prompt's, or the mean of its prompts' (an ensemble)."""
    groups = [[prompts[c]] if isinstance(prompts[c], str) else list(prompts[c]) for c in classes]
    if any(not g for g in groups):
        raise InputError(f"class(es) {[c for c, g in zip(classes, groups) if not g][:5]} have no prompt text")
    flat = [t for g in groups for t in g]
    emb = embed_texts(model, flat, collator, max_length=max_length, batch_size=batch_size, device=device,
                      autocast=autocast)
    bounds = np.cumsum([0] + [len(g) for g in groups])
    out = np.stack([emb[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def has_label(labels) -> np.ndarray:
    """Which entries carry a label (not None, NaN or blank)."""
    series = pd.Series(list(labels), dtype=object)
    return (series.notna() & (series.astype(str).str.strip() != "")).to_numpy()


def zero_shot_accuracy(protein_emb: np.ndarray, prompt_emb: np.ndarray, labels, classes) -> tuple[float | None, dict]:
    """``(accuracy, coverage)``: each protein gets the class whose prompt embedding is closest.

    Only proteins whose label has a prompt are scored: a real collection has rare labels that
    fall only in the held-out splits, and a class without training texts has no prompt.
    ``coverage`` counts the scored proteins, the labelled ones and the labels left out;
    the accuracy is None when no protein can be scored.
    """
    classes = [str(c) for c in classes]
    labels = list(labels)
    labelled = has_label(labels)
    text = np.array([str(lab) for lab in labels], dtype=object)
    scored = labelled & np.isin(text, classes) if len(classes) else np.zeros(len(labels), dtype=bool)
    coverage = {"scored": int(scored.sum()), "labelled": int(labelled.sum()), "proteins": len(labels),
                "labels_without_prompt": sorted(set(text[labelled & ~scored]))[:20]}
    if not scored.any():
        return None, coverage
    pred = np.asarray(classes)[np.argmax(protein_emb[scored] @ prompt_emb.T, axis=1)]
    return float(np.mean(pred == text[scored])), coverage


def evaluate_alignment(model, eval_pairs: pd.DataFrame, prompts: dict[str, str], collator: Collator, *,
                       crop_length: int, stride: int | None, max_text_length: int, batch_size: int = 32,
                       device: str = "cpu", autocast=None) -> dict:
    """Retrieval both directions and zero-shot accuracy on ``eval_pairs``."""
    was_training = model.training
    model.eval()
    try:
        p = encode_proteins(model, list(eval_pairs["sequence"]), collator, crop_length=crop_length, stride=stride,
                           batch_size=batch_size, device=device, autocast=autocast)
        t = embed_texts(model, list(eval_pairs["text"]), collator, max_length=max_text_length,
                        batch_size=batch_size, device=device, autocast=autocast)
        classes = sorted(prompts)
        c = prompt_embeddings(model, prompts, classes, collator, max_length=max_text_length,
                              batch_size=batch_size, device=device, autocast=autocast) if classes else None
    finally:
        model.train(was_training)
    out = retrieval_metrics(p, t)
    labels = list(eval_pairs["label"]) if "label" in eval_pairs.columns else [None] * len(eval_pairs)
    out["zero_shot_acc"], coverage = zero_shot_accuracy(p, c, labels, classes)
    out["zero_shot_coverage"] = coverage["scored"] / max(len(labels), 1)
    out["zero_shot"] = coverage
    out["n_classes"] = len(classes)
    return out


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Trained vs untrained, one row per metric (protein→text, text→protein, zero-shot)."""
    rows = []
    untrained = metrics.get("untrained") or {}
    for direction, get in (("protein→text", lambda m: m), ("text→protein", lambda m: m.get("text_to_protein", {}))):
        for key in ("mrr", "recall_at_1", "recall_at_10"):
            rows.append({"metric": f"{direction} {key}", "trained": get(metrics).get(key),
                         "untrained": get(untrained).get(key) if untrained else None})
    rows.append({"metric": "zero-shot family accuracy", "trained": metrics.get("zero_shot_acc"),
                 "untrained": untrained.get("zero_shot_acc")})
    return pd.DataFrame(rows).set_index("metric")

