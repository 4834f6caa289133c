"""The paper's experiment of a cell, whatever its method's kind: the one place that decides how a set is made.

``run`` makes the experiment's set and evaluates it, and returns its set, its records (one per
evaluation network: the result rows' values, ``results.parquet.ok_rows`` makes the rows) and its
learning curve. Every caller runs experiments here (through ``runner.run``, which hands a cell of
another kind of experiment to that kind's module), so the same cell and experiment get the same
seeds, budgets, initialisation and augmentation whichever runs them: the sweep's trials
(``trainable``, which adds checkpoints and reports through ``Hooks``), the seed's command line and
``python -m evaluation`` (which add printing):
- the experiment's seed is ``cell.exp_seed(sweep.seed, exp)``; the evaluation networks' derive from
  it, the evaluation model and the iteration (``eval_seeds``);
- a method that learns its set starts with its budget, its default initialisation and the sweep's
  DSA strategy for the dataset (``start``), is evaluated at the eval mode's iterations and can be
  saved and continued (``Ledger.condensation``);
- a coreset selects from the reference budget's pool with the experiment's reference network
  (``select``; a reduced run's pool is drawn with that network's seed, ``pool``);
- the bound makes no set: one network per evaluation model trained on the whole pool and tested
  (``whole_accuracy``); its records' ``iterations`` are those networks' epochs;
- an external set (``set:<name>``) is the experiment's set of the files the sweep names for the
  cell (``external``, checked before the run starts by ``check_external``), or the set a caller hands in.
"""
from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field

import torch

from condense import methods
from condense.data import ImageSet, info
from condense.errors import ConfigError
from condense.methods import BOUND, CONDENSATION, CORESET, EXTERNAL
from condense.condensation import Condensation, run_condensation
from condense.synthetic import SyntheticSet, derive_seed
from evaluation import reference, set_files
from evaluation.pools import eval_iterations
from evaluation.protocol import evaluate

from ..sweep.cells import Cell, references  # noqa: F401 - the command lines ask it here
from ..sweep.config import Sweep


def start(cell: Cell, train: ImageSet, sweep: Sweep, exp: int, init: str | None = None) -> Condensation:
    """A fresh condensation run of the cell's experiment ``exp`` (``init``: the method's own by default)."""
    return methods.start(cell.method, train, cell.model, cell.ipc, sweep.budget_for(cell.method),
                         seed=cell.exp_seed(sweep.seed, exp), metric=cell.metric, init=init,
                         dsa_strategy=sweep.dsa_strategy_for(cell.dataset, cell.dsa_strategy))


def pool(cell: Cell, train: ImageSet, sweep: Sweep, exp: int = 0) -> ImageSet:
    """The training images the cell's method draws on in experiment ``exp``: a coreset's and the
    bound's are those of the experiment's reference network. A reduced run's subset is drawn with
    that network's seed, so a network and the coresets selected by it see the same images."""
    kind = cell.record.kind
    if kind not in (CORESET, BOUND):
        return train
    seed = sweep.whole_seed(exp) if kind == BOUND else sweep.reference_seed(exp)
    return sweep.reference_budget.pool(train, seed)


def train_images(cell: Cell, train: ImageSet, sweep: Sweep) -> int | None:
    """How many training images the cell's method drew on (unknown for a set made elsewhere; the
    same number in every experiment)."""
    return None if cell.record.kind == EXTERNAL else len(pool(cell, train, sweep))


def select(cell: Cell, train: ImageSet, sweep: Sweep, exp: int) -> SyntheticSet:
    """The coreset of the cell's experiment ``exp``, chosen with that experiment's reference network."""
    method = cell.record
    chosen_from = pool(cell, train, sweep, exp)
    guide = None
    if method.needs_reference:
        guide = reference.for_selection(chosen_from, cell.model, sweep.reference_budget, sweep.reference_seed(exp),
                                        sweep.cache_dir)
    synthetic = method.maker()(cell.method, chosen_from, cell.ipc, cell.exp_seed(sweep.seed, exp), guide)
    synthetic.meta.setdefault("model", cell.model)
    return synthetic


