"""``python -m protlab.evaluate --run-dir DIR``: stage 05 from a shell."""
import sys

from protlab.evaluate.stage import STAGE, run, summary_line


def main(argv=None) -> int:
    """The ``protlab-evaluate`` console script."""
    return STAGE.main(run, argv, summary=summary_line)


if __name__ == "__main__":
    sys.exit(main())
