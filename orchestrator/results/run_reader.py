"""The one reader of a run's results, for every tool that reads them (tables, plots, report, the
driver's resume and its results as they come): nothing read from a file is trusted.

:func:`read` checks ``results.parquet`` once: a regular file that Parquet reads; every column of the
schema (``parquet.SCHEMA``) of its type, the key columns present and never null; the names the tools
render known (status, dataset, method, evaluation mode, DSA strategy, tables; models and distances
plain names);
numbers in range (``ok`` rows' accuracies finite percentages in 0..100, counts not negative, ipc at
least 1, seconds finite); and its metadata (``budgets``, ``sweep``, ``versions``) JSON of the
documented shape, a recorded layout's rows and column results columns. Every name that becomes a
file name (a table, a cell id, a layout) passes ``condense.files.safe_name``, so a tool writes
nothing outside the folder its user named. Columns it does not know are left alone; a column of the
schema that an older file lacks reads as nulls (``parquet.read``). :func:`read_curves` does the same
for ``curves.parquet``. Each problem is one ``ConfigError`` line naming the file and the column or
key.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from condense.errors import ConfigError
from condense.files import regular_file, safe_name
from condense.methods import EXTERNAL_PREFIX, METHODS
from condense.methods import get as get_method

from ..sweep.layouts import EVALUATION_TABLE, SHOWABLE, TABLES
from . import curves, parquet

# Never null, and present in every results file since the first schema: they place a row in a table.
KEYS = ("sweep", "cell_id", "table", "dataset", "model", "eval_mode", "method", "eval_model", "status")
REQUIRED = (*KEYS, "ipc", "dis_metric", "exp", "accuracy")
CURVE_REQUIRED = ("cell_id", "exp", "iteration", "eval_model", "accuracy", "loss")
# a model's or a distance's name, as the tools show it (nothing a figure's text would take as markup)
PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
PLAIN_NAME_RULE = "a name of letters, digits and _"


@dataclass
class Run:
    """A checked results file: its rows (``parquet.read``'s shape) and its metadata."""
    path: Path
    rows: pd.DataFrame
    metadata: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The sweep's name as the file records it, else its folder's."""
        return self.metadata.get("sweep", {}).get("name") or self.path.parent.name


def read(path: str | Path, empty_ok: bool = False) -> Run:
    """The checked results at ``path``; ``empty_ok``: a file without rows is no error (the driver's
    own, part-way)."""
    path = Path(path)
    schema = _schema(path, "results", "a sweep writes runs/<sweep>/results.parquet")
    first = "epochs" not in schema.names  # the first schema: table comma-joined (parquet.read upgrades it)
    _check_types(path, schema, parquet.SCHEMA, REQUIRED, {"table": pa.string()} if first else {})
    meta = _metadata(path, schema)
    try:
        df = parquet.read(path)
    except (OSError, ValueError, TypeError, pa.ArrowException) as err:
        raise ConfigError(f"{path}: cannot read results ({_reason(err)})") from None
    if df.empty and not empty_ok:
        raise ConfigError(f"{path}: no rows: nothing to render")
    _check_rows(path, df, tuple(meta.get("sweep", {}).get("layouts", {})))
    return Run(path, df, meta)


def read_curves(path: str | Path) -> pd.DataFrame:
    """The checked learning curves at ``path`` (``curves.parquet``)."""
    path = Path(path)
    schema = _schema(path, "learning curves", "a sweep writes them beside its results.parquet")
    _check_types(path, schema, curves.SCHEMA, CURVE_REQUIRED, {})
    try:
        df = curves.read(path)
    except (OSError, ValueError, TypeError, pa.ArrowException) as err:
        raise ConfigError(f"{path}: cannot read learning curves ({_reason(err)})") from None
    _not_null(path, df, ("cell_id", "exp", "iteration", "eval_model", "accuracy"))
    _names(path, df["cell_id"], "cell_id", "a cell id")
    _known(path, df, "eval_model", _plain_name, PLAIN_NAME_RULE)
    _percentages(path, df, df["accuracy"].notna(), "curve point(s)")
    _numbers(path, df, curves.SCHEMA)
    return df


def _schema(path: Path, what: str, hint: str) -> pa.Schema:
    """The Parquet schema of ``path``, a regular file (a FIFO or device is never opened: it could block)."""
    regular_file(path, hint)
    try:
        return pq.read_schema(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise ConfigError(f"{path}: cannot read {what} ({_reason(err)})") from None


def _family(t: pa.DataType) -> str:
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_boolean(t):
        return "boolean"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _family(t.value_type) in ("string", "null"):
        return "list of strings"
    return str(t)


def _check_types(path: Path, schema: pa.Schema, expected: pa.Schema, required: tuple[str, ...],
                 also: dict[str, pa.DataType]) -> None:
    """Every column of ``expected`` in the file has its type (an integer is a valid float; a column of
    nulls is any type; ``also``: other types a column may have); the ``required`` ones are there."""
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise ConfigError(f"{path}: not a sweep's results: missing columns {', '.join(missing)}")
    for f in expected:
        if f.name not in schema.names:
            continue
        got, want = _family(schema.field(f.name).type), _family(f.type)
        if got not in (want, "null") and not (want == "float" and got == "integer") \
                and not (f.name in also and got == _family(also[f.name])):
            raise ConfigError(f"{path}: column {f.name}: {schema.field(f.name).type} values, expected {want}")


def _metadata(path: Path, schema: pa.Schema) -> dict:
    """The file's ``budgets``, ``sweep`` and ``versions`` metadata, each checked; other keys are not ours."""
    raw = schema.metadata or {}
    meta = {}
    for key in parquet.METADATA_KEYS:
        if key.encode() not in raw:
            continue
        try:
            value = json.loads(raw[key.encode()].decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ConfigError(f"{path}: metadata {key}: not JSON ({_reason(err)})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: metadata {key}: expected a mapping, got {_shown(value)}")
        meta[key] = value
    sweep = meta.get("sweep", {})
    if "name" in sweep and not isinstance(sweep["name"], str):
        raise ConfigError(f"{path}: metadata sweep.name: expected a string, got {_shown(sweep['name'])}")
    if "cells" in sweep and not (isinstance(sweep["cells"], list) and all(isinstance(c, dict) for c in sweep["cells"])):
        raise ConfigError(f"{path}: metadata sweep.cells: expected a list of cells (mappings)")
    layouts = sweep.get("layouts", {})
    if not isinstance(layouts, dict):
        raise ConfigError(f"{path}: metadata sweep.layouts: expected table name -> {{rows, column}}, "
                          f"got {_shown(layouts)}")
    for name, layout in layouts.items():
        safe_name(name, f"{path}: metadata sweep.layouts", "table name")
        where = f"{path}: metadata sweep.layouts.{name}"
        if not isinstance(layout, dict) or set(layout) != {"rows", "column"}:
            raise ConfigError(f"{where}: expected {{rows: [results columns], column: a results column}}, "
                              f"got {_shown(layout)}")
        rows, column = layout["rows"], layout["column"]
        if not isinstance(rows, list) or not rows or len(set(map(str, rows))) != len(rows) \
                or not all(isinstance(r, str) and r in SHOWABLE for r in rows):
            raise ConfigError(f"{where}.rows: expected distinct results columns of {', '.join(SHOWABLE)}, "
                              f"got {_shown(rows)}")
        if not isinstance(column, str) or column not in SHOWABLE or column in rows:
            raise ConfigError(f"{where}.column: expected one results column of {', '.join(SHOWABLE)} not in its "
                              f"rows, got {_shown(column)}")
    return meta


def _check_rows(path: Path, df: pd.DataFrame, own: tuple[str, ...]) -> None:
    from condense.datasets import dataset_names
    from condense.strategies import is_strategy
    from evaluation.pools import EVAL_MODES

    from .parquet import STATUSES

    _not_null(path, df, [k for k in KEYS if k != "table"])
    bad = df["table"].map(lambda t: isinstance(t, str) or not hasattr(t, "__len__") or len(t) == 0)
    if bad.any():
        _first_bad(path, df, bad, "table", "expected a non-empty list of table names")
    tables = df["table"].explode()
    _names(path, tables, "table", "a table name")
    _names(path, df["cell_id"], "cell_id", "a cell id")
    for column, values, allowed in (("status", df["status"], STATUSES),
                                    ("dataset", df["dataset"], tuple(dataset_names())),
                                    ("method", df["method"], (*METHODS, f"{EXTERNAL_PREFIX}<name>")),
                                    ("table", tables, (*TABLES, *own, EVALUATION_TABLE))):
        known = values.map(lambda v: isinstance(v, str) and (v in allowed or (column == "method" and _external(v))))
        bad = values[~known.astype(bool)]
        if len(bad):
            first = bad.iloc[0]
            shown = "null" if not isinstance(first, (str, list)) and pd.isna(first) else repr(first)
            raise ConfigError(f"{path}: unknown {column} {shown} (cell {df['cell_id'][bad.index[0]]}); "
                              f"allowed: {', '.join(allowed)}")
    for column in ("model", "eval_model", "dis_metric"):  # labels only (the registries would import torch)
        _known(path, df, column, _plain_name, PLAIN_NAME_RULE)
    _known(path, df, "eval_mode", lambda v: v in EVAL_MODES, ", ".join(EVAL_MODES))
    _known(path, df, "dsa_strategy", is_strategy, "a DSA strategy (condense.diffaug)")
    ok = df["status"] == "ok"
    _percentages(path, df, ok | df["accuracy"].notna(), "row(s)", ok_rows=True)
    _numbers(path, df, parquet.SCHEMA)


def _not_null(path: Path, df: pd.DataFrame, columns) -> None:
    for column in columns:
        null = df[column].isna()
        if null.any():
            _first_bad(path, df, null, column, "null; every row has one")


def _first_bad(path: Path, df: pd.DataFrame, bad: pd.Series, column: str, what: str) -> None:
    i = bad[bad].index[0]
    cell = df["cell_id"][i] if "cell_id" in df.columns and isinstance(df["cell_id"][i], str) else f"row {i}"
    raise ConfigError(f"{path}: column {column}: {what} ({bad.sum()} row(s); first: cell {cell})")


def _names(path: Path, values: pd.Series, column: str, what: str) -> None:
    for value in values.dropna().unique():
        safe_name(value, f"{path}: column {column}", what)


def _known(path: Path, df: pd.DataFrame, column: str, ok, allowed: str) -> None:
    """Each non-null value of ``column`` passes ``ok`` (asked once per distinct value)."""
    verdict = {v: isinstance(v, str) and bool(ok(v)) for v in df[column].dropna().unique()}
    bad = df[column].map(lambda v: v in verdict and not verdict[v])
    if bad.any():
        _first_bad(path, df, bad, column, f"unknown value {df[column][bad[bad].index[0]]!r}; allowed: {allowed}")


def _percentages(path: Path, df: pd.DataFrame, rows: pd.Series, what: str, ok_rows: bool = False) -> None:
    acc = pd.to_numeric(df["accuracy"][rows], errors="coerce").astype(float)
    bad = acc[~acc.between(0.0, 100.0)]  # null, nan, inf and out of range alike
    if len(bad):
        kind = f"{len(bad)} ok row(s)" if ok_rows else f"{len(bad)} {what}"
        raise ConfigError(f"{path}: {kind} with an accuracy that is not a percentage in 0..100 "
                          f"(first: cell {df['cell_id'][bad.index[0]]}: {bad.iloc[0]})")


def _numbers(path: Path, df: pd.DataFrame, schema: pa.Schema) -> None:
    """Every other number of the schema: counts and seeds not negative (ipc at least 1), floats finite
    and not negative (seconds, losses)."""
    for f in schema:
        if f.name == "accuracy" or f.name not in df.columns:
            continue
        family = _family(f.type)
        if family not in ("integer", "float"):
            continue
        values = pd.to_numeric(df[f.name], errors="coerce").astype(float)
        low = 1 if f.name == "ipc" else 0
        bad = values.notna() & ~((values >= low) & values.map(math.isfinite))
        if bad.any():
            _first_bad(path, df, bad, f.name, f"{values[bad].iloc[0]} is not a finite number >= {low}")


def _plain_name(name: str) -> bool:
    return PLAIN_NAME.fullmatch(name) is not None


def _external(method) -> bool:
    """A well-formed external set's name, ``set:<name>``."""
    if not (isinstance(method, str) and method.startswith(EXTERNAL_PREFIX)):
        return False
    try:
        get_method(method)
    except ConfigError:
        return False
    return True


def _shown(value) -> str:
    import reprlib

    return f"{type(value).__name__} {reprlib.repr(value)}"


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
