"""What ``--resume`` continues from: the run folder's own records, never Ray Tune's experiment state
(``tuner.pkl`` and the experiment snapshot are pickles: a tampered run folder would run code, and a
full disk can leave them cut off).

For each cell, the most advanced of its checkpoints (Tune's last one under ``tune/<cell>/``, or the
one an earlier resume kept under ``checkpoints/<cell>/``), each read with
``torch.load(weights_only=True)``; a checkpoint that does not read whole is passed over:

- every experiment done: the cell's rows, curve, sets and figure are rebuilt from it; no trial;
- part-way: the cell's trial starts from it (``trainable.train_cell``'s ``starts``);
- none, but the cell's rows in ``results.parquet`` are ``ok`` and made with the same budgets (the
  ``tune/`` folder is gone): those rows and its curve are kept as they are; no trial;
- else the cell starts afresh.

The chosen checkpoints are moved to ``checkpoints/`` and ``tune/`` is removed, so the new Tune
experiment starts empty. A cell that failed is run again, from its checkpoint if it has one.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import torch

from condense.errors import ConfigError
from condense.files import write_error
from condense.synthetic import SyntheticSet

from ..results import curves, parquet, run_reader

from . import outputs
from ..sweep.cells import Cell
from ..sweep.config import Sweep
from ..trial.trainable import STATE_FILE, set_file

CHECKPOINTS = "checkpoints"


def prepare(out: Path, tune_dir: Path, cells: list[Cell], sweep: Sweep, name: str
            ) -> tuple[dict[str, outputs.Outcome], dict[str, str]]:
    """The cells already finished (cell id -> its outcome) and the checkpoint each part-way cell
    starts from (cell id -> folder); clears ``tune_dir``."""
    known, starts = {}, {}
    kept = kept_rows(out, sweep)
    for cell in cells:
        best = best_checkpoint(cell.cell_id, tune_dir, out / CHECKPOINTS)
        if best is not None:
            folder, exp = keep(best[0], out / CHECKPOINTS / cell.cell_id), best[1]
            if exp >= sweep.num_exp:
                known[cell.cell_id] = outputs.Outcome()
                outputs.add_finished(known[cell.cell_id], cell, folder, name, out)
            else:
                starts[cell.cell_id] = str(folder)
        elif cell.cell_id in kept:
            rows, curve_rows = kept[cell.cell_id]
            known[cell.cell_id] = outputs.Outcome(rows=rows, curves=curve_rows, ok=[cell.cell_id])
    try:
        if tune_dir.exists():
            shutil.rmtree(tune_dir)
    except OSError as err:
        raise write_error(tune_dir, err) from None
    return known, starts


def best_checkpoint(cell_id: str, tune_dir: Path, kept: Path) -> tuple[Path, int] | None:
    """The most advanced checkpoint of the cell that reads whole, and its finished experiments."""
    candidates = [*sorted((tune_dir / cell_id).glob("checkpoint_*")), kept / cell_id, _moving(kept / cell_id)]
    best = None
    for folder in candidates:
        reached = progress(folder)
        if reached is not None and (best is None or reached > best[1]):
            best = (folder, reached)
    return None if best is None else (best[0], best[1][0])


def progress(folder: Path) -> tuple[int, int] | None:
    """(finished experiments, condensation iteration of the one under way) of a checkpoint; None
    if it is absent or does not read whole (a cut-off or tampered file may fail in any way)."""
    if not (folder / STATE_FILE).is_file():
        return None
    try:
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        for exp in range(state["exp"]):
            SyntheticSet.load(folder / set_file(exp))
        return int(state["exp"]), int((state["condensation"] or {}).get("iteration", 0))
    except Exception:  # noqa: BLE001 - see the docstring: such a checkpoint is passed over
        return None


def keep(folder: Path, target: Path) -> Path:
    """Moves the checkpoint ``folder`` to ``target`` (a rename: no copy on a full disk); a stop part-way
    leaves it under a name ``best_checkpoint`` still looks at."""
    if folder == target:
        return target
    moving = _moving(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if folder != moving:
            shutil.rmtree(moving, ignore_errors=True)
            os.rename(folder, moving)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(moving, target)
    except OSError as err:
        raise write_error(target, err) from None
    return target


def _moving(target: Path) -> Path:
    return target.with_name(f".{target.name}.moving")


def kept_rows(out: Path, sweep: Sweep) -> dict[str, tuple[list[dict], list[dict]]]:
    """The ``ok`` cells of ``results.parquet`` (cell id -> its rows and curve rows), if the file reads
    (``run_reader``: checked as every results tool reads it) and was made with the sweep's budgets;
    else none."""
    path = out / "results.parquet"
    try:
        run = run_reader.read(path, empty_ok=True)
        if run.metadata.get("budgets") != json.loads(json.dumps(sweep.comparable())):
            return {}
        curve_path = out / outputs.CURVES
        found = run_reader.read_curves(curve_path) if os.path.lexists(curve_path) else None
        # in the current schema: rows that will not write again are not kept
        rows = _plain(run.rows, parquet.SCHEMA)
        curve_rows = [] if found is None else _plain(found, curves.SCHEMA)
    except (ConfigError, OSError, ValueError, TypeError, pa.ArrowException):
        return {}
    by_cell, curves_by_cell = defaultdict(list), defaultdict(list)
    for row in rows:
        by_cell[row.get("cell_id")].append(row)
    for row in curve_rows:
        curves_by_cell[row.get("cell_id")].append(row)
    return {cell: (cell_rows, curves_by_cell[cell]) for cell, cell_rows in by_cell.items()
            if all(r.get("status") == "ok" for r in cell_rows)}


def _plain(df, schema: pa.Schema) -> list[dict]:
    return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False).to_pylist()
