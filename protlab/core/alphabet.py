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

# BLOSUM62 (Henikoff & Henikoff 1992) over AMINO_ACIDS, rows and columns in that order.
BLOSUM62 = tuple(tuple(int(v) for v in row.split()) for row in (
    " 4  0 -2 -1 -2  0 -2 -1 -1 -1 -1 -2 -1 -1 -1  1  0  0 -3 -2",  # A
    " 0  9 -3 -4 -2 -3 -3 -1 -3 -1 -1 -3 -3 -3 -3 -1 -1 -1 -2 -2",  # C
    "-2 -3  6  2 -3 -1 -1 -3 -1 -4 -3  1 -1  0 -2  0 -1 -3 -4 -3",  # D
    "-1 -4  2  5 -3 -2  0 -3  1 -3 -2  0 -1  2  0  0 -1 -2 -3 -2",  # E
    "-2 -2 -3 -3  6 -3 -1  0 -3  0  0 -3 -4 -3 -3 -2 -2 -1  1  3",  # F
    " 0 -3 -1 -2 -3  6 -2 -4 -2 -4 -3  0 -2 -2 -2  0 -2 -3 -2 -3",  # G
    "-2 -3 -1  0 -1 -2  8 -3 -1 -3 -2  1 -2  0  0 -1 -2 -3 -2  2",  # H
    "-1 -1 -3 -3  0 -4 -3  4 -3  2  1 -3 -3 -3 -3 -2 -1  3 -3 -1",  # I
    "-1 -3 -1  1 -3 -2 -1 -3  5 -2 -1  0 -1  1  2  0 -1 -2 -3 -2",  # K
    "-1 -1 -4 -3  0 -4 -3  2 -2  4  2 -3 -3 -2 -2 -2 -1  1 -2 -1",  # L
    "-1 -1 -3 -2  0 -3 -2  1 -1  2  5 -2 -2  0 -1 -1 -1  1 -1 -1",  # M
    "-2 -3  1  0 -3  0  1 -3  0 -3 -2  6 -2  0  0  1  0 -3 -4 -2",  # N
    "-1 -3 -1 -1 -4 -2 -2 -3 -1 -3 -2 -2  7 -1 -2 -1 -1 -2 -4 -3",  # P
    "-1 -3  0  2 -3 -2  0 -3  1 -2  0  0 -1  5  1  0 -1 -2 -2 -1",  # Q
    "-1 -3 -2  0 -3 -2  0 -3  2 -2 -1  0 -2  1  5 -1 -1 -3 -3 -2",  # R
    " 1 -1  0  0 -2  0 -1 -2  0 -2 -1  1 -1  0 -1  4  1 -2 -3 -2",  # S
    " 0 -1 -1 -1 -2 -2 -2 -1 -1 -1 -1  0 -1 -1 -1  1  5  0 -2 -2",  # T
    " 0 -1 -3 -2 -1 -3 -3  3 -2  1  1 -3 -2 -2 -3 -2  0  4 -3 -1",  # V
    "-3 -2 -4 -3  1 -2 -2 -3 -3 -2 -1 -4 -4 -2 -3 -3 -2 -3 11  2",  # W
    "-2 -2 -3 -2  3 -3  2 -1 -2 -1 -1 -2 -3 -1 -2 -2 -2 -1  2  7",  # Y
))
