"""Results as they come: each time a cell ends (ok or failed), ``results.parquet``, the curves and the
tables are rewritten from the cells ended so far (the plots and report wait for the end), so a run of days can be read at any time. Cells not yet ended
are absent; the driver's write after the run (every cell, an unfinished one as ``missing``) is the
final one.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Callable

from ray import tune

from . import outputs
from .cells import Cell
from .progress import error_line
from .trainable import trial_name

_ENDED = ("TERMINATED", "ERROR")


class LiveResults(tune.Callback):
    def __init__(self, cells: list[Cell], sweep: str, out: Path, known: dict[str, outputs.Outcome] | None = None,
                 publish: Callable[[], object] | None = None):
        self.cells, self.sweep, self.out = {c.cell_id: c for c in cells}, sweep, Path(out)
        self.known = known or {}  # the cells a resumed run found finished: written with the first to end
        self.publish = publish  # uploads what changed, where the run lives on object storage

    def setup(self, **info):
        self.seen: set[str] = set(self.known)
        self.outcome = outputs.Outcome()
        for outcome in self.known.values():
            self.outcome.merge(outcome)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._update(trials, trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._update(trials, trial, failed=True)

    def _update(self, trials, trial, failed: bool) -> None:
        others = [(t, t.status == "ERROR") for t in trials if t.status in _ENDED and t is not trial]
        added = False
        for t, errored in [(trial, failed), *others]:
            cell = self.cells.get(trial_name(t))
            if cell is None or cell.cell_id in self.seen:
                continue
            result = types.SimpleNamespace(error=t.get_pickled_error() if errored else None,
                                           metrics=t.last_result or {}, checkpoint=t.checkpoint)
            if result.error is None and not result.metrics.get("failed") \
                    and not (result.metrics.get("done") and result.checkpoint is not None):
                continue  # ended without its results (stopped): the final write calls it missing
            outputs.add(self.outcome, cell, result, self.sweep, self.out)
            self.seen.add(cell.cell_id)
            added = True
        if not added:
            return
        try:
            outputs.write(self.outcome, self.out, final=False)
            if self.publish is not None:
                self.publish()
        except Exception as err:  # the final write after the run still comes; the run goes on
            print(f"warning: could not update {self.out / 'results.parquet'} yet: {error_line(err)}",
                  file=sys.stderr, flush=True)