def external_sets(cell: Cell, sweep: Sweep) -> list[SyntheticSet]:
    """Every set the sweep's files hold for the external cell, in the order of its list (a glob's
    matches sorted, a res_ file's experiments in turn), each checked against the cell's dataset and ipc."""
    name = cell.method
    files = sweep.set_files(name, cell.dataset, cell.ipc)
    # spec took an existing file literally and expanded the globs that matched: what is not there is missing
    missing = [f for f in files if not os.path.lexists(f)]
    if missing:
        raise ConfigError(f"{name}: {cell.dataset}-ipc{cell.ipc}: no such file: {', '.join(missing)}")
    sets = [s for f in files for s in set_files.read(f, cell.dataset)]
    classes = info(cell.dataset).num_classes
    for s in sets:
        if len(s) != cell.ipc * classes:
            raise ConfigError(f"{s.meta['source']}: {len(s)} images, but {name} is listed under "
                              f"{cell.dataset}-ipc{cell.ipc}: {cell.ipc * classes} ({cell.ipc} per class)")
    return sets


def external(cell: Cell, sweep: Sweep, exp: int) -> SyntheticSet:
    """Experiment ``exp``'s set of an external cell: the ``exp``-th set of its files."""
    synthetic = external_sets(cell, sweep)[exp]
    synthetic.meta.setdefault("model", cell.model)
    return synthetic


def make_set(cell: Cell, sweep: Sweep, train: ImageSet, exp: int) -> SyntheticSet:
    """Experiment ``exp``'s set of the cell's method, made and not evaluated (a set other experiments
    train on, as an architecture search's proxies): learnt to the end of its budget, selected or read."""
    kind = cell.record.kind
    if kind == CONDENSATION:
        return run_condensation(start(cell, train, sweep, exp))
    if kind == CORESET:
        return select(cell, train, sweep, exp)
    if kind == EXTERNAL:
        return external(cell, sweep, exp)
    raise ConfigError(f"method {cell.method} makes no set")


def check_external(cells: list[Cell], sweep: Sweep) -> None:
    """Before the run: every external cell's files are there, readable and valid sets of its dataset
    and ipc, enough of them for ``num_exp`` experiments (the first ``num_exp`` are evaluated)."""
    for cell in cells:
        if cell.record.kind != EXTERNAL:
            continue
        found = len(external_sets(cell, sweep))
        if found < sweep.num_exp:
            raise ConfigError(f"{cell.method}: {cell.dataset}-ipc{cell.ipc}: its files hold {found} set(s), but "
                              f"num_exp is {sweep.num_exp}: give one set per experiment")


def eval_seeds(exp_seed: int, model: str, iteration: int, num_eval: int) -> list[int]:
    return [derive_seed(exp_seed, "eval", model, iteration, i) for i in range(num_eval)]


def evaluate_set(synthetic: SyntheticSet, test: ImageSet, sweep: Sweep, exp_seed: int, model: str, iteration: int,
                 memory_share: float | None = None, strategy: str | None = None) -> tuple[list[int], list[float]]:
    """Train ``sweep.num_eval`` fresh ``model`` networks on the set and test them: (seeds, accuracies).
    ``strategy``: the augmentation (default: the policy's for the set, ``evaluation.augmentation``)."""
    seeds = eval_seeds(exp_seed, model, iteration, sweep.num_eval)
    return seeds, evaluate(synthetic, test, model, seeds, sweep.eval_budget, strategy=strategy,
                           memory_share=memory_share)


def whole_accuracy(train: ImageSet, test: ImageSet, sweep: Sweep, exp: int, model: str) -> float:
    """The whole-dataset bound of experiment ``exp``: one ``model`` trained on the whole pool, tested."""
    return reference.whole(train, test, [sweep.whole_seed(exp)], sweep.reference_budget, model=model,
                           cache_dir=sweep.cache_dir, eval_budget=sweep.eval_budget)[0]


