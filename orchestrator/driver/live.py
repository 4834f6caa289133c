"""Results as they come: each time a cell ends (ok or failed), ``results.parquet``, the curves and the
tables are rewritten from the cells ended so far (the plots and report wait for the end), so a run of
days can be read at any time. Cells not yet ended are absent; the driver's write after the run (every
cell, an unfinished one as ``missing``) is the final one.

A write that fails (a full disk, an I/O error) stops the run as Ctrl-C does (``stop.as_ctrl_c``):
the files written before stay whole, the finished cells' checkpoints stay for ``--resume``, and the
driver ends with the failure's one line (``write_error``).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Callable

from ray import tune

from condense.files import WriteError, write_error

from . import outputs, stop
from ..sweep.cells import Cell
from condense.errors import error_line
from ..trial.trainable import trial_name

_ENDED = ("TERMINATED", "ERROR")


class LiveResults(tune.Callback):
    def __init__(self, cells: list[Cell], sweep: str, out: Path, known: dict[str, outputs.Outcome] | None = None,
                 publish: Callable[[], object] | None = None):
        self.cells, self.sweep, self.out = {c.cell_id: c for c in cells}, sweep, Path(out)
        self.known = known or {}  # the cells a resumed run found finished: written with the first to end
        self.publish = publish  # uploads what changed, where the run lives on object storage
        self.write_error: WriteError | None = None  # the write that failed, which stopped the run

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
        if self.write_error is not None:  # stopping: nothing more is written
            return
        try:
            if not self._add_ended(trials, trial, failed):
                return
            outputs.write(self.outcome, self.out, final=False)
        except OSError as err:  # WriteError, or a read of our own files beside them
            self.write_error = err if isinstance(err, WriteError) else \
                write_error(Path(err.filename or self.out / "results.parquet"), err)
            stop.as_ctrl_c()
            return
        except Exception as err:  # e.g. a table that cannot render yet: the final write still comes
            self._warn(err)
        try:
            if self.publish is not None:
                self.publish()
        except Exception as err:  # object storage: the final push after the run still comes; the run goes on
            self._warn(err)

    def _warn(self, err: Exception) -> None:
        print(f"warning: could not update {self.out / 'results.parquet'} yet: {error_line(err)}",
              file=sys.stderr, flush=True)

    def _add_ended(self, trials, trial, failed: bool) -> bool:
        """Adds the ended cells not seen before (their sets and figures written); whether any was."""
        others = [(t, t.status == "ERROR") for t in trials if t.status in _ENDED and t is not trial]
        added = False
        for t, errored in [(trial, failed), *others]:
            cell = self.cells.get(trial_name(t))
            if cell is None or cell.cell_id in self.seen:
                continue
            result = types.SimpleNamespace(error=_error(t) if errored else None,
                                           metrics=t.last_result or {}, checkpoint=t.checkpoint)
            if result.error is None and not result.metrics.get("failed") \
                    and not (result.metrics.get("done") and result.checkpoint is not None):
                continue  # ended without its results (stopped): the final write calls it missing
            outputs.add(self.outcome, cell, result, self.sweep, self.out)
            self.seen.add(cell.cell_id)
            added = True
        return added


def _error(trial) -> Exception:
    """The trial's error, as Tune kept it; its files cut off (a full disk) still make an error."""
    try:
        return trial.get_pickled_error() or trial.get_error() or RuntimeError("the trial failed")
    except Exception:  # noqa: BLE001 - EOFError, an unpickling error, OSError: Tune's file is not whole
        return RuntimeError("the trial failed; Ray Tune's record of its error is cut off (a full disk?)")
