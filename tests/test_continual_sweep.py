"""Continual learning as a sweep's experiment (orchestrator/trial/continual.py): its grids and cells,
the dry run and the cost model, a cell resumed part-way that makes no step's set twice, set files
per step, and its rows, table and figure. Every test name says ``continual`` (``pytest -k continual``)."""
import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from ray import tune

from conftest import REPO, data_root
from condense.condensation import DMBudget
from condense.continual import ClassSteps
from condense.errors import ConfigError
from evaluation.reference import ReferenceBudget
from evaluation.train import EvalBudget
from orchestrator.results import parquet, tables
from orchestrator.sweep import cost, spec
from orchestrator.sweep.cells import Cell, describe, expand
from orchestrator.sweep.config import Sweep
from orchestrator.trial import continual, runner, trainable

SWEEPS = REPO / "sweeps"
GRID = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1], "eval_modes": ["S"], "methods": ["random", "DM"],
        "steps": [5]}


def write(tmp_path, grid=None, table="cl", **settings) -> Path:
    path = tmp_path / "cl.yaml"
    path.write_text(yaml.safe_dump({"tables": {table: {**GRID, **(grid or {})}}, "num_exp": 1, **settings}))
    return path


def test_continual_sweeps_lay_out_cl_dm_s_experiment_and_a_smoke():
    cl = spec.load(SWEEPS / "cl.yaml")
    cells = expand(cl)
    assert {(c.method, c.steps) for c in cells} == {(m, s) for m in ("random", "herding", "DSA", "DM") for s in (5, 10)}
    assert {(c.dataset, c.model, c.ipc, c.experiment) for c in cells} == {("CIFAR100", "ConvNet", 20, "continual")}
    assert (cl.num_exp, cl.num_eval, cl.seed) == (5, 3, 0)  # CL_DM.py's five orders, three networks
    assert "CIFAR100-ConvNet-ipc20-S-ours-DM-cl10" in [c.cell_id for c in cells]
    smoke = expand(spec.load(SWEEPS / "cl_smoke.yaml"))
    assert {(c.dataset, c.steps) for c in smoke} == {("MNIST", 5)}
    assert {"random", "DM"} <= {c.method for c in smoke}
    line = describe(cells[0], cl)
    assert "5 class orders x 5 steps of 20 classes" in line and "color_crop_cutout_flip_scale_rotate" in line


def test_continual_cells_keep_the_ids_and_configs_of_every_other_cell():
    for name in ("smoke", "all", "methods"):
        for cell in expand(spec.load(SWEEPS / f"{name}.yaml")):
            assert cell.steps is None and "steps" not in cell.to_config() and "-cl" not in cell.cell_id
    cell = expand(spec.load(SWEEPS / "cl_smoke.yaml"))[0]
    assert Cell.from_config(cell.to_config()) == cell


@pytest.mark.parametrize("grid, table, message", [
    ({"steps": [3]}, "cl", "steps: 3 does not divide MNIST's 10 classes"),
    ({"steps": [5, 5]}, "cl", "steps: lists a value twice"),
    ({"steps": None}, "cl", "steps: table cl is continual learning's: give the numbers of class-incremental steps"),
    ({"methods": ["random", "whole"]}, "cl", "methods: whole makes no set"),
    ({"eval_modes": ["M"]}, "cl", "eval_modes: M: a continual memory is evaluated on the training model itself"),
    ({}, "table1", r"a continual grid fills table cl \(a row per dataset, steps and method, a column per step\), "
                   "not table1"),
    ({}, "mine", "a continual grid fills table cl .*not mine"),
    ({"columns": ["method"]}, "cl", "rows/columns: cl has the paper's layout"),
    ({"experiment": "continual"}, "cl", "experiment: unknown key"),
])
def test_continual_grids_refuse_bad_settings_on_one_line(tmp_path, grid, table, message):
    grid = {k: v for k, v in {**GRID, **grid}.items() if v is not None}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"tables": {table: grid}}))
    with pytest.raises(ConfigError, match=message) as err:
        spec.load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_continual_cost_counts_each_step_s_making_and_its_memory_s_evaluation(tmp_path, monkeypatch):
    folder = tmp_path / "calibrations"
    folder.mkdir()
    (folder / "cpu-test.json").write_text(json.dumps({"device": "cpu Test", "kind": "cpu", "probes": {"1x28x28": {
        "ConvNet": {"train": [1, 0], "eval": [0.2, 0], "test": [0, 0.001]}}}}))
    monkeypatch.setattr(cost, "CALIBRATIONS", folder)
    est = cost.Estimator(cost.choose("cpu")[0])
    s = Sweep("t", eval_budget=EvalBudget(epochs=4, max_test=1000), reference_budget=ReferenceBudget(epochs=2, max_train=512),
              num_exp=2, num_eval=3)
    random = Cell("MNIST", "ConvNet", 1, "S", "ours", "random", ("cl",), experiment="continual", steps=5)
    # per step: 3 nets x (5 epochs of one 0.2 s step + 1000 test images at 1 ms); 5 steps; 2 orders
    assert est.cell_seconds(random, s) == pytest.approx(2 * 5 * 3 * (5 * 0.2 + 1.0))
    # herding adds a reference network per step: 2 epochs of 512 images (its 2 classes' share, capped) = 4 steps of 1 s
    herding = dataclasses.replace(random, method="herding")
    assert est.cell_seconds(herding, s) == pytest.approx(2 * 5 * (3 * (5 * 0.2 + 1.0) + 4))


