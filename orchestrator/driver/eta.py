"""How far a sweep is and when it will end: cells ok / running / failed / left of the total, the time
elapsed, and the ETA.

The ETA starts from the cost model's estimate of each cell (``sweep/cost.py``: device seconds on the
calibrated device, what the dry run prints) and is corrected by the cells finished so far: every
estimate is scaled by measured / estimated seconds of the cells this run finished (which also takes
in what the calibration cannot know: a shared GPU, a slower machine). The cells left are then laid
out on as many lanes as cells have run at once: each running cell's lane holds what is left of it,
each waiting cell goes to the lane that frees first; the ETA is when the last lane ends. Without a
calibration, a cell's estimate is the mean time of the cells finished so far (no ETA before the first).
"""
from __future__ import annotations

import heapq
import time


def duration(seconds: float) -> str:
    """Wall time as a person reads it: seconds, minutes, then hours."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


class SweepClock:
    """The state of a sweep's cells as the driver sees them, and its ETA.

    ``todo``: cell id -> the cost model's estimate in seconds (None: none) of each cell this run
    runs, in the order they are queued; ``ok_before``/``failed_before``: cells a resumed run found
    ended; ``device_note``: the cost model's total line (for the summary)."""

    def __init__(self, total: int, todo: dict[str, float | None], ok_before: int = 0, failed_before: int = 0,
                 device_note: str = "", now: float | None = None):
        self.total, self.todo, self.device_note = total, dict(todo), device_note
        self.ok, self.failed = ok_before, failed_before
        self.begin = time.monotonic() if now is None else now
        self.running: dict[str, float] = {}  # cell id -> when it started
        self.measured: dict[str, float] = {}  # cell id -> seconds, the cells this run ended
        self.lanes = 0  # the most cells seen running at once
        self.first_estimate: float | None = None  # elapsed + ETA when the first cells started

    def estimated(self, todo: dict[str, float | None], device_note: str = "") -> None:
        """The cost model's estimates, once the driver knows the device the cells get."""
        self.todo, self.device_note = dict(todo), device_note

    def started(self, cell: str, now: float | None = None) -> None:
        if cell not in self.running and cell not in self.measured:  # a retried cell keeps its start
            self.running[cell] = time.monotonic() if now is None else now
            self.lanes = max(self.lanes, len(self.running))

    def ended(self, cell: str, ok: bool, now: float | None = None) -> None:
        if cell in self.measured:
            return
        now = time.monotonic() if now is None else now
        self.measured[cell] = now - self.running.pop(cell, now)
        if ok:
            self.ok += 1
        else:
            self.failed += 1

    def counts(self) -> tuple[int, int, int, int]:
        """(ok, running, failed, left)"""
        left = self.total - self.ok - len(self.running) - self.failed
        return self.ok, len(self.running), self.failed, max(0, left)

    def scale(self) -> float | None:
        """measured / estimated seconds of the cells finished with an estimate (None: none yet)."""
        done = [c for c in self.measured if self.todo.get(c)]
        if not done:
            return None
        return sum(self.measured[c] for c in done) / sum(self.todo[c] for c in done)

    def _expected(self, cell: str, scale: float | None) -> float | None:
        """What a cell is expected to take, all of it."""
        est = self.todo.get(cell)
        if est:
            return est * (1.0 if scale is None else scale)
        if self.measured:  # no estimate: the mean of the cells finished
            return sum(self.measured.values()) / len(self.measured)
        return None

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until the last cell ends; None where nothing can be estimated yet."""
        now = time.monotonic() if now is None else now
        scale = self.scale()
        lanes = []
        for cell, began in self.running.items():
            expected = self._expected(cell, scale)
            if expected is None:
                return None
            lanes.append(max(0.0, expected - (now - began)))
        lanes += [0.0] * (max(self.lanes, 1) - len(lanes))
        heapq.heapify(lanes)
        for cell in self.todo:
            if cell in self.running or cell in self.measured:
                continue
            expected = self._expected(cell, scale)
            if expected is None:
                return None
            heapq.heappush(lanes, heapq.heappop(lanes) + expected)
        return max(lanes)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        ok, running, failed, left = self.counts()
        text = (f"sweep: {ok} ok, {running} running, {failed} failed, {left} left of {self.total} cells; "
                f"elapsed {duration(now - self.begin)}")
        if not running and not left:
            return text
        eta, scale = self.eta(now), self.scale()
        if eta is None:
            return text + "; ETA ? (after the first cell: no calibration for this device)"
        if self.first_estimate is None and running:
            self.first_estimate = now - self.begin + eta
        if scale is not None:
            n = sum(1 for c in self.measured if self.todo.get(c))
            how = f"cost model x{scale:.2f}, measured on {n} finished cell{'s' if n != 1 else ''}"
        elif any(self.todo.values()):
            how = "cost model"
        else:
            how = f"mean of {len(self.measured)} finished cell{'s' if len(self.measured) != 1 else ''}"
        return text + f"; ETA {duration(eta)} ({how})"

    def summary(self, now: float | None = None) -> str:
        """The measured time beside the estimate, for the end of the run."""
        now = time.monotonic() if now is None else now
        text = f"time: {duration(now - self.begin)} measured"
        if self.first_estimate is not None:
            text += f", {duration(self.first_estimate)} estimated when the first cells started"
        if self.device_note:
            text += f" (cost model: {self.device_note})"
        return text
