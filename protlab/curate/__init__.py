"""Stage 01 · curation (notebook ``01_curate``): readers for FASTA / Stockholm / UniProt /
tables / PDB-mmCIF, the toy universe, residue cleaning and filters, ProtCLIP
property-driven sampling and the redundancy-aware split."""
from protlab.curate.filters import curate, load_source
from protlab.curate.formats import read_proteins
from protlab.curate.textio import detect_format
from protlab.curate.split import split_by_identity
from protlab.curate.stage import STAGE, run
from protlab.curate.structures import read_structure, read_structures
from protlab.curate.toy import make_universe

__all__ = ["run", "STAGE", "curate", "load_source", "detect_format", "read_proteins", "split_by_identity",
           "read_structure", "read_structures", "make_universe"]
