"""03_pretrain judged on real enzymes, the ProtST way, beside MMseqs2 homology transfer.

Trains 03 (the ``toy-cpu`` preset's tiny towers and defaults; ``--preset server`` for a GPU)
on CLEAN's split10 enzymes (``../shared/data/enzymes``: 7 757 Swiss-Prot enzymes, texts from
ProtST's EC descriptions via :mod:`protlab.curate.enzymes`; 01 splits them into train / valid /
test as it does any table, and 03 picks its exported step on that valid split), then scores on
new-392, the 392 enzymes added to Swiss-Prot later (CLEAN's held-out set, never seen here):

* **zero-shot EC by text prompts**, at EC level 3 and level 4: each enzyme gets the class whose
  prompt (03's own: the mean embedding of the class's distinct split10 texts,
  :func:`protlab.pretrain.retrieval.class_prompts`) is closest — the trained model and the
  untrained one (same architecture and seed, no step);
* **fixed-encoder probe** (:func:`protlab.evaluate.probe.probe`): 02 embeddings (mean of the
  protein tower's last layer) of split10 and new-392 → a linear (and MLP) probe fitted on the
  split10 labels, scored on new-392 — for the trained tower, the untrained one and 02's k-mer
  encoder (TF-IDF + SVD fitted on both sets' sequences together, as 02 fits it on a run's
  proteins; it never sees a label);
* **MMseqs2 homology transfer** (:mod:`protlab.evaluate.homology`): each new-392 enzyme takes
  the EC of its best split10 hit; an enzyme without a hit counts as wrong.

Every method is scored on all new-392 enzymes. ``accuracy``: the predicted class equals the
enzyme's first EC number (cut to the level); classes no split10 enzyme has (at level 4 about a
third of new-392) count as errors (``n_unseen_label``; ``accuracy_seen`` leaves them out).
``macro_f1``: per-class F1 averaged over the classes present in new-392. ``clean_f1``: CLEAN's
F1 (its ``get_eval_metrics``: every EC number of an enzyme is a true label, scikit-learn's
support-weighted F1 over the binarised label sets).

``python benchmarks/quality_pretrain_real.py [--max-steps N] [--limit N] [--limit-test N]
[--preset server] [--set key=value ...]``; ``--limit`` / ``--limit-test`` take seeded subsets
(smoke runs) and name the record's variant.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from protlab import curate, pretrain  # noqa: E402
from protlab.core.mmseqs import default_threads  # noqa: E402
from protlab.core.runtime import pick_device  # noqa: E402
from protlab.curate.enzymes import enzyme_pairs, level, write_pairs  # noqa: E402
from protlab.embed.encoders import get_encoder  # noqa: E402
from protlab.evaluate.homology import homology_transfer  # noqa: E402
from protlab.evaluate.probe import PROBES, probe, score_predictions  # noqa: E402
from protlab.pretrain.data import Collator  # noqa: E402
from protlab.pretrain.model import build_model, export_protein_encoder, load_trained  # noqa: E402
from protlab.pretrain.retrieval import class_prompts, encode_proteins, prompt_embeddings, zero_shot_accuracy  # noqa: E402
from protlab.pretrain.train_config import parse_overrides  # noqa: E402
from protlab.pretrain.validation import BEST_FILE  # noqa: E402
from records import peak_rss_gib, write_record  # noqa: E402

ENZYMES = REPO.parent / "shared" / "data" / "enzymes"
LEVELS = (3, 4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ENZYMES), help="folder with clean_split10.tsv, clean_new392.tsv and "
                                                        "protst_ec_descriptions.tsv")
    p.add_argument("--test", default=None, help="the held-out enzymes, a table like new-392's "
                                                "(default: DATA/clean_new392.tsv)")
    p.add_argument("--preset", default="toy-cpu", choices=sorted(pretrain.PRESETS), help="03's preset")
    p.add_argument("--max-steps", type=int, default=None, help="03's max_steps (default: the preset's)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="other parameters of protlab.pretrain.run (VALUE parsed as JSON when it can be)")
    p.add_argument("--limit", type=int, default=None, help="a seeded subset of this many split10 enzymes")
    p.add_argument("--limit-test", type=int, default=None, help="a seeded subset of this many new-392 enzymes")
    p.add_argument("--probes", nargs="+", default=list(PROBES), choices=PROBES, help="probe models")
    p.add_argument("--probe-max-iter", type=int, default=200,
                   help="solver iterations of each probe (the table says whether it converged)")
    p.add_argument("--seed", type=int, default=0, help="seed of 01, 03, the probes and the subsets")
    p.add_argument("--threads", type=int, default=None, help="MMseqs2 threads (default: up to 4)")
    p.add_argument("--work-dir", default=None, help="keep the run here (default: a temporary directory)")
    p.add_argument("--no-record", action="store_true", help="print the table only (smoke runs)")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------- data
def enzyme_table(path: Path, descriptions: Path, limit: int | None, seed: int) -> pd.DataFrame:
    """Every enzyme of ``path`` (texted or not: labels need no text), a seeded subset of ``limit``."""
    frame = enzyme_pairs(path, descriptions, label_level=4, keep_untexted=True)
    if limit is not None and limit < len(frame):
        frame = frame.sample(n=limit, random_state=seed).sort_index().reset_index(drop=True)
    return frame


def at_level(frame: pd.DataFrame, depth: int) -> pd.Series:
    """id → the first EC number cut to ``depth`` (the label every method is scored on)."""
    return pd.Series([level(ec.split(";")[0], depth) for ec in frame["ec"]], index=frame["id"], dtype=object)


def ec_sets(frame: pd.DataFrame, depth: int) -> pd.Series:
    """id → every EC number of the enzyme cut to ``depth`` (CLEAN's true label set)."""
    return pd.Series([sorted({level(ec, depth) for ec in ecs.split(";")}) for ecs in frame["ec"]],
                     index=frame["id"], dtype=object)


def clean_f1(true_sets: pd.Series, predictions: pd.Series) -> float:
    """CLEAN's F1: true and predicted label sets binarised over every label either holds,
    scikit-learn's support-weighted F1 (an enzyme without a prediction predicts nothing)."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    predicted = [[p] if isinstance(p, str) else [] for p in predictions.reindex(true_sets.index)]
    binarizer = MultiLabelBinarizer().fit(list(true_sets) + predicted)
    return float(f1_score(binarizer.transform(list(true_sets)), binarizer.transform(predicted), average="weighted",
                          zero_division=0))


# ------------------------------------------------------------------------ training
def curate_and_pretrain(run_dir: Path, pool: pd.DataFrame, args, overrides: dict):
    """01 on the texted split10 enzymes (label: EC level 4), then 03; returns 03's result."""
    pairs = pool[pool["text"].notna()][["id", "sequence", "label", "text"]]
    source = write_pairs(pairs, run_dir.parent / "split10_pairs.tsv")
    curate.run(run_dir, source=str(source), seed=args.seed)
    params = {**overrides, "preset": args.preset, "seed": args.seed, "resume": False, "progress": False}
    if args.max_steps is not None:
        params["max_steps"] = args.max_steps
    return pretrain.run(run_dir, **params)


def zero_shot(model, tokenizer, config, prompt_pairs: pd.DataFrame, test: pd.DataFrame, device: str) -> dict:
    """Level → (predictions, the classes with a prompt): 03's prompts and scoring, at each level."""
    collator = Collator(model.alphabet, tokenizer, crop_length=config.crop_length,
                        max_text_length=config.max_text_length)
    model.to(device).eval()
    proteins = encode_proteins(model, list(test["sequence"]), collator, crop_length=config.crop_length,
                               stride=config.eval_stride, batch_size=config.eval_batch_size, device=device)
    out = {}
    for depth in LEVELS:
        labelled = prompt_pairs.assign(label=at_level(prompt_pairs, depth).to_numpy())
        prompts = class_prompts(labelled, field=config.zero_shot_field, template=config.zero_shot_template)
        classes = sorted(prompts)
        emb = prompt_embeddings(model, prompts, classes, collator, max_length=config.max_text_length,
                                batch_size=config.eval_batch_size, device=device)
        predicted = pd.Series(np.asarray(classes, dtype=object)[np.argmax(proteins @ emb.T, axis=1)],
                              index=test["id"], dtype=object)
        truth = at_level(test, depth)
        accuracy, _ = zero_shot_accuracy(proteins, emb, list(truth), classes)  # 03's score: the enzymes it covers
        seen = truth.isin(classes)
        assert accuracy is None or np.isclose(accuracy, (predicted[seen] == truth[seen]).mean())
        out[depth] = (predicted, classes)
    return out


def embed(encoder, sequences) -> np.ndarray:
    return encoder.embed(list(sequences), progress=False)


# ---------------------------------------------------------------------------- main
def score_row(method: str, encoder: str, depth: int, test: pd.DataFrame, predicted: pd.Series, learnable,
              seconds: float, *, n_classes: int, converged: bool | None = None) -> dict:
    """One table row; ``learnable``: the classes the method could predict, ``n_classes`` of them."""
    m = score_predictions(at_level(test, depth), predicted, learnable)
    return {"method": method, "encoder": encoder, "level": depth, "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"], "clean_f1": clean_f1(ec_sets(test, depth), predicted),
            "accuracy_seen": m["accuracy_seen"], "n_test": m["n_test"], "n_unseen_label": m["n_unseen_label"],
            "n_no_prediction": m["n_no_prediction"], "n_classes": n_classes, "converged": converged,
            "seconds": round(seconds, 1)}