@pytest.fixture
def continual_sweep(tmp_path):
    return Sweep("cl", dm_budget=DMBudget(iterations=2, batch_real=8), num_exp=1, num_eval=1, seed=0,
                 eval_budget=EvalBudget(epochs=1, max_test=100), data_root=str(data_root()), checkpoint_every=1,
                 code_version="test", cache_dir=str(tmp_path / "cache"))


class FakeTune:
    """What a Tune session gives a function trainable: reports, checkpoints kept, a crash after the Nth."""
    Checkpoint = tune.Checkpoint

    def __init__(self, folder: Path, restore_from=None, crash_at=None):
        self.folder, self.restore_from, self.crash_at, self.checkpoints = folder, restore_from, crash_at, []
        self.reports = []

    def get_context(self):
        resources = types.SimpleNamespace(required_resources={"CPU": 1})
        return types.SimpleNamespace(get_trial_resources=lambda: resources)

    def get_checkpoint(self):
        return self.restore_from

    def report(self, metrics, checkpoint=None):
        self.reports.append(metrics)
        if checkpoint is not None:
            import shutil

            kept = self.folder / f"checkpoint_{len(self.checkpoints):06d}"
            shutil.copytree(checkpoint.path, kept)
            self.checkpoints.append(tune.Checkpoint.from_directory(kept))
            if len(self.checkpoints) == self.crash_at:
                raise KeyboardInterrupt


@pytest.mark.slow
def test_continual_cell_resumed_part_way_makes_no_step_s_set_twice(tmp_path, monkeypatch, continual_sweep):
    """DM, 5 steps, 2 iterations each, a checkpoint every iteration: per step the condensation's
    iteration 1, the step's set made, and the step evaluated (15), then the experiment's end."""
    context = types.SimpleNamespace(get_node_id=lambda: "node-a")
    monkeypatch.setattr(trainable, "ray", types.SimpleNamespace(get_gpu_ids=lambda: [],
                                                                get_runtime_context=lambda: context))
    threads = torch.get_num_threads()
    made, steps_run = [], []
    make = continual.experiment.make

    def counting_make(cell, sweep, ctx, ledger, *args, **kw):
        made.append(ledger.exp + 1)  # one order: the making index is the step - 1
        return make(cell, sweep, ctx, ledger, *args, **kw)

    monkeypatch.setattr(continual.experiment, "make", counting_make)
    from condense.condensation.dm import DMCondensation

    step = DMCondensation.step
    monkeypatch.setattr(DMCondensation, "step", lambda self: steps_run.append(1) or step(self))
    cell = Cell("MNIST", "ConvNet", 1, "S", "ours", "DM", ("cl",), experiment="continual", steps=5)

    def run(name, **kw):
        (tmp_path / name).mkdir()
        fake = FakeTune(tmp_path / name, **kw)
        monkeypatch.setattr(trainable, "tune", fake)
        made.clear(), steps_run.clear()
        try:
            trainable.train_cell({"cell": cell.to_config()}, continual_sweep)
        finally:
            torch.set_num_threads(threads)
        return fake

    whole = run("whole")
    assert made == [1, 2, 3, 4, 5] and len(steps_run) == 10 and len(whole.checkpoints) == 16

    def final(fake):
        with fake.checkpoints[-1].as_directory() as d:
            state = torch.load(Path(d) / trainable.STATE_FILE, weights_only=True)
            return state, trainable.SyntheticSet.load(Path(d) / trainable.set_file(0))

    state, memory = final(whole)
    assert [(r["step"], r["classes_seen"]) for r in state["records"]] == [(t, 2 * t) for t in range(1, 6)]
    assert sorted(memory.labels.tolist()) == list(range(10))

    # stopped once step 3's set was made (checkpoint 8), before its networks trained
    with pytest.raises(KeyboardInterrupt):
        run("stopped", crash_at=8)
    resumed = run("resumed", restore_from=tune.Checkpoint.from_directory(tmp_path / "stopped" / "checkpoint_000007"))
    assert made == [4, 5] and len(steps_run) == 4  # steps 1-3 kept, not made again
    key = lambda r: (r["exp"], r["step"], r["eval_seed"], r["accuracy"])  # noqa: E731
    state2, memory2 = final(resumed)
    assert [key(r) for r in state2["records"]] == [key(r) for r in state["records"]]
    assert torch.equal(memory2.images, memory.images) and torch.equal(memory2.labels, memory.labels)

    # stopped part-way through step 3's condensation (after its iteration 1): it continues from there
    with pytest.raises(KeyboardInterrupt):
        run("mid", crash_at=7)
    run("mid-resumed", restore_from=tune.Checkpoint.from_directory(tmp_path / "mid" / "checkpoint_000006"))
    assert made == [3, 4, 5] and len(steps_run) == 1 + 2 + 2


