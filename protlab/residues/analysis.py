"""Critical residues: train the residue-clustering network, score residues, validate them.

* :func:`train_residue_model` trains :class:`~protlab.residues.network.ResidueClusterNet`
  on structures with family labels (``task="single"``, cross-entropy) or multi-label
  annotations such as EC numbers (``task="multi"``, binary cross-entropy; Fmax reported).
* :func:`critical_residues` returns one protein's residue table (chain, residue number with
  insertion code, residue, score, cluster, iteration), most important first;
  :func:`explain_structures` gives the full per-protein explanation the 3D views draw.
* :func:`precision_at_k`, :func:`random_precision_at_k` and the sequence-conservation
  baseline :func:`conservation_scores` validate the scores against known sites: the
  toy universe's planted sites, or SITE records (:func:`load_site_records`).
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from protlab.core.alphabet import MODIFIED_THREE, STANDARD_THREE
from protlab.core.errors import InputError
from protlab.core.runtime import seed_everything
from protlab.curate.records import Structure
from protlab.residues.graph import UNKNOWN_AA, ResidueGraph, build_graph, collate
from protlab.residues.network import ClusterConfig, ResidueClusterNet

log = logging.getLogger(__name__)
SITE_RECORDS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "structures" / "site_records.tsv"
NON_PROTEIN = frozenset({"HOH", "WAT", "DOD"})


# ------------------------------------------------------------------------------ training
@dataclass
class TrainResult:
    model: ResidueClusterNet
    history: list[dict] = field(default_factory=list)   # one row per epoch: loss, train/val metric
    classes: list[str] = field(default_factory=list)


def _targets(labels: Sequence, task: str, classes: list[str] | None):
    if task == "single":
        classes = classes or sorted({str(x) for x in labels})
        index = {c: i for i, c in enumerate(classes)}
        missing = sorted({str(x) for x in labels} - set(index))
        if missing:
            raise InputError(f"labels {missing[:5]} are not among the model's classes")
        return torch.tensor([index[str(x)] for x in labels]), classes
    sets = [[str(v) for v in (x if isinstance(x, (list, tuple, set, np.ndarray)) else [x])] for x in labels]
    classes = classes or sorted({v for s in sets for v in s})
    index = {c: i for i, c in enumerate(classes)}
    y = torch.zeros(len(sets), len(classes))
    for i, s in enumerate(sets):  # building targets, not the forward pass
        for v in s:
            if v in index:
                y[i, index[v]] = 1.0
    return y, classes


def featurize(structures: Sequence[Structure], *, esm: dict | None = None, progress: bool = False) -> list[ResidueGraph]:
    """Residue graphs of structures (``esm``: optional id → (L, E) embeddings)."""
    from tqdm.auto import tqdm

    items = tqdm(structures, desc="residue graphs", disable=not progress)
    return [build_graph(s, esm=None if esm is None else esm[s.id]) for s in items]


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def train_residue_model(structures: Sequence[Structure], labels: Sequence, *, task: str = "single",
                        epochs: int = 30, batch_size: int = 16, lr: float = 3e-3, weight_decay: float = 1e-4,
                        hidden: int = 64, iterations: int = 4, keep_ratio: float = 0.4,
                        val_fraction: float = 0.0, seed: int = 0, device: str | None = None,
                        esm: dict | None = None, init: ResidueClusterNet | None = None,
                        residue_dropout: float = 0.0, progress: bool = True, **config) -> TrainResult:
    """Train (or fine-tune ``init``) on structures with labels; returns the model and history.

    ``residue_dropout`` hides that fraction of residue types (as ``X``) in each training
    batch, so the model cannot lean on any single residue.
    ``labels``: one class name per structure (``task="single"``) or a list of labels per
    structure (``task="multi"``). The history holds the loss and accuracy (single) or Fmax
    (multi) per epoch on the training part and, with ``val_fraction``, a held-out part.
    """
    from tqdm.auto import tqdm

    from protlab.core.runtime import pick_device

    if len(structures) != len(labels):
        raise InputError(f"{len(structures)} structures but {len(labels)} labels")
    if len(structures) < 2:
        raise InputError("training needs at least 2 labelled structures")
    seed_everything(seed)
    device = pick_device(device)
    graphs = featurize(structures, esm=esm)
    classes = None
    if init is not None and init.config.task == task and init.config.class_names:
        wanted = {str(v) for x in labels for v in (x if isinstance(x, (list, tuple, set)) else [x])}
        classes = init.config.class_names if wanted <= set(init.config.class_names) else None
    y, classes = _targets(labels, task, classes)
    if init is not None and init.config.n_classes == len(classes):
        model = init
    else:
        cfg = ClusterConfig(n_classes=len(classes), task=task, hidden=hidden, iterations=iterations,
                            keep_ratio=keep_ratio, esm_dim=graphs[0].esm.shape[1] if graphs[0].esm is not None else 0,
                            class_names=list(classes), **config)
        model = ResidueClusterNet(cfg)
        if init is not None:  # fine-tune: reuse everything but the head
            own = model.state_dict()
            own.update({k: v for k, v in init.state_dict().items() if not k.startswith("head.") and k in own
                        and own[k].shape == v.shape})
            model.load_state_dict(own)
    model.config.class_names = list(classes)
    model.to(device)
    rng = np.random.default_rng(seed)
    n_val = int(round(val_fraction * len(graphs)))
    order = rng.permutation(len(graphs))
    val_idx, train_idx = order[:n_val], order[n_val:]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(train_idx) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    history = []
    for epoch in tqdm(range(epochs), desc="train residue clustering", disable=not progress):
        model.train()
        total = 0.0
        for idx in _batches(len(train_idx), batch_size, rng):
            sel = train_idx[idx]
            batch = collate([graphs[i] for i in sel]).to(device)
            if residue_dropout:
                hide = torch.rand(batch.aa.shape, device=device) < residue_dropout
                batch.aa = batch.aa.masked_fill(hide, UNKNOWN_AA)
            loss = model.loss(model(batch), y[sel].to(device))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(sel)
        row = {"epoch": epoch + 1, "loss": total / max(len(train_idx), 1)}
        if epoch == epochs - 1 or n_val:
            row.update({f"train_{k}": v for k, v in evaluate(model, [graphs[i] for i in train_idx],
                                                             y[train_idx], device=device).items()})
            if n_val:
                row.update({f"val_{k}": v for k, v in evaluate(model, [graphs[i] for i in val_idx],
                                                               y[val_idx], device=device).items()})
        history.append(row)
    model.eval()
    model.meta = {"held_out": [structures[i].id for i in sorted(val_idx)]}  # read by held_out()
    return TrainResult(model=model.cpu(), history=history, classes=list(classes))


@torch.no_grad()
def predict(model: ResidueClusterNet, graphs: Sequence[ResidueGraph], *, batch_size: int = 32,
            device: str = "cpu") -> torch.Tensor:
    """Class probabilities (softmax for single-label, sigmoid for multi-label), (n, C)."""
    model.eval().to(device)
    out = []
    for idx in _batches(len(graphs), batch_size, None):
        logits = model(collate([graphs[i] for i in idx]).to(device)).cpu()
        out.append(logits.softmax(-1) if model.config.task == "single" else logits.sigmoid())
    return torch.cat(out)


def evaluate(model: ResidueClusterNet, graphs: Sequence[ResidueGraph], y: torch.Tensor, *, device="cpu") -> dict:
    if not len(graphs):
        return {}
    probs = predict(model, graphs, device=device)
    if model.config.task == "single":
        return {"accuracy": float((probs.argmax(-1) == y).float().mean())}
    return {"fmax": fmax(probs.numpy(), y.numpy())}


def fmax(probs: np.ndarray, targets: np.ndarray, *, thresholds: np.ndarray | None = None) -> float:
    """Protein-centric Fmax (CAFA): max over thresholds of the F1 of mean precision and recall.

    Precision is averaged over proteins with at least one prediction above the threshold,
    recall over proteins with at least one true label.
    """
    probs, targets = np.asarray(probs, dtype=float), np.asarray(targets) > 0.5
    thresholds = np.linspace(0.01, 0.99, 99) if thresholds is None else thresholds
    has_true = targets.any(1)
    best = 0.0
    for t in thresholds:  # 99 thresholds, vectorised over proteins and labels
        pred = probs >= t
        tp = (pred & targets).sum(1)
        covered = pred.any(1)
        if not covered.any() or not has_true.any():
            continue
        precision = (tp[covered] / pred[covered].sum(1)).mean()
        recall = (tp[has_true] / targets[has_true].sum(1)).mean()
        if precision + recall > 0:
            best = max(best, 2 * precision * recall / (precision + recall))
    return float(best)


# ------------------------------------------------------------------------------ explanations
@dataclass
class Explanation:
    """One protein's critical residues (``importance`` in [0, 1], max 1) and surviving clusters."""

    structure: Structure
    importance: np.ndarray        # (L,)
    iteration: np.ndarray         # (L,) last iteration whose surviving cluster holds the residue, -1: none
    cluster: np.ndarray           # (L,) that cluster's rank (0 = best) at that iteration, -1: none
    clusters: pd.DataFrame        # iteration, cluster, score, centre, members (list of residue indices)
    probabilities: np.ndarray     # (C,) task prediction
    classes: list[str]

    @property
    def id(self) -> str:
        return self.structure.id

    def top(self, k: int) -> np.ndarray:
        """Indices of the k most important residues (ties broken by position)."""
        return np.argsort(-self.importance, kind="stable")[:k]

    def table(self) -> pd.DataFrame:
        s = self.structure
        labels = s.residue_labels()
        frame = pd.DataFrame({
            "chain": s.chain, "residue_number": labels, "residue": [str(r) for r in s.res_names],
            "score": self.importance.astype(float), "cluster": self.cluster, "iteration": self.iteration,
            "index": np.arange(len(s)),
        })
        frame = frame.sort_values(["score", "index"], ascending=[False, True], kind="stable").reset_index(drop=True)
        frame.insert(0, "rank", np.arange(1, len(frame) + 1))
        return frame


