"""A sweep's cells (one Ray Tune trial each) and the settings all its trials share.

A cell is one entry of a paper table: what is condensed (dataset, model, ipc, metric, method) and
how it is evaluated (eval mode). Its id is stable and readable, e.g. ``MNIST-ConvNetW64-ipc1-W-ours``,
``MNIST-ConvNet-ipc10-S-ours-herding``; seeds derive from it, so a cell gives the same result
whichever sweep runs it. A ``whole`` cell (Table 1's bound: networks trained on the whole training
set) has no set size: its ipc is 0 and its id says ``all``, e.g. ``MNIST-ConvNet-all-S-ours-whole``,
so a grid's ipcs share one such cell per dataset.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from condense import baselines, diffaug
from condense.augment import strategy_for
from condense.methods import CONDENSATION_METHODS, DMBudget
from condense.reference import ReferenceBudget
from condense.synthetic import Budget, derive_seed
from evaluation.pools import eval_iterations, eval_models
from evaluation.protocol import EvalBudget

from .layouts import WHOLE

if TYPE_CHECKING:
    from .spec import Sweep

# How a cell's set is made: condensation (DC, DSA, DM), a coreset of real images, or no set (the bound).
METHODS = (*CONDENSATION_METHODS, *baselines.METHODS, WHOLE)

# What --smoke keeps of any sweep: runs and networks per cell, on top of the smoke budget presets.
SMOKE_NUM_EXP, SMOKE_NUM_EVAL = 1, 2


@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str
    ipc: int
    eval_mode: str
    metric: str
    method: str
    tables: tuple[str, ...]  # every table this cell appears in (a cell shared by two runs once)

    @property
    def cell_id(self) -> str:
        size = "all" if self.method == WHOLE else f"ipc{self.ipc}"
        base = f"{self.dataset}-{self.model}-{size}-{self.eval_mode}-{self.metric}"
        return base if self.method == "DC" else f"{base}-{self.method}"

    def eval_models(self) -> list[str]:
        return eval_models(self.eval_mode, self.model)

    def exp_seed(self, base_seed: int, exp: int) -> int:
        return derive_seed(base_seed, self.cell_id, exp)

    def to_config(self) -> dict:
        """Plain data for Ray Tune's param_space (and its trial names)."""
        return {**dataclasses.asdict(self), "tables": list(self.tables), "cell_id": self.cell_id}

    @classmethod
    def from_config(cls, config: dict) -> "Cell":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in config.items() if k in fields}, "tables": tuple(config["tables"])})


def expand(sweep: "Sweep") -> list[Cell]:
    """Every cell of the sweep's grids, in file order; a cell two tables share appears once."""
    cells: dict[str, Cell] = {}
    for g in sweep.grids:
        for dataset, model, ipc, mode, metric, method in itertools.product(
                g.datasets, g.models, g.ipcs, g.eval_modes, g.metrics, g.methods):
            cell = Cell(dataset, model, 0 if method == WHOLE else ipc, mode, metric, method, (g.table,))
            seen = cells.get(cell.cell_id)
            if seen is None:
                cells[cell.cell_id] = cell
            elif g.table not in seen.tables:
                cells[cell.cell_id] = dataclasses.replace(seen, tables=(*seen.tables, g.table))
    return list(cells.values())


@dataclass(frozen=True)
class Settings:
    """What every trial of a sweep shares (passed to the trainable with tune.with_parameters)."""
    budget: Budget
    eval_budget: EvalBudget
    reference: ReferenceBudget  # the coresets' reference network and the whole-dataset bound
    num_exp: int
    num_eval: int
    seed: int
    data_root: str
    checkpoint_every: int
    code_version: str
    cache_dir: str | None = None  # reference networks; on a cluster a folder every node sees
    dm_budget: DMBudget = DMBudget()  # DM's own budget (20000 iterations, lr_img 1, ...)
    shared_reference: bool = False  # coresets: one reference network for every experiment
    dsa_strategy: str = diffaug.AUTO  # DSA and DM; auto: per dataset (condense.diffaug.resolve)

    def reference_seed(self, exp: int) -> int:
        """The seed of experiment ``exp``'s reference network: its own (the whole bound's network of
        that experiment), or with ``shared_reference`` the sweep's, one network for all."""
        return self.seed if self.shared_reference else self.seed + exp

    def dsa_strategy_for(self, dataset: str) -> str:
        return diffaug.resolve(self.dsa_strategy, dataset)

    def budget_for(self, method: str) -> Budget | DMBudget:
        return self.dm_budget if method == "DM" else self.budget

    def comparable(self) -> dict:
        """The part that decides the numbers: a resumed sweep must not change it."""
        d = dataclasses.asdict(self)
        where = ("data_root", "code_version", "checkpoint_every", "cache_dir")
        return {k: v for k, v in d.items() if k not in where}


