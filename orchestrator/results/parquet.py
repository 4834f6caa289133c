"""The sweep's results: a long Parquet table, one row per accuracy (docs/design.md, "Results").

Only the driver writes it, atomically (temp file + rename), so a reader never sees half a file.
A failed cell keeps one row per evaluation model with ``status="error"`` and the message, so a
table shows it as failed rather than missing; a cell an interrupted run did not finish has
``status="missing"`` rows, so the table shows it as missing rather than leaving it out.

Beyond the first schema: ``train_images``, the training images the cell's method drew on (the
whole set, or a coreset pool / whole-dataset network's ``max_train`` in reduced runs);
``epochs``, the training epochs of a ``whole`` cell's networks (Table 1's bound); and provenance a
SQL user filters on: ``device_name`` (the GPU or CPU model), ``started_at`` and ``finished_at``
(UTC) of the row's experiment; ``dsa_strategy``, the cell's value of a grid's DSA strategy axis
(null without one; a file from before the axis reads as null); ``architecture`` and ``proxy``, an
architecture search's network and what it trained on (docs/nas.md; its rows' ``epochs`` are the
network's, ``train_images`` the proxy's images; null in other rows and in files from before them);
a continual-learning cell's rows (docs/continual.md), one per step and network: ``steps`` (the
cell's), ``step`` (1-based) and ``classes_seen`` (null in every other row, and in a file from before
them). No sentinels: what does not apply is null (a whole cell's ``ipc`` and ``iterations``, a
coreset's or whole cell's ``dis_metric`` and ``iterations``).

The file is self-describing: its key-value metadata holds ``budgets`` (the settings behind every
row, JSON), ``sweep`` (its name and cells) and ``versions`` (code, torch, ray, ...).

Files written before these changes (``table`` comma-joined, ``ipc`` 0 and the epochs in
``iterations`` for whole cells, ``dis_metric`` ``ours`` for coresets, no provenance columns) are
read into the current shape by :func:`read`.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from condense.datasets import info
from condense.files import replacing
from condense.methods import BOUND, CORESET, names

if TYPE_CHECKING:
    from ..sweep.cells import Cell


_TIME = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    ("sweep", pa.string()), ("cell_id", pa.string()),
    ("table", pa.list_(pa.string())),  # every table the cell appears in
    ("dataset", pa.string()), ("model", pa.string()), ("ipc", pa.int64()), ("eval_mode", pa.string()),
    ("dis_metric", pa.string()), ("method", pa.string()),
    ("exp", pa.int64()), ("eval_model", pa.string()), ("eval_seed", pa.int64()), ("accuracy", pa.float64()),
    ("condense_seconds", pa.float64()), ("eval_seconds", pa.float64()), ("iterations", pa.int64()),
    ("epochs", pa.int64()), ("train_images", pa.int64()),
    ("code_version", pa.string()), ("torch_version", pa.string()), ("device", pa.string()),
    ("device_name", pa.string()), ("started_at", _TIME), ("finished_at", _TIME),
    ("status", pa.string()), ("error", pa.string()),
    ("dsa_strategy", pa.string()),  # the grid's DSA strategy axis; null where the cell has none
    # an architecture search's (docs/nas.md): the network trained and what it trained on (a method,
    # early_stopping or whole); null in every other row
    ("architecture", pa.string()), ("proxy", pa.string()),
    ("steps", pa.int64()), ("step", pa.int64()), ("classes_seen", pa.int64()),  # continual cells only
])
COLUMNS = SCHEMA.names
# What a result row takes from an experiment's record (orchestrator.trial.experiment); records of an
# older checkpoint may lack the provenance keys (null then).
_RECORD_KEYS = ("exp", "eval_model", "eval_seed", "accuracy", "condense_seconds", "eval_seconds",
                "iterations", "train_images", "code_version", "torch_version", "device",
                "device_name", "started_at", "finished_at", "step", "classes_seen")
METADATA_KEYS = ("budgets", "sweep", "versions")


def cell_columns(sweep: str, cell: "Cell") -> dict:
    return {"sweep": sweep, "cell_id": cell.cell_id, "table": list(cell.tables), "dataset": cell.dataset,
            "model": cell.model, "ipc": cell.ipc if cell.record.makes_set else None, "eval_mode": cell.eval_mode,
            "dis_metric": cell.metric if cell.record.learns else None, "method": cell.method,
            "dsa_strategy": cell.dsa_strategy, "architecture": cell.architecture, "proxy": cell.proxy,
            "steps": cell.steps}


def ok_rows(sweep: str, cell: "Cell", records: list[dict]) -> list[dict]:
    """Rows of a finished cell from its experiments' records (a whole cell's ``iterations`` are its
    networks' epochs; a set not learnt has no iterations)."""
    part = cell_columns(sweep, cell)
    rows = []
    for r in records:
        row = {**part, **{k: r.get(k) for k in _RECORD_KEYS}, "epochs": r.get("epochs"), "status": "ok", "error": None}
        for k in ("started_at", "finished_at"):  # records keep seconds since the epoch
            if isinstance(row[k], (int, float)):
                row[k] = dt.datetime.fromtimestamp(row[k], dt.timezone.utc)
        if not cell.record.makes_set:
            row["epochs"], row["iterations"] = row["iterations"], None
        elif not cell.record.learns:
            row["iterations"] = None
        rows.append(row)
    return rows


