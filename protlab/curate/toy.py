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
positions (-1 for inserted residues).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from protlab.core.alphabet import AMINO_ACIDS, THREE_LETTER
from protlab.core.errors import InputError
from protlab.curate.records import Structure
from protlab.curate.sampling import build_text

BOND = 3.8          # Å between consecutive Cα
MIN_CONTACT = 4.0   # Å, closest allowed non-consecutive Cα pair while building
SITE_RADIUS = 9.0   # Å, every pair of site residues in the template is at most this far apart
SITE_SEPARATION = 20  # residues between site residues in the template (≥ 15 after indels)
CONTACT_WEIGHT = 1.0
SITE_RESIDUES = "HDSCEKYRN"
MAX_SUPERFAMILY = 8  # distinct site words of a 3-residue site with two types per position

# Residue propensities by secondary structure (added to a uniform background).
_PROPENSITY = {
    "H": "AELMKQR",
    "E": "VIYFTW",
    "L": "GPNDST",
}

# Family vocabularies: (protein names, function sentence, location, similarity family).
_VOCAB = [
    (("Serine hydrolase", "Esterase", "Carboxylesterase"),
     "Hydrolyzes ester bonds of short-chain lipids using a catalytic serine.",
     "Cytoplasm", "serine hydrolase"),
    (("Protein kinase", "Serine/threonine-protein kinase", "Phosphotransferase"),
     "Catalyzes phosphorylation of substrate proteins on serine and threonine residues.",
     "Nucleus", "protein kinase"),
    (("ABC transporter ATP-binding protein", "Transport ATPase", "ATP-binding cassette protein"),
     "Couples ATP hydrolysis to the import of sugars across the membrane.",
     "Cell membrane", "ABC transporter"),
    (("Zinc finger protein", "Zinc-binding transcription factor", "C2H2 zinc finger"),
     "Binds DNA in a zinc-dependent manner and activates transcription.",
     "Nucleus", "krueppel C2H2-type zinc-finger protein"),
    (("Alcohol dehydrogenase", "Oxidoreductase", "NAD-dependent dehydrogenase"),
     "Oxidizes primary alcohols to aldehydes using NAD as cofactor.",
     "Mitochondrion", "zinc-containing alcohol dehydrogenase"),
    (("Methyltransferase", "SAM-dependent methyltransferase", "O-methyltransferase"),
     "Transfers a methyl group from S-adenosyl-L-methionine to small-molecule acceptors.",
     "Cytoplasm", "class I-like SAM-binding methyltransferase superfamily"),
    (("Trypsin-like protease", "Serine protease", "Endopeptidase"),
     "Cleaves peptide bonds after basic residues in secreted substrates.",
     "Secreted", "peptidase S1"),
    (("Heat shock protein", "Molecular chaperone", "Chaperonin"),
     "Assists folding of newly synthesized polypeptides and prevents aggregation.",
     "Cytoplasm", "heat shock protein 70"),
    (("Lipid-binding protein", "Fatty acid-binding protein", "Lipocalin"),
     "Binds long-chain fatty acids and transports them to the nucleus.",
     "Secreted", "calycin superfamily"),
    (("Potassium channel", "Voltage-gated ion channel", "K+ channel subunit"),
     "Mediates voltage-dependent potassium ion permeability of excitable membranes.",
     "Cell membrane", "potassium channel"),
    (("Glycosyltransferase", "Glucosyltransferase", "UDP-glycosyltransferase"),
     "Transfers glucose from UDP-glucose to acceptor molecules.",
     "Endoplasmic reticulum membrane", "glycosyltransferase 2"),
    (("Ferredoxin", "Iron-sulfur protein", "2Fe-2S ferredoxin"),
     "Transfers electrons in photosynthetic and metabolic redox reactions.",
     "Plastid, chloroplast", "2Fe2S plant-type ferredoxin"),
]
_SHORT_NAMES = ("hydrolase", "kinase", "abc_atpase", "zinc_finger", "dehydrogenase", "methyltransferase",
                "protease", "chaperone", "lipocalin", "k_channel", "glycosyltransferase", "ferredoxin")
