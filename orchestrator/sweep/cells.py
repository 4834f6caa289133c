"""A sweep's cells (one Ray Tune trial each) and the dry run's line for each.

A cell is one entry of a paper table: what is condensed (dataset, model, ipc, metric, method) and
how it is evaluated (eval mode). Its id is stable and readable, e.g. ``MNIST-ConvNetW64-ipc1-W-ours``,
``MNIST-ConvNet-ipc10-S-ours-herding``, and a cell of the DSA strategy axis ends in its strategy,
``CIFAR10-ConvNet-ipc10-S-ours-DSA-crop``; seeds derive from it, so a cell gives the same result
whichever sweep runs it. A ``whole`` cell (Table 1's bound: networks trained on the whole training
set) has no set size: its ipc is 0 and its id says ``all``, e.g. ``MNIST-ConvNet-all-S-ours-whole``,
so a grid's ipcs share one such cell per dataset. An external set's cell (method ``set:<name>``) says
``set-<name>``, e.g. ``MNIST-ConvNet-ipc1-S-ours-set-mine``; its seeds do not depend on the name, so
every external set at one table position is evaluated by the same networks (a paired comparison,
and ``python -m evaluation`` gives the numbers a sweep gives). A continual-learning cell (experiment
``continual``, docs/continual.md) ends in its number of steps, e.g. ``CIFAR100-ConvNet-ipc20-S-ours-DM-cl5``.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

from condense import methods
from condense.data import info
from condense.errors import ConfigError
from condense.methods import DEFAULT, WHOLE
from condense.synthetic import derive_seed
from evaluation.augmentation import eval_augmentation
from evaluation.continual import memory_augmentation
from evaluation.pools import eval_iterations, eval_models
from evaluation.reference import FIRST
from evaluation.train import EvalBudget

from .config import Sweep



@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str
    ipc: int
    eval_mode: str
    metric: str
    method: str
    tables: tuple[str, ...]  # every table this cell appears in (a cell shared by two runs once)
    dsa_strategy: str | None = None  # the grid's dsa_strategies axis; None: the sweep's setting
    # the experiment the cell runs (orchestrator.trial.runner.KINDS); None: the paper's, a set made
    # by the method and evaluated
    experiment: str | None = None
    # an architecture search's cell (experiment NAS): the network it trains and the proxy it trains
    # it on: a method's set (the method's name), EARLY_STOPPING or the whole set (method whole both)
    architecture: str | None = None
    proxy: str | None = None
    steps: int | None = None  # a continual cell's class-incremental steps (experiment CONTINUAL)

    @functools.cached_property
    def record(self) -> methods.Method:
        """The cell's method in the method table (looked up once): what it does is asked of it."""
        return methods.get(self.method)

    @property
    def base_id(self) -> str:
        size = f"ipc{self.ipc}" if self.record.makes_set else "all"
        return f"{self.dataset}-{self.model}-{size}-{self.eval_mode}-{self.metric}"

    @functools.cached_property  # asked of thousands of cells in an architecture search's dry run
    def cell_id(self) -> str:
        name = self.method if self.proxy is None else self.proxy
        base = self.base_id if name == DEFAULT else f"{self.base_id}-{name.replace(':', '-')}"
        # ids name folders and files: no colon; a strategy of DSA's ablation axis ends the id
        base = base if self.dsa_strategy is None else f"{base}-{self.dsa_strategy}"
        base = base if self.architecture is None else f"{base}-{NAS}-{self.architecture}"
        return base if self.steps is None else f"{base}-cl{self.steps}"

    def eval_models(self) -> list[str]:
        if self.architecture is not None:  # a search's cell trains the architecture it ranks
            return [self.architecture]
        return eval_models(self.eval_mode, self.model)

    def exp_seed(self, base_seed: int, exp: int) -> int:
        return derive_seed(base_seed, f"{self.base_id}-set" if self.record.from_files else self.cell_id, exp)

    def to_config(self) -> dict:
        """Plain data for Ray Tune's param_space (and its trial names); without a strategy axis, what it
        was before the axis existed, so a run started then resumes (its sweep.json compares equal)."""
        config = {**dataclasses.asdict(self), "tables": list(self.tables), "cell_id": self.cell_id}
        for name in ("dsa_strategy", "experiment", "architecture", "proxy", "steps"):  # newer than the run folders they must resume
            if config[name] is None:
                del config[name]
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Cell":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in config.items() if k in fields}, "tables": tuple(config["tables"])})


def expand(sweep: Sweep) -> list[Cell]:
    """Every cell of the sweep's grids, in file order; a cell two tables share appears once."""
    cells: dict[str, Cell] = {}
    for g in sweep.grids:
        for cell in (_search(g) if g.architectures else _continual(g) if g.steps else _paper(g)):
            seen = cells.get(cell.cell_id)
            if seen is None:
                cells[cell.cell_id] = cell
            elif g.table not in seen.tables:
                cells[cell.cell_id] = dataclasses.replace(seen, tables=(*seen.tables, g.table))
    return list(cells.values())


