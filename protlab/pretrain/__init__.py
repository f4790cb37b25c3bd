"""Stage 03 · ProtCLIP protein–text pretraining (notebook ``03_pretrain``): a protein tower
(ESM-2) aligned with a text tower (BERT family) by global contrast, masked-residue
prediction, segment reconstruction and property-driven alignment, scored on held-out pairs
by retrieval and zero-shot family classification.

``run(run_dir, **params)`` is what the notebook does; :func:`make_config` /
:func:`run_training` train from a :class:`PretrainConfig` (``python -m protlab.pretrain.train_config
--config cfg.yaml``, which ``torchrun`` launches for ``nproc > 1``), and
:func:`evaluate_checkpoint` scores a finished run on any split.
"""
from protlab.pretrain.clip import ProtCLIP
from protlab.pretrain.config import PRESETS, PretrainConfig, load_config, make_config
from protlab.pretrain.data import load_pairs
from protlab.pretrain.loop import evaluate_checkpoint, run_training, train
from protlab.pretrain.loss_log import read_log
from protlab.pretrain.model import build_model, load_trained
from protlab.pretrain.retrieval import encode_proteins, evaluate_alignment, metrics_table
from protlab.pretrain.stage import STAGE, run

__all__ = ["run", "STAGE", "PretrainConfig", "PRESETS", "make_config", "load_config", "ProtCLIP", "build_model",
           "train", "run_training", "load_trained", "evaluate_checkpoint", "read_log", "load_pairs",
           "encode_proteins", "evaluate_alignment", "metrics_table"]
