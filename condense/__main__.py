"""``python -m condense``: the seed repository's single-cell command line.

It makes and evaluates sets exactly as a sweep's trial does, so it lives with the sweep above the
evaluation layer (``orchestrator/cli/seed.py``); this entry point only hands over to it.
"""
import sys

from condense.runtime import wait_passively

wait_passively()  # before torch loads
from orchestrator.cli.seed import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
