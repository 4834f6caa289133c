"""The one config object: a sweep, from its YAML file (``spec.load``) to every trial.

``Sweep`` holds the grids (which cells) and the settings every trial shares (budgets, runs, seeds,
augmentation), each under the name its sweep file gives it; the driver adds what only it knows
(``for_run``: the data root, the code version, the reference-network cache, ``--smoke``'s caps) and
hands the same object to every trial (under --smoke, scaled to the trial's cell: ``for_cell``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from condense import diffaug
from condense.condensation import Budget, DMBudget
from condense.data import info
from condense import methods
from condense.methods import DEFAULT
from evaluation.reference import ReferenceBudget
from evaluation.train import EvalBudget

# How a sweep's user points it at its data (its missing-data errors say so): the driver has no flag for it.
ROOT_FROM = "the sweep's data_root / DC_DATA"
# What --smoke keeps of any sweep: runs and networks per cell, on top of the smoke budget presets.
SMOKE_NUM_EXP, SMOKE_NUM_EVAL = 1, 2
# ... and a condensation's iterations times its set's values (images x C x H x W) within this, as the
# smoke evaluation's epochs times them (EvalBudget.smoke's max_train_values): a pass costs about as
# much per value at any ipc, so a smoke cell takes minutes on one CPU core whatever its set. MNIST's
# ipc-1 set keeps the presets (20 iterations, 100 epochs); its ipc 10 gets 10 and 10, ipc 50 2 and 2.
SMOKE_SET_VALUES = EvalBudget.smoke().max_train_values


@dataclass(frozen=True)
class Grid:
    """One table's grid: every combination of the axes is a cell."""
    table: str
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    ipcs: tuple[int, ...]
    eval_modes: tuple[str, ...]
    metrics: tuple[str, ...] = ("ours",)
    methods: tuple[str, ...] = (DEFAULT,)
    # DSA's augmentation ablation: one cell per strategy for the methods that use DSA; (None,), the
    # axis left out, is the sweep's dsa_strategy and leaves cell ids as they were
    dsa_strategies: tuple[str | None, ...] = (None,)
    # a table of the sweep's own (layouts.own_layouts): results columns as its rows, and its column
    rows: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    # an architecture search (docs/nas.md): the networks it ranks and the proxies it trains them on
    # (methods' sets, ``early_stopping``, ``whole``); empty in every other grid
    architectures: tuple[str, ...] = ()
    proxies: tuple[str, ...] = ()
    # continual learning (docs/continual.md): the numbers of class-incremental steps, a cell each;
    # empty in every other grid
    steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class Resources:
    """What one trial (one cell) asks Ray for, given explicitly; fractions share a device.
    ``custom``: Ray custom resources (e.g. a node's label) a cell needs."""
    cpu: float = 1
    gpu: float = 0
    custom: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Sweep:
    name: str
    grids: tuple[Grid, ...] = ()
    num_exp: int = 5
    num_eval: int = 20
    seed: int = 0
    budget: Budget = Budget()  # DC and DSA
    dm_budget: DMBudget = DMBudget()  # DM's own (20000 iterations, lr_img 1, ...)
    eval_budget: EvalBudget = EvalBudget()
    reference_budget: ReferenceBudget = ReferenceBudget()  # the coresets' reference network, the whole bound
    resources: Resources | None = None  # None: auto, what the cluster offers (orchestrator/driver/resources.py)
    shared_reference: bool = False  # coresets: one reference network for every experiment (cheap runs)
    dsa_strategy: str = diffaug.AUTO  # DSA and DM: auto (the README's, no flip for digits) or ops
    data_root: str | None = None  # None: $DC_DATA, else ./data; for_run resolves it
    max_failures: int = 2
    checkpoint_every: int = 50
    download: bool = False  # the driver fetches a missing dataset before Ray starts (as --download)
    # external sets: name -> ((<dataset>-ipc<k>, (file per experiment, ...)), ...); spec resolves the
    # paths and expands the globs; the experiment reads them
    sets: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = ()
    # an architecture search's early-stopping proxy: the whole training set for this many epochs
    early_stopping_epochs: int = 10
    # Set by the driver, never by a sweep file:
    code_version: str = "unknown"
    cache_dir: str | None = None  # reference networks; on a cluster a folder every node sees
    smoke: bool = False  # --smoke: budgets capped at the presets, and scaled to each cell's set (for_cell)
    # an architecture search's proxy sets, made before it (orchestrator/trial/proxies.py): file name ->
    # the file's bytes, carried to every trial with the sweep
    proxy_sets: tuple[tuple[str, bytes], ...] = dataclasses.field(default=(), repr=False)

    # The fields that decide the numbers: a resumed sweep must not change them.
    COMPARABLE = ("num_exp", "num_eval", "seed", "budget", "dm_budget", "eval_budget", "reference_budget",
                  "shared_reference", "dsa_strategy")
    # Not a sweep file's keys: the driver's.
    DRIVER_KEYS = ("name", "grids", "code_version", "cache_dir", "smoke", "proxy_sets")

    def for_run(self, data_root: str, code_version: str, smoke: bool = False) -> "Sweep":
        """The sweep as its trials see it: the data root resolved, the code version, and with
        ``smoke`` every budget capped at its smoke preset."""
        run = dataclasses.replace(self, data_root=data_root, code_version=code_version)
        if not smoke:
            return run
        return dataclasses.replace(
            run, budget=_cap(self.budget, Budget(), Budget.smoke()),
            dm_budget=_cap(self.dm_budget, DMBudget(), DMBudget.smoke()),
            eval_budget=_cap(self.eval_budget, EvalBudget(), EvalBudget.smoke()),
            reference_budget=_cap(self.reference_budget, ReferenceBudget(), ReferenceBudget.smoke()),
            num_exp=min(self.num_exp, SMOKE_NUM_EXP), num_eval=min(self.num_eval, SMOKE_NUM_EVAL), smoke=True)

    def for_cell(self, cell) -> "Sweep":
        """The sweep as one cell's trial (a ``cells.Cell``) sees it: a smoke run's condensation budget with its
        iterations scaled to the cell's set (``smoke_for_set``; the evaluation's epochs are, by
        EvalBudget's ``max_train_values``); any other run's, as it is."""
        key = cell.record.budget  # None for a set made elsewhere
        if not self.smoke or not cell.record.makes_set or key is None:  # a whole cell has no set
            return self
        d = info(cell.dataset)
        values = cell.ipc * d.num_classes * d.image_values
        return dataclasses.replace(self, **{key: smoke_for_set(getattr(self, key), values)})

    def reference_seed(self, exp: int) -> int:
        """The seed of experiment ``exp``'s reference network: its own (the whole bound's network of
        that experiment), or with ``shared_reference`` the sweep's, one network for all."""
        return self.seed if self.shared_reference else self.seed + exp

    def whole_seed(self, exp: int) -> int:
        """The seed of experiment ``exp``'s whole-bound networks: seed + exp, so experiment ``e``'s is
        the coresets' reference network of that experiment (one cached network serves both)."""
        return self.seed + exp

    def dsa_strategy_for(self, dataset: str, strategy: str | None = None) -> str:
        """The DSA ops a cell on ``dataset`` uses: its own ``strategy`` (the grid's dsa_strategies
        axis) or else the sweep's, ``auto`` resolved per dataset."""
        return diffaug.resolve(strategy or self.dsa_strategy, dataset)

    def budget_for(self, method: str):
        """The budget the method takes (the method table says which setting holds it)."""
        return getattr(self, methods.get(method).budget)

    def set_files(self, method: str, dataset: str, ipc: int) -> tuple[str, ...]:
        """The files of the external set ``method`` (``set:<name>``) for a dataset and ipc (() if none)."""
        by_key = dict(dict(self.sets).get(method.removeprefix(methods.EXTERNAL_PREFIX), ()))
        return by_key.get(f"{dataset}-ipc{ipc}", ())

    def comparable(self) -> dict:
        """The part that decides the numbers, as plain data (sweep.json, the results' metadata); the
        external sets' files where there are any (a sweep without has the same record as before them)."""
        plain = {k: _plain(getattr(self, k)) for k in self.COMPARABLE}
        if plain["eval_budget"]["max_train_values"] is None:  # recorded as before the field: older runs resume
            del plain["eval_budget"]["max_train_values"]
        if self.smoke:  # its cells' iterations are scaled (for_cell); a run without the key was not
            plain["smoke"] = {"set_values": SMOKE_SET_VALUES}
        if self.sets:
            plain["sets"] = {name: {key: list(files) for key, files in by_key} for name, by_key in self.sets}
        if any(g.architectures for g in self.grids):  # an architecture search's own setting
            plain["early_stopping_epochs"] = self.early_stopping_epochs
        return plain


def smoke_for_set(budget, values: int):
    """A smoke condensation ``budget`` for a set of ``values`` (images x C x H x W): its iterations
    cut so that times ``values`` they stay within SMOKE_SET_VALUES (at least 1); a budget without
    iterations (a coreset's reference network) as it is."""
    iterations = getattr(budget, "iterations", None)
    most = max(1, SMOKE_SET_VALUES // values)
    return budget if iterations is None or iterations <= most else dataclasses.replace(budget, iterations=most)


def _plain(value):
    if isinstance(value, ReferenceBudget):
        return value.record()
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


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
