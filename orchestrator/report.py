"""``python -m orchestrator.report``: the entry point; the code lives in ``orchestrator.results.report``."""
import sys

from orchestrator.results.report import main

if __name__ == "__main__":
    sys.exit(main())
