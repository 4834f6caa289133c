"""The Ray Tune trainable: one trial runs one cell (``num_exp`` sets, each evaluated).

It is thin on purpose: ``condense`` makes the sets (condensed, or selected by a coreset baseline),
``evaluate`` scores them; a ``whole`` cell instead tests networks trained on the whole training
set. What it adds is what a distributed run needs: torch threads and device from the resources Ray
gave the trial, progress through ``tune.report``, and checkpoints (the condensation's state every
``checkpoint_every`` outer iterations, plus every finished experiment's accuracies and set) so a
retried or resumed trial continues where it stopped. The checkpoint also holds the learning curve
(``by_iteration``, the seed CLI's shape: each evaluation's accuracies and the mean matching loss
since the previous one), so a retried trial recomputes, rather than repeats, the points after it.
Results travel to the driver inside the last checkpoint; the driver alone writes the sweep's
outputs.
"""
from __future__ import annotations

import math
import platform
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from condense.condensation import Condensation, run_condensation
from condense.data import ImageSet, load
from condense import methods
from condense.errors import ConfigError, NonFiniteLossError
from condense.files import write_bytes
from condense.methods import CONDENSATION
from condense.runtime import keep_freed_memory
from condense.synthetic import SyntheticSet
from evaluation.pools import eval_iterations
from evaluation.reference import resolve_cache_dir

from . import experiment
from .cells import Cell
from .config import ROOT_FROM, Sweep

STATE_FILE = "progress.pt"


def set_file(exp: int) -> str:
    return f"set-exp{exp}.pt"


def trial_name(trial) -> str:
    """Trials and their folders are named by cell id (readable, and unique within a sweep)."""
    return trial.config["cell"]["cell_id"]


def train_cell(config: dict, sweep: Sweep, starts: dict[str, tune.Checkpoint] | None = None,
               references: dict[str, ray.ObjectRef] | None = None) -> None:
    """``starts``: cell id -> the checkpoint a resumed run continues the cell from (``resume.py``); a
    retry within the run continues from Tune's newer checkpoint. ``references``: the reference
    networks' cache files, shipped through the object store where nodes share no folder (stages.py)."""
    keep_freed_memory()
    cell = Cell.from_config(config["cell"])
    sweep = sweep.for_cell(cell)
    required = tune.get_context().get_trial_resources().required_resources
    torch.set_num_threads(max(1, int(required.get("CPU", 1))))
    device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
    receive(references or {}, sweep.cache_dir)
    checkpoint = tune.get_checkpoint() or (starts or {}).get(cell.cell_id)
    trial = _Trial(cell, sweep, device, checkpoint)
    # a GPU shared by trials: evaluation plans its memory from this trial's share, not what is free
    trial.memory_share = min(1.0, required["GPU"]) if required.get("GPU", 0) > 0 else None
    try:
        if trial.exp < sweep.num_exp:  # a trial retried after its last checkpoint skips this
            train, test = load(cell.dataset, sweep.data_root, root_from=ROOT_FROM)
            train, test = train.to(device), test.to(device)
            while trial.exp < sweep.num_exp:
                if cell.bound:
                    trial.finish_whole(train, test)
                    continue
                seed = cell.exp_seed(sweep.seed, trial.exp)
                synthetic = make_set(cell, train, test, seed, sweep, trial)
                trial.finish(synthetic, test, seed, experiment.train_images(cell, train, sweep))
    except (NonFiniteLossError, ConfigError) as err:
        # A diverged run diverges again from the same seed, and bad data or a bad setting stays bad:
        # the cell fails now, without Tune's retries.
        trial.report({"done": True, "failed": f"{type(err).__name__}: exp {trial.exp}: {err}"}, checkpoint=False)
        return
    # the last checkpoint (trial.finish's) holds everything; the node shows in the trial's result.json
    trial.report({"done": True, "node_id": ray.get_runtime_context().get_node_id()}, checkpoint=False)


def receive(references: dict[str, ray.ObjectRef], cache_dir: str | None) -> None:
    """Puts the shipped reference networks that this node's cache lacks into it."""
    folder = resolve_cache_dir(cache_dir) / "reference"
    for name, ref in references.items():
        if not (folder / name).is_file():
            write_bytes(folder / name, ray.get(ref))


