"""``python -m protlab.curate --run-dir DIR [--source file.fasta ...]``: stage 01 from a shell."""
import sys

from protlab.curate.stage import STAGE, run

sys.exit(STAGE.main(run))
