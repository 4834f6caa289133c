"""The driver's own progress lines (Ray Tune's reporter is silenced: one readable line per event),
and the sweep's status (``eta.SweepClock``): a line each time the cells' counts change, or on a
terminal a live status line redrawn in place below the per-cell lines."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from ray import tune

from condense.errors import error_line
from condense.files import write_text

from ..trial.trainable import trial_name
from .eta import SweepClock

REDRAW_S = 1.0  # a terminal's status line ticks once a second
# elsewhere a change is printed once the counts have held this long: a cell ending and the next one
# starting a moment later are one line, not two
SETTLE_S = 2.0


def last_line(text: str) -> str:
    """The exception line that ends a traceback, without the exception's module path."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "unknown error"
    name, sep, rest = line.partition(": ")
    return _short(name.rpartition(".")[2] + sep + rest if " " not in name else line)


def _short(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= 300 else line[:297] + "..."


class ProgressPrinter(tune.Callback):
    """Prints each trial's evaluations and checkpoints, and when a cell finishes or fails; a failed
    cell's traceback is copied to ``errors/<cell_id>.txt`` in the run folder."""

    def __init__(self, total: int, errors: Path | None = None, ended_before: int = 0,
                 clock: SweepClock | None = None, tty: bool | None = None):
        # ended_before: the cells a resumed run found finished (they have no trial)
        self.total, self.errors, self.ended_before = total, errors, ended_before
        self.clock = clock
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.start, self.resumed = time.time(), set()
        self.shown, self.drawn = None, 0.0  # the counts last printed; when the live line was drawn
        self.changed, self.settle_s = None, SETTLE_S  # since when the counts differ from those printed

    def setup(self, **info):
        self.start, self.resumed = time.time(), set()

    def _print(self, trial, text: str) -> None:
        self._clear()
        print(f"[{time.time() - self.start:6.0f}s] {trial_name(trial)}: {text}", file=sys.stdout, flush=True)
        self._status(force=self.tty)

    def _clear(self) -> None:
        if self.tty and self.clock is not None and self.drawn:
            sys.stdout.write("\r\033[K")

    def _status(self, force: bool = False) -> None:
        """The sweep's status: on a terminal redrawn in place (at most once a second unless
        ``force``), else one line when the counts changed and then held ``settle_s`` (or ``force``)."""
        clock = self.clock
        if clock is None:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self.drawn >= REDRAW_S:
                ok, _, failed, _ = clock.counts()
                done = int(20 * (ok + failed) / max(clock.total, 1))
                sys.stdout.write(f"\r\033[K[{'#' * done}{'.' * (20 - done)}] {clock.line()}")
                sys.stdout.flush()
                self.drawn = now
            return
        counts = clock.counts()
        if counts == self.shown:
            self.changed = None
            return
        if self.changed is None or self.changed[0] != counts:
            self.changed = (counts, now)
        if force or now - self.changed[1] >= self.settle_s:
            self.shown, self.changed = counts, None
            print(f"[{time.time() - self.start:6.0f}s] {clock.line()}", file=sys.stdout, flush=True)

    def on_step_end(self, iteration, trials, **info):
        self._status()

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.clock is not None:
            self.clock.started(trial_name(trial))
            self._status()

    def on_experiment_end(self, trials, **info):
        self._status(force=True)
        if self.tty and self.clock is not None and self.drawn:
            sys.stdout.write("\n")
            sys.stdout.flush()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("done"):
            return
        resumed = result.get("resumed_from")
        if resumed and trial_name(trial) not in self.resumed:
            self.resumed.add(trial_name(trial))
            self._print(trial, f"resumed from its checkpoint at exp {resumed['exp'] + 1} it {resumed['iteration']}")
        parts = [f"exp {result['exp'] + 1}/{result['num_exp']}", f"it {result['iteration']}"]
        if "step" in result:  # a continual cell's step (orchestrator/trial/continual.py)
            parts.insert(1, f"step {result['step']}")
        if not math.isnan(result.get("loss", math.nan)):
            parts.append(f"loss {result['loss']:.4f}")
        if "accuracy" in result:
            parts.append(f"acc {result['accuracy']:.2f} %")
        self._print(trial, "  ".join(parts))

    def _ended(self, trials, trial) -> str:
        """Cells ended so far, counting those a resumed run found already ended."""
        ended = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id}
        return f"{len(ended) + self.ended_before}/{self.total} cells"

    def on_trial_complete(self, iteration, trials, trial, **info):
        failed = (trial.last_result or {}).get("failed")
        if self.clock is not None:
            self.clock.ended(trial_name(trial), ok=not failed)
        if failed:  # the trainable ended the cell itself (e.g. a diverged loss): nothing to retry
            self._print(trial, f"FAILED ({self._ended(trials, trial)}): {_short(failed)}"
                               f"{self._kept(trial, failed + chr(10))}")
            return
        self._print(trial, f"done ({self._ended(trials, trial)})")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._print(trial, f"crashed ({self._error(trial)}); retrying from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.clock is not None:
            self.clock.ended(trial_name(trial), ok=False)
        self._print(trial, f"FAILED ({self._ended(trials, trial)}): {self._error(trial)}{self._kept(trial)}")

    def _error(self, trial) -> str:
        """The last line of the trial's traceback, read from Ray's local copy (the one in storage
        is written later)."""
        try:
            return last_line(Path(trial.error_file).read_text())
        except (OSError, TypeError):
            return error_line(trial.get_pickled_error())

    def _kept(self, trial, text: str | None = None) -> str:
        """Copies the trial's traceback (or ``text``) under the run folder; returns where, for the line."""
        errors = self.errors
        if errors is None:
            return ""
        path = errors / f"{trial_name(trial)}.txt"
        try:
            errors.mkdir(parents=True, exist_ok=True)
            write_text(path, Path(trial.error_file).read_text() if text is None else text)
        except (OSError, TypeError):
            return f" (traceback: {trial.error_file})"
        return f" (traceback: {path})"
