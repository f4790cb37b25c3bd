"""Toy folds: compact Cα traces grown from ideal helices, strands and loops, the planted site's
search, and the relaxation that restores bond lengths after members are built.

Consecutive Cα are ``BOND`` (3.8 Å) apart; while a fold grows, no non-consecutive pair comes
closer than ``MIN_CONTACT`` (4 Å). A site is a clique of residues ``SITE_SEPARATION`` apart in
sequence and within ``SITE_RADIUS`` of each other in space.
"""
from __future__ import annotations

import numpy as np

BOND = 3.8          # Å between consecutive Cα
MIN_CONTACT = 4.0   # Å, closest allowed non-consecutive Cα pair while building
SITE_RADIUS = 9.0   # Å, every pair of site residues in the template is at most this far apart
SITE_SEPARATION = 20  # residues between site residues in the template (≥ 15 after indels)
CONTACT_WEIGHT = 1.0


def _secondary_structure(length: int, rng: np.random.Generator) -> str:
    """Alternating loops and helices/strands, starting and ending with a short loop."""
    parts = ["L" * int(rng.integers(2, 4))]
    while sum(map(len, parts)) < length:
        if rng.random() < 0.55:
            parts.append("H" * int(rng.integers(8, 17)))
        else:
            parts.append("E" * int(rng.integers(5, 10)))
        parts.append("L" * int(rng.integers(3, 7)))
    ss = "".join(parts)[:length]
    return ss[:-2] + "LL"


_SS_ANGLES = {"H": (np.deg2rad(91.0), np.deg2rad(50.0)), "E": (np.deg2rad(120.0), np.deg2rad(-170.0))}


def _grow_fold(secondary: str, rng: np.random.Generator, n_candidates: int = 24) -> np.ndarray | None:
    """Grow a compact, self-avoiding Cα trace segment by segment (greedy, NeRF).

    Each loop is grown together with the segment after it in ``n_candidates`` random
    conformations at once; the clash-free one that stays closest to the centre wins.
    """
    n = len(secondary)
    xyz = np.zeros((n, 3))
    xyz[1] = [BOND, 0, 0]
    ang = np.deg2rad(110.0)
    xyz[2] = xyz[1] + BOND * np.array([-np.cos(ang), np.sin(ang), 0.0])
    bounds = [0] + [i for i in range(1, n) if secondary[i] != secondary[i - 1]] + [n]
    done = 3
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e <= done:
            continue
        start = max(s, done)
        nxt = bounds[bounds.index(e) + 1] if e < n else e
        stop = nxt if secondary[start] == "L" else e
        new, alive = _extend(xyz[:start], secondary, start, stop, rng, n_candidates)
        if not alive.any():
            return None
        # compactness: many contacts (≤ 10 Å) with what is already built, then closeness to its centre
        d2 = np.sum((new[:, :, None] - xyz[None, None, :start]) ** 2, axis=3)
        contacts = (d2 <= 100.0).sum((1, 2)) / max(stop - start, 1)
        score = np.linalg.norm(new - xyz[:start].mean(0), axis=2).mean(1) - CONTACT_WEIGHT * contacts
        score[~alive] = np.inf
        xyz[start:e] = new[int(np.argmin(score)), : e - start]
        done = e
    return xyz


