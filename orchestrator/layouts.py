"""The paper's table layouts: which result columns make a table's rows and which its columns.

A sweep names, for each grid, the table it fills. A layout shows some axes of the grid; every axis
it does not show must hold a single value (``spec`` checks this), so a rendered cell never averages
different experiments together.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from condense.methods import WHOLE


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
}

# A sweep grid's axes and the results column each one fills.
AXES: dict[str, str] = {"datasets": "dataset", "models": "model", "ipcs": "ipc",
                        "eval_modes": "eval_mode", "metrics": "dis_metric", "methods": "method",
                        "dsa_strategies": "dsa_strategy"}


def hidden_axes(table: str) -> list[str]:
    """The grid axes that ``table``'s layout does not show (each must have exactly one value)."""
    layout = TABLES[table]
    shown = {*layout.rows, layout.column}
    return [axis for axis, column in AXES.items() if column not in shown]
