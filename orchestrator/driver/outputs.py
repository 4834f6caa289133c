"""What the driver makes of a finished Tune run: rows, curves, synthetic sets, figures, tables,
plots and the report.

Every trial's results travel in its last checkpoint (accuracies, learning curve and sets); reading
them from there means a resumed sweep rebuilds exactly the same outputs without recomputing
anything. Tables, plots and the report are drawn from the files written before them, so any of
them can be redrawn whenever the results are rewritten.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from condense.synthetic import SyntheticSet
from condense.visualise import save_grid

from ..results import curves, parquet, plots, report, run_reader, tables
from ..sweep.cells import Cell
from condense.errors import error_line
from ..trial.trainable import STATE_FILE, set_file

CURVES = "curves.parquet"


@dataclass
class Outcome:
    rows: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)  # the finished condensed cells' learning curves
    ok: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # cell id -> error
    unfinished: list[str] = field(default_factory=list)


    def merge(self, other: "Outcome") -> None:
        self.rows += other.rows
        self.curves += other.curves
        self.ok += other.ok
        self.failed.update(other.failed)
        self.unfinished += other.unfinished


def collect(result_grid, cells: list[Cell], sweep: str, out: Path, known: dict[str, Outcome] | None = None) -> Outcome:
    """Rows for every cell (ok or error), and each finished cell's sets and figure written to ``out``;
    ``known``: the outcomes of cells a resumed run found finished (``resume.prepare``)."""
    # a run stopped early (Ctrl-C) lists trials that never started, without a config
    by_id = {r.config["cell"]["cell_id"]: r for r in result_grid if r.config}
    outcome, known = Outcome(), known or {}
    for cell in cells:
        if cell.cell_id in known:
            outcome.merge(known[cell.cell_id])
        else:
            add(outcome, cell, by_id.get(cell.cell_id), sweep, out)
    return outcome


def add(outcome: Outcome, cell: Cell, result, sweep: str, out: Path) -> None:
    """One cell's rows (and, when it finished, its sets and figure) from its Tune result: anything with
    ``error``, ``metrics`` and ``checkpoint`` as a ``ray.tune.Result`` has them, or None."""
    failure = None if result is None else (error_line(result.error) if result.error is not None
                                           else result.metrics.get("failed"))
    if failure:  # raised (after Tune's retries), or ended by the trainable itself (a diverged loss)
        outcome.failed[cell.cell_id] = failure
        outcome.rows += parquet.error_rows(sweep, cell, failure)
    elif result is not None and result.metrics.get("done") and result.checkpoint is not None:
        with result.checkpoint.as_directory() as d:
            add_finished(outcome, cell, Path(d), sweep, out)
    else:  # the run stopped before this cell finished: --resume continues it
        outcome.unfinished.append(cell.cell_id)
        outcome.rows += parquet.error_rows(sweep, cell, "unfinished: rerun with --resume", status="missing")


def add_finished(outcome: Outcome, cell: Cell, checkpoint: Path, sweep: str, out: Path) -> None:
    """A finished cell's rows and curve from its last checkpoint (a folder); its sets and figure
    written to ``out``."""
    state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True)
    sets = [SyntheticSet.load(checkpoint / set_file(e)) for e in range(state["exp"])]
    _save_sets(cell, sets, out)
    outcome.rows += parquet.ok_rows(sweep, cell, state["records"])
    outcome.curves += curves.rows(sweep, cell, state.get("by_iteration", []))
    outcome.ok.append(cell.cell_id)


def _save_sets(cell: Cell, sets: list[SyntheticSet], out: Path) -> None:
    """Each run's set, and a figure of the first. A whole cell has no set: its figure shows a sample
    of the training images it trained on. An architecture search's cell keeps none: its proxy's set
    is kept once, before the search (``proxies/``)."""
    if cell.architecture is not None:
        return
    if not cell.record.makes_set:
        save_grid(sets[0], out / "figures" / f"{cell.cell_id}.png")
        return
    (out / "synthetic").mkdir(parents=True, exist_ok=True)
    for exp, synthetic in enumerate(sets):
        synthetic.save(out / "synthetic" / f"{cell.cell_id}-exp{exp}.pt")
    save_grid(sets[0], out / "figures" / f"{cell.cell_id}.png")  # the first run's set, as the paper shows one


def write(outcome: Outcome, out: Path, final: bool = True) -> list[str]:
    """The results and curves Parquets, then from them the tables and, with ``final``, the plots and
    the report; returns the tables' markdown. Each file is replaced atomically: the run rewrites the
    Parquets and tables (not the plots) each time a cell ends, and a reader never sees half a file."""
    path = out / "results.parquet"
    parquet.write(outcome.rows, path, run_metadata(out, outcome.rows))
    curves.write(outcome.curves, out / CURVES)
    run = run_reader.read(path, empty_ok=True)  # read back as every results tool reads it
    md = tables.write_tables(run.rows, out / "tables")
    if final:
        plots.write_plots(path, run=run)
        report.write_report(out, run)
    return md


def run_metadata(out: Path, rows: list[dict]) -> dict:
    """What the results Parquet says about itself: the budgets and cells recorded in the run's
    sweep.json (a resumed run is refused if they changed) and the versions that made the rows."""
    recorded = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
    sweep = {"name": out.name, "cells": recorded.get("cells", [])}
    if recorded.get("layouts"):
        sweep["layouts"] = recorded["layouts"]
    return {"budgets": recorded.get("budgets", {}), "sweep": sweep, "versions": versions(rows)}


def versions(rows: list[dict]) -> dict:
    """The versions behind ``rows``: the libraries', Python's and the code's (the rows' own)."""
    found = {name: _version(name) for name in ("torch", "ray", "pandas", "pyarrow")}
    found["python"] = platform.python_version()
    found["code"] = sorted({r["code_version"] for r in rows if r.get("code_version")})
    return found


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
