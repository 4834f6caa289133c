"""The one function that runs one experiment of a cell, whatever the experiment: every caller (the
sweep's trials, the seed CLI, ``python -m evaluation``) runs experiments through ``run``.

``KINDS`` maps a cell's ``experiment`` to its runner, each with ``experiment.run``'s arguments and
result: ``None``, the paper's (the cell's method makes a set, fresh networks are trained on it and
tested: ``experiment.run``, which decides by the method's kind); ``continual``, class-incremental
learning with a memory made per step (``continual.run``). A new kind of experiment is one module of
this wing and one entry here (and in ``CHECKS``, where its cells read files that the run checks first).
"""
from __future__ import annotations

from ..sweep.cells import CONTINUAL, Cell
from ..sweep.config import Sweep
from . import continual, experiment

KINDS = {None: experiment.run, CONTINUAL: continual.run}
# Before a run starts: each kind's cells of sets made elsewhere have their files, readable and valid.
CHECKS = {None: experiment.check_external, CONTINUAL: continual.check_external}


def run(cell: Cell, sweep: Sweep, ctx: experiment.Context, ledger: experiment.Ledger,
        hooks: experiment.Hooks = experiment.Hooks(), **given) -> experiment.Experiment:
    """Experiment ``ledger.exp`` of the cell (``given``: what ``experiment.run`` takes besides)."""
    return KINDS[cell.experiment](cell, sweep, ctx, ledger, hooks, **given)


def check_external(cells: list[Cell], sweep: Sweep) -> None:
    """Every cell's files of sets made elsewhere, checked by its kind before the run (a ConfigError)."""
    for kind, check in CHECKS.items():
        check([c for c in cells if c.experiment == kind], sweep)
