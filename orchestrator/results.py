"""The sweep's results: a long Parquet table, one row per accuracy (DESIGN.md, "results schema").

Only the driver writes it, atomically (temp file + rename), so a reader never sees half a file.
A failed cell keeps one row per evaluation model with ``status="error"`` and the message, so a
table shows it as failed rather than missing; a cell an interrupted run did not finish has
``status="missing"`` rows, so the table shows it as missing rather than leaving it out.

Beyond DESIGN.md's schema: ``train_images``, the training images the cell's method drew on (the
whole set, or a coreset pool / whole-dataset network's first ``max_train`` in reduced runs). A
``whole`` cell (Table 1's bound) has ``ipc`` 0 and the networks' training epochs in ``iterations``;
a coreset cell has ``iterations`` 0.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .cells import Cell

SCHEMA = pa.schema([
    ("sweep", pa.string()), ("cell_id", pa.string()),
    ("table", pa.string()),  # the tables the cell appears in, comma-separated
    ("dataset", pa.string()), ("model", pa.string()), ("ipc", pa.int64()), ("eval_mode", pa.string()),
    ("dis_metric", pa.string()), ("method", pa.string()),
    ("exp", pa.int64()), ("eval_model", pa.string()), ("eval_seed", pa.int64()), ("accuracy", pa.float64()),
    ("condense_seconds", pa.float64()), ("eval_seconds", pa.float64()), ("iterations", pa.int64()),
    ("train_images", pa.int64()),
    ("code_version", pa.string()), ("torch_version", pa.string()), ("device", pa.string()),
    ("status", pa.string()), ("error", pa.string()),
])
COLUMNS = SCHEMA.names
_RECORD_KEYS = ("exp", "eval_model", "eval_seed", "accuracy", "condense_seconds", "eval_seconds",
                "iterations", "train_images", "code_version", "torch_version", "device")


def _cell_part(sweep: str, cell: Cell) -> dict:
    return {"sweep": sweep, "cell_id": cell.cell_id, "table": ",".join(cell.tables), "dataset": cell.dataset,
            "model": cell.model, "ipc": cell.ipc, "eval_mode": cell.eval_mode, "dis_metric": cell.metric,
            "method": cell.method}


def ok_rows(sweep: str, cell: Cell, records: list[dict]) -> list[dict]:
    """Rows of a finished cell from the trainable's records."""
    part = _cell_part(sweep, cell)
    return [{**part, **{k: r[k] for k in _RECORD_KEYS}, "status": "ok", "error": None} for r in records]


def error_rows(sweep: str, cell: Cell, message: str, status: str = "error") -> list[dict]:
    """Rows of a cell without accuracies: one per evaluation model, the reason on one line.

    ``status="error"``: the cell failed after its retries. ``status="missing"``: the run stopped
    (Ctrl-C, a crash) before the cell finished; --resume continues it.
    """
    part = _cell_part(sweep, cell)
    message = " ".join(message.split())
    return [{**part, **dict.fromkeys(_RECORD_KEYS), "eval_model": m, "status": status, "error": message}
            for m in cell.eval_models()]


def write(rows: list[dict], path: str | Path) -> None:
    """Write ``rows`` with the schema, atomically: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)
