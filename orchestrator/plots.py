"""``python -m orchestrator.plots``: the entry point; the code lives in ``orchestrator.results.plots``."""
import sys

from orchestrator.results.plots import main

if __name__ == "__main__":
    sys.exit(main())
