"""The toy protein universe: a seeded, fast, fully known stand-in for real protein data.

Every notebook runs on it by default. ``make_universe()`` draws ``n_families`` families;
each family has

* a **template fold**: a compact Cα trace grown from ideal helices (virtual bond angle
  91°, dihedral 50°), strands (120°, -170°) and loops (random, self-avoiding), with
  3.8 Å between consecutive Cα and no non-consecutive pair closer than 4 Å;
* a **profile**: per-position residue distributions with secondary-structure propensities;
  about a fifth of the positions are *conserved* (consensus residue with p ≈ 0.95);
* a **planted functional site**: 3–5 residues at least 20 positions apart in the template
  but within 9 Å of each other in space (a clique search on the template asks for a
  random size 3..5 and keeps the largest found in two folds; the loosely packed toy
  folds mostly allow 3); their residue type is fixed in every member;
* a **text description** vocabulary (protein name with synonyms, function, subcellular
  location, similarity) in the UniProt style used by ProtCLIP.

Members are sampled from the profile, get insertions and deletions in loops (never at
site residues, whose per-member indices are recomputed), and share the family fold: the
template coordinates of their aligned positions plus small noise, inserted residues
bulging out of the loop, then relaxed so bond lengths are 3.8 Å again and nothing clashes.
Text fields carry noise: synonyms, dropped fields, an occasional description borrowed
from another family, and a protein-existence level 1..5.

The ground truth (``family``, ``site``) is returned with the data; ``ToyUniverse.families``
describes each family and ``ToyUniverse.alignment`` maps each member's residues to template
positions (-1 for inserted residues). The folds are built in :mod:`protlab.curate.toy_structure`,
the text in :mod:`protlab.curate.toy_text`; the types live in :mod:`protlab.curate.toy_types`.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from protlab.core.alphabet import AMINO_ACIDS
from protlab.core.errors import InputError
from protlab.curate.toy_structure import _find_site, _grow_fold, _relax, _secondary_structure
from protlab.curate.toy_text import _make_family_names, _make_text
from protlab.curate.toy_types import ToyFamily, ToyUniverse

SITE_RESIDUES = "HDSCEKYRN"
MAX_SUPERFAMILY = 8  # distinct site words of a 3-residue site with two types per position

# Residue propensities by secondary structure (added to a uniform background).
_PROPENSITY = {
    "H": "AELMKQR",
    "E": "VIYFTW",
    "L": "GPNDST",
}


def make_universe(n_families: int = 8, members_per_family: int = 40, *,
                  length_range: tuple[int, int] = (80, 160), seed: int = 0,
                  families_per_superfamily: int = 1) -> ToyUniverse:
    """Draw a toy universe of ``n_families`` × ``members_per_family`` proteins.

    ``length_range`` bounds the family template lengths (members differ by a few indels).
    ``families_per_superfamily`` > 1 groups consecutive families into superfamilies that
    share one fold, profile (conserved positions included) and site positions; families of
    a superfamily differ only in the residue types at their planted site, like enzyme
    families of one fold that differ at catalytic residues: each site position takes one of
    two residue types and each family a combination of them (:func:`site_code`), so family
    identity is carried by the whole site (with 8 families per superfamily and a 3-residue
    site, by every site residue). The default (1) gives every family its own fold. The same
    arguments always give the same universe.
    """
    if n_families < 1 or members_per_family < 1:
        raise InputError(f"n_families ({n_families}) and members_per_family ({members_per_family}) must be ≥ 1")
    lo, hi = length_range
    if not (40 <= lo <= hi <= 2000):
        raise InputError(f"length_range={length_range!r}: need 40 ≤ min ≤ max ≤ 2000")
    if not 1 <= families_per_superfamily <= MAX_SUPERFAMILY:
        raise InputError(f"families_per_superfamily={families_per_superfamily}: use 1..{MAX_SUPERFAMILY}")
    rng = np.random.default_rng(seed)
    if families_per_superfamily == 1:
        families = [_make_family(k, rng, lo, hi) for k in range(n_families)]
    else:
        families = []
        for first in range(0, n_families, families_per_superfamily):
            base = _make_family(first, rng, lo, hi)
            size = min(families_per_superfamily, n_families - first)
            families += _site_variants(base, list(range(first, first + size)), rng)
    rows, coords, alignment = [], {}, {}
    for fam in families:
        for m in range(members_per_family):
            pid = f"toy_f{fam.index:02d}_m{m:03d}"
            seq, xyz, site, alignment[pid] = _make_member(fam, rng)
            text = _make_text(fam, families, rng)
            rows.append({"id": pid, "sequence": seq, "label": fam.name, "family": fam.index,
                         **text, "site": site.tolist()})
            coords[pid] = xyz
    proteins = pd.DataFrame(rows)
    cols = ["id", "sequence", "label", "family", "protein_name", "function", "subcellular_location",
            "similarity", "text", "existence", "site"]
    return ToyUniverse(proteins=proteins[cols], coords=coords, families=families, seed=seed, alignment=alignment)


# ---------------------------------------------------------------------------- families

def _make_family(index: int, rng: np.random.Generator, lo: int, hi: int) -> ToyFamily:
    length = int(rng.integers(lo, hi + 1))
    target = int(rng.integers(3, 6))
    best = None
    for _attempt in range(200):  # a few folds; keep the first whose site reaches the target size
        secondary = _secondary_structure(length, rng)
        template = _grow_fold(secondary, rng)
        if template is None:
            continue
        site = _find_site(template, target, rng)
        if site is not None and (best is None or len(site) > len(best[2])):
            best = (secondary, template, site)
        if best is not None and (len(best[2]) >= target or _attempt >= 1):
            break
    if best is None:  # pragma: no cover - never observed for lengths ≥ 40
        raise RuntimeError(f"could not build a toy fold of length {length}")
    secondary, template, site = best
    profile = _profile(secondary, rng)
    consensus = "".join(AMINO_ACIDS[i] for i in profile.argmax(1))
    n_conserved = max(1, int(round(0.2 * length)))
    conserved = set(rng.choice(length, size=n_conserved, replace=False).tolist()) | set(site.tolist())
    conserved = np.array(sorted(conserved))
    site_residues = "".join(rng.choice(list(SITE_RESIDUES), size=len(site)))
    for pos in conserved:  # conserved: the consensus residue with p ≈ 0.95
        profile[pos] = 0.05 / 19
        profile[pos, AMINO_ACIDS.index(consensus[pos])] = 0.95
    consensus = _fix_site(profile, site, site_residues)
    name, vocab = _make_family_names(index)
    return ToyFamily(index=index, name=name, consensus=consensus, profile=profile, secondary=secondary,
                     conserved=conserved, site=site, site_residues=site_residues,
                     template=template.astype(np.float32), vocabulary=vocab)


def site_code(n_families: int, site_size: int) -> np.ndarray:
    """Binary site words (n_families, site_size): family j's word is the binary code of j.

    Positions beyond ``ceil(log2 n_families)`` carry the parity of the code bits, so every
    position splits the superfamily in two. With ``n_families == 2 ** site_size`` (8 for the
    usual 3-residue site) no proper subset of the site tells the families apart: a
    classifier has to read every site residue.
    """
    bits = max(1, int(np.ceil(np.log2(max(n_families, 2)))))
    words = np.zeros((n_families, site_size), dtype=np.int64)
    for j in range(n_families):
        code = [(j >> b) & 1 for b in range(bits)]
        parity = sum(code) % 2
        words[j] = [code[i] if i < bits else parity for i in range(site_size)]
    return words


def _fix_site(profile: np.ndarray, site, residues: str) -> str:
    """Fix each site position of ``profile`` to its residue type (in place); the new consensus."""
    for pos, aa in zip(site, residues):
        profile[pos] = 0.0
        profile[pos, AMINO_ACIDS.index(aa)] = 1.0
    return "".join(AMINO_ACIDS[i] for i in profile.argmax(1))


def _site_variants(base: ToyFamily, indices: list[int], rng: np.random.Generator) -> list[ToyFamily]:
    """Families sharing ``base``'s fold and profile; each site position has two residue types
    and each family a combination of them (:func:`site_code`)."""
    pairs = [rng.choice(list(SITE_RESIDUES), 2, replace=False) for _ in base.site]
    words = site_code(len(indices), len(base.site))
    out = []
    for index, word in zip(indices, words):
        residues = "".join(pair[bit] for pair, bit in zip(pairs, word))
        name, vocab = _make_family_names(index)
        profile = base.profile.copy()
        consensus = _fix_site(profile, base.site, residues)
        out.append(replace(base, index=index, name=name, consensus=consensus, profile=profile,
                           conserved=base.conserved.copy(), site=base.site.copy(), site_residues=residues,
                           template=base.template.copy(), vocabulary=vocab))
    return out


def _profile(secondary: str, rng: np.random.Generator) -> np.ndarray:
    """Per-position residue probabilities: a peaked Dirichlet draw over an SS-biased background."""
    profile = np.empty((len(secondary), 20))
    for i, ss in enumerate(secondary):
        base = np.full(20, 0.3)
        for aa in _PROPENSITY[ss]:
            base[AMINO_ACIDS.index(aa)] += 1.0
        probs = rng.dirichlet(base)
        top = int(rng.choice(20, p=probs))  # a favourite residue gives within-family identity
        probs = 0.45 * probs
        probs[top] += 0.55
        profile[i] = probs
    return profile


# ---------------------------------------------------------------------------- members

def _make_member(fam: ToyFamily, rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    length = fam.length
    cum = np.cumsum(fam.profile, axis=1)
    draws = (rng.random(length)[:, None] > cum).sum(1).clip(0, 19)
    residues = [AMINO_ACIDS[i] for i in draws]
    # indels: only in loops, at most one event per loop, never next to a site residue
    loops = _runs(fam.secondary, "L")
    protected = set()
    for s in fam.site.tolist():
        protected.update(range(s - 1, s + 2))
    deleted: set[int] = set()
    inserted: dict[int, int] = {}  # template position -> residues inserted after it
    for s, e in loops:
        if e - s < 3 or s == 0 or e == length or rng.random() > 0.35:
            continue
        pos = int(rng.integers(s, e - 1))
        if pos in protected or pos + 1 in protected:
            continue
        if rng.random() < 0.5 and e - s >= 4:
            deleted.add(pos)
        else:
            inserted[pos] = int(rng.integers(1, 4))
    seq, xyz, template_pos = [], [], []
    centre = fam.template.mean(0)
    for i in range(length):
        if i not in deleted:
            seq.append(residues[i])
            xyz.append(fam.template[i])
            template_pos.append(i)
        if i in inserted:
            m = inserted[i]
            a, b = fam.template[i], fam.template[min(i + 1, length - 1)]
            out = (a + b) / 2 - centre
            out /= np.linalg.norm(out) + 1e-9
            for k in range(m):
                t = (k + 1) / (m + 1)
                bulge = 2.5 * np.sin(np.pi * t) * (1 + 0.5 * m)
                xyz.append(a + t * (b - a) + bulge * out)
                seq.append(AMINO_ACIDS[int(rng.choice(20))])
                template_pos.append(-1)
    xyz = np.asarray(xyz, dtype=np.float64)
    template_pos = np.asarray(template_pos)
    site = np.array([int(np.flatnonzero(template_pos == s)[0]) for s in fam.site])
    noise = rng.normal(0.0, 0.25, size=xyz.shape)
    noise[site] *= 0.3  # the functional site is the best-kept part of the fold
    xyz = _relax(xyz + noise)
    return "".join(seq), xyz.astype(np.float32), site, template_pos


def _runs(text: str, letter: str) -> list[tuple[int, int]]:
    out, start = [], None
    for i, ch in enumerate(text + "\0"):
        if ch == letter and start is None:
            start = i
        elif ch != letter and start is not None:
            out.append((start, i))
            start = None
    return out
