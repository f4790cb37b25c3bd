"""``family_lm``: a small protein language model trained on the homologs alone with 03's
masked-language objective, then read out as masked marginals of the wild type.

Homologs are sampled in proportion to their sequence weights (the redundancy correction of
the homology scorers), each as a random window of the residues it aligns over the modelled
columns; 15 % of a window's residues are masked and predicted. The model sees only the
region the alignment models, so variants outside it stay unscored, as for the other
homology scorers.
"""
from __future__ import annotations

import numpy as np

from protlab.core.alphabet import AMINO_ACIDS
from protlab.esm.load import new_esm
from protlab.pretrain.clip import masked_lm_loss
from protlab.pretrain.data import IGNORE, mlm_mask, random_crop
from protlab.variants.alignment import STATES, Alignment
from protlab.variants.mutants import Mutant
from protlab.variants.scorers import masked_log_probs

FAMILY_LM_ARGS = {"num_layers": 4, "embed_dim": 64, "attention_heads": 4}
FAMILY_LM_STEPS = 1500  # the stage default too
BATCH_SIZE = 32
WINDOW = 256
MASK_PROB = 0.15


def homolog_sequences(aln: Alignment) -> list[str]:
    """Each homolog's residues over the modelled columns, gaps removed (the wild type first)."""
    letters = np.array(list(STATES))
    return ["".join(letters[row[row > 0]]) for row in aln.codes.astype(int)]


def train_family_lm(aln: Alignment, *, steps: int = FAMILY_LM_STEPS, lr: float = 2e-3, seed: int = 0,
                    device: str = "cpu", progress=None):
    """``(model, alphabet, losses)``: the model trained for ``steps`` batches on ``aln``'s homologs."""
    import torch

    sequences = homolog_sequences(aln)
    usable = np.flatnonzero([len(s) >= 2 for s in sequences])
    weights = aln.weights[usable] / aln.weights[usable].sum()
    model, alphabet = new_esm(FAMILY_LM_ARGS, seed=seed)
    model = model.to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    losses = []
    for step in range(steps):
        batch = [random_crop(sequences[i], WINDOW, rng) for i in rng.choice(usable, BATCH_SIZE, p=weights)]
        width = max(len(s) for s in batch) + 2
        tokens = torch.full((len(batch), width), alphabet.padding_idx, dtype=torch.long)
        targets = torch.full_like(tokens, IGNORE)
        for row, sequence in enumerate(batch):
            ids = torch.tensor([alphabet.cls_idx] + [alphabet.get_idx(a) for a in sequence] + [alphabet.eos_idx])
            masked = torch.from_numpy(np.flatnonzero(mlm_mask(len(sequence), MASK_PROB, rng)) + 1)
            tokens[row, :len(ids)] = ids
            targets[row, masked] = ids[masked]
            tokens[row, masked] = alphabet.mask_idx
        loss = masked_lm_loss(model(tokens.to(device))["logits"], targets.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step + 1, steps, losses[-1])
    return model.eval(), alphabet, losses


def score_family_lm(wildtype: str, mutants: list[Mutant], aln: Alignment, model, alphabet, *,
                    device: str = "cpu") -> np.ndarray:
    """Σ log p(mut) − log p(wt) at each masked site of the wild type's modelled region; NaN for
    a variant with a substitution outside the modelled columns."""
    modelled = set(int(p) for p in aln.positions)
    region = [int(p) for p in aln.positions]  # the model saw these residues, in this order
    window = "".join(wildtype[p] for p in region)
    index_of = {p: k for k, p in enumerate(region)}
    sites = {pos for m in mutants for pos, _, _ in m.substitutions if pos in modelled}
    logp = masked_log_probs(model, alphabet, window, [index_of[p] for p in sites], device=device)
    column = {a: i for i, a in enumerate(AMINO_ACIDS)}
    out = np.full(len(mutants), np.nan)
    for k, m in enumerate(mutants):
        if all(pos in modelled for pos, _, _ in m.substitutions):
            out[k] = sum(logp[index_of[pos]][column[mut]] - logp[index_of[pos]][column[wt]]
                         for pos, wt, mut in m.substitutions)
    return out