def _paper(g):
    for dataset, model, ipc, mode, metric, method, strategy in itertools.product(
            g.datasets, g.models, g.ipcs, g.eval_modes, g.metrics, g.methods, g.dsa_strategies):
        entry = methods.get(method)
        strategy = strategy if entry.uses_dsa else None  # the others take no DSA strategy
        yield Cell(dataset, model, ipc if entry.makes_set else 0, mode, metric, method, (g.table,), strategy)


# Continual learning's cells (trial/continual.py): the paper's cells of the grid's axes, one per number
# of class-incremental steps.
CONTINUAL = "continual"


def _continual(g):
    for cell, steps in itertools.product(list(_paper(g)), g.steps):
        yield dataclasses.replace(cell, experiment=CONTINUAL, steps=steps)


# An architecture search's cells (experiment NAS): one per proxy and architecture, each architecture's
# proxies together (its row of the ranking fills up at once). Early stopping is the whole training set
# for a few epochs: method whole, as the ground truth.
NAS, EARLY_STOPPING = "nas", "early_stopping"


def _search(g):
    for architecture, dataset, model, ipc, mode, metric, proxy, strategy in itertools.product(
            g.architectures, g.datasets, g.models, g.ipcs, g.eval_modes, g.metrics, g.proxies, g.dsa_strategies):
        method = WHOLE if proxy == EARLY_STOPPING else proxy
        entry = methods.get(method)
        yield Cell(dataset, model, ipc if entry.makes_set else 0, mode, metric, method, (g.table,),
                   strategy if entry.uses_dsa else None, NAS, architecture, proxy)


def proxy_cell(cell: Cell) -> Cell:
    """The cell of the paper's experiment whose set a search's cell trains on (its id names the set's
    file, as a sweep's ``synthetic/<cell>-exp<e>.pt``)."""
    return dataclasses.replace(cell, tables=(), experiment=None, architecture=None, proxy=None)


def searches(cells: list[Cell]) -> list[str]:
    """The dry run's line per architecture search (table and dataset): its architectures, proxies and
    trials, and the proxy sets made before it."""
    lines = []
    for (table, dataset), own in _by_search(cells).items():
        archs = list(dict.fromkeys(c.architecture for c in own))
        proxies = list(dict.fromkeys(c.proxy for c in own))
        made = len({proxy_cell(c).cell_id for c in own if c.record.makes_set})
        lines.append(f"architecture search {table} on {dataset}: {len(archs)} architectures x {len(proxies)} "
                     f"proxies ({', '.join(proxies)}) = {len(own)} trials, one per (proxy, architecture); "
                     f"{made} proxy set{'s' * (made != 1)} made before the search")
    return lines


def _by_search(cells: list[Cell]) -> dict[tuple[str, str], list[Cell]]:
    found: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        if c.architecture is not None:
            found.setdefault((c.tables[0], c.dataset), []).append(c)
    return found


def describe(cell: Cell, s: Sweep) -> str:
    """One dry-run line: the cell id, how its sets are made and the budget it will spend."""
    s = s.for_cell(cell)
    models = cell.eval_models()
    n_models = f"{len(models)} model{'s' * (len(models) > 1)}"
    r = s.reference_budget
    images = "all" if r.max_train is None else (f"the first {r.max_train}" if r.subset == FIRST else
                                                f"a per-class subset of {r.max_train}")
    tables = f"  tables {','.join(cell.tables)}"
    if cell.architecture is not None:
        return f"{cell.cell_id}  {_search_line(cell, s, images)}{tables}"
    if cell.experiment == CONTINUAL:
        return _describe_continual(cell, s, images, tables)
    if not cell.record.makes_set:
        return (f"{cell.cell_id}  {s.num_exp} exp: {n_models} x 1 net trained on {images} training images "
                f"for {s.reference_budget.epochs} epochs (method whole){tables}")
    strategy = cell.dsa_strategy or s.dsa_strategy
    values = cell.ipc * info(cell.dataset).num_classes * info(cell.dataset).image_values
    epochs = sorted({s.eval_budget.epochs_for(eval_augmentation(cell.method, cell.dataset, m, strategy), values)
                     for m in models})
    evaluation = f"{n_models} x {s.num_eval} nets x {'-'.join(map(str, epochs))} epochs"
    if s.eval_budget.max_test is not None:
        evaluation += f" (first {s.eval_budget.max_test} test images)"
    method = cell.record
    if method.from_files:
        files = s.set_files(cell.method, cell.dataset, cell.ipc)
        shown = files[0] if len(files) == 1 else f"{files[0]} ... ({len(files)} files or patterns)"
        return f"{cell.cell_id}  {s.num_exp} exp: sets read from {shown}; eval {evaluation}{tables}"
    if not method.learns:
        source = f"{images} training images"
        if references(cell, s):
            source += (f", reference {cell.model} of {s.reference_budget.epochs} epochs"
                       f"{' shared by the exps' if s.shared_reference else ' per exp'}")
        return f"{cell.cell_id}  {s.num_exp} exp: {cell.method} selection ({source}); eval {evaluation}{tables}"
    budget = s.budget_for(cell.method)
    outer, inner = budget.loops(cell.ipc)
    points = "/".join(map(str, eval_iterations(cell.eval_mode, budget.iterations, budget.eval_every)))
    steps = s.num_exp * budget.iterations * outer
    dsa = f", DSA {s.dsa_strategy_for(cell.dataset, cell.dsa_strategy)}" if method.uses_dsa else ""
    return (f"{cell.cell_id}  {s.num_exp} exp x {budget.iterations} it (loops {outer}/{inner}, "
            f"{steps} matching steps{dsa}); eval at it {points}: {evaluation}{tables}")