def explain_structures(model: ResidueClusterNet, structures: Sequence[Structure], *, batch_size: int = 16,
                       esm: dict | None = None, device: str = "cpu", score: str = "occlusion") -> list[Explanation]:
    """Explanations for structures (batched); ``score`` as in :meth:`ResidueClusterNet.explain`."""
    if isinstance(structures, Structure):
        structures = [structures]
    graphs = featurize(structures, esm=esm)
    model.eval().to(device)
    out = []
    for idx in _batches(len(graphs), batch_size, None):
        batch = collate([graphs[i] for i in idx]).to(device)
        ex = model.explain(batch, score=score)
        probs = ex["logits"].softmax(-1) if model.config.task == "single" else ex["logits"].sigmoid()
        for j, i in enumerate(idx):
            n = len(graphs[i])
            rows = []
            for t, cl in enumerate(ex["clusters"]):
                valid = cl["mask"][j].cpu().numpy()
                members = cl["members"][j, :, :n].cpu().numpy()
                for r in np.flatnonzero(valid):
                    rows.append({"iteration": t, "cluster": int(r), "score": float(cl["score"][j, r]),
                                 "centre": int(cl["centre"][j, r]), "members": np.flatnonzero(members[r]).tolist()})
            out.append(Explanation(
                structure=structures[i], importance=ex["importance"][j, :n].cpu().numpy(),
                iteration=ex["iteration"][j, :n].cpu().numpy(), cluster=ex["cluster"][j, :n].cpu().numpy(),
                clusters=pd.DataFrame(rows, columns=["iteration", "cluster", "score", "centre", "members"]),
                probabilities=probs[j].cpu().numpy(), classes=list(model.config.class_names)))
    return out


