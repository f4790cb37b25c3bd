"""``python -m protlab.embed --run-dir DIR [--encoder esm2_t6_8M_UR50D ...]``: stage 02 from a
shell (also under ``torchrun``: each rank embeds a shard, rank 0 writes)."""
import sys

from protlab.embed.stage import STAGE, run, summary_line


def main(argv=None) -> int:
    """The ``protlab-embed`` console script."""
    return STAGE.main(run, argv, summary=summary_line)


if __name__ == "__main__":
    sys.exit(main())
