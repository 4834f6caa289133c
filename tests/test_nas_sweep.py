"""The architecture search as a sweep: its files load into one cell per (proxy, architecture), bad
search grids fail on one line, the cost model scales with each architecture, and a search's trial
trains its architecture on its proxy (the proxies' sets travelling with the sweep)."""
import dataclasses
import io
import types

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import REPO, data_root
from condense.errors import ConfigError
from condense.networks import parse_convnet, search_space
from condense.synthetic import SyntheticSet
from evaluation.reference import ReferenceBudget
from evaluation.train import EvalBudget
from orchestrator.results import parquet
from orchestrator.sweep import cost, spec
from orchestrator.sweep.cells import NAS, Cell, expand, proxy_cell, search_budget, searches
from orchestrator.sweep.config import Sweep
from orchestrator.trial import experiment, nas, runner

SEARCH = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [10], "eval_modes": ["S"],
          "proxies": ["random", "DM", "early_stopping", "whole"],
          "architectures": ["ConvNetW32D1", "ConvNetW64D2ASNN"]}


def load(tmp_path, grid=None, **settings):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"tables": {"nas": grid or SEARCH}, "num_exp": 1, **settings}))
    return spec.load(path)


def test_nas_sweep_files_plan_the_720_and_the_smoke_sample():
    full = spec.load(REPO / "sweeps" / "nas.yaml")
    cells = expand(full)
    assert len(cells) == 720 * 7 and len({c.cell_id for c in cells}) == 720 * 7
    assert [c.architecture for c in cells[::7]] == search_space()  # each architecture's proxies together
    assert {c.experiment for c in cells} == {NAS} and cells[0].dataset == "CIFAR10"
    assert searches(cells) == ["architecture search nas on CIFAR10: 720 architectures x 7 proxies (random, herding, "
                               "DC, DSA, DM, early_stopping, whole) = 5040 trials, one per (proxy, architecture); "
                               "5 proxy sets made before the search"]
    smoke = expand(spec.load(REPO / "sweeps" / "nas_smoke.yaml"))
    archs = list(dict.fromkeys(c.architecture for c in smoke))
    assert len(archs) >= 24 and len(smoke) == len(archs) * 4
    for axis in ("width", "depth", "activation", "norm", "pooling"):
        assert len({getattr(parse_convnet(a), axis) for a in archs}) == {"width": 4, "depth": 4, "activation": 3,
                                                                          "norm": 5, "pooling": 3}[axis]


def test_nas_cells_name_their_proxy_and_architecture(tmp_path):
    cells = expand(load(tmp_path))
    ids = [c.cell_id for c in cells[:4]]
    assert ids == ["MNIST-ConvNet-ipc10-S-ours-random-nas-ConvNetW32D1", "MNIST-ConvNet-ipc10-S-ours-DM-nas-ConvNetW32D1",
                   "MNIST-ConvNet-all-S-ours-early_stopping-nas-ConvNetW32D1",
                   "MNIST-ConvNet-all-S-ours-whole-nas-ConvNetW32D1"]
    early, whole = cells[2], cells[3]
    assert early.method == whole.method == "whole" and early.ipc == 0 and early.eval_models() == ["ConvNetW32D1"]
    assert Cell.from_config(early.to_config()) == early
    # the proxy set is the paper's experiment's, and so is its file's name
    assert proxy_cell(cells[1]).cell_id == "MNIST-ConvNet-ipc10-S-ours-DM"
    # cells of the paper's experiment say nothing new: their records and ids are as before
    plain = Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ("metric",))
    assert "architecture" not in plain.to_config() and plain.cell_id == "MNIST-ConvNet-ipc1-S-ours"


def test_nas_early_stopping_epochs_and_the_record_of_the_budgets(tmp_path):
    sweep = load(tmp_path, early_stopping_epochs=3, eval_budget={"epochs": 7})
    early, whole = expand(sweep)[2:4]
    assert search_budget(early, sweep).epochs == 3 and search_budget(whole, sweep).epochs == 7
    assert sweep.comparable()["early_stopping_epochs"] == 3
    # a sweep without a search records what it did before (its runs resume)
    assert "early_stopping_epochs" not in spec.load(REPO / "sweeps" / "smoke.yaml").comparable()