def search_budget(cell: Cell, sweep: Sweep) -> EvalBudget:
    """How a search's cell trains its architecture: the evaluation budget (the search's epochs), with
    the early-stopping epochs on that proxy."""
    if cell.proxy == EARLY_STOPPING:
        return dataclasses.replace(sweep.eval_budget, epochs=sweep.early_stopping_epochs)
    return sweep.eval_budget


def _search_line(cell: Cell, s: Sweep, pool: str) -> str:
    budget = search_budget(cell, s)
    strategy = eval_augmentation(cell.method, cell.dataset, cell.architecture, cell.dsa_strategy or s.dsa_strategy)
    if cell.record.makes_set:
        d = info(cell.dataset)
        on = f"the {cell.proxy} set of {cell.ipc} per class (made before the search)"
        epochs = budget.epochs_for(strategy, cell.ipc * d.num_classes * d.image_values)
    else:
        on = f"{pool} training images ({'early stopping' if cell.proxy == EARLY_STOPPING else 'the whole set'})"
        epochs = budget.epochs_for(strategy)
        epochs = f"{epochs}{' (fewer by max_train_values)' if budget.max_train_values else ''}"
    test = "" if budget.max_test is None else f", tested on the first {budget.max_test} test images"
    return f"{s.num_exp} exp: {s.num_eval} x {cell.architecture} x {epochs} epochs on {on}{test}"


def _describe_continual(cell: Cell, s: Sweep, images: str, tables: str) -> str:
    """A continual cell's dry-run line: its orders and steps, how each step's set is made, and the
    evaluation of the memory after every step."""
    per_step = info(cell.dataset).num_classes // cell.steps
    method = cell.record
    if method.from_files:
        making = f"sets read from {s.set_files(cell.method, cell.dataset, cell.ipc)[0]} ..."
    elif method.learns:
        budget = s.budget_for(cell.method)
        outer, inner = budget.loops(cell.ipc)
        making = f"{cell.method} {budget.iterations} it (loops {outer}/{inner})"
    else:
        making = f"{cell.method} selection from {images} training images of the step's classes"
        if method.needs_reference:
            making += f", a reference {cell.model} of {s.reference_budget.epochs} epochs per step"
    dsa = s.dsa_strategy_for(cell.dataset, cell.dsa_strategy)
    strategy, values = memory_augmentation(cell.dataset, dsa), per_step * cell.ipc * info(cell.dataset).image_values
    epochs = "-".join(dict.fromkeys(str(s.eval_budget.epochs_for(strategy, t * values)) for t in (1, cell.steps)))
    models = len(cell.eval_models())
    evaluation = f"{models} model{'s' * (models > 1)} x {s.num_eval} nets x {epochs} epochs on the memory (DSA {dsa})"
    if s.eval_budget.max_test is not None:
        evaluation += f", first {s.eval_budget.max_test} test images of the seen classes"
    return (f"{cell.cell_id}  {s.num_exp} class orders x {cell.steps} steps of {per_step} classes: ipc {cell.ipc} "
            f"per step by {making}; after each step {evaluation}{tables}")


def references(cell: Cell, sweep: Sweep) -> set[tuple[str, str, int]]:
    """The reference networks (dataset, model, seed) the cell's experiments load: a coreset's that
    selects with one, one per experiment (or the shared one); the bound's, one per evaluation model
    and experiment (seed + exp); a search's cell, those its proxy set is made with; none for the rest,
    nor for a continual cell (its coresets select by networks of each step's classes, trained in its
    trial)."""
    if cell.architecture is not None:  # the search trains its own networks
        return references(proxy_cell(cell), sweep) if cell.record.makes_set else set()
    record = cell.record
    if cell.experiment == CONTINUAL:
        return set()
    if record.needs_reference:
        return {(cell.dataset, cell.model, sweep.reference_seed(e)) for e in range(sweep.num_exp)}
    if not record.makes_set:
        return {(cell.dataset, m, sweep.whole_seed(e)) for m in cell.eval_models() for e in range(sweep.num_exp)}
    return set()


def loops_problem(method: str, ipc: int, budget) -> str | None:
    """Why ``method`` cannot condense ``ipc`` images per class with ``budget``, or None: a method whose
    budget has the paper's outer/inner loops per ipc takes only the ipcs they are given for."""
    if not methods.get(method).has_loops:
        return None
    try:
        budget.loops(ipc)
    except ConfigError as err:
        return str(err)
    return None