def critical_residues(model: ResidueClusterNet, structure: Structure, *, top_k: int | None = None,
                      esm=None) -> pd.DataFrame:
    """One protein's residues, most important first: rank, chain, residue_number (with
    insertion code), residue, score (0..1), cluster, iteration, index (0-based position).
    ``top_k`` keeps the first k rows."""
    ex = explain_structures(model, [structure], esm=None if esm is None else {structure.id: esm})[0]
    table = ex.table()
    return table.head(top_k) if top_k else table


# ------------------------------------------------------------------------------ validation
def precision_at_k(scores: np.ndarray, site: Sequence[int], k: int) -> float:
    """Fraction of the k highest-scoring residues that are in ``site``."""
    if k < 1:
        raise InputError(f"k={k}: must be >= 1")
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]
    return float(np.isin(top, np.asarray(list(site), dtype=int)).mean())


def random_precision_at_k(length: int, site: Sequence[int], k: int) -> float:
    """Expected precision@k of k residues drawn at random: |site| / L."""
    return len(set(site)) / float(length)


def conservation_scores(sequences: Sequence[str], families: Sequence, *,
                        alignment: dict | None = None, ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Sequence-conservation baseline: per residue, how conserved its column is in its family.

    With ``alignment`` (id → column per residue, -1 for unaligned, e.g. the toy universe's
    template positions) the score is ``1 - entropy/log(20)`` of the column's residue types
    among family members (unaligned residues get 0). Without one, an alignment-free
    stand-in: the fraction of family members that contain the residue's centred 3-mer.
    """
    sequences = list(sequences)
    families = list(families)
    by_family: dict = {}
    for i, f in enumerate(families):
        by_family.setdefault(f, []).append(i)
    out: list[np.ndarray] = [np.zeros(len(s)) for s in sequences]
    for fam, members in by_family.items():
        if alignment is not None:
            if ids is None:
                raise InputError("conservation_scores(alignment=...) needs ids")
            columns: dict[int, Counter] = {}
            for i in members:
                for aa, col in zip(sequences[i], alignment[ids[i]]):
                    if col >= 0:
                        columns.setdefault(int(col), Counter())[aa] += 1
            cons = {}
            for col, counts in columns.items():
                p = np.array(list(counts.values()), dtype=float) / sum(counts.values())
                cons[col] = 1.0 - float(-(p * np.log(p)).sum() / np.log(20))
            for i in members:
                out[i] = np.array([cons.get(int(c), 0.0) if c >= 0 else 0.0 for c in alignment[ids[i]]])
        else:
            centred = lambda seq: [seq[max(j - 1, 0):j + 2] for j in range(len(seq))]  # noqa: E731
            kmers = [set(centred(sequences[i])) for i in members]
            for i, own in zip(members, kmers):
                seq = sequences[i]
                others = [k for j, k in zip(members, kmers) if j != i] or [own]
                out[i] = np.array([np.mean([kmer in k for k in others]) for kmer in centred(seq)])
    return out


def site_metrics(explanations: Sequence[Explanation], sites: Sequence[Sequence[int]], *, k: int | None = None,
                 baseline: Sequence[np.ndarray] | None = None, seed: int = 0) -> dict:
    """Mean precision@k of critical residues vs known sites, beside random and a baseline.

    ``k`` defaults to each protein's site size. Proteins without a site are skipped.
    Also reports an empirical random precision (random scores, same k).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i, (ex, site) in enumerate(zip(explanations, sites)):
        site = [int(s) for s in site]
        if not site:
            continue
        kk = k or len(site)
        L = len(ex.importance)
        row = {"id": ex.id, "length": L, "site_size": len(site), "k": kk,
               "precision_at_k": precision_at_k(ex.importance, site, kk),
               "random_precision_at_k": random_precision_at_k(L, site, kk),
               "random_scores_precision_at_k": precision_at_k(rng.random(L), site, kk)}
        if baseline is not None:
            row["baseline_precision_at_k"] = precision_at_k(baseline[i], site, kk)
        rows.append(row)
    if not rows:
        raise InputError("no protein has a known site: nothing to measure")
    table = pd.DataFrame(rows)
    summary = {c: float(table[c].mean()) for c in table.columns if "precision" in c}
    summary.update({"n_proteins": len(table), "k": k or "site size", "per_protein": table.to_dict("records")})
    return summary


def load_site_records(path: str | Path | None = None) -> pd.DataFrame:
    """SITE / REMARK 800 residues (``site_records.tsv``), protein residues only.

    Water and ligand rows are dropped (residue names that are not amino acids); the
    ``structure`` column holds the file's stem, ``residue_number`` the number plus
    insertion code as :meth:`Structure.residue_labels` writes it.
    """
    path = Path(path) if path is not None else SITE_RECORDS
    if not path.is_file():
        raise InputError(f"site records {path} not found (expected ../shared/data/structures/site_records.tsv)")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    needed = {"file", "resname", "chain", "resnum", "icode"}
    if not needed <= set(frame.columns):
        raise InputError(f"{path}: columns {sorted(needed - set(frame.columns))} missing")

    amino = STANDARD_THREE | MODIFIED_THREE
    frame = frame[frame["resname"].str.upper().isin(amino) & ~frame["resname"].isin(NON_PROTEIN)].copy()
    frame["structure"] = frame["file"].map(lambda f: Path(f).stem)
    frame["residue_number"] = frame["resnum"].str.strip() + frame["icode"].str.strip()
    return frame.reset_index(drop=True)


def site_indices(structure: Structure, records: pd.DataFrame) -> list[int]:
    """0-based residue indices of ``structure`` named by SITE records of its file and chain."""
    stem = Path(structure.source).stem if structure.source else structure.id
    rows = records[(records["structure"].str.lower() == stem.lower()) & (records["chain"] == structure.chain)]
    wanted = set(rows["residue_number"])
    return [i for i, lab in enumerate(structure.residue_labels()) if lab in wanted]


# ------------------------------------------------------------------------------ notebook helpers
CHECKPOINT_NAME = "residue_cluster.pt"


@dataclass
class ResidueInputs:
    """Structures to explain and, where known, their sites and a conservation baseline."""

    structures: list[Structure]
    sites: dict[str, list[int]] = field(default_factory=dict)       # id -> 0-based site residues
    baseline: dict[str, np.ndarray] = field(default_factory=dict)   # id -> conservation score
    labels: dict[str, str] = field(default_factory=dict)            # id -> family (toy)
    source: str = "toy"
    skipped: dict[str, str] = field(default_factory=dict)           # file -> why it was not used


def toy_inputs(*, n_families: int = 8, members_per_family: int = 50, length_range=(80, 140),
               seed: int = 0, families_per_superfamily: int = 8) -> ResidueInputs:
    """The toy universe with its planted sites and the conservation baseline (gold alignment).

    ``families_per_superfamily`` > 1: families of one superfamily share fold and profile
    and differ only at the planted site (see :func:`protlab.curate.toy.make_universe`)."""
    from protlab.curate.toy import make_universe

    if isinstance(length_range, str):  # papermill may pass a tuple as its text
        import ast

        length_range = ast.literal_eval(length_range)
    u = make_universe(n_families=n_families, members_per_family=members_per_family,
                      length_range=tuple(int(v) for v in length_range), seed=seed,
                      families_per_superfamily=int(families_per_superfamily))
    p = u.proteins
    ids = p["id"].tolist()
    base = conservation_scores(p["sequence"].tolist(), p["family"].tolist(), alignment=u.alignment, ids=ids)
    return ResidueInputs(structures=u.structures(), sites=dict(zip(ids, p["site"].map(list))),
                         baseline=dict(zip(ids, base)), labels=dict(zip(ids, p["label"])), source="toy")


def load_inputs(structures="toy", *, chain: str | None = None, site_records: str | Path | None = None,
                **toy) -> ResidueInputs:
    """``structures``: "toy", a PDB/mmCIF file, a directory of them, or a list of files.

    In a directory or list, files without a usable protein chain are skipped with a warning
    (listed in ``skipped``); an error is raised only when none is usable.

    For files, sites come from SITE records (protein residues only) when the file is listed
    in ``site_records`` (default: the shared ``site_records.tsv`` when present)."""
    if isinstance(structures, str) and structures == "toy":
        return toy_inputs(**toy)
    from protlab.core.errors import ProtlabError
    from protlab.curate.structures import read_structure, structure_paths

    if isinstance(structures, (str, Path)) and Path(structures).is_file():
        loaded, skipped = [read_structure(structures, chain=chain)], {}
    else:
        if isinstance(structures, (str, Path)) and not Path(structures).is_dir():
            raise InputError(f"structures={str(structures)!r} is neither 'toy', a file nor a directory")
        loaded, skipped = [], {}
        for p in structure_paths(structures):  # one unusable file (e.g. nucleic acid) must not stop the rest
            try:
                loaded.append(read_structure(p, chain=chain))
            except ProtlabError as exc:
                skipped[str(p)] = str(exc)
        for p, why in skipped.items():
            log.warning("skipped %s: %s", p, why)
    if not loaded:
        raise InputError(f"no usable protein structure in {structures!r}: "
                         + "; ".join(f"{p}: {why}" for p, why in skipped.items()))
    sites = {}
    path = Path(site_records) if site_records else SITE_RECORDS
    if path.is_file():
        records = load_site_records(path)
        for s in loaded:
            idx = site_indices(s, records)
            if idx:
                sites[s.id] = idx
    return ResidueInputs(structures=loaded, sites=sites, source=str(structures), skipped=skipped)


TOY_OPTIONS = ("n_families", "members_per_family", "length_range", "families_per_superfamily")


def train_on_toy(*, epochs: int = 60, val_fraction: float = 0.2, seed: int = 0, **options) -> TrainResult:
    """Train on family classification of the toy universe (the default model).

    Options named in ``TOY_OPTIONS`` shape the universe (:func:`toy_inputs`, whose defaults
    apply), the rest go to :func:`train_residue_model`. By default the 8 families form one
    superfamily (one fold) and differ only in the combination of their planted site residues,
    so the classifier has to read the site; ``val_fraction`` of the proteins are held out
    (``model.meta["held_out"]``)."""
    toy = {k: options.pop(k) for k in TOY_OPTIONS if k in options}
    inputs = toy_inputs(seed=seed, **toy)
    labels = [inputs.labels[s.id] for s in inputs.structures]
    return train_residue_model(inputs.structures, labels, epochs=epochs, seed=seed, val_fraction=val_fraction,
                               **options)


def pfam_domain_inputs(directory: str | Path) -> tuple[list[Structure], list[str]]:
    """The Pfam-domain structures (``PFxxxxx_PDBID_CHAIN.pdb``) with their family labels."""
    from protlab.curate.structures import read_structure

    directory = Path(directory)
    files = sorted(directory.glob("PF*_*.pdb"))
    if not files:
        raise InputError(f"no PFxxxxx_PDBID_CHAIN.pdb files in {directory}")
    structures, labels = [], []
    for f in files:
        family, _pdb, chain = f.stem.split("_")[:3]
        structures.append(read_structure(f, chain=chain))
        labels.append(family)
    return structures, labels


def get_model(checkpoint: str | Path | None, run_dir: str | Path, **train_options) -> tuple[ResidueClusterNet, list]:
    """Load ``checkpoint``, or train on the toy universe and save the model to
    ``run_dir/checkpoints/residue_cluster.pt``; returns (model, history)."""
    from protlab.core.rundir import CHECKPOINTS, run_path
    from protlab.residues.network import load_network, save_network

    if checkpoint:
        return load_network(checkpoint), []
    result = train_on_toy(**train_options)
    target = run_path(run_dir, CHECKPOINTS) / CHECKPOINT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    result.model.meta.update(trained_on="toy", history=result.history)
    save_network(result.model, target, **result.model.meta)
    return result.model, result.history


def held_out(inputs: ResidueInputs, model: ResidueClusterNet) -> ResidueInputs:
    """Toy inputs restricted to the proteins ``model`` held out in training (its checkpoint's
    ``held_out`` ids), so site metrics are measured on proteins it never fitted. Inputs that
    are not the toy universe, or a model without that record, come back unchanged."""
    keep = set(getattr(model, "meta", {}).get("held_out") or [])
    if inputs.source != "toy" or not keep & {s.id for s in inputs.structures}:
        return inputs
    structures = [s for s in inputs.structures if s.id in keep]
    log.info("explaining the %d toy proteins held out in training", len(structures))
    pick = lambda d: {k: v for k, v in d.items() if k in keep}  # noqa: E731
    return ResidueInputs(structures=structures, sites=pick(inputs.sites), baseline=pick(inputs.baseline),
                         labels=pick(inputs.labels), source=inputs.source, skipped=inputs.skipped)


def write_outputs(run_dir: str | Path, explanations: Sequence[Explanation], inputs: ResidueInputs, *,
                  top_k: int = 10, max_views: int = 4) -> dict:
    """Residue tables, HTML views, the importance figure and (with sites) residue_metrics.json."""
    from protlab.core.atomic import atomic_write_json, atomic_write_parquet
    from protlab.core.rundir import figures_dir, run_path
    from protlab.plot.export import save_figure
    from protlab.plot.view3d import export_views, importance_figure

    tables = []
    for ex in explanations:
        t = ex.table()
        t.insert(0, "id", ex.id)
        tables.append(t)
    out: dict = {"table": atomic_write_parquet(run_path(run_dir, "residues") / "critical_residues.parquet",
                                               pd.concat(tables, ignore_index=True))}
    figs = figures_dir(run_dir)
    out["views"] = export_views(list(explanations)[:max_views], figs, top_k=top_k)
    out["summary"] = save_figure(importance_figure(list(explanations)[:max_views], sites=inputs.sites),
                                 figs / "residue_importance")
    with_sites = [ex for ex in explanations if inputs.sites.get(ex.id)]
    if with_sites:
        baseline = [inputs.baseline[ex.id] for ex in with_sites] if inputs.baseline else None
        metrics = site_metrics(with_sites, [inputs.sites[ex.id] for ex in with_sites], baseline=baseline)
        metrics_top = site_metrics(with_sites, [inputs.sites[ex.id] for ex in with_sites], k=top_k,
                                   baseline=baseline)
        summary = {k: v for k, v in metrics.items() if k != "per_protein"}
        summary["at_top_k"] = {k: v for k, v in metrics_top.items() if k != "per_protein"}
        summary["top_k"] = top_k
        summary["source"] = inputs.source
        if baseline is not None:
            summary["baseline"] = "sequence conservation (1 - column entropy / log 20, family alignment)"
        summary["per_protein"] = metrics["per_protein"]
        out["metrics"] = atomic_write_json(run_path(run_dir, "residue_metrics.json"), summary)
        out["metrics_summary"] = {k: v for k, v in summary.items() if k != "per_protein"}
    return out
