"""Cells: deterministic expansion, stable ids, seeds that depend on the cell only, --smoke caps."""
import dataclasses

from conftest import REPO
from orchestrator.sweep import spec
from orchestrator.sweep.cells import Cell, describe, expand

SWEEPS = REPO / "sweeps"


def test_expansion_is_deterministic_and_in_file_order():
    first = expand(spec.load(SWEEPS / "all.yaml"))
    assert first == expand(spec.load(SWEEPS / "all.yaml"))
    ids = [c.cell_id for c in first]
    # table1's axes in product order: dataset, model, ipc, eval mode, metric, then method
    assert ids[:7] == ["MNIST-ConvNet-ipc1-S-ours-random", "MNIST-ConvNet-ipc1-S-ours-herding",
                       "MNIST-ConvNet-ipc1-S-ours-kcenter", "MNIST-ConvNet-ipc1-S-ours-forgetting",
                       "MNIST-ConvNet-ipc1-S-ours", "MNIST-ConvNet-all-S-ours-whole", "MNIST-ConvNet-ipc10-S-ours-random"]
    assert ids.index("MNIST-MLP-ipc1-M-ours") < ids.index("MNIST-ConvNetW32-ipc1-W-ours") < ids.index(
        "MNIST-MLP-ipc1-S-cos")


def test_cell_ids_are_readable_and_name_the_method_unless_dc():
    assert Cell("MNIST", "ConvNetW64", 1, "W", "ours", "DC", ("ablation_width",)).cell_id == "MNIST-ConvNetW64-ipc1-W-ours"
    assert Cell("MNIST", "ConvNet", 10, "S", "ours", "herding", ("table1",)).cell_id == "MNIST-ConvNet-ipc10-S-ours-herding"
    assert Cell("SVHN", "ConvNet", 0, "S", "ours", "whole", ("table1",)).cell_id == "SVHN-ConvNet-all-S-ours-whole"


def test_a_whole_cell_is_shared_by_the_ipcs_of_its_grid():
    sweep = spec.load(SWEEPS / "smoke.yaml")
    grid = dataclasses.replace(sweep.grids[-1], ipcs=(1, 10, 50), methods=("random", "whole"))
    cells = expand(dataclasses.replace(sweep, grids=(grid,)))
    assert [c.cell_id for c in cells] == ["MNIST-ConvNet-ipc1-S-ours-random", "MNIST-ConvNet-all-S-ours-whole",
                                          "MNIST-ConvNet-ipc10-S-ours-random", "MNIST-ConvNet-ipc50-S-ours-random"]


def test_seeds_depend_on_cell_and_experiment_not_on_the_sweep():
    in_table1 = next(c for c in expand(spec.load(SWEEPS / "table1.yaml")) if c.cell_id == "MNIST-ConvNet-ipc1-S-ours")
    in_all = next(c for c in expand(spec.load(SWEEPS / "all.yaml")) if c.cell_id == "MNIST-ConvNet-ipc1-S-ours")
    assert in_table1.tables != in_all.tables
    assert [in_table1.exp_seed(0, e) for e in range(5)] == [in_all.exp_seed(0, e) for e in range(5)]
    assert len({in_all.exp_seed(0, e) for e in range(5)}) == 5
    other = dataclasses.replace(in_all, metric="mse")
    assert other.exp_seed(0, 0) != in_all.exp_seed(0, 0) and in_all.exp_seed(1, 0) != in_all.exp_seed(0, 0)


def test_config_round_trip():
    for cell in expand(spec.load(SWEEPS / "all.yaml")):
        config = cell.to_config()
        assert config["cell_id"] == cell.cell_id and Cell.from_config(config) == cell


def test_smoke_caps_budgets_but_never_raises_them():
    paper = spec.load(SWEEPS / "table1.yaml").for_run("/data", "v", smoke=True)
    assert (paper.budget.iterations, paper.budget.batch_real, paper.num_exp, paper.num_eval) == (20, 64, 1, 2)
    assert (paper.eval_budget.epochs, paper.eval_budget.max_test) == (100, 2000)
    assert paper.budget.batch_train == 256  # what the preset does not shrink stays the paper's
    tiny = spec.load(SWEEPS / "smoke.yaml")
    capped = tiny.for_run("/data", "v", smoke=True)
    assert tiny.budget.iterations < 20 and tiny.eval_budget.epochs < 100  # smaller than the presets ...
    assert capped.budget.iterations == tiny.budget.iterations  # ... so --smoke keeps them
    assert capped.eval_budget.epochs == tiny.eval_budget.epochs
    # the reference network (coresets, whole): 5 epochs on 1000 images under --smoke, the file's if smaller
    assert (paper.reference_budget.epochs, paper.reference_budget.max_train) == (5, 1000)
    assert (capped.reference_budget.epochs, capped.reference_budget.max_train) == (tiny.reference_budget.epochs, 1000)
    assert spec.load(SWEEPS / "table1.yaml").for_run("/data", "v").reference_budget.max_train is None


