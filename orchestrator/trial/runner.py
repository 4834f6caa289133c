"""The one function that runs one experiment of a cell, whatever the experiment: every caller (the
sweep's trials, the seed CLI, ``python -m evaluation``) runs experiments through ``run``.

``KINDS`` maps a cell's ``experiment`` to its runner, each with ``experiment.run``'s arguments and
result: ``None``, the paper's (the cell's method makes a set, fresh networks are trained on it and
tested: ``experiment.run``, which decides by the method's kind); ``nas``, an architecture search's
(an architecture trained on a proxy and tested: ``nas.run``); ``continual``, class-incremental
learning with a memory made per step (``continual.run``). A new kind of experiment is one module of
this wing and one entry here (and in ``CHECKS``, where its cells read files that the run checks first).
"""
from __future__ import annotations

from ..sweep.cells import CONTINUAL, NAS, Cell
from ..sweep.config import Sweep
from . import continual, experiment, nas

KINDS = {None: experiment.run, NAS: nas.run, CONTINUAL: continual.run}
# Before a run starts, the files of sets made elsewhere, readable and valid: a kind that reads files of
# its own checks them (continual's, a set per step), every other cell the paper's check.
CHECKS = {CONTINUAL: continual.check_external}


def run(cell: Cell, sweep: Sweep, ctx: experiment.Context, ledger: experiment.Ledger,
        hooks: experiment.Hooks = experiment.Hooks(), **given) -> experiment.Experiment:
    """Experiment ``ledger.exp`` of the cell (``given``: what ``experiment.run`` takes besides)."""
    return KINDS[cell.experiment](cell, sweep, ctx, ledger, hooks, **given)


def check_external(cells: list[Cell], sweep: Sweep) -> None:
    """Every cell's files of sets made elsewhere, checked by its kind before the run (a ConfigError)."""
    by_check: dict = {}
    for cell in cells:
        by_check.setdefault(CHECKS.get(cell.experiment, experiment.check_external), []).append(cell)
    for check, own in by_check.items():
        check(own, sweep)