class Hooks:
    """What a caller adds to an experiment; each does nothing here. The trainable checkpoints and
    reports, the command lines print."""

    def progress_points(self, last: int) -> set[int]:
        """Iterations of a condensation (below ``last``) at which ``on_progress`` is called besides
        the evaluations: the trainable's checkpoints, the seed CLI's loss lines."""
        return set()

    def saves(self, iteration: int) -> bool:
        """Whether the condensation's state is kept in the ledger at ``iteration`` (a checkpoint)."""
        return False

    def on_progress(self, iteration: int, run: Condensation, metrics: dict, saved: bool) -> None:
        """A condensation's progress point: ``metrics`` holds the iteration, its mean loss since the
        last point and, at an evaluation, the mean accuracy."""

    def on_evaluated(self, iteration: int, model: str, accs: list[float], seconds: float,
                     loss: float | None = None, strategy: str | None = None) -> None:
        """``num_eval`` networks of ``model`` trained on the set and tested (the bound: one network);
        ``loss``: a condensation's mean matching loss since its last progress point (NaN before any step)."""

    def on_made(self, synthetic: SyntheticSet, seconds: float) -> None:
        """A set was selected or read (not learnt): it is about to be evaluated."""

    def strategy(self, synthetic: SyntheticSet, model: str) -> str | None:
        """The evaluation's augmentation (None: the policy's for the set, ``evaluation.augmentation``)."""
        return None


@dataclass
class Ledger:
    """A cell's experiments so far: what a trial's checkpoint holds and a restored trial continues from."""
    exp: int = 0  # the experiment under way
    records: list[dict] = field(default_factory=list)  # one per evaluation network of the finished experiments
    sets: list[SyntheticSet] = field(default_factory=list)  # each finished experiment's set (a bound's: a sample)
    condensation: dict | None = None  # the state of the experiment under way, when saved mid-way
    condense_seconds: float = 0.0  # time spent making the set of the experiment under way
    by_iteration: list[dict] = field(default_factory=list)  # the learning curves: {exp, iteration, model, accs, loss}
    # matching loss since the last evaluation: its sum over iterations and their count (condensation only)
    window: dict | None = None
    started_at: float = field(default_factory=time.time)  # of the experiment under way (UTC seconds)
    since: float = field(default_factory=time.perf_counter, repr=False)  # the last mark of the set's making time
    final_loss: float = field(default=math.nan, repr=False)  # a condensation's loss since its last progress point

    STATE = ("exp", "records", "condensation", "condense_seconds", "by_iteration", "window", "started_at")

    def state(self) -> dict:
        """Plain data (``torch.load(weights_only=True)`` reads it back); the sets are saved apart."""
        return {k: getattr(self, k) for k in self.STATE}

    @classmethod
    def restore(cls, state: dict, sets: list[SyntheticSet]) -> "Ledger":
        # checkpoints of an older version lack the curves, the window and the start time
        return cls(exp=state["exp"], records=state["records"], sets=sets, condensation=state["condensation"],
                   condense_seconds=state["condense_seconds"], by_iteration=state.get("by_iteration", []),
                   window=state.get("window"), started_at=state.get("started_at", time.time()))


@dataclass
class Experiment:
    """One finished experiment: its set (the bound's: a sample of its training images), its records
    and its points of the learning curve."""
    synthetic: SyntheticSet
    records: list[dict]
    curve: list[dict]
    iterations: int


@dataclass
class Context:
    """Where experiments run: the data on the device, and what the records say of the machine."""
    train: ImageSet | None  # None where no experiment needs it (sets made elsewhere)
    test: ImageSet
    device_name: str
    memory_share: float | None = None  # a trial's fraction of a shared GPU (sizes its evaluation)


