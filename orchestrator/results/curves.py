"""Learning curves of condensed cells: ``curves.parquet`` beside the results, one row per
(cell_id, exp, iteration, eval_model).

Each row is one evaluation of a set part-way through (mode S: iterations 0, half and last) or at
the end of condensation (every evaluation model of the cell's pool): ``accuracy`` and
``accuracy_std`` over the networks trained on the set, ``networks`` their number, and ``loss`` the
mean matching loss per class and outer step over the iterations since the previous evaluation
(null at iteration 0). The trainable keeps the points in its checkpoint in the seed CLI's
``by_iteration`` shape, so a retried or resumed cell has each point once. Coreset and whole cells
have no iterations, hence no curve.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import parquet

if TYPE_CHECKING:
    from ..sweep.cells import Cell

_CELL = ("sweep", "cell_id", "table", "dataset", "model", "ipc", "eval_mode", "dis_metric", "method")
SCHEMA = pa.schema([
    *(parquet.SCHEMA.field(name) for name in _CELL),
    ("exp", pa.int64()), ("iteration", pa.int64()), ("eval_model", pa.string()),
    ("accuracy", pa.float64()), ("accuracy_std", pa.float64()), ("networks", pa.int64()), ("loss", pa.float64()),
])
KEY = ["cell_id", "exp", "iteration", "eval_model"]


def rows(sweep: str, cell: "Cell", by_iteration: list[dict]) -> list[dict]:
    """Curve rows of a finished cell from the trainable's ``by_iteration`` points."""
    part = parquet.cell_columns(sweep, cell)
    return [{**part, "exp": p["exp"], "iteration": p["iteration"], "eval_model": p["model"],
             "accuracy": statistics.fmean(p["accs"]), "accuracy_std": statistics.pstdev(p["accs"]),
             "networks": len(p["accs"]), "loss": None if math.isnan(p["loss"]) else p["loss"]}
            for p in by_iteration]


def write(curve_rows: list[dict], path: str | Path) -> None:
    """Atomically, as the results."""
    parquet.write_table(pa.Table.from_pylist(curve_rows, schema=SCHEMA), path)


def read(path: str | Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