def main(argv=None) -> None:
    args = parse_args(argv)
    overrides = parse_overrides(args.set)
    data = Path(args.data)
    descriptions = data / "protst_ec_descriptions.tsv"
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="protlab-quality-pretrain-real-"))
    work.mkdir(parents=True, exist_ok=True)
    start, seconds, rows = time.perf_counter(), {}, []
    pool = enzyme_table(data / "clean_split10.tsv", descriptions, args.limit, args.seed)
    test = enzyme_table(Path(args.test) if args.test else data / "clean_new392.tsv", descriptions, args.limit_test,
                        args.seed)
    print(f"[data] split10: {len(pool)} enzymes ({pool['text'].notna().mean():.1%} with a text); "
          f"new-392: {len(test)}", flush=True)

    t = time.perf_counter()
    run_dir = work / "run"
    result = curate_and_pretrain(run_dir, pool, args, overrides)
    seconds["01_03"] = time.perf_counter() - t
    config = result.config
    device = pick_device(config.device)
    proteins = pd.read_parquet(run_dir / "proteins.parquet")
    m = result.metrics or {}
    pretrain_info = {"pairs": len(proteins), **proteins["split"].value_counts().to_dict(),
                     "steps": result.summary.get("step"), "best_step": m.get("best_step"),
                     "best_metric": m.get("best_metric"), "heldout_mrr": m.get("mrr"),
                     "heldout_mrr_ratio": m.get("mrr_ratio"), "train_seconds": result.summary.get("train_seconds")}
    print(f"[03] {json.dumps(pretrain_info)}", flush=True)

    checkpoints = run_dir / "checkpoints"
    trained, tokenizer, _ = load_trained(checkpoints / BEST_FILE if (checkpoints / BEST_FILE).is_file()
                                         else checkpoints / "last.pt")
    untrained, _ = build_model(config)  # the same architecture and seed, no step
    prompt_pairs = pool[pool["text"].notna()]
    for name, model in (("trained", trained), ("untrained", untrained)):
        t = time.perf_counter()
        found = zero_shot(model, tokenizer, config, prompt_pairs, test, device)
        took = time.perf_counter() - t
        for depth, (predicted, classes) in found.items():
            rows.append(score_row("zero-shot (text prompts)", name, depth, test, predicted, classes, took,
                                  n_classes=len(classes)))
            print(json.dumps(rows[-1]), flush=True)
    untrained_path = export_protein_encoder(untrained, work / "untrained_protein_encoder.pt",
                                            source="quality_pretrain_real", step=0)
    del trained, untrained

    t = time.perf_counter()
    hits, counts = homology_transfer(list(test["id"]), list(test["sequence"]), list(pool["sequence"]),
                                     list(at_level(pool, 4)), threads=args.threads or default_threads())
    seconds["homology"] = time.perf_counter() - t
    for depth in LEVELS:
        predicted = hits.map(lambda ec: level(ec, depth) if isinstance(ec, str) else None)
        rows.append(score_row("MMseqs2 homology transfer", "-", depth, test, predicted,
                              at_level(pool, depth).unique(), seconds["homology"],
                              n_classes=int(at_level(pool, depth).nunique())))
        print(json.dumps(rows[-1]), flush=True)

    ids = list(pool["id"]) + list(test["id"])
    sequences = list(pool["sequence"]) + list(test["sequence"])
    split = pd.Series(["train"] * len(pool) + ["test"] * len(test), index=ids)
    encoders = {"trained": str(result.protein_encoder), "untrained": str(untrained_path), "kmer": "kmer"}
    embeddings = {}
    for name, spec in encoders.items():
        t = time.perf_counter()
        embeddings[name] = embed(get_encoder(spec, device=device, seed=args.seed), sequences)
        seconds[f"embed_{name}"] = time.perf_counter() - t
    for model in args.probes:  # the linear probes of every encoder before the slower MLPs
        for depth in LEVELS:
            labels = pd.concat([at_level(pool, depth), at_level(test, depth)])
            for name in encoders:
                t = time.perf_counter()
                found = probe(ids, embeddings[name], labels, split, model=model, seed=args.seed,
                              max_iter=args.probe_max_iter)
                rows.append(score_row(f"probe ({model})", name, depth, test, found.predictions,
                                      at_level(pool, depth).unique(), time.perf_counter() - t,
                                      n_classes=found.metrics["n_train_classes"],
                                      converged=found.metrics["converged"]))
                print(json.dumps(rows[-1]), flush=True)
    seconds["total"] = time.perf_counter() - start

    def acc(method, encoder, depth):
        return next(r["accuracy"] for r in rows if (r["method"], r["encoder"], r["level"]) == (method, encoder, depth))

    zs = {d: {e: acc("zero-shot (text prompts)", e, d) for e in ("trained", "untrained")} for d in LEVELS}
    linear = {d: {e: acc("probe (linear)", e, d) for e in encoders} for d in LEVELS} if "linear" in args.probes else {}
    homology = {d: acc("MMseqs2 homology transfer", "-", d) for d in LEVELS}
    results = {
        "zero_shot_acc": zs,
        "zero_shot_l3_ratio": zs[3]["trained"] / zs[3]["untrained"] if zs[3]["untrained"] else None,
        "probe_linear_acc": linear, "homology_acc": homology,
        "homology_share_without_hit": counts["share_without_hit"],
        # an untrained model at 0 would make any trained accuracy "3x" it: a hit is required too
        "target_zero_shot_l3_3x": bool(zs[3]["trained"] > 0 and zs[3]["trained"] >= 3 * zs[3]["untrained"]),
        "target_probe_trained_beats_untrained": (all(linear[d]["trained"] > linear[d]["untrained"] for d in LEVELS)
                                                 if linear else None),
        "pretrain": pretrain_info, "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "peak_rss_gib": peak_rss_gib()}
    print("\n| method | encoder | level | accuracy | macro-F1 | CLEAN F1 | acc. seen | unseen | no prediction | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['method']} | {r['encoder']} | {r['level']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} "
              f"| {r['clean_f1']:.3f} | {r['accuracy_seen'] if r['accuracy_seen'] is None else round(r['accuracy_seen'], 3)} "
              f"| {r['n_unseen_label']} | {r['n_no_prediction']} | {r['seconds']} |")
    print(json.dumps({k: results[k] for k in ("zero_shot_l3_ratio", "target_zero_shot_l3_3x",
                                               "target_probe_trained_beats_untrained", "seconds", "peak_rss_gib")}))
    variant_parts = [f"{name}={value}" for name, value in (("preset", args.preset if args.preset != "toy-cpu" else None),
                                                           ("max-steps", args.max_steps), ("limit", args.limit),
                                                           ("limit-test", args.limit_test)) if value is not None]
    if not args.no_record:
        write_record(
            "quality_pretrain_real", params={**vars(args), "overrides": overrides},
            variant="-".join(variant_parts + list(args.set)) or None,
            title=f"03_pretrain ({args.preset}) trained on CLEAN split10 enzymes ({len(pool)}), judged on new-392 "
                  f"({len(test)}): zero-shot EC by text prompts and fixed-encoder probes, trained vs untrained vs "
                  "k-mer, beside MMseqs2 homology transfer.",
            notes="Every new-392 enzyme is scored: a class no split10 enzyme has (n_unseen_label) and an enzyme "
                  "without an MMseqs2 hit (n_no_prediction) count as wrong; accuracy_seen leaves unseen classes "
                  "out. accuracy and macro_f1 (over the classes present) use each enzyme's first EC number; "
                  "clean_f1 is CLEAN's support-weighted F1 over all its EC numbers. Untrained: the same "
                  "architecture and seed with no step; k-mer: 02's TF-IDF + SVD fitted on both sets' sequences.",
            table=rows, results=results)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