def make_set(cell: Cell, train, test, seed: int, sweep: Sweep, trial: "_Trial") -> SyntheticSet:
    """The experiment's set, by the method's kind (``experiment``: the same as the seed CLI's)."""
    if methods.get(cell.method).kind == CONDENSATION:
        return _condense(cell, train, test, seed, sweep, trial)
    trial.mark()  # selection time; the reference network comes from the driver's stage (stages.py)
    if cell.external:  # read from the sweep's files (checked before the run)
        synthetic = experiment.external(cell, sweep, trial.exp)
    else:
        synthetic = experiment.select(cell, train, sweep, trial.exp)
    trial.tick()
    return synthetic


def _condense(cell: Cell, train, test, seed: int, sweep: Sweep, trial: "_Trial") -> SyntheticSet:
    # each method with its own budget, initialisation and (DSA, DM) augmentation
    budget = sweep.budget_for(cell.method)
    run = experiment.start(cell, train, sweep, trial.exp)
    resumed_at = None
    if trial.condensation is not None:
        run.load_state_dict(trial.condensation)
        resumed_at = run.iteration  # its evaluation and checkpoint happened before it was saved
    last = budget.iterations
    evals = set(eval_iterations(cell.eval_mode, last, budget.eval_every)) - {last}  # the last one is trial.finish's
    saves = set(range(sweep.checkpoint_every, last, sweep.checkpoint_every))
    if trial.window is None:  # a fresh experiment (or a checkpoint from before the curves were kept)
        trial.window = {"since": run.iteration, "loss": 0.0, "iterations": 0}
    trial.mark()  # condensation time starts here, not at data loading

    def on_progress(iteration: int, state: Condensation) -> None:
        trial.tick()
        if iteration == resumed_at:
            return
        metrics = {"iteration": iteration, "loss": trial.add_loss(state, iteration)}
        if iteration in evals:
            metrics["accuracy"] = trial.intermediate_accuracy(state.synthetic(), test, seed, iteration)
        trial.condensation = state.state_dict() if iteration in saves else None
        trial.report(metrics, checkpoint=iteration in saves)
        trial.mark()

    synthetic = run_condensation(run, on_progress, evals | saves)
    trial.add_loss(run, last)  # the last window's loss, for the final evaluation's curve point
    trial.tick()
    return synthetic


