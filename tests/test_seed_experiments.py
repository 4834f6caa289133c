"""The seed repository's experiment lists as sweep files: pools B and SS, the DSA strategy axis, the
ipc curve and DM's large sets; the ids of cells without the new axis are what they were."""
import pytest
import yaml

from condense.errors import ConfigError
from conftest import REPO
from orchestrator.results import parquet, tables
from orchestrator.sweep import spec
from orchestrator.sweep.cells import Cell, expand
from orchestrator.sweep.config import Grid, Sweep
from orchestrator.results.published import published
from evaluation.pools import EVAL_MODES, POOLS, eval_iterations, eval_models

SWEEPS = REPO / "sweeps"
STRATEGIES = ["color", "crop", "cutout", "flip", "scale", "rotate", "color_crop_cutout_scale_rotate",
              "color_crop_cutout_flip_scale_rotate"]


def load(tmp_path, grid: dict, table: str = "methods", **settings):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"tables": {table: {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1],
                                                       "eval_modes": ["S"], **grid}}, **settings}))
    return spec.load(path)


def test_pool_b_is_the_originals_batchnorm_pool_and_ss_keeps_bn():
    assert POOLS["B"] == ("ConvNetBN", "ConvNetASwishBN", "AlexNetBN", "VGG11BN", "ResNet18BN")
    assert {"S", "SS", "B"} <= set(EVAL_MODES)
    assert eval_models("S", "ConvNetBN") == ["ConvNet"]  # S drops BN, as get_eval_pool
    assert eval_models("SS", "ConvNetBN") == ["ConvNetBN"]
    assert eval_iterations("SS", 1000) == eval_iterations("S", 1000) == [0, 500, 1000]
    assert eval_iterations("B", 1000) == [1000]


def test_cell_ids_without_the_strategy_axis_are_unchanged():
    sweep = spec.load(SWEEPS / "methods.yaml")
    ids = {c.cell_id for c in expand(sweep)}
    assert "CIFAR10-ConvNet-ipc10-S-ours-DSA" in ids and "MNIST-ConvNet-ipc1-S-ours" in ids
    assert all(c.dsa_strategy is None for c in expand(sweep))
    plain = Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ())
    assert plain.cell_id == "MNIST-ConvNet-ipc1-S-ours"
    assert "dsa_strategy" not in plain.to_config() and Cell.from_config(plain.to_config()) == plain  # resumable


def test_the_ablation_is_one_readable_cell_per_strategy():
    cells = expand(spec.load(SWEEPS / "dsa_ablation.yaml"))
    assert [c.dsa_strategy for c in cells] == STRATEGIES
    assert [c.cell_id for c in cells] == [f"CIFAR10-ConvNet-ipc10-S-ours-DSA-{s}" for s in STRATEGIES]
    assert Cell.from_config(cells[1].to_config()) == cells[1]  # travels through Ray's param space


def test_the_strategy_axis_leaves_methods_without_dsa_alone():
    grid = Grid("methods", ("MNIST",), ("ConvNet",), (1,), ("S",), methods=("DC", "DSA", "DM"),
                dsa_strategies=("crop", "auto"))
    sweep = Sweep("s", grids=(grid,))
    ids = [c.cell_id for c in expand(sweep)]
    assert ids == ["MNIST-ConvNet-ipc1-S-ours", "MNIST-ConvNet-ipc1-S-ours-DSA-crop", "MNIST-ConvNet-ipc1-S-ours-DSA-auto",
                   "MNIST-ConvNet-ipc1-S-ours-DM-crop", "MNIST-ConvNet-ipc1-S-ours-DM-auto"]
    # a cell's strategy, not the sweep's, is what it condenses and is evaluated with
    crop = expand(sweep)[1]
    assert sweep.dsa_strategy_for(crop.dataset, crop.dsa_strategy) == "crop"
    assert sweep.dsa_strategy_for("MNIST") == "color_crop_cutout_scale_rotate"


