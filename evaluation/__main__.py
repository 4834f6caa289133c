"""``python -m evaluation SET... --dataset D``: evaluate sets made anywhere with the paper's protocol.

The sets are evaluated as a sweep's ``set:<name>`` cell is (the same seeds, pools and budget) and
the results written with a sweep's columns, so the command lives with the sweep above the
evaluation layer (``orchestrator/cli/evaluate.py``); this entry point only hands over to it.
"""
import sys

from condense.runtime import wait_passively

wait_passively()  # before torch loads
from orchestrator.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
