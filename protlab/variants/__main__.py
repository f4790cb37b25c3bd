"""``python -m protlab.variants --run-dir DIR [--wildtype wt.fasta --alignment homologs.a2m ...]``: stage 07 from a shell."""
import sys

from protlab.variants.stage import STAGE, run, summary_line


def main(argv=None) -> int:
    """The ``protlab-variants`` console script."""
    return STAGE.main(run, argv, summary=summary_line)


if __name__ == "__main__":
    sys.exit(main())
