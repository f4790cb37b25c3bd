"""``python -m protlab.pretrain --run-dir DIR [--max-steps 20 ...]``: stage 03 from a shell."""
import sys

from protlab.pretrain.stage import STAGE, run, summary_line


def main(argv=None) -> int:
    """The ``protlab-pretrain`` console script."""
    return STAGE.main(run, argv, summary=summary_line)


if __name__ == "__main__":
    sys.exit(main())
