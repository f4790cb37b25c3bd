"""``python -m protlab.residues --run-dir DIR [--epochs 60 --site-records FILE ...]``: stage 06 from a shell."""
import sys

from protlab.residues.stage import STAGE, run

sys.exit(STAGE.main(run))
