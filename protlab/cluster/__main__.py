"""``python -m protlab.cluster --run-dir DIR [--n-clusters 30 ...]``: stage 04 from a shell."""
import sys

from protlab.cluster.stage import STAGE, run

sys.exit(STAGE.main(run))