def run(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, hooks: Hooks = Hooks(),
        given: SyntheticSet | None = None, init: str | None = None) -> Experiment:
    """Experiment ``ledger.exp`` of the cell, continued from the ledger's saved state where it has
    one; the ledger moves on to the next experiment. ``given``: the set of an external cell handed in
    (``python -m evaluation``) instead of read from the sweep's files; ``init``: a condensation's
    initialisation (the method's own by default)."""
    kind = cell.record.kind
    exp_seed = cell.exp_seed(sweep.seed, ledger.exp)
    first, first_point = len(ledger.records), len(ledger.by_iteration)
    if kind == BOUND:
        return _whole(cell, sweep, ctx, ledger, hooks)
    synthetic = make(cell, sweep, ctx, ledger, hooks, given, init)
    iterations = int(synthetic.meta.get("iteration", 0))
    train_count = None if kind == EXTERNAL else len(pool(cell, ctx.train, sweep))
    making = None if given is not None else ledger.condense_seconds  # a set handed in took no time here
    for model in cell.eval_models():
        began = time.perf_counter()
        strategy = hooks.strategy(synthetic, model)
        seeds, accs = evaluate_set(synthetic, ctx.test, sweep, exp_seed, model, iterations, ctx.memory_share,
                                   strategy)
        seconds = time.perf_counter() - began
        hooks.on_evaluated(iterations, model, accs, seconds, ledger.final_loss if kind == CONDENSATION else None,
                           strategy)
        ledger.records += [_record(cell, sweep, ctx, ledger, model, s, a, making, seconds, iterations, train_count)
                           for s, a in zip(seeds, accs)]
        if ledger.window is not None:  # a condensed set: its final point on the curve
            _curve_point(ledger, iterations, model, accs)
    return _end(ledger, synthetic.to("cpu"), first, first_point, iterations)


def make(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, hooks: Hooks = Hooks(),
         given: SyntheticSet | None = None, init: str | None = None, partway: bool = True) -> SyntheticSet:
    """The set of experiment ``ledger.exp`` by the cell's method (one that makes a set): learnt from
    ``ctx.train`` (continued from the ledger's saved state), selected from it, or read (``given``:
    handed in); the time it took in ``ledger.condense_seconds``. ``partway``: a condensation's
    evaluations part-way (mode S's), on ``ctx.test``; off where that is not the set's test."""
    kind = cell.record.kind
    if kind == CONDENSATION:
        return _condense(cell, sweep, ctx, ledger, hooks, cell.exp_seed(sweep.seed, ledger.exp), init, partway)
    _mark(ledger)
    if kind == EXTERNAL:
        synthetic = given if given is not None else external(cell, sweep, ledger.exp)
    else:
        synthetic = select(cell, ctx.train, sweep, ledger.exp)
    _tick(ledger)
    hooks.on_made(synthetic, ledger.condense_seconds)
    return synthetic


def _condense(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, hooks: Hooks, exp_seed: int,
              init: str | None, partway: bool = True) -> SyntheticSet:
    budget = sweep.budget_for(cell.method)
    condensation = start(cell, ctx.train, sweep, ledger.exp, init=init)
    resumed_at = None
    if ledger.condensation is not None:
        condensation.load_state_dict(ledger.condensation)
        resumed_at = condensation.iteration  # its evaluation and checkpoint happened before it was saved
    last = budget.iterations
    evals = set(eval_iterations(cell.eval_mode, last, budget.eval_every)) - {last}  # the last one is run's
    evals = evals if partway else set()
    if ledger.window is None:  # a fresh experiment (or a checkpoint from before the curves were kept)
        ledger.window = {"since": condensation.iteration, "loss": 0.0, "iterations": 0}
    _mark(ledger)  # condensation time starts here, not at data loading

    def on_progress(iteration: int, state: Condensation) -> None:
        _tick(ledger)
        if iteration == resumed_at:
            return
        metrics = {"iteration": iteration, "loss": _add_loss(ledger, state, iteration)}
        if iteration in evals:  # mode S's evaluation part-way, on the first (only) evaluation model
            model = cell.eval_models()[0]
            began = time.perf_counter()
            synthetic = state.synthetic()
            _, accs = evaluate_set(synthetic, ctx.test, sweep, exp_seed, model, iteration, ctx.memory_share,
                                   hooks.strategy(synthetic, model))
            hooks.on_evaluated(iteration, model, accs, time.perf_counter() - began, metrics["loss"])
            _curve_point(ledger, iteration, model, accs)
            ledger.window.update(loss=0.0, iterations=0)
            metrics["accuracy"] = sum(accs) / len(accs)
        saved = hooks.saves(iteration)
        ledger.condensation = state.state_dict() if saved else None
        hooks.on_progress(iteration, state, metrics, saved)
        _mark(ledger)

    synthetic = run_condensation(condensation, on_progress, evals | hooks.progress_points(last))
    # the last window's loss, for the final evaluation's curve point
    ledger.final_loss = _add_loss(ledger, condensation, last)
    _tick(ledger)
    return synthetic