def _extend(prev: np.ndarray, secondary: str, start: int, stop: int, rng: np.random.Generator,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` candidate continuations of positions ``start:stop``: (k, m, 3) and a clash-free mask."""
    m = stop - start
    pts = np.empty((k, m + 3, 3))
    pts[:, :3] = prev[-3:]
    alive = np.ones(k, dtype=bool)
    for j, i in enumerate(range(start, stop)):
        ss = secondary[i]
        if ss == "L":
            theta = np.deg2rad(rng.uniform(85.0, 150.0, k))
            tau = rng.uniform(-np.pi, np.pi, k)
        else:
            t0, d0 = _SS_ANGLES[ss]
            theta = t0 + rng.normal(0, 0.03, k)
            tau = d0 + rng.normal(0, 0.05, k)
        p = _nerf(pts[:, j], pts[:, j + 1], pts[:, j + 2], theta, tau)
        # clash: ≥ MIN_CONTACT from every earlier residue except the two previous ones
        d2 = np.sum((prev[: max(len(prev) - 2 + j, 0)][None] - p[:, None]) ** 2, axis=2) if j < 2 else \
            np.sum((prev[None] - p[:, None]) ** 2, axis=2)
        bad = d2.min(1) < MIN_CONTACT ** 2 if d2.shape[1] else np.zeros(k, bool)
        if j >= 3:
            own = np.sum((pts[:, 3: j + 1] - p[:, None]) ** 2, axis=2)
            bad |= own.min(1) < MIN_CONTACT ** 2
        alive &= ~bad
        pts[:, j + 3] = p
    return pts[:, 3:], alive


def _nerf(a, b, c, theta, tau, bond=BOND):
    """Place the next atom from the previous three (batched over the first axis)."""
    bc = c - b
    bc /= np.linalg.norm(bc, axis=-1, keepdims=True)
    ab = b - a
    n = np.stack([ab[:, 1] * bc[:, 2] - ab[:, 2] * bc[:, 1],
                  ab[:, 2] * bc[:, 0] - ab[:, 0] * bc[:, 2],
                  ab[:, 0] * bc[:, 1] - ab[:, 1] * bc[:, 0]], axis=1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    mm = np.stack([n[:, 1] * bc[:, 2] - n[:, 2] * bc[:, 1],
                   n[:, 2] * bc[:, 0] - n[:, 0] * bc[:, 2],
                   n[:, 0] * bc[:, 1] - n[:, 1] * bc[:, 0]], axis=1)
    d0 = -bond * np.cos(theta)
    d1 = bond * np.sin(theta) * np.cos(tau)
    d2 = bond * np.sin(theta) * np.sin(tau)
    return c + d0[:, None] * bc + d1[:, None] * mm + d2[:, None] * n


def _find_site(xyz: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray | None:
    """Up to ``size`` (at least 3) residues far apart in sequence and close in space.

    A small clique search on the graph joining residues ≥ SITE_SEPARATION apart in
    sequence and ≤ SITE_RADIUS apart in space; chain ends (3 residues) are excluded.
    """
    n = len(xyz)
    dist = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    idx = np.arange(n)
    adj = (dist <= SITE_RADIUS) & (np.abs(idx[:, None] - idx[None]) >= SITE_SEPARATION)
    adj[:3] = adj[:, :3] = adj[n - 3:] = adj[:, n - 3:] = False
    best: list[int] = []

    def grow(clique: list[int], cands: np.ndarray) -> bool:
        nonlocal best
        if len(clique) > len(best):
            best = list(clique)
        if len(best) >= size:
            return True
        for c in cands:
            if len(clique) + 1 + int(adj[c, cands].sum()) <= len(best):
                continue  # cannot beat the best found
            if grow(clique + [int(c)], cands[adj[c, cands] & (cands > c)]):
                return True
        return False

    for anchor in rng.permutation(np.flatnonzero(adj.any(1))):
        if grow([int(anchor)], np.flatnonzero(adj[anchor])):
            break
    return np.array(sorted(best)) if len(best) >= 3 else None


def _relax(xyz: np.ndarray, n_iter: int = 25) -> np.ndarray:
    """Restore 3.8 Å bonds (SHAKE-like, even/odd bonds alternately) and push clashes apart.

    Clashes are looked for among pairs (|i - j| ≥ 2) closer than 8 Å at the start; the
    relaxation moves residues far less than that.
    """
    n = len(xyz)
    even, odd = np.arange(0, n - 1, 2), np.arange(1, n - 1, 2)
    iu, ju = np.triu_indices(n, k=2)
    diff = xyz[ju] - xyz[iu]
    near = np.einsum("ij,ij->i", diff, diff) < 8.0 ** 2
    iu, ju = iu[near], ju[near]
    for it in range(n_iter):
        for idx in (even, odd):
            d = xyz[idx + 1] - xyz[idx]
            r = np.linalg.norm(d, axis=1, keepdims=True)
            corr = 0.5 * (r - BOND) / r * d
            xyz[idx] += corr
            xyz[idx + 1] -= corr
        if it % 2 == 0 and it < n_iter - 4:
            diff = xyz[ju] - xyz[iu]
            r2 = np.einsum("ij,ij->i", diff, diff)
            close = r2 < MIN_CONTACT ** 2
            if close.any():
                r = np.sqrt(r2[close])[:, None]
                push = 0.6 * (MIN_CONTACT + 0.3 - r) / np.maximum(r, 1e-6) * diff[close]
                np.add.at(xyz, ju[close], push)
                np.add.at(xyz, iu[close], -push)
    return xyz


def _side_chain_centroids(ca: np.ndarray, sequence: str) -> np.ndarray:
    """Pseudo side-chain centroids 2.4 Å out along the bisector of the two Cα bonds (Gly: Cα)."""
    ca = np.asarray(ca, dtype=np.float32)
    if len(ca) < 3:
        return ca.copy()
    prev = np.vstack([ca[1] , ca[:-1]])
    nxt = np.vstack([ca[1:], ca[-2]])
    out = (ca - prev) / np.linalg.norm(ca - prev, axis=1, keepdims=True) + \
          (ca - nxt) / np.linalg.norm(ca - nxt, axis=1, keepdims=True)
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-9
    cen = ca + 2.4 * out
    gly = np.array([a == "G" for a in sequence])
    cen[gly] = ca[gly]
    return cen.astype(np.float32)
