"""Mutation-effect scorers: site-independent, Potts (pseudo-likelihood) and masked marginals.

Each scorer gives one number per mutant, higher = fitter (closer to the wild type's
fitness or better), and NaN for a mutant it cannot score (a position outside the
alignment's modelled columns).

* ``independent``: per-column amino-acid frequencies of the weighted homologs with a
  pseudocount; ``log f_i(mut) − log f_i(wt)`` summed over the substitutions.
* ``potts``: a pairwise model ``E(s) = Σ_i h_i(s_i) + Σ_{i<j} J_ij(s_i, s_j)`` fitted by
  weighted pseudo-likelihood with L2 regularisation as plmc / EVmutation set it
  (λ_h = 0.01, λ_J = 0.01·(L−1)·(q−1), q = 21 with the gap); ``ΔE = E(mutant) − E(wt)``.
* ``masked_marginal``: ``log p(mut) − log p(wt)`` at the masked site of a masked-language
  model (ESM-2, any spec :func:`protlab.esm.load.load_esm` takes), summed over
  substitutions; proteins longer than the model's 1022 residues are cut into a window
  centred on the site.
* ``family_lm`` (:mod:`protlab.variants.family_lm`): masked marginals of a small language
  model trained on the homologs alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.errors import InputError
from protlab.esm.load import MAX_RESIDUES, load_esm
from protlab.variants.alignment import Q, STATES, Alignment
from protlab.variants.mutants import Mutant

SCORERS = ("independent", "potts", "masked_marginal", "family_lm")
PSEUDOCOUNT = 1.0       # weighted sequences spread over the 20 amino acids of a column
LAMBDA_H = 0.01         # plmc's -lh default
LAMBDA_J = 0.01         # plmc / EVmutation: λ_J = 0.01·(L−1)·(q−1)
POTTS_ITERATIONS = 50   # L-BFGS iterations of the pseudo-likelihood fit (the stage default too)
_AA_STATE = {a: STATES.index(a) for a in AMINO_ACIDS}


# ---------------------------------------------------------------------------- independent
def independent_log_frequencies(aln: Alignment, pseudocount: float = PSEUDOCOUNT) -> np.ndarray:
    """(L, 21) log frequencies per modelled column (state order ``-ACDEFGHIKLMNPQRSTVWY``; the
    gap's entry is the log of its share, unused by scoring)."""
    counts = np.zeros((aln.codes.shape[1], Q))
    for state in range(Q):
        counts[:, state] = ((aln.codes == state) * aln.weights[:, None]).sum(0)
    residues = counts[:, 1:] + pseudocount / 20
    freqs = np.concatenate([counts[:, :1] / max(counts.sum(1).max(), 1e-9), residues / residues.sum(1, keepdims=True)],
                           axis=1)
    return np.log(np.clip(freqs, 1e-12, None))


def score_independent(aln: Alignment, mutants: list[Mutant], log_freqs: np.ndarray | None = None) -> np.ndarray:
    log_freqs = independent_log_frequencies(aln) if log_freqs is None else log_freqs
    column = aln.column_of()
    out = np.full(len(mutants), np.nan)
    for k, mutant in enumerate(mutants):
        cols = [column.get(pos) for pos, _, _ in mutant.substitutions]
        if None in cols:
            continue
        out[k] = sum(log_freqs[c, _AA_STATE[mut]] - log_freqs[c, _AA_STATE[wt]]
                     for c, (_, wt, mut) in zip(cols, mutant.substitutions))
    return out


# ---------------------------------------------------------------------------- Potts
@dataclass
class PottsModel:
    """Fields ``h`` (L, q) and symmetric couplings ``J`` (L·q, L·q), zero within a column."""

    h: np.ndarray
    J: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.h.shape[0]

    def coupling(self, i: int, a: int, j: int, b: int) -> float:
        return float(self.J[i * Q + a, j * Q + b])

    def energy(self, codes: np.ndarray) -> float:
        """``E(s)`` of one coded sequence (length L)."""
        codes = np.asarray(codes, dtype=np.int64)
        flat = np.arange(self.length) * Q + codes
        return float(self.h[np.arange(self.length), codes].sum() + 0.5 * self.J[np.ix_(flat, flat)].sum())

    def delta_energies(self, reference: np.ndarray, changes: list[list[tuple[int, int]]]) -> np.ndarray:
        """``E(mutant) − E(reference)`` for each list of ``(column, state)`` changes."""
        reference = np.asarray(reference, dtype=np.int64)
        flat_ref = np.arange(self.length) * Q + reference
        field_ = self.J[:, flat_ref].sum(1).reshape(self.length, Q)  # Σ_j J_ij(a, ref_j), J_ii = 0
        out = np.empty(len(changes))
        for k, change in enumerate(changes):
            delta = 0.0
            for i, b in change:
                a = reference[i]
                delta += self.h[i, b] - self.h[i, a] + field_[i, b] - field_[i, a]
            for x in range(len(change)):  # pairs of changed columns: their coupling counted once, correctly
                i, bi = change[x]
                ai = reference[i]
                for y in range(x + 1, len(change)):
                    j, bj = change[y]
                    aj = reference[j]
                    delta += (self.coupling(i, bi, j, bj) - self.coupling(i, bi, j, aj)
                              - self.coupling(i, ai, j, bj) + self.coupling(i, ai, j, aj))
            out[k] = delta
        return out


def _blocks(i: int) -> tuple[slice, slice]:
    """The rows of column ``i`` in the (L·q, L·q) couplings and the columns of the columns after it."""
    return slice(i * Q, (i + 1) * Q), slice((i + 1) * Q, None)


def _fill_couplings(J, upper: list) -> None:
    """Writes the upper blocks and their transposes into the symmetric matrix ``J`` (in place)."""
    import torch

    with torch.no_grad():
        for i, block in enumerate(upper):
            rows, rest = _blocks(i)
            J[rows, rest] = block
            J[rest, rows] = block.T


def _data_term(codes, weights, J, h, chunk: int, device: str) -> tuple:
    """``(nll, dJ, dh)``: the weighted negative log pseudo-likelihood of ``codes`` under ``(h, J)``
    and its gradients, with J's entries taken as independent; ``chunk`` sequences at a time."""
    import torch

    n, length = codes.shape
    columns = torch.arange(length, device=device)
    grad = torch.zeros_like(J)
    grad_h = torch.zeros_like(h)
    nll = 0.0
    for lo in range(0, n, chunk):
        x = codes[lo:lo + chunk]
        w = weights[lo:lo + chunk]
        onehot = torch.nn.functional.one_hot(x, Q).reshape(len(x), -1).float()
        logp = torch.log_softmax((onehot @ J).reshape(len(x), length, Q) + h, dim=-1)
        nll -= float((w[:, None] * logp.gather(2, x[:, :, None])[:, :, 0]).sum())
        residual = logp.exp_()  # softmax − onehot: the gradient of −log p at the logits
        residual.view(len(x), -1)[torch.arange(len(x), device=device)[:, None], columns * Q + x] -= 1.0
        residual *= w[:, None, None]
        grad.addmm_(onehot.T, residual.reshape(len(x), -1))
        grad_h += residual.sum(0)
    return nll, grad, grad_h


def _coupling_gradients(upper: list, grad, lambda_j: float, n_eff: float) -> float:
    """Sets each upper block's gradient (data term plus L2, per effective sequence) from the
    full matrix's ``grad``; returns the blocks' summed squares for the penalty."""
    import torch

    penalty = 0.0
    for i, block in enumerate(upper):  # J_ij serves column i's logits and, mirrored, column j's
        rows, rest = _blocks(i)
        block.grad = (grad[rows, rest] + grad[rest, rows].T).add_(block, alpha=2.0 * lambda_j).div_(n_eff)
        penalty += float(torch.dot(block.view(-1), block.view(-1)))
    return penalty


def fit_potts(aln: Alignment, *, iterations: int = POTTS_ITERATIONS, lambda_h: float = LAMBDA_H,
              lambda_j: float | None = None, chunk: int = 512, device: str = "cpu", progress=None) -> PottsModel:
    """Weighted pseudo-likelihood fit, full batch, by L-BFGS (strong Wolfe line search) for at
    most ``iterations`` steps; the fields start at the independent solution, the couplings at
    zero. ``lambda_j``: None is plmc's 0.01·(L−1)·(q−1).

    Each coupling block J_ij (i < j) is one parameter, so L-BFGS keeps vectors of half the
    couplings' size, and the gradient is written out: autograd's copies of the (L·q)² matrix
    would cost more memory and time than the two matrix products of the data term."""
    import torch

    start = time.perf_counter()
    n, length = aln.codes.shape
    lambda_j = LAMBDA_J * (length - 1) * (Q - 1) if lambda_j is None else lambda_j
    codes = torch.as_tensor(aln.codes, dtype=torch.long, device=device)
    weights = torch.as_tensor(aln.weights, dtype=torch.float32, device=device)
    n_eff = float(weights.sum())
    h0 = torch.as_tensor(independent_log_frequencies(aln), dtype=torch.float32)
    h = torch.nn.Parameter((h0 - h0.mean(1, keepdim=True)).to(device))
    # upper[i]: the couplings of column i with columns i+1.., shape (q, (L−1−i)·q)
    upper = [torch.nn.Parameter(torch.zeros(Q, (length - 1 - i) * Q, device=device)) for i in range(length - 1)]
    J = torch.zeros(length * Q, length * Q, device=device)  # the symmetric matrix the data term uses
    optimiser = torch.optim.LBFGS([h, *upper], lr=1.0, max_iter=iterations, history_size=5,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-7)
    history = []

    @torch.no_grad()
    def closure():
        _fill_couplings(J, upper)
        nll, grad, grad_h = _data_term(codes, weights, J, h, chunk, device)
        penalty = _coupling_gradients(upper, grad, lambda_j, n_eff)
        h.grad = (grad_h + 2.0 * lambda_h * h).div_(n_eff)
        # 0.5·λ_J·Σ over the full symmetric matrix counts each block twice
        value = (nll + lambda_h * float((h ** 2).sum()) + lambda_j * penalty) / n_eff
        history.append(round(value, 6))
        if progress is not None:
            progress(len(history), iterations, value)
        return torch.tensor(value)

    optimiser.step(closure)
    _fill_couplings(J, upper)
    return PottsModel(h.detach().cpu().numpy(), J.cpu().numpy(), info={
        "iterations": iterations, "evaluations": len(history), "lambda_h": lambda_h, "lambda_j": lambda_j,
        "objective": history[-1] if history else None, "seconds": round(time.perf_counter() - start, 3),
        "n_eff": n_eff, "columns": length, "sequences": n})


def score_potts(aln: Alignment, mutants: list[Mutant], model: PottsModel) -> np.ndarray:
    column = aln.column_of()
    out = np.full(len(mutants), np.nan)
    rows, changes = [], []
    for k, mutant in enumerate(mutants):
        cols = [column.get(pos) for pos, _, _ in mutant.substitutions]
        if None in cols:
            continue
        rows.append(k)
        changes.append([(c, _AA_STATE[mut]) for c, (_, _, mut) in zip(cols, mutant.substitutions)])
    if rows:
        out[rows] = model.delta_energies(aln.codes[0], changes)
    return out


# ---------------------------------------------------------------------------- masked marginals
def masked_language_model(spec, *, seed: int = 0):
    """``(model, alphabet)`` of an ESM spec, refused when it has no masked-LM head."""
    if isinstance(spec, str) and spec.strip().lower() in ("kmer", "kmer3", "3mer"):
        raise InputError(f"encoder={spec!r} is no masked language model; masked_marginal needs an ESM-2 spec "
                         "('tiny', a pretrained name such as 'esm2_t33_650M_UR50D', a checkpoint or a Hugging "
                         "Face directory)")
    model, alphabet = load_esm(spec, seed=seed)
    if not hasattr(model, "lm_head"):
        raise InputError(f"encoder={spec!r} has no language-model head: masked_marginal cannot use it")
    return model, alphabet


def window_of(position: int, length: int, window: int = MAX_RESIDUES) -> tuple[int, int]:
    """``(start, stop)`` of the window scoring ``position`` (0-based): the whole sequence when
    it fits, else ``window`` residues centred on the site (clipped at the ends)."""
    if length <= window:
        return 0, length
    start = min(max(position - window // 2, 0), length - window)
    return start, start + window


def masked_log_probs(model, alphabet, sequence: str, positions, *, window: int = MAX_RESIDUES,
                     batch_size: int = 8, device: str = "cpu") -> dict[int, np.ndarray]:
    """``{position: log-probabilities of the 20 amino acids}`` at each 0-based position, masked."""
    import torch

    model = model.to(device).eval()
    aa_tokens = torch.tensor([alphabet.get_idx(a) for a in AMINO_ACIDS])
    jobs: dict[tuple[int, int], list[int]] = {}
    for pos in sorted(set(int(p) for p in positions)):
        jobs.setdefault(window_of(pos, len(sequence), window), []).append(pos)
    out = {}
    with torch.no_grad():
        for (lo, hi), sites in jobs.items():
            base = torch.tensor([alphabet.cls_idx] + [alphabet.get_idx(a) for a in sequence[lo:hi]]
                                + [alphabet.eos_idx])
            for b in range(0, len(sites), batch_size):
                chunk = sites[b:b + batch_size]
                tokens = base.repeat(len(chunk), 1)
                rows = torch.arange(len(chunk))
                cols = torch.tensor([1 + p - lo for p in chunk])
                tokens[rows, cols] = alphabet.mask_idx
                logits = model(tokens.to(device))["logits"].float().cpu()
                logp = torch.log_softmax(logits, dim=-1)[rows, cols]
                for pos, row in zip(chunk, logp[:, aa_tokens].numpy()):
                    out[pos] = row.astype(np.float64)
    return out


def score_masked_marginal(wildtype: str, mutants: list[Mutant], model, alphabet, *, window: int = MAX_RESIDUES,
                          batch_size: int = 8, device: str = "cpu") -> np.ndarray:
    positions = {pos for m in mutants for pos, _, _ in m.substitutions}
    logp = masked_log_probs(model, alphabet, wildtype, positions, window=window, batch_size=batch_size,
                            device=device)
    index = {a: i for i, a in enumerate(AMINO_ACIDS)}
    return np.array([sum(logp[pos][index[mut]] - logp[pos][index[wt]] for pos, wt, mut in m.substitutions)
                     for m in mutants], dtype=np.float64)


def combine_z(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Per mutant, the mean of the z-scored scorers that scored it (NaN when none did)."""
    zs = []
    for values in columns.values():
        finite = np.isfinite(values)
        if finite.sum() < 2 or np.nanstd(values) == 0:
            zs.append(np.where(finite, 0.0, np.nan))
            continue
        zs.append((values - np.nanmean(values)) / np.nanstd(values))
    stack = np.vstack(zs)
    counts = np.isfinite(stack).sum(0)
    sums = np.nansum(stack, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
