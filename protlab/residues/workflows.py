"""Stage 06's four workflows, the options each takes, and how ``mode`` picks one.

* ``toy``: train the network on the toy universe's families and explain its held-out proteins
  (or, with ``toy_model=True``, structure files: the views then say the model is a toy's);
* ``sites``: learn the known site residues of structure files (a ``sites`` table) on a
  training part and measure the held-out structures beside the cavity baseline;
* ``labels``: learn protein-level labels of structure files (a ``labels`` table) likewise;
* ``explain``: explain structures with a saved model (``checkpoint``).

``mode="auto"`` picks the workflow from the inputs: a checkpoint explains, the toy universe
trains on the toy, a sites or labels table trains on it. Each workflow reads only its own
options (a frozen dataclass); a parameter set to something other than its default that the
chosen workflow does not read is an error naming it, never silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.residues.inputs import ResidueInputs, check_structure_files, explain_inputs
from protlab.residues.label_training import train_on_labels
from protlab.residues.network import ResidueNet, load_network
from protlab.residues.site_training import measure_peer, train_on_sites
from protlab.residues.toy_training import train_toy_model

MODES = ("toy", "sites", "labels", "explain")
TOY_EPOCHS, REAL_EPOCHS = 60, 30  # structure files: longer training overfits a few hundred structures
# read by every workflow: what to explain and how to show it
SHARED = ("mode", "structures", "chain", "seed", "cpu_threads", "score", "top_k", "max_views", "cache_dir")
NO_TOY_ON_REAL = ("real structures need a model trained on real data, and {what}: its residue scores say little "
                  "about real proteins. Pass sites=TABLE (known site residues: the network learns them), "
                  "checkpoint=PATH (a residue-clustering model trained on labelled structures), or toy_model=True "
                  "to look at them with the toy-trained model anyway (the views then say so)")
# why a workflow does not read a parameter, where a bare "not used" would leave the user guessing
UNUSED_BECAUSE = {
    "esm": "per-residue embeddings are added when training on sites or labels of structure files (a checkpoint "
           "brings its own)",
    "split": "it splits the structures when training on sites or labels",
    "sites": "the labels workflow measures the structure files' own sites (SITE records, ligand contacts)",
    "labels": "a labels table is learnt by the labels workflow (structure files, no checkpoint)",
}


@dataclass(frozen=True)
class ToyTraining:
    """Train on the toy universe; explain its held-out proteins, or structure files with
    ``toy_model`` (whose known ``sites`` are then measured)."""

    epochs: int
    n_families: int
    members_per_family: int
    families_per_superfamily: int
    val_fraction: float
    length_range: list
    hidden: int
    batch_size: int
    residue_dropout: float
    toy_model: bool
    sites: str | None


@dataclass(frozen=True)
class FileTraining:
    """Train on the known sites (``table`` of sites) or labels (``table`` of labels) of structure
    files; the held-out part (``split``, or ``test_fraction`` of whole identity clusters) is measured."""

    table: str
    epochs: int
    split: str | None
    test_fraction: float
    hidden: int
    batch_size: int
    residue_dropout: float
    bf16: bool
    resume: bool
    resume_override: bool
    esm: str | None


@dataclass(frozen=True)
class SiteTraining(FileTraining):
    """Training on sites; ``peer``: the learned peer PocketNet, when it is installed,
    ensembled with the network and measured on the held-out structures (``"ensemble"``),
    measured only (``"measure"``) or not at all (``"off"``)."""

    peer: str


@dataclass(frozen=True)
class Explaining:
    """Explain with a saved model; known ``sites`` of structure files are measured. The toy
    universe's options rebuild the universe a toy model was trained on; ``peer`` is as for
    training on sites, for a site model."""

    checkpoint: str
    peer: str
    toy_model: bool
    sites: str | None
    n_families: int
    members_per_family: int
    families_per_superfamily: int
    length_range: list


OPTIONS = {"toy": ToyTraining, "sites": SiteTraining, "labels": FileTraining, "explain": Explaining}


@dataclass
class Trained:
    """What a workflow hands to the explanation: the model, its training history (empty for a
    loaded one), the inputs to explain, their graphs by id (None: built by the explanation) and,
    for labels, the held-out report."""

    model: ResidueNet
    history: list
    inputs: ResidueInputs
    graphs: dict | None
    report: dict | None = None


def resolve_mode(params: dict) -> str:
    """The workflow ``params`` ask for: ``mode`` itself, or for ``"auto"`` the one the inputs imply."""
    mode, real = params["mode"], params["structures"] != "toy"
    if mode != "auto":
        return mode
    if params["checkpoint"] is not None:
        return "explain"
    if not real:
        return "toy"
    if params["sites"] is not None and params["labels"] is not None:
        raise InputError("sites and labels both given: train on one task per run (sites=None or labels=None)")
    if params["sites"] is not None:
        return "sites"
    if params["labels"] is not None:
        return "labels"
    if params["toy_model"]:
        return "toy"
    raise InputError(NO_TOY_ON_REAL.format(what="checkpoint=None would train one on the toy universe"))


def _names(options: type) -> set[str]:
    return {f.name for f in fields(options)} - {"table"}


def _refuse_unused(mode: str, params: dict, defaults: dict) -> None:
    used = set(SHARED) | _names(OPTIONS[mode]) | ({mode} if mode in ("sites", "labels") else set())
    unused = [k for k in params if k not in used and params[k] != defaults[k]]
    for name in unused:
        because = UNUSED_BECAUSE.get(name, f"the {mode} workflow does not read it")
        raise InputError(f"{name}={params[name]!r} is not used with mode={mode!r}: {because}; leave it at "
                         f"{defaults[name]!r}" + (f" or choose another mode ({', '.join(MODES)})"
                                                  if params["mode"] != "auto" else ""))


def _require(mode: str, params: dict) -> None:
    real = params["structures"] != "toy"
    if mode in ("sites", "labels") and (not real or params[mode] is None):
        raise InputError(f"mode={mode!r} learns a {mode} table of structure files: give structures=FILES and "
                         f"{mode}=TABLE")
    if mode == "explain" and params["checkpoint"] is None:
        raise InputError("mode='explain' explains with a saved model: give checkpoint=PATH")
    if mode in ("toy", "explain") and not real and params["sites"] is not None:
        raise InputError(f"sites={params['sites']!r} is for structure files; the toy universe has its own planted "
                         "sites: use sites=None with structures='toy'")
    if mode == "sites" and params["chain"] is not None:
        raise InputError(f"chain={params['chain']!r}: training on sites reads every protein chain of each file (the "
                         "sites table names the chains); use chain=None")
    if mode == "toy" and real and not params["toy_model"]:
        raise InputError(NO_TOY_ON_REAL.format(what="mode='toy' would train one on the toy universe"))


def workflow_options(params: dict, defaults: dict):
    """(mode, its typed options) for validated stage ``params``; ``defaults`` are the stage's.
    A parameter the workflow does not read, set away from its default, is refused by name."""
    mode = resolve_mode(params)
    _require(mode, params)
    _refuse_unused(mode, params, defaults)
    options = OPTIONS[mode]
    values = {k: params[k] for k in _names(options)}
    if "epochs" in values and values["epochs"] is None:
        values["epochs"] = TOY_EPOCHS if mode == "toy" else REAL_EPOCHS
    if issubclass(options, FileTraining):
        values["table"] = params[mode]
    return mode, options(**values)


def run_workflow(mode: str, options, params: dict, run_dir: str | Path, cache_dir: Path) -> Trained:
    """Run the workflow ``mode`` with its ``options`` (``params``: the shared ones)."""
    shared = {k: params[k] for k in SHARED}
    if mode == "sites":
        return Trained(*train_on_sites(run_dir, options, shared, cache_dir))
    if mode == "labels":
        model, history, inputs, graphs, report = train_on_labels(run_dir, options, shared, cache_dir)
        return Trained(model, history, inputs, graphs, report)
    if mode == "toy":
        if shared["structures"] != "toy":  # a bad structure file is named before the toy model trains
            check_structure_files(shared["structures"], chain=shared["chain"])
        model, history = train_toy_model(
            run_dir, log_every=max(1, options.epochs // 10), log_path=RunDir(run_dir).writable("residue_log"),
            seed=shared["seed"], **{k: getattr(options, k) for k in (
                "epochs", "n_families", "members_per_family", "families_per_superfamily", "val_fraction",
                "length_range", "hidden", "batch_size", "residue_dropout")})
    else:
        model, history = load_network(options.checkpoint), []
    inputs, graphs = explain_inputs(model, options, shared, cache_dir, run_dir)
    if mode == "explain" and model.config.task == "residue":
        measure_peer(inputs, options.peer, cache_dir)
    return Trained(model, history, inputs, graphs)