def test_smoke_scales_a_cells_budgets_to_its_set_and_keeps_ipc_1s():
    sweep = spec.load(SWEEPS / "table1.yaml")
    smoke, paper = sweep.for_run("/data", "v", smoke=True), sweep.for_run("/data", "v")
    cells = {c.cell_id: c for c in expand(sweep)}
    got = {}
    for ipc in (1, 10, 50):
        s = smoke.for_cell(cells[f"MNIST-ConvNet-ipc{ipc}-S-ours"])
        got[ipc] = (s.budget.iterations, s.budget.loops(ipc), s.eval_budget.epochs_for("none", ipc * 10 * 28 * 28))
    # iterations and epochs times the set's values within 100 x MNIST's ipc-1 set: that set keeps the presets
    assert got == {1: (20, (1, 1), 100), 10: (10, (2, 1), 10), 50: (2, (2, 1), 2)}
    cifar100 = Cell("CIFAR100", "ConvNet", 1, "S", "ours", "DM", ("t",))
    assert smoke.for_cell(cifar100).dm_budget.iterations == 2  # 100 images of 3 x 32 x 32
    herding = smoke.for_cell(cells["MNIST-ConvNet-ipc50-S-ours-herding"])
    assert herding.reference_budget == smoke.reference_budget and herding.eval_budget == smoke.eval_budget
    whole = cells["MNIST-ConvNet-all-S-ours-whole"]
    assert smoke.for_cell(whole) is smoke and paper.for_cell(cells["MNIST-ConvNet-ipc50-S-ours"]) is paper
    # the dry run shows what the cell runs; a smoke run's record says its budgets are scaled per cell
    assert "2 it (loops 2/1, 4 matching steps); eval at it 0/1/2: 1 model x 2 nets x 2 epochs (first 2000 test " \
        "images)" in describe(
        cells["MNIST-ConvNet-ipc50-S-ours"], smoke)
    assert smoke.comparable()["smoke"] == {"set_values": 784000} and "smoke" not in paper.comparable()


def test_the_seed_clis_smoke_scales_to_the_set_but_its_flags_win():
    from orchestrator.cli.seed import parse_args, sweep_for

    base = ["--dataset", "MNIST", "--ipc", "50", "--smoke"]
    values = 50 * 10 * 28 * 28
    s = sweep_for(parse_args(base))
    assert (s.budget.iterations, s.eval_budget.epochs_for("none", values)) == (2, 2)
    s = sweep_for(parse_args([*base, "--Iteration", "30", "--epoch_eval_train", "40"]))
    assert (s.budget.iterations, s.eval_budget.epochs_for("none", values)) == (30, 40)
    s = sweep_for(parse_args(["--dataset", "MNIST", "--ipc", "1", "--smoke"]))
    assert (s.budget.iterations, s.eval_budget.epochs_for("none", 10 * 28 * 28)) == (20, 100)


def test_describe_states_the_budget():
    sweep = spec.load(SWEEPS / "table1.yaml")
    s = sweep.for_run("/data", "v")
    cifar50 = next(c for c in expand(sweep) if c.cell_id == "CIFAR10-ConvNet-ipc50-S-ours")
    line = describe(cifar50, s)
    assert line.startswith("CIFAR10-ConvNet-ipc50-S-ours ")
    # ipc 50: outer loop 50, inner 10; CIFAR10 + ConvNet evaluates without augmentation: 300 epochs
    assert "loops 50/10" in line and "250000 matching steps" in line and "300 epochs" in line
    lines = {c.cell_id: describe(c, s) for c in expand(sweep)}
    assert ("herding selection (all training images, reference ConvNet of 50 epochs per exp); eval 1 model x 20 nets x "
            "1000 epochs") in lines["MNIST-ConvNet-ipc10-S-ours-herding"]
    assert "random selection (all training images); eval" in lines["MNIST-ConvNet-ipc1-S-ours-random"]
    assert "5 exp: 1 model x 1 net trained on all training images for 50 epochs" in lines[
        "MNIST-ConvNet-all-S-ours-whole"]


def test_methods_sweep_has_dc_dsa_and_dm_with_their_own_budgets():
    sweep = spec.load(SWEEPS / "methods.yaml")
    cells = expand(sweep)
    assert len(cells) == 4 * 3 * 3
    ids = {c.cell_id for c in cells}
    assert {"MNIST-ConvNet-ipc1-S-ours", "MNIST-ConvNet-ipc1-S-ours-DSA", "CIFAR10-ConvNet-ipc50-S-ours-DM"} <= ids
    s = sweep.for_run("/data", "v")
    lines = {c.cell_id: describe(c, s) for c in cells}
    # DSA: DC's loops; DM: 20000 one-update iterations; both evaluate with DSA augmentation, 1000 epochs
    assert "1000 it (loops 50/10" in lines["CIFAR10-ConvNet-ipc50-S-ours-DSA"]
    assert "20000 it (loops 1/0" in lines["CIFAR10-ConvNet-ipc50-S-ours-DM"]
    assert "1000 epochs" in lines["CIFAR10-ConvNet-ipc50-S-ours-DM"]
    assert "300 epochs" in lines["CIFAR10-ConvNet-ipc50-S-ours"]  # DC's evaluation is unchanged
    # mode S: DC and DSA at 0/500/1000, DM every 2000 as main_DM.py
    assert "eval at it 0/500/1000:" in lines["CIFAR10-ConvNet-ipc50-S-ours-DSA"]
    assert "eval at it " + "/".join(map(str, range(0, 20001, 2000))) + ":" in lines["CIFAR10-ConvNet-ipc50-S-ours-DM"]
    smoke = sweep.for_run("/data", "v", smoke=True)
    assert (smoke.budget_for("DM").iterations, smoke.budget_for("DM").lr_img) == (50, 1.0)
    dm = next(c for c in cells if c.cell_id == "MNIST-ConvNet-ipc1-S-ours-DM")
    assert "eval at it 0/25/50:" in describe(dm, smoke)
    assert smoke.budget_for("DSA") is smoke.budget
