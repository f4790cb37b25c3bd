"""Stage 06 · critical residues in 3D by neural clustering of residues (Quan et al., CVPR
2024; notebook ``06_critical_residues``).

``run(run_dir, **params)`` is what the notebook does. The parts on their own: residue graphs
(:mod:`~protlab.residues.graph`), the network (:mod:`~protlab.residues.network`), training
(:mod:`~protlab.residues.training`), explanations (:mod:`~protlab.residues.explain`), site
metrics (:mod:`~protlab.residues.sites`), inputs (:mod:`~protlab.residues.inputs`), site
tables (:mod:`~protlab.residues.site_table`), pocket features and the cavity baseline
(:mod:`~protlab.residues.pockets`), cached featurisation (:mod:`~protlab.residues.features`),
and the stage's workflows (:mod:`~protlab.residues.workflows`): training on the toy universe
(:mod:`~protlab.residues.toy_training`), on sites (:mod:`~protlab.residues.site_training`),
on labels (:mod:`~protlab.residues.label_training`), or explaining with a saved model.
"""
from protlab.residues.explain import Explanation, critical_residues, explain_structures, residue_tables
from protlab.residues.graph import ResidueGraph, build_graph, collate
from protlab.residues.inputs import ResidueInputs, held_out, pfam_domain_inputs, read_structure_inputs, toy_inputs
from protlab.residues.network import ResidueNet, ResidueNetConfig, load_network, save_network
from protlab.residues.features import featurize
from protlab.residues.site_table import read_site_table, site_residues
from protlab.residues.sites import (conservation_scores, precision_at_k, random_precision_at_k, site_metrics,
                                    site_summary)
from protlab.residues.stage import STAGE, run, write_outputs
from protlab.residues.toy_training import train_on_toy, train_toy_model
from protlab.residues.training import TrainResult, evaluate_network, fmax, predict, train_residue_model

__all__ = ["run", "STAGE", "write_outputs",
           "ResidueGraph", "build_graph", "collate", "ResidueNetConfig", "ResidueNet", "load_network",
           "save_network", "TrainResult", "train_residue_model", "featurize", "predict", "evaluate_network", "fmax",
           "Explanation", "explain_structures", "critical_residues", "residue_tables",
           "precision_at_k", "random_precision_at_k", "conservation_scores", "site_metrics", "site_summary",
           "read_site_table", "site_residues",
           "ResidueInputs", "toy_inputs", "read_structure_inputs", "train_on_toy", "pfam_domain_inputs",
           "train_toy_model", "held_out"]
