"""Stage 07 · variant effects: site-independent and Potts models of homologs, masked marginals
of ESM-2 (notebook ``07_variants``).

``run(run_dir, **params)`` is what the notebook does; the scorers work on their own
(:mod:`protlab.variants.scorers`).
"""
from protlab.variants.alignment import Alignment, read_alignment
from protlab.variants.mutants import Mutant, all_singles, parse_mutant, read_variants, read_wildtype
from protlab.variants.stage import STAGE, run

__all__ = ["run", "STAGE", "Alignment", "read_alignment", "Mutant", "all_singles", "parse_mutant", "read_variants",
           "read_wildtype"]
