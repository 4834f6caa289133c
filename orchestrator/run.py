"""``python -m orchestrator.run``: the entry point; the code lives in ``orchestrator.driver.run``."""
import sys

from orchestrator.driver.run import main

if __name__ == "__main__":
    sys.exit(main())
