"""``python -m protlab.evaluate --run-dir DIR``: stage 05 from a shell."""
import sys

from protlab.evaluate.stage import STAGE, run

sys.exit(STAGE.main(run))
