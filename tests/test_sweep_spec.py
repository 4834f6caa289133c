"""Sweep files: the shipped ones load and expand to the paper's counts; malformed ones fail on one
line naming the file and the key, before Ray is imported."""
import os
import re
import socket
import sys
from pathlib import Path

import pytest
import yaml

from condense.errors import ConfigError
from conftest import REPO, data_root
from orchestrator.sweep import spec
from orchestrator.sweep.cells import expand

SWEEPS = REPO / "sweeps"
# Table 1: 12 DC cells, 4 coreset baselines x 12, and one whole-dataset cell per dataset
PAPER_COUNTS = {"table1": 12 * 5 + 4, "table2": 6, "ablation_width": 4, "ablation_depth": 4, "ablation_activation": 3,
                "ablation_pooling": 3, "ablation_norm": 5, "metric": 18}

BASE = {"tables": {"metric": {"datasets": ["MNIST"], "models": ["ConvNet", "MLP"], "ipcs": [1],
                              "eval_modes": ["S"], "metrics": ["ours", "mse"]}},
        "num_exp": 1, "budget": {"iterations": 10}, "resources": {"cpu": 1, "gpu": 0}}


def write(tmp_path, data, name="sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def edited(**changes) -> dict:
    """BASE with dotted keys replaced (value None deletes the key)."""
    import copy
    d = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = d
        for p in parents:
            node = node[p]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return d


@pytest.mark.parametrize("name, count", PAPER_COUNTS.items())
def test_each_table_expands_to_the_paper_count(name, count):
    cells = expand(spec.load(SWEEPS / f"{name}.yaml"))
    assert len(cells) == count
    assert all(c.tables == (name,) for c in cells)


def test_all_is_the_union_of_the_tables_without_duplicates():
    union = {c.cell_id for name in PAPER_COUNTS for c in expand(spec.load(SWEEPS / f"{name}.yaml"))}
    cells = expand(spec.load(SWEEPS / "all.yaml"))
    ids = [c.cell_id for c in cells]
    assert len(ids) == len(set(ids)) and set(ids) == union
    assert len(ids) < sum(PAPER_COUNTS.values())  # some cells are shared ...
    shared = {c.cell_id: c.tables for c in cells}["MNIST-ConvNet-ipc1-S-ours"]
    assert shared == ("table1", "metric")  # ... and shown in every table they belong to


# The seed README's commands for these run 5 networks per run (--num_eval 5), not the paper's 20;
# CL_DM.py's continual learning 3 per step (its --num_eval default).
README_NUM_EVAL = {"cross_bn": 5, "dm_large": 5, "cl": 3}


def test_every_shipped_sweep_loads_with_paper_defaults_unless_smoke():
    for path in SWEEPS.glob("*.yaml"):
        sweep = spec.load(path)
        if path.stem in ("smoke", "nas_smoke", "cl_smoke"):
            continue
        if any(g.architectures for g in sweep.grids):  # the architecture search's protocol (docs/nas.md)
            assert (sweep.num_eval, sweep.eval_budget.epochs, sweep.budget.iterations) == (1, 200, 1000), path
        else:
            num_eval = README_NUM_EVAL.get(path.stem, 20)
            assert (sweep.num_exp, sweep.num_eval, sweep.budget.iterations) == (5, num_eval, 1000), path
            assert sweep.eval_budget.epochs is None, path


@pytest.mark.parametrize("data, key, hint", [
    (edited(no_such_key=3), "no_such_key", "allowed"),
    (edited(tables__metric__colour=["red"]), "tables.metric.colour", "allowed"),
    (edited(budget__speed=2), "budget.speed", "allowed"),
    (edited(num_exp="five"), "num_exp", "expected int"),
    (edited(num_exp=True), "num_exp", "expected int"),
    (edited(num_exp=0), "num_exp", "> 0"),
    (edited(budget__iterations=1.5), "budget.iterations", "expected int"),
    (edited(resources__gpu="half"), "resources.gpu", "expected float"),
    (edited(resources__cpu=-1), "resources.cpu", "> 0"),
    (edited(tables__metric__models="ConvNet"), "tables.metric.models", "expected a list"),
    (edited(tables__metric__models=["ConvNetXYZ"]), "tables.metric.models", "ConvNetXYZ"),
    (edited(tables__metric__datasets=["IMAGENET77"]), "tables.metric.datasets", "IMAGENET77"),
    (edited(tables__metric__metrics=["l3"]), "tables.metric.metrics", "l3"),
    (edited(tables__metric__eval_modes=["Q"]), "tables.metric.eval_modes", "'Q'"),
    (edited(tables__metric__methods=["magic"]), "tables.metric.methods", "magic"),
    (edited(tables__metric__metrics=[]), "tables.metric.metrics", "empty"),
    (edited(tables__metric__ipcs=[1, 1]), "tables.metric.ipcs", "twice"),
    (edited(tables__metric__ipcs=[1, 10]), "tables.metric.ipcs", "one value"),
    (edited(tables__metric__ipcs=[7]), "ipcs", "ipc 7"),
    (edited(reference_budget={"epochs": 0}), "reference_budget.epochs", "> 0"),
    (edited(reference_budget={"max_train": "all"}), "reference_budget.max_train", "expected int"),
    (edited(reference_budget={"colour": 1}), "reference_budget.colour", "allowed"),
    (edited(reference_budget={"subset": "random"}), "reference_budget",
     "unknown subset 'random'; allowed: stratified, first"),
    (edited(reference_budget={"subset": 2}), "reference_budget.subset", "expected str"),
    (edited(tables__metric__models=None), "tables.metric.models", "required"),
    (edited(tables={"my/table": BASE["tables"]["metric"]}), "tables", "letters, digits"),
    (edited(tables=None), "no cells", "tables"),
    (edited(dsa_strategy="crop_spin"), "dsa_strategy", "unknown op 'spin'"),
    (edited(dsa_strategy=3), "dsa_strategy", "str"),
    ("tables: [MNIST\n  models: {{\n", "line 2", "YAML syntax"),
    ("", "empty file", "mapping"),
    ("- 1\n- 2\n", "list", "mapping"),
])
def test_malformed_sweep_is_one_line_naming_file_and_key(tmp_path, data, key, hint):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        spec.load(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert key in message and hint in message, message


def test_table1_has_the_method_axis_and_one_whole_cell_per_dataset():
    cells = expand(spec.load(SWEEPS / "table1.yaml"))
    by_method = {m: [c for c in cells if c.method == m] for m in ("random", "herding", "kcenter", "forgetting", "DC")}
    assert all(len(v) == 12 for v in by_method.values())
    whole = [c for c in cells if c.method == "whole"]
    assert [c.cell_id for c in whole] == [f"{d}-ConvNet-all-S-ours-whole" for d in
                                          ("MNIST", "FashionMNIST", "SVHN", "CIFAR10")]
    assert {c.ipc for c in whole} == {0}


def test_coreset_grids_take_any_ipc_but_dc_needs_a_loop_setting(tmp_path):
    def table1(methods):
        grid = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [7], "eval_modes": ["S"], "methods": methods}
        return edited(tables={"table1": grid})

    assert {c.ipc for c in expand(spec.load(write(tmp_path, table1(["random", "herding"]))))} == {7}
    with pytest.raises(ConfigError, match="ipc 7"):
        spec.load(write(tmp_path, table1(["random", "DC"])))


def test_include_takes_grids_and_refuses_cycles(tmp_path):
    write(tmp_path, BASE, "a.yaml")
    sweep = spec.load(write(tmp_path, {"include": ["a.yaml"], "num_exp": 3}, "b.yaml"))
    assert sweep.num_exp == 3 and len(expand(sweep)) == 4  # grids from a.yaml, settings from b.yaml
    write(tmp_path, {"include": ["c.yaml"]}, "c.yaml")
    with pytest.raises(ConfigError, match="includes itself"):
        spec.load(tmp_path / "c.yaml")


def test_cli_rejects_a_bad_file_before_importing_ray(tmp_path, monkeypatch, driver):
    monkeypatch.setitem(sys.modules, "ray", None)  # any `import ray` now fails: the refusal must come first
    code, _, err = driver(write(tmp_path, edited(tables__metric__models=["ConvNetXYZ"])))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "ConvNetXYZ" in lines[0] and "Traceback" not in err


@pytest.fixture
def driver(capsys):
    """``python -m orchestrator.run ARGS`` in this process: (exit status, stdout, stderr)."""
    from orchestrator.driver.run import main

    def call(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_dry_run_lists_cells_with_budgets_and_count(driver):
    code, out, err = driver(SWEEPS / "table2.yaml", "--dry-run")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == "6 cells" and len(lines) == 9
    assert lines[-2].startswith("estimated ") and re.search(r"device-(hours|minutes|seconds) on", lines[-2])  # the cost estimate (test_cost.py)
    assert lines[0].startswith("MNIST-MLP-ipc1-M-ours ") and "5 exp x 1000 it" in lines[0]
    assert "6 models x 20 nets" in lines[0]
    # resources: auto says what a cell gets with GPUs and without (nothing is started to know which)
    assert lines[-3] == "resources: auto (with GPUs: 2 CPUs + 0.25 GPU per cell; without GPUs: 1 CPU per cell)"
    code, out, err = driver(SWEEPS / "table2.yaml", "--dry-run", "--gpu-share", "0.5", "--cpus-per-cell", "4")
    assert out.strip().splitlines()[-3] == ("resources: auto (with GPUs: 4 CPUs + 0.5 GPU per cell; "
                                            "without GPUs: 4 CPUs + 0.5 GPU per cell)"), out + err


@pytest.mark.parametrize("resources, line", [
    ({"cpu": 2, "gpu": 0.5}, "resources: 2 CPUs + 0.5 GPU per cell, from the sweep file"),
    ({"cpu": 1, "custom": {"node_b": 1}}, "resources: 1 CPU + 1 node_b per cell, from the sweep file"),
    ("auto", "resources: auto (with GPUs: 2 CPUs + 0.25 GPU per cell; without GPUs: 1 CPU per cell)"),
])
def test_explicit_resources_win_over_auto(tmp_path, resources, line):
    from orchestrator.driver.resources import Plan
    plan = Plan(spec.load(write(tmp_path, edited(resources=resources))).resources)
    assert plan.describe() == line
    if resources != "auto":
        assert Plan(plan.explicit, gpu_share=1).describe() == line + "; --gpu-share not applied"
        assert Plan(plan.explicit, gpu_share=1).request(cluster_gpus=8)["GPU"] == resources.get("gpu", 0)
    else:
        assert Plan(None).request(cluster_gpus=0) == {"CPU": 1, "GPU": 0}
        assert Plan(None, gpu_share=1).request(cluster_gpus=0) == {"CPU": 2, "GPU": 1}


@pytest.mark.parametrize("resources, message", [
    ("lots", "resources: expected auto or a mapping"),
    ({"cpu": 1, "custom": {"node_b": 0}}, "resources.custom: expected resource name -> amount > 0"),
    ({"cpu": 1, "tpu": 1}, "resources.tpu: unknown key"),
])
def test_bad_resources_are_one_line(tmp_path, resources, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        spec.load(write(tmp_path, edited(resources=resources)))


def test_unreachable_address_is_one_line_exit_2_and_writes_nothing(tmp_path, driver):
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        code, _, err = driver(SWEEPS / "smoke.yaml", "--output", tmp_path / "runs", "--address", f"127.0.0.1:{port}")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_missing_data_root_warns_in_the_dry_run_and_stops_a_local_run_before_writing(tmp_path, driver):
    path = write(tmp_path, edited(data_root=str(tmp_path / "no-data")))
    code, out, err = driver(path, "--dry-run")
    assert code == 0 and out.strip().endswith("4 cells")
    assert err.startswith("warning: dataset MNIST not found under data root") and len(err.strip().splitlines()) == 1
    code, _, err = driver(path, "--output", tmp_path / "runs")
    assert code == 2 and err.startswith("error: dataset MNIST not found") and len(err.strip().splitlines()) == 1
    assert "--data_path" not in err  # the driver has no such flag ...
    assert "point the sweep's data_root / DC_DATA at the folder" in err and "--download" in err  # ... but these
    assert not (tmp_path / "runs").exists()


def _corrupt_mnist(root: Path, kind: str) -> None:
    import numpy as np

    src = np.load(data_root() / "MNIST" / "train.npz")
    keep = np.concatenate([np.flatnonzero(src["labels"] == c)[:1 if c == 3 and kind == "short" else 20]
                           for c in range(10)])
    x, y = src["images"][keep], src["labels"][keep].copy()
    test = np.load(data_root() / "MNIST" / "test.npz")
    xt, yt = test["images"][:200], test["labels"][:200]
    if kind == "label10":
        y[5] = 10
    if kind == "emptytest":
        xt, yt = xt[:0], yt[:0]
    (root / "MNIST").mkdir(parents=True)
    np.savez(root / "MNIST" / "train.npz", images=x, labels=y)
    np.savez(root / "MNIST" / "test.npz", images=xt, labels=yt)
    if kind == "truncated":
        path = root / "MNIST" / "train.npz"
        path.write_bytes(path.read_bytes()[:5000])


@pytest.mark.parametrize("kind, message", [
    ("truncated", "cannot read MNIST train data from {root}/MNIST/train.npz"),
    ("label10", "{root}/MNIST/train.npz: labels range 0..10"),
    ("emptytest", "{root}/MNIST/test.npz: the test split is empty"),
    ("short", "{root}/MNIST/train.npz: class 3 has 1 training images, fewer than the 10 per class that cell "
              "MNIST-ConvNet-ipc10-S-ours-random starts from"),
])
def test_bad_data_is_refused_in_one_line_by_the_dry_run_and_before_ray(tmp_path, driver, kind, message):
    root = tmp_path / kind
    _corrupt_mnist(root, kind)
    table1 = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1, 10], "eval_modes": ["S"],
              "methods": ["DC", "random"]}
    path = write(tmp_path, edited(data_root=str(root), tables={"table1": table1}))
    for extra in (["--dry-run"], ["--output", tmp_path / "runs"]):
        code, out, err = driver(path, *extra)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message.format(root=root) in lines[0] and out == "", err
    assert not (tmp_path / "runs").exists()
    if kind == "short":  # DC starts from noise: ipc 10 needs no 10 real images of each class
        table1["methods"] = ["DC"]
        assert driver(write(tmp_path, edited(data_root=str(root), tables={"table1": table1})), "--dry-run")[0] == 0


@pytest.mark.parametrize("name", ["....yaml", "-x.yaml", "a b.yaml"])
def test_a_sweep_name_that_is_not_a_safe_folder_name_is_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="is not a safe file name"):
        spec.load(write(tmp_path, BASE, name=name))


def test_a_run_folder_held_by_a_live_driver_is_refused_in_one_line(tmp_path, driver):
    from orchestrator.driver.lock import RunLock

    path = write(tmp_path, edited(data_root=str(data_root())))
    (tmp_path / "runs" / "sweep").mkdir(parents=True)
    with RunLock(tmp_path / "runs" / "sweep"):  # this process stands for the first driver
        for extra in ([], ["--resume"]):
            code, _, err = driver(path, "--output", tmp_path / "runs", *extra)
            assert code == 2 and len(err.strip().splitlines()) == 1, err
            assert "is in use by a driver running on" in err and f"pid {os.getpid()}" in err
    assert not (tmp_path / "runs" / "sweep" / "sweep.json").exists()  # the refused driver wrote nothing
