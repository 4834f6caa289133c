"""The Ray Tune trainable: one trial runs one cell (``num_exp`` experiments, each a set evaluated).

It is thin on purpose: ``experiment.run`` makes and evaluates each experiment's set whatever the
cell's method. What the trial adds is what a distributed run needs: torch threads and device from
the resources Ray gave the trial, progress through ``tune.report``, and checkpoints of the
experiments' ledger (the condensation's state every ``checkpoint_every`` outer iterations, plus every
finished experiment's records and set) so a retried or resumed trial continues where it stopped. The
checkpoint also holds the learning curve (``by_iteration``, the seed CLI's shape: each evaluation's
accuracies and the mean matching loss since the previous one), so a retried trial recomputes, rather
than repeats, the points after it. Results travel to the driver inside the last checkpoint; the
driver alone writes the sweep's outputs.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from condense.data import load
from condense.errors import ConfigError, NonFiniteLossError
from condense.files import write_bytes
from condense.runtime import keep_freed_memory
from condense.synthetic import SyntheticSet
from evaluation.reference import resolve_cache_dir

from . import experiment, runner
from ..sweep.cells import Cell
from ..sweep.config import ROOT_FROM, Sweep

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
    trial = _Trial(sweep, checkpoint)
    try:
        if trial.ledger.exp < sweep.num_exp:  # a trial retried after its last checkpoint skips this
            train, test = load(cell.dataset, sweep.data_root, root_from=ROOT_FROM)
            # a GPU shared by trials: evaluation plans its memory from this trial's share, not what is free
            share = min(1.0, required["GPU"]) if required.get("GPU", 0) > 0 else None
            ctx = experiment.Context(train.to(device), test.to(device), experiment.device_name(device), share)
            while trial.ledger.exp < sweep.num_exp:
                done = runner.run(cell, sweep, ctx, trial.ledger, trial)
                new = [r["accuracy"] for r in done.records]
                trial.report({"iteration": done.iterations, "accuracy": sum(new) / len(new)}, checkpoint=True,
                             exp=trial.ledger.exp - 1)
    except (NonFiniteLossError, ConfigError) as err:
        # A diverged run diverges again from the same seed, and bad data or a bad setting stays bad:
        # the cell fails now, without Tune's retries.
        trial.report({"done": True, "failed": f"{type(err).__name__}: exp {trial.ledger.exp}: {err}"},
                     checkpoint=False)
        return
    # the last checkpoint (the last experiment's) holds everything; the node shows in the trial's result.json
    trial.report({"done": True, "node_id": ray.get_runtime_context().get_node_id()}, checkpoint=False)


def receive(references: dict[str, ray.ObjectRef], cache_dir: str | None) -> None:
    """Puts the shipped reference networks that this node's cache lacks into it."""
    folder = resolve_cache_dir(cache_dir) / "reference"
    for name, ref in references.items():
        if not (folder / name).is_file():
            write_bytes(folder / name, ray.get(ref))


class _Trial(experiment.Hooks):
    """What a trial adds to its experiments: reports to Tune, and checkpoints of the ledger (every
    ``checkpoint_every`` outer iterations of a condensation, and after every experiment)."""

    def __init__(self, sweep: Sweep, checkpoint):
        self.sweep = sweep
        self.ledger = experiment.Ledger()
        self.resumed_from = None
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                state = torch.load(Path(d) / STATE_FILE, weights_only=True)
                sets = [SyntheticSet.load(Path(d) / set_file(e)) for e in range(state["exp"])]
            self.ledger = experiment.Ledger.restore(state, sets)
            self.resumed_from = {"exp": self.ledger.exp,
                                 "iteration": (self.ledger.condensation or {}).get("iteration", 0)}

    def progress_points(self, last: int) -> set[int]:
        return set(range(self.sweep.checkpoint_every, last, self.sweep.checkpoint_every))

    def saves(self, iteration: int) -> bool:
        return iteration > 0 and iteration % self.sweep.checkpoint_every == 0

    def on_progress(self, iteration: int, run, metrics: dict, saved: bool) -> None:
        self.report(metrics, checkpoint=saved)

    def report(self, metrics: dict, checkpoint: bool, exp: int | None = None) -> None:
        metrics = {**metrics, "exp": self.ledger.exp if exp is None else exp, "num_exp": self.sweep.num_exp}
        if self.resumed_from is not None:
            metrics["resumed_from"] = self.resumed_from
        if not checkpoint:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(self.ledger.state(), Path(d) / STATE_FILE)
            for e, s in enumerate(self.ledger.sets):
                s.save(Path(d) / set_file(e))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
