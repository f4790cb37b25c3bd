"""Stage 05 · how well clusters recover known families: NMI, ARI, accuracy after sparse
Hungarian matching, AUPR, per-family precision and recall (notebook ``05_evaluate``)."""
from protlab.evaluate.metrics import (contingency, evaluate, match_clusters, matched_accuracy, matched_confusion,
                                      per_family)
from protlab.evaluate.stage import STAGE, run

__all__ = ["run", "STAGE", "evaluate", "contingency", "match_clusters", "matched_accuracy", "matched_confusion",
           "per_family"]
