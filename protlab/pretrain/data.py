"""Protein–text pairs for pretraining: loading, batching, cropping and masking, and the stream
of micro-batches the training loop draws (worker processes may build them ahead).

Pairs come from ``run_dir/proteins.parquet`` (01_curate): a ``text`` column (or the four
UniProt properties it is built from) and a ``split`` column. Batches are a pure function
of ``(seed, micro-step, rank)``: the epoch permutation is drawn from ``(seed, epoch)`` and
crops and masks from ``(seed, micro-step, rank)``, so a resumed run sees exactly the
batches an uninterrupted one would, given only the micro-step it stopped at.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.curate.records import TEXT_FIELDS

IGNORE = -100
FIELD_TITLES = {"protein_name": "PROTEIN NAME", "function": "FUNCTION",
                "subcellular_location": "SUBCELLULAR LOCATION", "similarity": "SIMILARITY"}


def _present(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(str(value).strip())


def compose_text(row) -> str:
    """The pair's text: ``PROTEIN NAME: …; FUNCTION: …`` from whichever properties are present."""
    parts = [f"{FIELD_TITLES[f]}: {row[f]}" for f in TEXT_FIELDS if f in row and _present(row[f])]
    return "; ".join(parts)


def load_pairs(source, *, split: str | None = None) -> pd.DataFrame:
    """Pairs (id, sequence, text, label, the four properties) of one split, or of several
    joined by ``+`` (``"valid+test"``).

    ``source`` is a run directory, a parquet path or a DataFrame. Pairs with empty text
    are an error naming them (curation should have dropped them).
    """
    where = "<DataFrame>"
    if isinstance(source, pd.DataFrame):
        frame = source
    else:
        path = Path(source)
        if path.is_dir():
            path = RunDir(path).require("proteins")
        elif not path.is_file():
            raise InputError(f"{path} does not exist: run 01_curate.ipynb (protlab.curate.run) with this run_dir "
                             "first")
        frame, where = pd.read_parquet(path), str(path)
    for col in ("id", "sequence"):
        if col not in frame.columns:
            raise InputError(f"{where}: column {col!r} is missing")
    selected_only = "protclip_selected" in frame.columns
    if selected_only:  # 01's ProtCLIP property-driven sampling picks the pairs
        frame = frame[frame["protclip_selected"].astype(bool)]
    if split is not None:
        if "split" not in frame.columns:
            raise InputError(f"{where}: no 'split' column; run 01_curate.ipynb (it assigns train/valid/test)")
        frame = frame[frame["split"].isin(split.split("+"))]
        if frame.empty:
            raise InputError(f"{where}: split {split!r} is empty" + (
                " among the pairs ProtCLIP sampling selected (protclip_selected; 01 with protclip_sampling=False "
                "uses every pair)" if selected_only else ""))
    out = pd.DataFrame({"id": frame["id"].astype(str).to_numpy(),
                        "sequence": frame["sequence"].astype(str).str.upper().to_numpy()})
    out["label"] = frame["label"].astype(str).to_numpy() if "label" in frame.columns else ""
    for f in TEXT_FIELDS:
        out[f] = [str(v).strip() if _present(v) else None for v in frame[f]] if f in frame.columns else None
    if "text" in frame.columns:
        out["text"] = [str(v).strip() if _present(v) else "" for v in frame["text"]]
    else:
        out["text"] = [compose_text(r) for _, r in out.iterrows()]
    empty = out.loc[out["text"] == "", "id"].tolist()
    if empty:
        raise InputError(f"{where}: {len(empty)} pair(s) have empty text (e.g. {empty[:5]}); "
                         "drop them or give them at least one of " + ", ".join(TEXT_FIELDS))
    short = out.loc[out["sequence"].str.len() == 0, "id"].tolist()
    if short:
        raise InputError(f"{where}: empty sequence(s) for {short[:5]}")
    return out.reset_index(drop=True)


# ------------------------------------------------------------------- cropping, masking
def random_crop(sequence: str, length: int, rng: np.random.Generator) -> str:
    """A random window of ``length`` residues (the sequence itself when shorter)."""
    if len(sequence) <= length:
        return sequence
    start = int(rng.integers(0, len(sequence) - length + 1))
    return sequence[start:start + length]


