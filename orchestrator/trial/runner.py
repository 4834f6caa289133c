"""The one function that runs one experiment of a cell, whatever the experiment: every caller (the
sweep's trials, the seed CLI, ``python -m evaluation``) runs experiments through ``run``.

``KINDS`` maps a cell's ``experiment`` to its runner, each with ``experiment.run``'s arguments and
result: ``None``, the paper's (the cell's method makes a set, fresh networks are trained on it and
tested: ``experiment.run``, which decides by the method's kind); ``nas``, an architecture search's
(an architecture trained on a proxy and tested: ``nas.run``). A new kind of experiment is one
module of this wing and one entry here.
"""
from __future__ import annotations

from ..sweep.cells import NAS, Cell
from ..sweep.config import Sweep
from . import experiment, nas

KINDS = {None: experiment.run, NAS: nas.run}


def run(cell: Cell, sweep: Sweep, ctx: experiment.Context, ledger: experiment.Ledger,
        hooks: experiment.Hooks = experiment.Hooks(), **given) -> experiment.Experiment:
    """Experiment ``ledger.exp`` of the cell (``given``: what ``experiment.run`` takes besides)."""
    return KINDS[cell.experiment](cell, sweep, ctx, ledger, hooks, **given)
