"""Continual learning with condensed memories (docs/continual.md; the original's ``CL_DM.py``): the
experiment of a cell of table cl, whose grid gives its numbers of steps.

Experiment ``e`` learns the dataset's classes in the order of seed ``sweep.seed + e`` (``CL_DM.py``'s
orders 0..4 at seed 0), ``cell.steps`` steps of equally many classes. At step t the cell's method
makes ``ipc`` images per class from the training images of that step's classes alone: any method of
the table through ``experiment.make`` (the step's images as a dataset of their own,
``condense.continual.step_images``), or, for ``set:<name>``, the step's set of the order's file (the
original's ``{'data': [[images, labels] per step]}``). The memory is the union of the sets of steps
1..t; ``num_eval`` fresh networks per evaluation model, with a head over every class, are trained on
it and tested on the test images of the classes seen so far (``evaluation.continual``): a record per
network, with its ``step`` and ``classes_seen``.

Resumable per step: the steps' sets, and a condensation's state part-way through a step, are kept
in the ledger's ``condensation`` (plain data), which the trial checkpoints once a step's set is made
and again once it is evaluated: a step's set is never made twice, nor an evaluation recorded twice.
"""
from __future__ import annotations

import time

from condense.continual import ClassSteps, memory, step_images, to_global
from condense.data import info
from condense.errors import ConfigError
from condense.synthetic import SyntheticSet
from evaluation import set_files
from evaluation.continual import evaluate_memory

from ..sweep.cells import CONTINUAL, Cell
from ..sweep.config import Sweep
from . import experiment
from .experiment import Context, Experiment, Hooks, Ledger


def order_seed(sweep: Sweep, exp: int) -> int:
    """The class order of experiment ``exp``: seed + exp, so seed 0's five are CL_DM.py's."""
    return sweep.seed + exp


def plan(cell: Cell, sweep: Sweep, exp: int) -> ClassSteps:
    return ClassSteps(info(cell.dataset).num_classes, cell.steps, order_seed(sweep, exp))


def making_index(cell: Cell, exp: int, step: int) -> int:
    """The experiment index a step's set is made as (its seeds, its reference network): each step of
    each order its own."""
    return exp * cell.steps + step - 1


def run(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, hooks: Hooks = Hooks(), **given) -> Experiment:
    """Experiment ``ledger.exp`` of a continual cell, continued from the steps its ledger holds
    (``given``: what the paper's experiment may be handed, which no continual cell takes)."""
    steps = plan(cell, sweep, ledger.exp)
    progress = ledger.condensation or {"iteration": 0, "sets": [], "made_seconds": [], "making": None,
                                       "making_seconds": 0.0}
    ledger.condensation = progress  # "iteration": the steps evaluated; checkpointed with the ledger
    first = len(ledger.records) - sum(r["exp"] == ledger.exp for r in ledger.records)
    read = read_sets(cell, sweep, ledger.exp) if cell.record.from_files else None
    sets = [SyntheticSet(s["images"], s["labels"], cell.dataset, s["meta"]) for s in progress["sets"]]
    for step in range(1, cell.steps + 1):
        if step > len(sets):
            made, seconds = (read[step - 1], None) if read else _make(cell, sweep, ctx, ledger, hooks, steps, step)
            sets.append(made.to("cpu"))
            progress["sets"].append({"images": sets[-1].images, "labels": sets[-1].labels, "meta": sets[-1].meta})
            progress["made_seconds"].append(seconds)
            progress["making"], progress["making_seconds"] = None, 0.0  # the next step's condensation: none yet
            hooks.on_progress(step, None, {"iteration": int(made.meta.get("iteration", 0)), "step": step}, True)
        if step > progress["iteration"]:
            accuracy = _evaluate(cell, sweep, ctx, ledger, hooks, steps, step, sets, progress["made_seconds"][step - 1])
            progress["iteration"] = step
            hooks.on_progress(step, None, {"iteration": int(sets[step - 1].meta.get("iteration", 0)), "step": step,
                                           "accuracy": accuracy}, True)
    return experiment._end(ledger, memory(sets), first, len(ledger.by_iteration), cell.steps)


