"""The dry run's cost estimate: a cell's budget times the calibrated step costs, and its total line."""
import dataclasses
import json
import re
from pathlib import Path

import pytest

from orchestrator.sweep import cost

from orchestrator.driver import run
from orchestrator.sweep.cells import Cell
from orchestrator.sweep.config import Sweep
from evaluation.reference import ReferenceBudget
from condense.condensation import Budget
from evaluation.train import EvalBudget

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


def write(folder, device="cpu Test CPU", kind="cpu", **probes):
    folder.mkdir(exist_ok=True)
    (folder / f"{cost.slug(device)}.json").write_text(json.dumps({"device": device, "kind": kind, "probes": probes}))


@pytest.fixture
def calibrations(tmp_path, monkeypatch):
    folder = tmp_path / "calibrations"
    monkeypatch.setattr(cost, "CALIBRATIONS", folder)
    monkeypatch.setattr(cost, "local_device", lambda kind: "cpu Test CPU" if kind == "cpu" else None)
    return folder


def settings(**kw):
    base = dict(budget=Budget(iterations=10), eval_budget=EvalBudget(epochs=4, max_test=1000),
                reference_budget=ReferenceBudget(epochs=2, max_train=512), num_exp=2, num_eval=3, seed=0, data_root="",
                checkpoint_every=1, code_version="")
    return Sweep("t", **{**base, **kw})


def dc(ipc=1, model="ConvNet"):
    return Cell("MNIST", model, ipc, "S", "ours", "DC", ("t",))


def test_a_dc_cell_is_its_budget_times_the_step_costs(calibrations):
    # matching 1 s + 0.01 s per real image per class + 0.5 s per ipc; train 0.1 s + 0.001 s/image;
    # eval 0.2 s per step; test 0.001 s per image
    write(calibrations, **{"1x28x28": {"ConvNet": {"matching": [1, 0.01, 0.5], "train": [0.1, 0.001],
                                                   "eval": [0.2, 0], "test": [0, 0.001]}}})
    est = cost.Estimator(cost.choose("cpu")[0])
    s = settings()
    step = 1 + 0.01 * 256 + 0.5 * 1
    # ipc 1: loops 1/1, so no inner training; eval at 0/5/10, 3 nets x (4+1 epochs of 1 step + 1000 test images)
    evaluation = 3 * (3 * (5 * 0.2 + 1.0))
    assert est.cell_seconds(dc(1), s) == pytest.approx(2 * (10 * step + evaluation))
    # ipc 10: 10 matching steps, 9 x 50 inner epochs of one 100-image step
    step10 = 1 + 0.01 * 256 + 0.5 * 10
    inner = 9 * 50 * (0.1 + 0.001 * 100)
    assert est.cell_seconds(dc(10), s) == pytest.approx(2 * (10 * (10 * step10 + inner) + evaluation))
    assert not est.borrowed


def test_reference_counted_once_and_whole_cells(calibrations):
    write(calibrations, **{"1x28x28": {"ConvNet": {"train": [1, 0], "eval": [0, 0], "test": [0, 0]}}})
    est = cost.Estimator(cost.choose("cpu")[0])
    s = settings()
    herding = Cell("MNIST", "ConvNet", 1, "S", "ours", "herding", ("t",))
    # reference: 2 epochs of 512 images in batches of 256 = 4 steps of 1 s, one network per experiment
    # (2); cached after the first cell
    assert est.cell_seconds(herding, s) == pytest.approx(2 * 4)
    assert est.cell_seconds(herding, s) == pytest.approx(0)
    shared = cost.Estimator(cost.choose("cpu")[0])
    assert shared.cell_seconds(herding, dataclasses.replace(s, shared_reference=True)) == pytest.approx(4)
    whole = Cell("MNIST", "ConvNet", 0, "S", "ours", "whole", ("t",))
    assert est.cell_seconds(whole, s) == pytest.approx(0)  # the herding cell's networks: seed + e, cached
    assert cost.Estimator(cost.choose("cpu")[0]).cell_seconds(whole, s) == pytest.approx(2 * 4)  # alone: one per exp


def test_an_uncalibrated_model_borrows_the_convnet_and_says_so(calibrations):
    write(calibrations, **{"1x28x28": {"ConvNet": {"matching": [1, 0, 0], "train": [0, 0], "eval": [0, 0],
                                                   "test": [0, 0]}}})
    per_cell, line = cost.estimate([dc(1, "LeNet")], settings(), "cpu")
    assert per_cell[0] > 0
    assert "1 model/shape pairs not calibrated" in line and "on cpu Test CPU" in line


def test_another_device_falls_back_and_says_so(calibrations, monkeypatch):
    write(calibrations, device="NVIDIA H200", kind="cuda", **{"1x28x28": {"ConvNet": {"matching": [1, 0, 0]}}})
    write(calibrations, **{"1x28x28": {"ConvNet": {"matching": [2, 0, 0]}}})
    cal, why = cost.choose("cuda")  # no local GPU: the calibration of a GPU, said to be borrowed
    assert cal.device == "NVIDIA H200" and "none measured for no local cuda device" in why
    monkeypatch.setattr(cost, "local_device", lambda kind: "cpu Other CPU")
    cal, why = cost.choose("cpu")
    assert cal.device == "cpu Test CPU" and "none measured for cpu Other CPU" in why


def test_the_dry_run_prints_estimates_before_its_last_line(calibrations, capsys):
    write(calibrations, **{"1x28x28": {"ConvNet": {"matching": [1, 0, 0], "train": [0, 0], "eval": [0, 0],
                                                   "test": [0, 0]}}})
    assert run.main([str(SWEEPS / "smoke.yaml"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].endswith(" cells") and lines[-1].split()[0].isdigit()
    assert re.match(r"estimated \d+(\.\d)? device-(hours|minutes|seconds) on cpu Test CPU", lines[-2]), lines[-2]
    assert "estimated 0.0" not in lines[-2]
    assert "an estimate" in lines[-2]
    assert lines[-3].startswith("resources: ") and all(" est " in line for line in lines[:-3])


def test_without_a_calibration_the_dry_run_says_so(calibrations, capsys):
    assert run.main([str(SWEEPS / "smoke.yaml"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("estimated ? device-hours") and "calibrate.py" in lines[-2]


def test_the_committed_cpu_calibration_estimates_the_paper_sweep():
    """The package ships a measured CPU calibration of every model the paper's sweep uses, the
    ConvNet (what uncalibrated models borrow) for both image shapes."""
    cals = [c for c in cost.available() if c.kind == "cpu"]
    assert cals, "no CPU calibration in orchestrator/calibrations"
    for shape in ("1x28x28", "3x32x32"):
        assert set(cals[0].probes[shape]["ConvNet"]) == {"matching", "train", "eval", "test"}
    from orchestrator.sweep import spec
    from orchestrator.sweep.cells import expand

    est = cost.Estimator(cals[0])
    s = settings(budget=Budget(), eval_budget=EvalBudget(), reference_budget=ReferenceBudget(), num_exp=5, num_eval=20)
    assert all(est.cell_seconds(c, s) > 0 for c in expand(spec.load(SWEEPS / "all.yaml")))
    assert not est.borrowed  # every model of the paper's sweep was measured


def test_the_total_says_minutes_or_seconds_when_hours_round_to_zero():
    assert [cost.device_time(s) for s in (7200, 180, 179, 60, 59.4)] == [
        "2.0 device-hours", "0.1 device-hours", "3 device-minutes", "1 device-minutes", "59 device-seconds"]