@pytest.mark.parametrize("change, message", [
    ({"proxies": ["random", "DM"]}, "proxies: give whole"),
    ({"proxies": ["random", "nope", "whole"]}, "unknown proxy 'nope'"),
    ({"architectures": ["ConvNetW32D1", "NoNet"]}, "unknown model 'NoNet'"),
    ({"architectures": {"sample": 3}}, "needs 5 to 720 architectures"),
    ({"architectures": {"sample": 24, "max_mmacs": 0.5}}, "needs 5 to 0 architectures"),
    ({"architectures": {"sampel": 24}}, "sampel: unknown key"),
    ({"architectures": 24}, "expected all, {sample"),
    ({"methods": ["DC"]}, "methods: not in an architecture search"),
    ({"proxies": None}, "proxies: missing or empty"),
])
def test_nas_bad_search_grids_fail_on_one_line(tmp_path, change, message):
    grid = {k: v for k, v in {**SEARCH, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message) as err:
        load(tmp_path, grid)
    assert "\n" not in str(err.value) and "tables.nas" in str(err.value)


def test_nas_cost_scales_with_each_architecture_and_counts_a_proxy_set_once(tmp_path):
    # relu and sigmoid: the same multiply-adds; the widest unpooled: 1822 times the smallest's
    grid = {**SEARCH, "architectures": ["ConvNetW32D1", "ConvNetW32D1AS", "ConvNetW256D4NP"],
            "proxies": ["DM", "whole"]}
    sweep = load(tmp_path, grid)
    per_cell, line = cost.estimate(expand(sweep), sweep, "cpu")
    dm_first, whole_small, dm_again, whole_same, _, whole_big = per_cell
    assert whole_same == pytest.approx(whole_small) and dm_again < dm_first  # the first pays for the DM set
    assert whole_big > 100 * whole_small
    assert "3 searched architecture/shape pairs" in line and "scaled by their multiply-adds" in line


def test_nas_rows_carry_architecture_and_proxy_and_old_files_read_as_null(tmp_path):
    cell = expand(load(tmp_path))[2]
    row = parquet.ok_rows("s", cell, [{"exp": 0, "eval_model": cell.architecture, "accuracy": 50.0,
                                       "iterations": 1, "epochs": 1, "train_images": 500}])[0]
    assert (row["architecture"], row["proxy"], row["method"], row["epochs"], row["iterations"]) == (
        "ConvNetW32D1", "early_stopping", "whole", 1, None)
    old = [{k: v for k, v in row.items() if k not in ("architecture", "proxy")}]
    path = tmp_path / "old.parquet"
    parquet.write(old, path, schema=parquet.SCHEMA.remove(parquet.SCHEMA.get_field_index("architecture"))
                  .remove(parquet.SCHEMA.get_field_index("proxy") - 1))
    assert "architecture" not in pq.read_schema(path).names
    back = parquet.read(path)
    assert back["architecture"].isna().all() and back["proxy"].isna().all()


@pytest.mark.slow  # trains six small networks: seconds
def test_nas_trial_trains_the_architecture_on_its_proxy(tmp_path):
    from condense.data import load as load_data

    sweep = dataclasses.replace(load(tmp_path, num_eval=2), data_root=str(data_root()), code_version="test",
                                eval_budget=EvalBudget(epochs=2, max_test=100),
                                reference_budget=ReferenceBudget(max_train=200), early_stopping_epochs=1)
    train, test = load_data("MNIST", data_root())
    ctx = experiment.Context(train, test, "cpu")
    random_cell, _, early, whole = expand(sweep)[:4]
    with pytest.raises(ConfigError, match="random proxy set .* was not made before the search"):
        runner.run(random_cell, sweep, ctx, experiment.Ledger())
    made = experiment.make_set(proxy_cell(random_cell), sweep, train, 0)
    buffer = io.BytesIO()
    torch.save({"images": made.images, "labels": made.labels, "dataset": made.dataset, "meta": made.meta}, buffer)
    sweep = dataclasses.replace(sweep, proxy_sets=((nas.file_name(proxy_cell(random_cell), 0), buffer.getvalue()),))
    records = {}
    for cell in (random_cell, early, whole):
        ledger = experiment.Ledger()
        done = runner.run(cell, sweep, ctx, ledger)
        assert ledger.exp == 1 and len(done.synthetic) == 0  # a search's cell keeps no set of its own
        records[cell.proxy] = done.records
    assert [r["eval_model"] for r in records["random"]] == ["ConvNetW32D1"] * 2
    # the same initial weights on every proxy: the seeds depend on the architecture alone
    assert {tuple(r["eval_seed"] for r in rs) for rs in records.values()} == {
        tuple(r["eval_seed"] for r in records["whole"])}
    assert [(r["train_images"], r["epochs"]) for r in (records[p][0] for p in ("random", "early_stopping", "whole"))] \
        == [(100, 2), (200, 1), (200, 2)]
    assert all(0 <= r["accuracy"] <= 100 for rs in records.values() for r in rs)