def _make(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, hooks: Hooks, steps: ClassSteps,
          step: int) -> tuple[SyntheticSet, float]:
    """Step ``step``'s set by the cell's method, from that step's training images alone, with the
    dataset's labels; and the seconds it took."""
    classes = steps.classes(step)
    progress = ledger.condensation
    making = Ledger(exp=making_index(cell, ledger.exp, step), condensation=progress["making"],
                    condense_seconds=progress["making_seconds"])
    here = Context(step_images(ctx.train, classes), ctx.test, ctx.device_name, ctx.memory_share)
    made = experiment.make(cell, sweep, here, making, _StepHooks(hooks, progress, making, step), partway=False)
    made.meta.update(step=step, train_images=experiment.train_images(cell, here.train, sweep))
    return to_global(made, classes), making.condense_seconds


class _StepHooks(Hooks):
    """A step's condensation inside the cell's experiment: its saved state goes into the cell's
    ledger (a stop part-way through a step continues the step), its progress is reported with the step."""

    def __init__(self, outer: Hooks, progress: dict, making: Ledger, step: int):
        self.outer, self.progress, self.making, self.step = outer, progress, making, step

    def progress_points(self, last: int) -> set[int]:
        return self.outer.progress_points(last)

    def saves(self, iteration: int) -> bool:
        return self.outer.saves(iteration)

    def on_progress(self, iteration: int, run, metrics: dict, saved: bool) -> None:
        if saved:
            self.progress["making"], self.progress["making_seconds"] = (self.making.condensation,
                                                                        self.making.condense_seconds)
        self.outer.on_progress(iteration, run, {**metrics, "step": self.step}, saved)


def _evaluate(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, hooks: Hooks, steps: ClassSteps, step: int,
              sets: list[SyntheticSet], made_seconds: float | None) -> float:
    """Train and test networks on the memory after ``step``; a record each; their mean accuracy."""
    seen, mem, made = steps.seen(step), memory(sets[:step]), sets[step - 1]
    exp_seed = cell.exp_seed(sweep.seed, ledger.exp)
    dsa = sweep.dsa_strategy_for(cell.dataset, cell.dsa_strategy)
    iterations, train_images = int(made.meta.get("iteration", 0)), made.meta.get("train_images")
    accs_all = []
    for model in cell.eval_models():
        seeds = experiment.eval_seeds(exp_seed, model, step, sweep.num_eval)
        began = time.perf_counter()
        accs = evaluate_memory(mem, ctx.test, seen, model, seeds, sweep.eval_budget, dsa,
                               memory_share=ctx.memory_share)
        seconds = time.perf_counter() - began
        hooks.on_evaluated(step, model, accs, seconds)
        ledger.records += [{**experiment._record(cell, sweep, ctx, ledger, model, s, a, made_seconds, seconds,
                                                 iterations, train_images), "step": step, "classes_seen": len(seen)}
                           for s, a in zip(seeds, accs)]
        accs_all += accs
    return sum(accs_all) / len(accs_all)


def read_sets(cell: Cell, sweep: Sweep, exp: int) -> list[SyntheticSet]:
    """Experiment ``exp``'s step sets of an external continual cell: its files' ``exp``-th (one file
    per class order, one set per step), each checked to hold ``ipc`` images of each of its step's classes."""
    files = sweep.set_files(cell.method, cell.dataset, cell.ipc)
    if exp >= len(files):
        raise ConfigError(f"{cell.method}: {cell.dataset}-ipc{cell.ipc}: {len(files)} file(s) for {sweep.num_exp} "
                          "class orders: give one file per order, one set per step in each")
    steps = plan(cell, sweep, exp)
    sets = set_files.read(files[exp], cell.dataset, [steps.classes(t) for t in range(1, cell.steps + 1)])
    for s in sets:
        if len(s) != cell.ipc * steps.per_step:
            raise ConfigError(f"{s.meta['source']}: step {s.meta['index'] + 1} holds {len(s)} images; "
                              f"{cell.ipc} per class of its {steps.per_step} classes is {cell.ipc * steps.per_step}")
    return sets


def check_external(cells: list[Cell], sweep: Sweep) -> None:
    """Before the run: every continual cell of a set made elsewhere has a valid file per class order."""
    for cell in cells:
        if cell.experiment == CONTINUAL and cell.record.from_files:
            for exp in range(sweep.num_exp):
                read_sets(cell, sweep, exp)