def settings_for(sweep: "Sweep", data_root: str, code_version: str, smoke: bool = False) -> Settings:
    budget, eval_budget, num_exp, num_eval = sweep.budget, sweep.eval_budget, sweep.num_exp, sweep.num_eval
    reference, dm_budget = sweep.reference_budget, sweep.dm_budget
    if smoke:
        budget = _cap(budget, Budget(), Budget.smoke())
        dm_budget = _cap(dm_budget, DMBudget(), DMBudget.smoke())
        eval_budget = _cap(eval_budget, EvalBudget(), EvalBudget.smoke())
        reference = _cap(reference, ReferenceBudget(), ReferenceBudget.smoke())
        num_exp, num_eval = min(num_exp, SMOKE_NUM_EXP), min(num_eval, SMOKE_NUM_EVAL)
    return Settings(budget, eval_budget, reference, num_exp, num_eval, sweep.seed, data_root,
                    sweep.checkpoint_every, code_version, dm_budget=dm_budget,
                    shared_reference=sweep.shared_reference, dsa_strategy=sweep.dsa_strategy)


def _cap(budget, default, smoke):
    """Each field the smoke preset shrinks is capped at the preset (None means no limit), so
    --smoke never makes a sweep's budget larger than its file says."""
    changes = {}
    for f in dataclasses.fields(budget):
        preset = getattr(smoke, f.name)
        if preset != getattr(default, f.name):
            mine = getattr(budget, f.name)
            changes[f.name] = preset if mine is None else min(mine, preset)
    return dataclasses.replace(budget, **changes)


def eval_strategy(cell: Cell, eval_model: str, s: Settings) -> str:
    """How the cell's sets are augmented in evaluation: with the cell's DSA strategy for DSA and DM
    sets, as their ``meta["eval_augment"]`` says, else the paper's choice."""
    if cell.method in ("DSA", "DM"):
        return diffaug.eval_strategy(s.dsa_strategy_for(cell.dataset)) or strategy_for(cell.dataset, eval_model)
    return strategy_for(cell.dataset, eval_model)


def describe(cell: Cell, s: Settings) -> str:
    """One dry-run line: the cell id, how its sets are made and the budget it will spend."""
    models = cell.eval_models()
    n_models = f"{len(models)} model{'s' * (len(models) > 1)}"
    images = "all" if s.reference.max_train is None else f"the first {s.reference.max_train}"
    tables = f"  tables {','.join(cell.tables)}"
    if cell.method == WHOLE:
        return (f"{cell.cell_id}  {s.num_exp} exp: {n_models} x 1 net trained on {images} training images "
                f"for {s.reference.epochs} epochs (method whole){tables}")
    epochs = sorted({s.eval_budget.epochs_for(eval_strategy(cell, m, s)) for m in models})
    evaluation = f"{n_models} x {s.num_eval} nets x {'-'.join(map(str, epochs))} epochs"
    if cell.method not in CONDENSATION_METHODS:
        source = f"{images} training images"
        if cell.method in baselines.NEEDS_REFERENCE:
            source += (f", reference {cell.model} of {s.reference.epochs} epochs"
                       f"{' shared by the exps' if s.shared_reference else ' per exp'}")
        return f"{cell.cell_id}  {s.num_exp} exp: {cell.method} selection ({source}); eval {evaluation}{tables}"
    budget = s.budget_for(cell.method)
    outer, inner = budget.loops(cell.ipc)
    points = "/".join(map(str, eval_iterations(cell.eval_mode, budget.iterations, budget.eval_every)))
    steps = s.num_exp * budget.iterations * outer
    dsa = f", DSA {s.dsa_strategy_for(cell.dataset)}" if cell.method in ("DSA", "DM") else ""
    return (f"{cell.cell_id}  {s.num_exp} exp x {budget.iterations} it (loops {outer}/{inner}, "
            f"{steps} matching steps{dsa}); eval at it {points}: {evaluation}{tables}")