def error_rows(sweep: str, cell: "Cell", message: str, status: str = "error") -> list[dict]:
    """Rows of a cell without accuracies: one per evaluation model, the reason on one line.

    ``status="error"``: the cell failed after its retries. ``status="missing"``: the run stopped
    (Ctrl-C, a crash) before the cell finished; --resume continues it.
    """
    part = cell_columns(sweep, cell)
    message = " ".join(message.split())
    # a continual cell's: one per step too, so that its table shows each step failed or missing
    steps = [None] if cell.steps is None else range(1, cell.steps + 1)
    per_step = 0 if cell.steps is None else info(cell.dataset).num_classes // cell.steps
    return [{**part, **dict.fromkeys(_RECORD_KEYS), "epochs": None, "eval_model": m, "status": status,
             "error": message, "step": t, "classes_seen": t and t * per_step}
            for t in steps for m in cell.eval_models()]


def write(rows: list[dict], path: str | Path, metadata: dict | None = None,
          schema: pa.Schema = SCHEMA) -> None:
    """Write ``rows`` with the schema, atomically: readers see the old file or the new one.
    ``metadata``: key -> JSON-able value, stored as JSON under the Parquet key-value metadata."""
    table = pa.Table.from_pylist(rows, schema=schema)
    if metadata:
        table = table.replace_schema_metadata({k: json.dumps(v, sort_keys=True) for k, v in metadata.items()})
    write_table(table, path)


def write_table(table: pa.Table, path: str | Path) -> None:
    with replacing(path) as tmp:
        pq.write_table(table, tmp)


def metadata(path: str | Path) -> dict:
    """The file's JSON key-value metadata (``budgets``, ``sweep``, ``versions``); {} for older files."""
    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): json.loads(v) for k, v in raw.items() if k.decode() in METADATA_KEYS}


def read(path: str | Path) -> pd.DataFrame:
    """The results as a DataFrame in the current shape; integer columns are nullable (``Int64``)
    and ``table`` holds lists; ``attrs["layouts"]``: the layouts of the sweep's own tables, where it
    has any. An older file is brought to this shape (see the module docstring)."""
    table = pq.read_table(path)
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    df = _upgrade(df) if "epochs" not in df.columns else df
    for name in COLUMNS:  # a column newer than the file (e.g. the DSA strategy axis): null in its rows
        if name not in df.columns:
            df[name] = _nulls(SCHEMA.field(name).type, df.index)
    df = df[[*COLUMNS, *(c for c in df.columns if c not in COLUMNS)]]
    sweep = json.loads((table.schema.metadata or {}).get(b"sweep", b"{}"))
    if isinstance(sweep, dict) and isinstance(sweep.get("layouts"), dict):
        df.attrs["layouts"] = sweep["layouts"]
    return df


def _nulls(kind: pa.DataType, index: pd.Index) -> pd.Series:
    column = pa.nulls(len(index), kind).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return column.set_axis(index)


def _upgrade(df: pd.DataFrame) -> pd.DataFrame:
    """A results file of the first schema, in the current one."""
    df = df.copy()
    if "table" in df.columns:
        df["table"] = df["table"].map(lambda t: t.split(",") if isinstance(t, str) else t)
    whole = df["method"].isin(names(BOUND)) if "method" in df.columns else pd.Series(False, index=df.index)
    coreset = df["method"].isin(names(CORESET)) if "method" in df.columns else whole
    for name in ("ipc", "iterations"):
        if name in df.columns:
            df[name] = df[name].astype("Int64")
    if "iterations" in df.columns:
        df["epochs"] = df["iterations"].where(whole).astype("Int64")
        df.loc[whole | coreset, "iterations"] = pd.NA
    if "ipc" in df.columns:
        df.loc[whole, "ipc"] = pd.NA
    if "dis_metric" in df.columns:
        df.loc[whole | coreset, "dis_metric"] = None
    return df


STATUSES = ("ok", "error", "missing")  # a row's status: see error_rows