@pytest.mark.parametrize("grid, table, words", [
    ({"methods": ["DSA"], "dsa_strategies": ["crop", "blur"]}, "methods", ["dsa_strategies", "blur", "crop"]),
    ({"methods": ["DC"], "dsa_strategies": ["crop"]}, "methods", ["dsa_strategies", "DSA and DM", "DC"]),
    ({"methods": ["DSA"], "dsa_strategies": ["crop", "color"]}, "methods", ["dsa_strategies", "one value"]),
    ({"methods": ["DC"], "ipcs": [1250]}, "methods", ["ipc 1250", "1, 10, 20, 30, 40, 50"]),
    ({"methods": ["DSA"], "eval_modes": ["Q"]}, "methods", ["eval_modes", "'Q'", "SS", "B"]),
])
def test_what_a_grid_cannot_take_is_one_line(tmp_path, grid, table, words):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, grid, table)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_shipped_sweeps_have_the_seed_readmes_cells():
    cross = [c.cell_id for c in expand(spec.load(SWEEPS / "cross_bn.yaml"))]
    assert cross == [f"{d}-ConvNetBN-ipc50-B-ours-{m}" for d in ("CIFAR10", "MNIST") for m in ("DSA", "DM")]
    curve = expand(spec.load(SWEEPS / "ipc_curve.yaml"))
    assert sorted({c.ipc for c in curve}) == [1, 10, 20, 30, 40, 50] and {c.method for c in curve} == {"DC", "DSA"}
    large = spec.load(SWEEPS / "dm_large.yaml")
    assert [c.ipc for c in expand(large)] == [100, 200, 500, 1000, 1250]
    assert large.dm_budget.lr_img == 10  # the README: --lr_img 10 from ipc 100 on


def test_published_numbers_hold_for_the_strategy_they_were_made_with():
    key = ("CIFAR10", "ConvNet", 10, "S", "ours", "DSA", "ConvNet")
    assert published(*key) == (52.1, None)
    assert published(*key, dsa_strategy="color_crop_cutout_flip_scale_rotate") == (52.1, None)
    assert published(*key, dsa_strategy="auto") == (52.1, None)
    assert published(*key, dsa_strategy="crop") is None  # an ablation column is not the README's row


def test_the_ablation_table_has_a_column_per_strategy(tmp_path):
    rows = []
    for i, cell in enumerate(expand(spec.load(SWEEPS / "dsa_ablation.yaml"))):
        rows += parquet.ok_rows("a", cell, [{"exp": 0, "eval_model": "ConvNet", "eval_seed": 1, "accuracy": 40.0 + i}])
    parquet.write(rows, tmp_path / "r.parquet")
    md = tables.markdown(parquet.read(tmp_path / "r.parquet"), "dsa_ablation")
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0] == "| dataset | model | ipc \\ dsa_strategy | " + " | ".join(STRATEGIES) + " |"
    assert lines[1].startswith("| CIFAR10 | ConvNet | 10 | 40.00 ± 0.00 | 41.00 ± 0.00 |")
    assert lines[1].endswith("| 47.00 ± 0.00 [52.1; Δ -5.10] |")  # only the README's strategy has its number


def test_a_sweep_over_ipcs_plots_accuracy_against_ipc_on_a_log_axis_with_hollow_published_points(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from orchestrator.results import plots

    rows = []
    for cell in expand(spec.load(SWEEPS / "dm_large.yaml")):
        rows += parquet.ok_rows("d", cell, [{"exp": 0, "eval_model": "ConvNet", "eval_seed": 1, "accuracy": 60.0}])
    parquet.write(rows, tmp_path / "results.parquet")
    fig = plots._draw_table(plt, parquet.read(tmp_path / "results.parquet"), "ipc_curve")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "200", "500", "1000", "1250"]
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "none"]
    assert sorted(round(y, 1) for line in hollow for y in line.get_ydata()) == [67.0, 71.2, 76.1, 79.8, 80.8]
    plt.close(fig)
    assert (tmp_path / "plots" / "ipc_curve.png") in plots.write_plots(tmp_path / "results.parquet")


