"""The default model of stage 06: the network trained on the toy universe's families.

By default the toy's 8 families form one superfamily (one fold) and differ only in the
combination of their planted site residues, so the classifier has to read the site; the
proteins it holds out are the ones 06 then explains (:func:`~protlab.residues.inputs.held_out`).
"""
from __future__ import annotations

from pathlib import Path

from protlab.core.rundir import RunDir
from protlab.residues.inputs import TOY_SHAPE, toy_inputs
from protlab.residues.network import ResidueNet, save_network
from protlab.residues.training import TrainResult, train_residue_model


def train_on_toy(*, epochs: int, val_fraction: float = 0.2, seed: int = 0, **options) -> TrainResult:
    """Train on family classification of the toy universe.

    Options named in ``TOY_SHAPE`` shape the universe (:func:`toy_inputs`, whose defaults
    apply), the rest go to :func:`~protlab.residues.training.train_residue_model`;
    ``val_fraction`` of the proteins are held out (``model.meta["held_out"]``)."""
    toy = {k: options.pop(k) for k in TOY_SHAPE if k in options}
    inputs = toy_inputs(seed=seed, **toy)
    labels = [inputs.labels[s.id] for s in inputs.structures]
    return train_residue_model(inputs.structures, labels, epochs=epochs, seed=seed, val_fraction=val_fraction,
                               **options)


def train_toy_model(run_dir: str | Path, **options) -> tuple[ResidueNet, list]:
    """:func:`train_on_toy` saved as the run directory's ``residue_network`` checkpoint;
    returns (model, history)."""
    result = train_on_toy(**options)
    result.model.meta.update(trained_on="toy", history=result.history)
    save_network(result.model, RunDir(run_dir).writable("residue_network"), **result.model.meta)
    return result.model, result.history
