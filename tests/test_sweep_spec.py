"""Sweep files: the shipped ones load and expand to the paper's counts; malformed ones fail on one
line naming the file and the key, before Ray is imported."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from condense.errors import ConfigError
from conftest import REPO, data_root
from orchestrator import spec
from orchestrator.cells import expand

SWEEPS = REPO / "sweeps"
# Table 1: 12 DC cells, 4 coreset baselines x 12, and one whole-dataset cell per dataset
PAPER_COUNTS = {"table1": 12 * 5 + 4, "table2": 6, "ablation_width": 4, "ablation_depth": 4, "ablation_activation": 3,
                "ablation_pooling": 3, "ablation_norm": 5, "metric": 18}

BASE = {"tables": {"metric": {"datasets": ["MNIST"], "models": ["ConvNet", "MLP"], "ipcs": [1],
                              "eval_modes": ["S"], "metrics": ["ours", "mse"]}},
        "num_exp": 1, "budget": {"iterations": 10}, "resources": {"cpu": 1, "gpu": 0}}


def run_cli(*args, timeout=120):
    env = {**os.environ, "DC_DATA": str(data_root()), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "orchestrator.run", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


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


def test_every_shipped_sweep_loads_with_paper_defaults_unless_smoke():
    for path in SWEEPS.glob("*.yaml"):
        sweep = spec.load(path)
        if path.stem != "smoke":
            assert (sweep.num_exp, sweep.num_eval, sweep.budget.iterations) == (5, 20, 1000), path
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
    (edited(tables__metric__models=None), "tables.metric.models", "required"),
    (edited(tables={"table9": BASE["tables"]["metric"]}), "tables", "table9"),
    (edited(tables=None), "no cells", "tables"),
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


def test_cli_rejects_a_bad_file_before_importing_ray(tmp_path):
    path = write(tmp_path, edited(tables__metric__models=["ConvNetXYZ"]))
    code = ("import sys; from orchestrator.run import main; rc = main([sys.argv[1]]); "
            "print('ray' in sys.modules); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 2 and r.stdout.strip() == "False", (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "ConvNetXYZ" in lines[0] and "Traceback" not in r.stderr


def test_dry_run_lists_cells_with_budgets_and_count():
    r = run_cli(SWEEPS / "table2.yaml", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "6 cells" and len(lines) == 8
    assert lines[-2].startswith("estimated ") and "device-hours" in lines[-2]  # the cost estimate (test_cost.py)
    assert lines[0].startswith("MNIST-MLP-ipc1-M-ours ") and "5 exp x 1000 it" in lines[0]
    assert "6 models x 20 nets" in lines[0]


def test_unreachable_address_is_one_line_exit_2(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = run_cli(SWEEPS / "smoke.yaml", "--output", tmp_path, "--address", f"127.0.0.1:{port}", timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "Traceback" not in r.stderr
