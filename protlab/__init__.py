"""protlab: protein representation learning in notebooks.

One package per stage, one ``run(run_dir, **params)`` per stage, matching the notebooks:

====================  ===========================  =========================================
stage                 notebook                      what ``run`` does
====================  ===========================  =========================================
``protlab.curate``    ``01_curate``                 read, clean, filter and split proteins
``protlab.embed``     ``02_embed``                  one vector per protein (k-mer or ESM-2)
``protlab.pretrain``  ``03_pretrain``               ProtCLIP protein–text pretraining
``protlab.cluster``   ``04_cluster``                family discovery (SCAN, k-means)
``protlab.evaluate``  ``05_evaluate``               NMI / ARI / Hungarian-matched accuracy
``protlab.residues``  ``06_critical_residues``      critical residues by neural clustering
``protlab.variants``  ``07_variants``               variant effects from homologs and ESM-2
====================  ===========================  =========================================

Each stage also runs from a shell (``python -m protlab.cluster --run-dir DIR --help``).
``protlab.core`` holds what every stage shares (errors, atomic writes, the amino-acid
alphabet, the run directory, devices, checkpoints, MMseqs2), ``protlab.esm`` the ESM-2
loaders and fused forward, ``protlab.plot`` every figure. Stages are imported on first use.
"""
import importlib

from protlab.core.errors import InputError, ParseError, ProtlabError
from protlab.core.version import __version__

STAGES = ("curate", "embed", "pretrain", "cluster", "evaluate", "residues", "variants")
__all__ = [*STAGES, "STAGES", "ProtlabError", "ParseError", "InputError", "__version__"]


def __getattr__(name: str):
    if name in STAGES:  # import a stage (and torch, faiss, ...) only when it is used
        return importlib.import_module(f"protlab.{name}")
    raise AttributeError(f"module 'protlab' has no attribute {name!r}")