class _Trial:
    """The progress of one trial: what a checkpoint holds and a restored trial starts from."""

    def __init__(self, cell: Cell, sweep: Sweep, device: torch.device, checkpoint):
        self.cell, self.sweep, self.device = cell, sweep, device
        self.exp = 0  # the experiment under way
        self.records: list[dict] = []  # final accuracies of the finished experiments
        self.sets: list[SyntheticSet] = []
        self.condensation: dict | None = None  # state of the experiment under way, when saved mid-way
        self.condense_seconds = 0.0  # time spent condensing the experiment under way
        self.by_iteration: list[dict] = []  # the learning curves: {exp, iteration, model, accs, loss}
        # matching loss since the last evaluation: its sum over iterations and their count (condensation only)
        self.window: dict | None = None
        self.started_at = time.time()  # of the experiment under way (UTC seconds)
        self.device_name = device_name(device)
        self.resumed_from = None
        self.memory_share: float | None = None  # this trial's fraction of a shared GPU
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                state = torch.load(Path(d) / STATE_FILE, weights_only=True)
                self.sets = [SyntheticSet.load(Path(d) / set_file(e)) for e in range(state["exp"])]
            self.exp, self.records = state["exp"], state["records"]
            self.condensation, self.condense_seconds = state["condensation"], state["condense_seconds"]
            # checkpoints of an older version lack these
            self.by_iteration, self.window = state.get("by_iteration", []), state.get("window")
            self.started_at = state.get("started_at", self.started_at)
            self.resumed_from = {"exp": self.exp, "iteration": (self.condensation or {}).get("iteration", 0)}
        self.mark()

    def mark(self) -> None:
        self._since = time.perf_counter()

    def tick(self) -> None:
        """Count the time since the last mark as condensation time."""
        now = time.perf_counter()
        self.condense_seconds += now - self._since
        self._since = now

    def add_loss(self, state: Condensation, iteration: int) -> float:
        """Fold the mean matching loss since the last progress point into the window; returns it
        (NaN at iteration 0, before any step)."""
        w = self.window
        steps, w["since"] = iteration - w["since"], iteration
        if steps <= 0:
            return math.nan
        loss = state.mean_loss()
        w["loss"], w["iterations"] = w["loss"] + loss * steps, w["iterations"] + steps
        return loss

    def _curve_point(self, iteration: int, model: str, accs: list[float]) -> None:
        """Keep an evaluation on the learning curve with the window's mean loss; a new window starts."""
        w = self.window
        loss = w["loss"] / w["iterations"] if w["iterations"] else math.nan
        self.by_iteration.append({"exp": self.exp, "iteration": iteration, "model": model, "accs": list(accs),
                                  "loss": loss})

    def intermediate_accuracy(self, synthetic: SyntheticSet, test, exp_seed: int, iteration: int) -> float:
        """Mode S's evaluation part-way through condensation: reported, and kept on the curve."""
        model = self.cell.eval_models()[0]
        _, accs = experiment.evaluate_set(synthetic, test, self.sweep, exp_seed, model, iteration, self.memory_share)
        self._curve_point(iteration, model, accs)
        self.window.update(loss=0.0, iterations=0)
        return sum(accs) / len(accs)

    def finish(self, synthetic: SyntheticSet, test, exp_seed: int, train_images: int | None) -> None:
        """Evaluate the experiment's set on the cell's pool, keep the accuracies, checkpoint."""
        iterations = int(synthetic.meta.get("iteration", 0))
        first = len(self.records)
        for model in self.cell.eval_models():
            start = time.perf_counter()
            seeds, accs = experiment.evaluate_set(synthetic, test, self.sweep, exp_seed, model, iterations,
                                                  self.memory_share)
            seconds = time.perf_counter() - start
            self.records += [self._record(model, s, a, self.condense_seconds, seconds, iterations, train_images)
                             for s, a in zip(seeds, accs)]
            if self.window is not None:  # a condensed set: its final point on the curve
                self._curve_point(iterations, model, accs)
        self._end_experiment(synthetic.to("cpu"), first, iterations)

    def finish_whole(self, train: ImageSet, test: ImageSet) -> None:
        """One experiment of the whole-dataset bound: per eval model, one network trained on the
        whole training set and tested. Seed ``seed + exp``: experiment 0 is the coresets' reference
        network, from the cache. Its row's ``iterations`` holds the training epochs."""
        seed, epochs = self.sweep.whole_seed(self.exp), self.sweep.reference_budget.epochs
        pool, first = experiment.pool(self.cell, train, self.sweep, self.exp), len(self.records)
        for model in self.cell.eval_models():
            start = time.perf_counter()
            acc = experiment.whole_accuracy(train, test, self.sweep, self.exp, model)
            self.records.append(self._record(model, seed, acc, 0.0, time.perf_counter() - start, epochs, len(pool)))
        self._end_experiment(training_sample(pool, self.cell.method), first, epochs)

    def _record(self, model: str, seed: int, accuracy: float, condense_seconds: float, eval_seconds: float,
                iterations: int, train_images: int | None) -> dict:
        return {"exp": self.exp, "eval_model": model, "eval_seed": seed, "accuracy": accuracy,
                "condense_seconds": condense_seconds, "eval_seconds": eval_seconds, "iterations": iterations,
                "train_images": train_images, "code_version": self.sweep.code_version,
                "torch_version": str(torch.__version__), "device": self.device.type,
                "device_name": self.device_name, "started_at": self.started_at, "finished_at": time.time()}

    def _end_experiment(self, shown: SyntheticSet, first: int, iterations: int) -> None:
        """Keep the experiment's set (a whole cell's: its training sample), move to the next
        experiment and checkpoint, reporting the mean of the records from ``first`` on."""
        self.sets.append(shown)
        self.exp, self.condensation, self.condense_seconds = self.exp + 1, None, 0.0
        self.window, self.started_at = None, time.time()
        new = [r["accuracy"] for r in self.records[first:]]
        self.report({"iteration": iterations, "accuracy": sum(new) / len(new)}, checkpoint=True, exp=self.exp - 1)
        self.mark()

    def report(self, metrics: dict, checkpoint: bool, exp: int | None = None) -> None:
        metrics = {**metrics, "exp": self.exp if exp is None else exp, "num_exp": self.sweep.num_exp}
        if self.resumed_from is not None:
            metrics["resumed_from"] = self.resumed_from
        if not checkpoint:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save({"exp": self.exp, "records": self.records, "condensation": self.condensation,
                        "condense_seconds": self.condense_seconds, "by_iteration": self.by_iteration,
                        "window": self.window, "started_at": self.started_at}, Path(d) / STATE_FILE)
            for e, s in enumerate(self.sets):
                s.save(Path(d) / set_file(e))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


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


def training_sample(train: ImageSet, method: str, per_class: int = 10) -> SyntheticSet:
    """What a whole cell shows in place of a set: the first training images of each class."""
    idx = torch.cat([i[:per_class] for i in train.indices_per_class()])
    return SyntheticSet(train.batch(idx).cpu(), train.labels[idx].cpu(), train.info.name,
                        {"method": method, "sample": f"first {per_class} training images per class"})
