"""The driver's own progress lines (Ray Tune's reporter is silenced: one readable line per event)."""
from __future__ import annotations

import math
import sys
import time

from ray import tune

from .trainable import trial_name


def error_line(err) -> str:
    """An exception from a trial, on one line: the user's exception, not Ray's wrapper."""
    cause = getattr(err, "cause", None) or err
    text = " ".join(str(cause).split())
    line = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class ProgressPrinter(tune.Callback):
    """Prints each trial's evaluations and checkpoints, and when a cell finishes or fails."""

    def __init__(self, total: int):
        self.total = total

    def setup(self, **info):
        # Called at the start of every run, including a resumed one (this object is restored too).
        self.start, self.resumed = time.time(), set()

    def _print(self, trial, text: str) -> None:
        print(f"[{time.time() - self.start:6.0f}s] {trial_name(trial)}: {text}", file=sys.stdout, flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("done"):
            return
        resumed = result.get("resumed_from")
        if resumed and trial_name(trial) not in self.resumed:
            self.resumed.add(trial_name(trial))
            self._print(trial, f"resumed from its checkpoint at exp {resumed['exp'] + 1} it {resumed['iteration']}")
        parts = [f"exp {result['exp'] + 1}/{result['num_exp']}", f"it {result['iteration']}"]
        if not math.isnan(result.get("loss", math.nan)):
            parts.append(f"loss {result['loss']:.4f}")
        if "accuracy" in result:
            parts.append(f"acc {result['accuracy']:.2f} %")
        self._print(trial, "  ".join(parts))

    def _ended(self, trials, trial) -> str:
        """Cells ended so far, counting those a resumed run found already ended."""
        ended = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id}
        return f"{len(ended)}/{self.total} cells"

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._print(trial, f"done ({self._ended(trials, trial)})")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._print(trial, f"crashed ({error_line(trial.get_pickled_error())}); retrying from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._print(trial, f"FAILED ({self._ended(trials, trial)}): {error_line(trial.get_pickled_error())} "
                           f"(traceback: {trial.error_file})")