def test_continual_set_files_hold_each_step_s_classes_per_class_order(tmp_path):
    steps = ClassSteps(10, 5, seed=0)
    pairs = [[torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8), torch.tensor(steps.classes(t))]
             for t in range(1, 6)]
    torch.save({"data": pairs}, tmp_path / "cl_DM_MNIST_seed0.pt")
    path = write(tmp_path, {"methods": ["set:dm"]}, sets={"dm": {"MNIST-ipc1": ["cl_DM_MNIST_seed*.pt"]}})
    sweep = spec.load(path)
    cells = expand(sweep)
    runner.check_external(cells, sweep)
    sets = continual.read_sets(cells[0], sweep, 0)
    assert [s.labels.tolist() for s in sets] == [steps.classes(t) for t in range(1, 6)]
    with pytest.raises(ConfigError, match="1 file\\(s\\) for 2 class orders"):
        runner.check_external(cells, dataclasses.replace(sweep, num_exp=2))
    pairs[2][1] = torch.tensor(steps.classes(4))  # step 3 holds step 4's classes
    torch.save({"data": pairs}, tmp_path / "cl_DM_MNIST_seed0.pt")
    with pytest.raises(ConfigError, match=r"set 2 of 5\): no image of class .*; a set needs its classes"):
        runner.check_external(cells, sweep)


def continual_rows(cell_steps=5, methods=("random", "DM")) -> pd.DataFrame:
    rows = []
    for method in methods:
        cell = Cell("MNIST", "ConvNet", 10, "S", "ours", method, ("cl",), experiment="continual", steps=cell_steps)
        records = [{"exp": e, "eval_model": "ConvNet", "eval_seed": n, "accuracy": 90.0 - 5 * t + e + n, "step": t,
                    "classes_seen": 10 // cell_steps * t} for e in range(2) for t in range(1, cell_steps + 1)
                   for n in range(2)]
        rows += parquet.ok_rows("cl", cell, records)
    return rows


def test_continual_rows_and_table(tmp_path):
    failed = Cell("MNIST", "ConvNet", 10, "S", "ours", "herding", ("cl",), experiment="continual", steps=2)
    rows = continual_rows() + parquet.error_rows("cl", failed, "boom")
    path = tmp_path / "results.parquet"
    parquet.write(rows, path)
    df = parquet.read(path)
    assert df[df.method == "herding"][["step", "classes_seen"]].values.tolist() == [[1, 5], [2, 10]]
    md = tables.markdown(df, "cl")
    lines = md.splitlines()
    assert lines[2] == "| dataset | steps | method \\ step | 1 | 2 | 3 | 4 | 5 |"
    # step 1 of random: 85 + exp (0, 1) + network (0, 1) -> 86 ± 0.71 over 2 orders x 2 networks
    assert lines[4] == "| MNIST | 5 | random | 86.00 ± 0.71 | 81.00 ± 0.71 | 76.00 ± 0.71 | 71.00 ± 0.71 | 66.00 ± 0.71 |"
    assert lines[6] == "| MNIST | 2 | herding | failed | failed |  |  |  |"  # no step 3-5: blank
    assert "[" not in "".join(lines[4:7])  # no published number
    assert "MNIST in 5 steps: 2, 4, 6, 8, 10" in md
    tables.write_tables(df, tmp_path / "tables")  # md and tex asked: its csv too
    csv = (tmp_path / "tables" / "cl.csv").read_text()
    assert "MNIST,5,random,1,ok,86.0000,0.7071,4" in csv and csv == tables.csv_text(df, "cl")


@pytest.mark.slow
def test_continual_figure_draws_a_line_per_method_against_classes_seen(tmp_path):
    from orchestrator.results import plots

    path = tmp_path / "results.parquet"
    parquet.write(continual_rows() + continual_rows(2, ("herding",)), path)
    written = plots.write_plots(path)
    assert {tmp_path / "plots" / f"cl_MNIST.{s}" for s in ("png", "pdf")} <= set(written)


def test_continual_columns_are_null_in_older_files_and_other_rows(tmp_path):
    smoke = Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ("metric",))
    rows = parquet.ok_rows("s", smoke, [{"exp": 0, "eval_model": "ConvNet", "eval_seed": 1, "accuracy": 50.0}])
    assert rows[0]["steps"] is None and rows[0]["step"] is None and rows[0]["classes_seen"] is None
    assert len(parquet.error_rows("s", smoke, "x")) == 1
    old = tmp_path / "old.parquet"
    parquet.write(rows, old)
    table = pq.read_table(old)
    pq.write_table(table.drop_columns(["steps", "step", "classes_seen"]), old)  # a file from before them
    df = parquet.read(old)
    assert df[["steps", "step", "classes_seen"]].isna().all().all()
    assert np.isclose(df.accuracy[0], 50.0)
