"""A sweep's status line and its ETA (orchestrator/driver/eta.py), and how the driver's progress
callback prints it: times are given, so nothing here waits."""
import re

import pytest

from orchestrator.driver.eta import SweepClock
from orchestrator.driver.progress import ProgressPrinter  # imports Ray Tune and torch: here, not in a test


def clock(estimates, total=None, **kw) -> SweepClock:
    todo = {f"c{i}": e for i, e in enumerate(estimates)}
    return SweepClock(total or len(todo), todo, now=0.0, **kw)


def test_durations_read_as_seconds_minutes_hours():
    from orchestrator.driver.eta import duration

    assert [duration(s) for s in (42, 600, 5400)] == ["42 s", "10.0 min", "1.5 h"]


def test_before_any_cell_ends_the_eta_is_the_cost_models_laid_on_the_running_lanes():
    c = clock([100, 100, 100, 100])
    c.started("c0", now=0)
    c.started("c1", now=0)
    # two lanes: c0 and c1 now, c2 and c3 after them
    assert c.eta(now=0) == pytest.approx(200)
    assert c.eta(now=30) == pytest.approx(170)
    assert "2 running" in c.line(now=30) and "ETA 2.8 min (cost model)" in c.line(now=30)


def test_finished_cells_scale_the_estimates():
    c = clock([100, 100, 100, 100])
    c.started("c0", now=0)
    c.started("c1", now=0)
    c.ended("c0", ok=True, now=150)  # 1.5 x its estimate
    c.started("c2", now=150)
    assert c.scale() == pytest.approx(1.5)
    # lanes: c1 has 150 - 150 = 0 left, c2 150; c3 (150) goes to c1's lane: max(150, 150)
    assert c.eta(now=150) == pytest.approx(150)
    line = c.line(now=150)
    assert "1 ok, 2 running, 0 failed, 1 left of 4 cells" in line
    assert "cost model x1.50, measured on 1 finished cell" in line


def test_a_cell_running_past_its_estimate_counts_as_ending_now():
    c = clock([10, 10])
    c.started("c0", now=0)
    assert c.eta(now=25) == pytest.approx(10)  # c0 is late (0 left), then c1


def test_without_a_calibration_the_eta_waits_for_the_first_cell_then_uses_its_time():
    c = clock([None, None, None])
    c.started("c0", now=0)
    assert c.eta(now=5) is None and "ETA ?" in c.line(now=5)
    c.ended("c0", ok=True, now=60)
    c.started("c1", now=60)
    assert c.eta(now=60) == pytest.approx(120)
    assert "mean of 1 finished cell" in c.line(now=60)


def test_counts_failed_cells_and_those_a_resume_found():
    c = clock([5, 5], total=5, ok_before=2, failed_before=1)
    c.started("c0", now=0)
    c.ended("c0", ok=False, now=4)
    c.ended("c0", ok=False, now=5)  # a cell ends once
    assert c.counts() == (2, 0, 2, 1)


def test_the_summary_puts_the_measured_time_beside_the_first_estimate():
    c = clock([60, 60])
    c.estimated({"c0": 60, "c1": 60}, "2 device-minutes")
    c.started("c0", now=10)
    c.line(now=10)  # the first status line with cells running fixes the estimate: 10 s + 120 s
    c.ended("c0", ok=True, now=70)
    c.started("c1", now=70)
    c.ended("c1", ok=True, now=140)
    assert "0 left of 2 cells" in c.line(now=140) and "ETA" not in c.line(now=140)
    assert c.summary(now=140) == ("time: 2.3 min measured, 2.2 min estimated when the first cells started "
                                  "(cost model: 2 device-minutes)")


class _Trial:
    def __init__(self, cell, failed=None):
        self.config = {"cell": {"cell_id": cell}}
        self.trial_id, self.status = cell, "RUNNING"
        self.last_result = {"failed": failed} if failed else {}


def test_the_progress_callback_prints_a_status_line_per_change_once_it_settles(capsys, monkeypatch):
    now = [0.0]
    monkeypatch.setattr("orchestrator.driver.progress.time.monotonic", lambda: now[0])
    c = SweepClock(3, {"a": 10.0, "b": 10.0, "c": 10.0}, now=0.0)
    printer = ProgressPrinter(3, None, 0, c, tty=False)
    a, b, d = _Trial("a"), _Trial("b"), _Trial("c")
    printer.on_trial_start(0, [a, b], a)
    printer.on_step_end(0, [a, b])
    printer.on_trial_start(0, [a, b], b)
    now[0] = 1.0
    printer.on_step_end(1, [a, b])  # changed again within SETTLE_S: not yet
    now[0] = 3.5
    printer.on_step_end(2, [a, b])  # held 2.5 s: one line for both starts
    printer.on_step_end(3, [a, b])  # nothing changed: no line
    printer.on_trial_complete(4, [a, b], a)
    now[0] = 4.0
    printer.on_trial_start(5, [a, b, d], d)  # the next cell starts a moment later
    now[0] = 6.5
    printer.on_step_end(6, [a, b, d])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    assert re.search(r"sweep: 0 ok, 2 running, 0 failed, 1 left of 3 cells; elapsed \d+ s; ETA", lines[0])
    assert lines[1].endswith("a: done (1/3 cells)")  # the per-cell line, as before
    assert "sweep: 1 ok, 2 running, 0 failed, 0 left of 3 cells" in lines[2]


def test_on_a_terminal_the_status_is_redrawn_in_place_below_the_cell_lines(capsys):
    c = SweepClock(1, {"a": 10.0})
    printer = ProgressPrinter(1, None, 0, c, tty=True)
    a = _Trial("a")
    printer.on_trial_start(0, [a], a)
    printer._status(force=True)
    printer.on_trial_complete(1, [a], a)
    printer.on_experiment_end([a])
    out = capsys.readouterr().out
    assert out.count("\n") == 2  # the cell's line and the final status; the rest drawn over with \r
    assert "\r\x1b[K[" in out and out.rstrip("\n").endswith("sweep: 1 ok, 0 running, 0 failed, 0 left of 1 cells; "
                                                            "elapsed 0 s")