def test_a_set_of_12500_images_plans_its_evaluation_memory_per_batch(monkeypatch):
    """DM at 1250 images per class: evaluation trains on batch_train images at a time, so the seeds a
    device holds do not shrink with the set (the images themselves, 12,500 x 3 x 32 x 32 float32, are 154 MB)."""
    import torch

    from condense.data import info
    from evaluation import protocol
    from evaluation.protocol import parallel_seeds
    from evaluation.train import EvalBudget

    monkeypatch.setattr(protocol, "_free_memory", lambda device: 8 * 2**30)  # the same 8 GB for both plans
    cifar, cpu = info("CIFAR10"), torch.device("cpu")
    assert parallel_seeds("ConvNet", cifar, 12500, EvalBudget(), cpu) == parallel_seeds("ConvNet", cifar, 256, EvalBudget(), cpu)


def test_set_figures_a_block_per_dataset_and_method_and_labelled_cell_grids(tmp_path):
    """plots/sets_ipc<k>.png per ipc from synthetic/<cell>-exp0.pt; the first cell of each dataset and
    method; a cell's grid has a column per class (wider than tall at ipc 1)."""
    import torch
    from PIL import Image

    from condense.synthetic import SyntheticSet
    from condense.visualise import class_grid, save_grid
    from orchestrator.results import plots, report, set_figures

    torch.manual_seed(0)
    cells = [Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ("methods",)),
             Cell("MNIST", "MLP", 1, "S", "ours", "DC", ("methods",)),  # a second DC cell: not drawn
             Cell("MNIST", "ConvNet", 1, "S", "ours", "DSA", ("methods",)),
             Cell("MNIST", "ConvNet", 10, "S", "ours", "DM", ("methods",))]
    rows = []
    for cell in cells:
        ipc = cell.ipc
        rows += parquet.ok_rows("f", cell, [{"exp": 0, "eval_model": "ConvNet", "eval_seed": 1, "accuracy": 50.0}])
        s = SyntheticSet(torch.randn(10 * ipc, 1, 28, 28), torch.arange(10).repeat_interleave(ipc), "MNIST")
        (tmp_path / "synthetic").mkdir(exist_ok=True)
        s.save(tmp_path / "synthetic" / f"{cell.cell_id}-exp0.pt")
    parquet.write(rows, tmp_path / "results.parquet")
    chosen = set_figures.first_sets(tmp_path, parquet.read(tmp_path / "results.parquet"))
    assert list(chosen) == [1, 10]
    assert [title for title, *_ in chosen[1]] == ["MNIST, DC (MNIST-ConvNet-ipc1-S-ours)",
                                                 "MNIST, DSA (MNIST-ConvNet-ipc1-S-ours-DSA)"]
    written = plots.write_plots(tmp_path / "results.parquet")
    assert {tmp_path / "plots" / f"sets_ipc{k}.{s}" for k in (1, 10) for s in ("png", "pdf")} <= set(written)
    report.write_report(tmp_path)
    assert 'src="plots/sets_ipc1.png"' in (tmp_path / "report.html").read_text()

    one = SyntheticSet.load(tmp_path / "synthetic" / "MNIST-ConvNet-ipc1-S-ours-exp0.pt")
    grid, centres = class_grid(one)
    assert grid.shape == (2 + 112 + 2, 10 * (112 + 2) + 2) and len(centres) == 10  # 28 px x 4, nearest
    assert grid.min() >= 0 and grid.max() <= 1  # denormalised and clipped
    assert (grid[2:6, 2:6] == grid[2, 2]).all() and not (grid[2:10, 2:10] == grid[2, 2]).all()  # 4x4 blocks
    save_grid(one, tmp_path / "cell.png")
    width, height = Image.open(tmp_path / "cell.png").size
    assert width > height
