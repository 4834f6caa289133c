"""``python -m orchestrator.tables``: the entry point; the code lives in ``orchestrator.results.tables``."""
import sys

from orchestrator.results.tables import main

if __name__ == "__main__":
    sys.exit(main())
