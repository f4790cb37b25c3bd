"""``python -m protlab.curate --run-dir DIR [--source file.fasta ...]``: stage 01 from a shell."""
import sys

from protlab.curate.stage import STAGE, run, summary_line


def main(argv=None) -> int:
    """The ``protlab-curate`` console script."""
    return STAGE.main(run, argv, summary=summary_line)


if __name__ == "__main__":
    sys.exit(main())