def _whole(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, hooks: Hooks) -> Experiment:
    """One experiment of the whole-dataset bound: per eval model, one network trained on the whole
    training set and tested. Seed ``seed + exp``: experiment 0 is the coresets' reference network,
    from the cache."""
    seed, epochs = sweep.whole_seed(ledger.exp), sweep.reference_budget.epochs
    chosen, first, first_point = pool(cell, ctx.train, sweep, ledger.exp), len(ledger.records), len(ledger.by_iteration)
    shown = training_sample(chosen, cell.method)
    for model in cell.eval_models():
        began = time.perf_counter()
        acc = whole_accuracy(ctx.train, ctx.test, sweep, ledger.exp, model)
        seconds = time.perf_counter() - began
        hooks.on_evaluated(epochs, model, [acc], seconds)
        ledger.records.append(_record(cell, sweep, ctx, ledger, model, seed, acc, 0.0, seconds, epochs, len(chosen)))
    return _end(ledger, shown, first, first_point, epochs)


def _record(cell: Cell, sweep: Sweep, ctx: Context, ledger: Ledger, model: str, seed: int, accuracy: float,
            condense_seconds: float | None, eval_seconds: float, iterations: int, train_images: int | None) -> dict:
    """One evaluation network's values: the one place a result's record is made (``ok_rows`` adds the
    cell's columns and says which columns ``iterations`` fills: the bound's networks' epochs, a learnt
    set's outer iterations)."""
    return {"exp": ledger.exp, "eval_model": model, "eval_seed": seed, "accuracy": accuracy,
            "condense_seconds": condense_seconds, "eval_seconds": eval_seconds, "iterations": iterations,
            "train_images": train_images, "code_version": sweep.code_version,
            "torch_version": str(torch.__version__), "device": ctx.test.device.type,
            "device_name": ctx.device_name, "started_at": ledger.started_at, "finished_at": time.time()}


def _end(ledger: Ledger, shown: SyntheticSet, first: int, first_point: int, iterations: int) -> Experiment:
    """Keep the experiment's set, move the ledger to the next experiment."""
    done = Experiment(shown, ledger.records[first:], ledger.by_iteration[first_point:], iterations)
    ledger.sets.append(shown)
    ledger.exp, ledger.condensation, ledger.condense_seconds = ledger.exp + 1, None, 0.0
    ledger.window, ledger.started_at = None, time.time()
    return done


def _mark(ledger: Ledger) -> None:
    ledger.since = time.perf_counter()


def _tick(ledger: Ledger) -> None:
    """Count the time since the last mark as the time spent making the set."""
    now = time.perf_counter()
    ledger.condense_seconds += now - ledger.since
    ledger.since = now


def _add_loss(ledger: Ledger, state: Condensation, iteration: int) -> float:
    """Fold the mean matching loss since the last progress point into the window; returns it (NaN at
    iteration 0, before any step)."""
    w = ledger.window
    steps, w["since"] = iteration - w["since"], iteration
    if steps <= 0:
        return math.nan
    loss = state.mean_loss()
    w["loss"], w["iterations"] = w["loss"] + loss * steps, w["iterations"] + steps
    return loss


def _curve_point(ledger: Ledger, iteration: int, model: str, accs: list[float]) -> None:
    """Keep an evaluation on the learning curve with the window's mean loss."""
    w = ledger.window
    loss = w["loss"] / w["iterations"] if w["iterations"] else math.nan
    ledger.by_iteration.append({"exp": ledger.exp, "iteration": iteration, "model": model, "accs": list(accs),
                                "loss": loss})


def training_sample(train: ImageSet, method: str, per_class: int = 10) -> SyntheticSet:
    """What a whole cell shows in place of a set: the first training images of each class."""
    idx = torch.cat([i[:per_class] for i in train.indices_per_class()])
    return SyntheticSet(train.batch(idx).cpu(), train.labels[idx].cpu(), train.info.name,
                        {"method": method, "sample": f"first {per_class} training images per class"})


def device_name(device: torch.device) -> str:
    """The accelerator's model (e.g. "NVIDIA H100 80GB HBM3"), else the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or platform.machine())
