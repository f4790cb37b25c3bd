"""``python -m protlab.pretrain --run-dir DIR [--max-steps 20 ...]``: stage 03 from a shell."""
import sys

from protlab.pretrain.stage import STAGE, run

sys.exit(STAGE.main(run))
