"""The amino-acid alphabet, defined once for every stage.

``AMINO_ACIDS`` are the 20 standard residues in one-letter code (alphabetical order of
the letters, the order every residue table, one-hot encoding and composition plot uses);
``EXTENDED`` adds the ambiguity and rare codes that sequence files carry (X unknown,
B/Z/J ambiguous pairs, U selenocysteine, O pyrrolysine); ``GAPS`` are alignment and
formatting characters removed before a sequence is used.
"""
from __future__ import annotations

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
STANDARD = frozenset(AMINO_ACIDS)
NONSTANDARD = frozenset("BZJUOX")
EXTENDED = STANDARD | NONSTANDARD
GAPS = "-.*"
THREE_LETTER = {
    "A": "ALA", "C": "CYS", "D": "ASP", "E": "GLU", "F": "PHE", "G": "GLY", "H": "HIS",
    "I": "ILE", "K": "LYS", "L": "LEU", "M": "MET", "N": "ASN", "P": "PRO", "Q": "GLN",
    "R": "ARG", "S": "SER", "T": "THR", "V": "VAL", "W": "TRP", "Y": "TYR",
}
STANDARD_THREE = frozenset(THREE_LETTER.values())
# Modified residues that structure files name in place of a standard one.
MODIFIED_THREE = frozenset({"MSE", "SEP", "TPO", "PTR", "CSO", "HYP", "MLY", "SEC", "PYL"})
