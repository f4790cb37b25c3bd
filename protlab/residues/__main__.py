"""``python -m protlab.residues --run-dir DIR [--epochs 60 --site-records FILE ...]``: stage 06 from a shell."""
import sys

from protlab.residues.stage import STAGE, run, summary_line


def main(argv=None) -> int:
    """The ``protlab-residues`` console script."""
    return STAGE.main(run, argv, summary=summary_line)


if __name__ == "__main__":
    sys.exit(main())
