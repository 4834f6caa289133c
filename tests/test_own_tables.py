"""A sweep's own tables: laid out by their rows:/columns: keys, else by the axes that vary, checked
when the sweep is read, and rendered from the results Parquet alone (its metadata carries the layout)."""
import pytest
import yaml

from condense.errors import ConfigError
from orchestrator.results import parquet, tables
from orchestrator.sweep import spec
from orchestrator.sweep.cells import expand
from orchestrator.sweep.layouts import own_layouts, to_plain

GRID = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1, 10], "eval_modes": ["S"],
        "methods": ["random", "DC"]}


def load(tmp_path, **grid):
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump({"tables": {"mine": {**GRID, **grid}}}))
    return spec.load(path)


def test_without_rows_or_columns_the_axes_that_vary_make_the_table(tmp_path):
    layout = own_layouts(load(tmp_path).grids)["mine"]
    assert (layout.rows, layout.column) == (("ipc",), "method")
    layout = own_layouts(load(tmp_path, methods=["DC"], models=["ConvNet", "MLP"]).grids)["mine"]
    assert (layout.rows, layout.column) == (("model",), "ipc")  # no method varies: the last axis that does
    layout = own_layouts(load(tmp_path, methods=["DC"], ipcs=[1]).grids)["mine"]
    assert (layout.rows, layout.column) == (("dataset",), "method")  # nothing varies: one cell
    layout = own_layouts(load(tmp_path, eval_modes=["M"], ipcs=[1]).grids)["mine"]
    assert (layout.rows, layout.column) == (("eval_model",), "method")  # a pool's models are never averaged


def test_rows_and_columns_keys_choose_the_layout(tmp_path):
    layout = own_layouts(load(tmp_path, rows=["method"], columns="ipc").grids)["mine"]
    assert (layout.rows, layout.column) == (("method",), "ipc")
    layout = own_layouts(load(tmp_path, rows=["ipc"]).grids)["mine"]
    assert (layout.rows, layout.column) == (("ipc",), "method")


@pytest.mark.parametrize("grid, words", [
    ({"rows": ["ipc"], "columns": ["dataset"]}, "mine.methods: the mine layout shows rows ipc and columns dataset"),
    ({"rows": ["colour"]}, "unknown results column 'colour'"),
    ({"columns": ["ipc", "method"]}, "give one column"),
    ({"rows": ["ipc", "method"]}, "give columns:"),
    ({"eval_modes": ["M"], "ipcs": [1], "rows": ["model"], "columns": "method"}, "add eval_model"),
])
def test_a_layout_that_would_average_axes_is_refused(tmp_path, grid, words):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, **grid)
    assert words in str(err.value), str(err.value)


def test_the_papers_tables_keep_their_layout(tmp_path):
    path = tmp_path / "t1.yaml"
    path.write_text(yaml.safe_dump({"tables": {"table1": {**GRID, "rows": ["method"]}}}))
    with pytest.raises(ConfigError, match="table1 has the paper's layout"):
        spec.load(path)


def rows_of(sweep, accuracy=50.0):
    out = []
    for cell in expand(sweep.for_run("/d", "v")):
        out += parquet.ok_rows("own", cell, [{"exp": 0, "eval_model": "ConvNet", "eval_seed": s,
                                              "accuracy": accuracy + cell.ipc + s, "iterations": 10}
                                             for s in (0, 1)])
    return out


def test_an_own_table_renders_from_the_parquet_in_every_format(tmp_path):
    sweep = load(tmp_path, rows=["method"], columns="ipc")
    path = tmp_path / "results.parquet"
    layouts = {"mine": {"rows": ["method"], "column": "ipc"}}
    parquet.write(rows_of(sweep), path, {"sweep": {"name": "own", "cells": [], "layouts": layouts}})
    df = parquet.read(path)
    assert tables.table_names(df) == ["mine"]
    md = tables.markdown(df, "mine", paper=False)
    assert md.splitlines()[0] == "### mine" and "| method \\ ipc | 1 | 10 |" in md
    assert "| random | 51.50 ± 0.50 | 60.50 ± 0.50 |" in md
    assert "[64.9 ± 3.5; Δ -13.40]" in tables.markdown(df, "mine")  # the paper's number where it has one
    assert "\\textbf{60.50 $\\pm$ 0.50}" in tables.latex(df, "mine", paper=False)
    assert "random,10,ok,60.5000,0.5000,2" in tables.csv_text(df, "mine", paper=False)
    # without the layout in the metadata (a Parquet of python -m evaluation): the columns that vary
    parquet.write(rows_of(sweep), path)
    assert "| ipc \\ method | random | DC |" in tables.markdown(parquet.read(path), "mine")


@pytest.mark.slow
def test_an_own_table_has_its_figure_and_a_place_in_the_report(tmp_path):
    from orchestrator.results import plots, report

    sweep = load(tmp_path)
    # as the driver writes it: the sweep's own layouts in the metadata (the results tools know the table by them)
    layouts = {name: to_plain(layout) for name, layout in own_layouts(sweep.grids).items()}
    parquet.write(rows_of(sweep), tmp_path / "results.parquet", {"sweep": {"name": "own", "cells": [], "layouts": layouts}})
    written = plots.write_plots(tmp_path / "results.parquet")
    assert {p.name for p in written} == {"mine.png", "mine.pdf"}
    tables.write_tables(parquet.read(tmp_path / "results.parquet"), tmp_path / "tables")
    html = report.render(tmp_path)
    assert "<h2>mine</h2>" in html and "plots/mine.png" in html