_LOCATIONS = sorted({v[2] for v in _VOCAB})
_FUNCTION_PREFIX = ("", "", "Probably ", "Putative: ")
_EXISTENCE_P = (0.3, 0.3, 0.2, 0.1, 0.1)   # protein existence levels 1..5
_DROP_P = {"protein_name": 0.03, "function": 0.25, "subcellular_location": 0.25, "similarity": 0.15}
_CONFUSION_P = 0.05                          # description borrowed from another family


@dataclass
class ToyFamily:
    """Ground truth of one family; positions are 0-based template positions."""

    index: int
    name: str
    consensus: str
    profile: np.ndarray           # (L, 20) residue probabilities, columns in AMINO_ACIDS order
    secondary: str                # per template position: H (helix), E (strand), L (loop)
    conserved: np.ndarray         # template positions with a near-fixed residue
    site: np.ndarray              # template positions of the planted functional site
    site_residues: str            # residue type at each site position (same in every member)
    template: np.ndarray          # (L, 3) float32 template Cα coordinates
    vocabulary: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.consensus)


@dataclass
class ToyUniverse:
    """Proteins (a DataFrame), their Cα coordinates and the families' ground truth."""

    proteins: pd.DataFrame
    coords: dict[str, np.ndarray]
    families: list[ToyFamily]
    seed: int
    alignment: dict[str, np.ndarray] = field(default_factory=dict)  # id -> template position per residue (-1: inserted)

    def structure(self, id: str) -> Structure:
        """The :class:`Structure` of one protein (chain A, residues numbered from 1)."""
        if id not in self.coords:
            raise InputError(f"no toy protein with id {id!r} (ids look like {next(iter(self.coords))!r})")
        ca = self.coords[id]
        sequence = self.proteins.at[self._row(id), "sequence"]
        n = len(sequence)
        return Structure(
            id=id, chain="A", res_ids=np.arange(1, n + 1), ins_codes=np.full(n, "", dtype=object),
            res_names=np.array([THREE_LETTER[a] for a in sequence], dtype=object),
            sequence=sequence, ca=ca, centroid=_side_chain_centroids(ca, sequence), source=None,
            notes=["generated by protlab.curate.toy"],
        )

    def structures(self) -> list[Structure]:
        return [self.structure(i) for i in self.proteins["id"]]

    def _row(self, id: str) -> int:
        if not hasattr(self, "_index"):
            self._index = {v: i for i, v in zip(self.proteins.index, self.proteins["id"])}
        return self._index[id]


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


def _make_family_names(index: int) -> tuple[str, dict]:
    names, function, location, similarity = _VOCAB[index % len(_VOCAB)]
    round_ = index // len(_VOCAB)
    short = _SHORT_NAMES[index % len(_VOCAB)]
    name = f"F{index:02d}_{short}" if round_ == 0 else f"F{index:02d}_{short}{round_ + 1}"
    vocab = {"names": names, "function": function, "location": location,
             "similarity": similarity + (f" subfamily {round_ + 1}" if round_ else "")}
    return name, vocab


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


# ---------------------------------------------------------------------------- text

def _make_text(fam: ToyFamily, families: list[ToyFamily], rng: np.random.Generator) -> dict:
    source = fam
    if len(families) > 1 and rng.random() < _CONFUSION_P:
        others = [f for f in families if f.index != fam.index]
        source = others[int(rng.integers(len(others)))]
    vocab = source.vocabulary
    name = vocab["names"][int(rng.integers(len(vocab["names"])))]
    if rng.random() < 0.2:
        name = f"{name} {int(rng.integers(1, 10))}"
    prefix = _FUNCTION_PREFIX[int(rng.integers(len(_FUNCTION_PREFIX)))]
    function = prefix + (vocab["function"][0].lower() + vocab["function"][1:] if prefix else vocab["function"])
    location = vocab["location"] if rng.random() > 0.1 else _LOCATIONS[int(rng.integers(len(_LOCATIONS)))]
    similarity = f"Belongs to the {vocab['similarity']} family."
    fields = {"protein_name": name, "function": function, "subcellular_location": location,
              "similarity": similarity}
    for key, p in _DROP_P.items():
        if rng.random() < p:
            fields[key] = None
    existence = int(rng.choice(5, p=_EXISTENCE_P)) + 1
    return {**fields, "text": build_text(fields), "existence": existence}
