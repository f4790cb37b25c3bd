"""``python -m protlab.cluster --run-dir DIR [--n-clusters 30 ...]``: stage 04 from a shell."""
import sys

from protlab.cluster.stage import STAGE, run, summary_line


def main(argv=None) -> int:
    """The ``protlab-cluster`` console script."""
    return STAGE.main(run, argv, summary=summary_line)


if __name__ == "__main__":
    sys.exit(main())
