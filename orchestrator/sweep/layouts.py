"""Table layouts: which result columns make a table's rows and which its columns.

A sweep names, for each grid, the table it fills: one of the paper's (``TABLES``), or a table of its
own name, laid out by the grid's ``rows:``/``columns:`` keys, else by the axes that vary (``generic``).
A layout shows some axes of the grid; every axis it does not show must hold a single value (``spec``
checks this), so a rendered cell never averages different experiments together. The layouts of a
sweep's own tables travel in its results' metadata (``sweep.layouts``), so the tables, plots and
report are drawn from the Parquet alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from condense.methods import BOUND, WHOLE, names


@dataclass(frozen=True)
class Layout:
    title: str
    rows: tuple[str, ...]  # results columns, one table row per distinct combination
    column: str  # results column, one table column per distinct value
    # Header label per column value, in the paper's column order; other values follow, unlabelled,
    # in order of appearance.
    labels: dict[str, str] = field(default_factory=dict)
    # Column values whose cells do not depend on the last row axis (Table 1's whole-dataset bound
    # has no ipc): shown once, in the first row of each group of the other row axes, as the paper.
    spanning: tuple[str, ...] = ()
    # positions no row fills are left blank, not "missing" (a 5-step row of the continual table has no step 6)
    sparse: bool = False


def _cross(title: str) -> Layout:
    return Layout(title, ("model",), "eval_model")


TABLES: dict[str, Layout] = {
    "table1": Layout("Table 1: test accuracy (%) of ConvNets trained on the condensed set",
                     ("dataset", "ipc"), "method",
                     labels={"random": "Random", "herding": "Herding", "kcenter": "K-Center",
                             "forgetting": "Forgetting", "DC": "DC", WHOLE: "whole dataset"},
                     spanning=(WHOLE,)),
    "table2": _cross("Table 2: cross-architecture, rows condense with, columns evaluate on"),
    "ablation_width": _cross("Ablation: network width"),
    "ablation_depth": _cross("Ablation: network depth"),
    "ablation_activation": _cross("Ablation: activation"),
    "ablation_pooling": _cross("Ablation: pooling"),
    "ablation_norm": _cross("Ablation: normalisation"),
    "metric": Layout("Ablation: gradient distance", ("model",), "dis_metric"),
    "methods": Layout("The seed repository's methods: test accuracy (%) of ConvNets trained on the condensed set",
                      ("dataset", "ipc"), "method", labels={"DC": "DC", "DSA": "DSA", "DM": "DM"}),
    "dsa_ablation": Layout("DSA's augmentation ablation: one strategy per column", ("dataset", "model", "ipc"),
                           "dsa_strategy"),
    "cross_bn": Layout("Cross-architecture with BatchNorm (pool B): rows condense with, columns evaluate on",
                       ("dataset", "method", "model"), "eval_model"),
    "ipc_curve": Layout("Test accuracy (%) of ConvNets against images per class", ("dataset", "ipc"), "method",
                        labels={"DC": "DC", "DSA": "DSA", "DM": "DM"}),
    # continual learning's, CL_DM.py's: a row per dataset, number of steps and method, a column per step
    "cl": Layout("Continual learning: test accuracy (%) on the classes seen so far, after each step",
                 ("dataset", "steps", "method"), "step", sparse=True),
}

# A sweep grid's axes and the results column each one fills.
AXES: dict[str, str] = {"datasets": "dataset", "models": "model", "ipcs": "ipc",
                        "eval_modes": "eval_mode", "metrics": "dis_metric", "methods": "method",
                        "dsa_strategies": "dsa_strategy"}


# What a table of a sweep's own may show: the grid's axes' columns and, for the pools, eval_model.
SHOWABLE = (*AXES.values(), "eval_model")
# the table of `python -m evaluation`'s rows: laid out by the columns that vary (``generic``)
EVALUATION_TABLE = "evaluation"


def hidden_axes(layout: Layout) -> list[str]:
    """The grid axes that ``layout`` does not show (each must have exactly one value)."""
    shown = {*layout.rows, layout.column}
    return [axis for axis, column in AXES.items() if column not in shown]


def own(name: str, rows: tuple[str, ...], column: str) -> Layout:
    """A sweep's own table: its name is its title; the whole-dataset bound spans the ipcs as in
    Table 1 when methods are the columns and ipc the last row axis."""
    spanning = names(BOUND) if column == "method" and rows and rows[-1] == "ipc" else ()
    return Layout(name, tuple(rows), column, spanning=spanning)


def generic(name: str, varying: list[str]) -> Layout:
    """The layout of a table that names no rows or columns: the methods as columns when they vary,
    else the last axis that varies; the other varying axes as rows (the dataset when none is left)."""
    ordered = [c for c in SHOWABLE if c in varying]
    column = "method" if "method" in ordered else (ordered[-1] if ordered else "method")
    rows = tuple(c for c in ordered if c != column) or ("dataset",)
    return own(name, rows, column)


def to_plain(layout: Layout) -> dict:
    return {"rows": list(layout.rows), "column": layout.column}


def from_plain(name: str, plain: dict) -> Layout:
    return own(name, tuple(plain["rows"]), plain["column"])


def own_layouts(grids) -> dict[str, Layout]:
    """The layouts of a sweep's own tables (every grid whose table is not the paper's): the rows and
    column its grids' ``rows``/``columns`` give, the rest from the axes that vary across its grids
    (``eval_model`` too where an eval mode is a pool of several models), as ``generic``."""
    found: dict[str, Layout] = {}
    for name in dict.fromkeys(g.table for g in grids if g.table not in TABLES):
        mine = [g for g in grids if g.table == name]
        varying = [column for axis, column in AXES.items() if len({v for g in mine for v in getattr(g, axis)}) > 1]
        if any(mode != "S" for g in mine for mode in g.eval_modes):
            varying.append("eval_model")
        rows = next((g.rows for g in mine if g.rows), ())
        columns = next((g.columns for g in mine if g.columns), ())
        if not rows and not columns:
            found[name] = generic(name, varying)
            continue
        column = columns[0] if columns else generic(name, [c for c in varying if c not in rows]).column
        rows = rows or tuple(c for c in SHOWABLE if c in varying and c != column) or ("dataset",)
        found[name] = own(name, tuple(rows), column)
    return found