def mlm_mask(n: int, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Positions (bool, length n) selected for masked-residue prediction; at least one."""
    selected = rng.random(n) < prob
    if not selected.any():
        selected[int(rng.integers(0, n))] = True
    return selected


def span_mask(n: int, *, ratio: float = 0.15, span_min: int = 5, span_max: int = 10,
              rng: np.random.Generator) -> np.ndarray:
    """Contiguous spans of ``span_min..span_max`` residues masked until >= ``ratio`` of ``n``."""
    mask = np.zeros(n, dtype=bool)
    need = max(1, math.ceil(ratio * n))
    while mask.sum() < need:
        length = min(n, int(rng.integers(span_min, span_max + 1)))
        start = int(rng.integers(0, n - length + 1))
        mask[start:start + length] = True
    return mask


# --------------------------------------------------------------------------- collate
def text_keys(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A 64-bit key per row of token ids: equal keys, identical text inputs. A digest rather than
    ``hash`` so every DDP process computes the same keys for the gathered contrastive batch."""
    rows = (row[m.bool()].numpy().astype(np.int64).tobytes() for row, m in zip(ids, mask))
    return torch.tensor([int.from_bytes(hashlib.blake2b(r, digest_size=8).digest(), "little", signed=True)
                         for r in rows], dtype=torch.long)


class Collator:
    """Tokenise a list of pairs into the tensors :class:`~protlab.pretrain.clip.ProtCLIP` uses."""

    def __init__(self, alphabet, tokenizer, *, crop_length: int = 200, max_text_length: int = 64,
                 max_property_length: int = 32, mlm_prob: float = 0.15, bsr_ratio: float = 0.15,
                 bsr_span: tuple[int, int] = (5, 10), weights: dict | None = None, fixed_shapes: bool = False,
                 substitution_prob: float = 0.0):
        self.alphabet, self.tokenizer = alphabet, tokenizer
        self.fixed_shapes = fixed_shapes  # pad to crop / max lengths (torch.compile without recompiles)
        self.crop_length, self.max_text_length, self.max_property_length = crop_length, max_text_length, max_property_length
        self.mlm_prob, self.bsr_ratio, self.bsr_span = mlm_prob, bsr_ratio, bsr_span
        # Augmentation: each residue of the clean view (GC / PDA input) becomes a random residue
        # with this probability, a cheap stand-in for the divergence of unseen homologs.
        self.substitution_prob = substitution_prob
        self.weights = weights or {"gc": 1, "mlm": 1, "bsr": 1, "pda": 1}
        self.residue_toks = np.array([alphabet.get_idx(a) for a in AMINO_ACIDS])

    def encode_sequences(self, sequences: list[str], *, width: int | None = None) -> torch.Tensor:
        a = self.alphabet
        width = max(width or 0, max(len(s) for s in sequences) + 2)
        tokens = torch.full((len(sequences), width), a.padding_idx, dtype=torch.long)
        for i, s in enumerate(sequences):
            ids = [a.tok_to_idx.get(c, a.unk_idx) for c in s]
            tokens[i, :len(ids) + 2] = torch.tensor([a.cls_idx, *ids, a.eos_idx])
        return tokens

    def encode_texts(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding="max_length" if self.fixed_shapes else True, truncation=True,
                             max_length=max_length, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    def __call__(self, rows: pd.DataFrame, rng: np.random.Generator) -> dict:
        seqs = [random_crop(s, self.crop_length, rng) for s in rows["sequence"]]
        tokens = self.encode_sequences(seqs, width=self.crop_length + 2 if self.fixed_shapes else None)
        batch = {"tokens": tokens}
        batch["text_ids"], batch["text_mask"] = self.encode_texts(list(rows["text"]), self.max_text_length)
        batch["text_key"] = text_keys(batch["text_ids"], batch["text_mask"])
        if self.weights.get("mlm", 0) > 0:
            mlm, targets = tokens.clone(), torch.full_like(tokens, IGNORE)
            for i, s in enumerate(seqs):
                sel = mlm_mask(len(s), self.mlm_prob, rng)
                pos = torch.from_numpy(np.flatnonzero(sel) + 1)
                targets[i, pos] = tokens[i, pos]
                roll = rng.random(len(pos))  # ESM/BERT recipe: 80 % <mask>, 10 % random, 10 % kept
                masked = pos[torch.from_numpy(roll < 0.8)]
                randomised = pos[torch.from_numpy((roll >= 0.8) & (roll < 0.9))]
                mlm[i, masked] = self.alphabet.mask_idx
                mlm[i, randomised] = torch.from_numpy(rng.choice(self.residue_toks, len(randomised)))
            batch["mlm_tokens"], batch["mlm_targets"] = mlm, targets
        if self.weights.get("bsr", 0) > 0:
            bsr, targets = tokens.clone(), torch.full_like(tokens, IGNORE)
            for i, s in enumerate(seqs):
                sel = span_mask(len(s), ratio=self.bsr_ratio, span_min=self.bsr_span[0],
                                span_max=self.bsr_span[1], rng=rng)
                pos = torch.from_numpy(np.flatnonzero(sel) + 1)
                targets[i, pos] = tokens[i, pos]
                bsr[i, pos] = self.alphabet.mask_idx
            batch["bsr_tokens"], batch["bsr_targets"] = bsr, targets
        if self.weights.get("pda", 0) > 0:
            valid = torch.zeros((len(rows), len(TEXT_FIELDS)), dtype=torch.bool)
            texts = []
            for i, (_, row) in enumerate(rows.iterrows()):
                for k, f in enumerate(TEXT_FIELDS):
                    if _present(row.get(f)):
                        valid[i, k] = True
                        texts.append(str(row[f]))
                    elif self.fixed_shapes:  # keep B x K rows; the model masks the absent ones
                        texts.append("")
            if not valid.any():  # no property sub-texts at all: fall back to the whole text as one property
                valid[:, 0] = True
                texts = list(rows["text"])
            batch["prop_valid"] = valid
            batch["prop_ids"], batch["prop_mask"] = self.encode_texts(texts, self.max_property_length)
        if self.substitution_prob > 0:  # last, so the MLM / BSR views and targets stay unmutated
            mutated = tokens.clone()
            for i, s in enumerate(seqs):
                pos = torch.from_numpy(np.flatnonzero(rng.random(len(s)) < self.substitution_prob) + 1)
                mutated[i, pos] = torch.from_numpy(rng.choice(self.residue_toks, len(pos)))
            batch["tokens"] = mutated
        return batch


class PairBatches:
    """Deterministic micro-batches over a pair table for one rank of ``world`` ranks.

    Micro-batch ``i`` (global counter) comes from epoch ``i // per_epoch`` whose order is a
    permutation seeded by ``(seed, epoch)``; its crops and masks use ``(seed, i, rank)``.
    """

    def __init__(self, pairs: pd.DataFrame, collator: Collator, *, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        self.pairs, self.collator = pairs.reset_index(drop=True), collator
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.global_batch = batch_size * world
        if len(pairs) < self.global_batch:
            raise InputError(f"{len(pairs)} training pairs are fewer than one batch "
                             f"({batch_size} x {world} ranks); lower batch_size")
        self.per_epoch = len(pairs) // self.global_batch
        self._perm_epoch, self._perm = None, None

    def position(self, micro_step: int) -> dict:
        return {"micro_step": micro_step, "epoch": micro_step // self.per_epoch,
                "index_in_epoch": micro_step % self.per_epoch}

    def indices(self, micro_step: int) -> np.ndarray:
        epoch, j = divmod(micro_step, self.per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))
            self._perm_epoch = epoch
        start = j * self.global_batch + self.rank * self.batch_size
        return self._perm[start:start + self.batch_size]

    def batch(self, micro_step: int) -> dict:
        rng = np.random.default_rng([self.seed, micro_step, self.rank, 7])
        return self.collator(self.pairs.iloc[self.indices(micro_step)], rng)


class MicroBatches(torch.utils.data.Dataset):
    """Micro-batches ``first, first + 1, ...`` of a :class:`PairBatches`, for a ``DataLoader``
    whose worker processes build them ahead of the training step (each is deterministic in
    its index, so workers change nothing but speed)."""

    def __init__(self, batches, first: int, stop: int):
        self.batches, self.first, self.stop = batches, first, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.first)

    def __getitem__(self, i: int) -> dict:
        return self.batches.batch(self.first + i)


def micro_batch_stream(batches, first: int, stop: int, *, workers: int, pin: bool):
    """An iterator over micro-batches ``first .. stop - 1``; ``workers`` > 0 prefetches them."""
    if workers == 0:
        return (batches.batch(i) for i in range(first, stop))
    loader = torch.utils.data.DataLoader(MicroBatches(batches, first, stop), batch_size=None,
                                         num_workers=workers, pin_memory=pin, prefetch_factor=4)
    return iter(loader)
