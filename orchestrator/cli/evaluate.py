"""Evaluate sets made anywhere with the paper's protocol:

    python -m evaluation SET... --dataset MNIST [--eval_mode S] [--model ConvNet] [--num_eval 20]
                                [--epochs E] [--augment auto|none|dsa] [--output DIR]

Each set trains ``--num_eval`` fresh networks per evaluation model (``--eval_mode``'s pool around
``--model``), tested on the real test set; a line per set and model (mean ± std), then a summary
over the sets, which are the experiments of one cell as a sweep's runs are (a res_ file's several
sets count one each). The cell is a sweep's ``set:<name>`` cell: the same seeds, pools, budget and
augmentation policy, so the numbers are those a sweep gives the same files. Results go to
``DIR/<name>.parquet`` (a sweep's results columns; ``-2``, ``-3``, ... where one is there already):
render them with ``python -m orchestrator.tables``. Formats and checks: ``evaluation/set_files.py``.
Exit status: 0 evaluated, 1 a network's loss turned non-finite, 2 bad input (one line, nothing trained).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from condense import methods, numbers
from condense.data import dataset_names
from condense.download import DOWNLOAD_HELP
from condense.errors import ConfigError, OneLineParser, exit_status, unknown
from evaluation.augmentation import AUGMENT, for_choice
from evaluation.pools import EVAL_MODES
from evaluation.train import EvalBudget

from ..sweep.cells import Cell
from ..sweep.config import Sweep
from ..sweep.layouts import EVALUATION_TABLE
from .common import check_names, mean_std, resolve_device, writable_folder

TABLE = EVALUATION_TABLE  # the table of the Parquet's rows (python -m orchestrator.tables renders it)


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m evaluation", description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("sets", nargs="+", metavar="SET", help="set files: this project's (.pt), the original code's res_*.pt, "
      ".pt or .npz with images and labels")
    a("--dataset", required=True, help=f"the sets' dataset, whose test set scores them: {', '.join(dataset_names())}")
    a("--eval_mode", default="S", help=f"S (--model itself) or a pool: {' '.join(EVAL_MODES[1:])} (default S)")
    a("--model", default="ConvNet", help="the network the sets were made for (mode S trains it) (default ConvNet)")
    a("--num_eval", type=int, default=20, help="networks trained per set and eval model (default 20)")
    a("--epochs", type=int, default=None, help="epochs per network (default 1000 with augmentation, else 300)")
    a("--augment", default="auto", help="auto: as the set's method is evaluated where its file says it (DSA, DM: "
      "DSA augmentation), else DC's rule; none; dsa (default auto)")
    a("--name", default=None, help="the sets' method name in the results, set:<name> (default: the first file's stem)")
    a("--output", default="runs/evaluation", help="folder of the results Parquet (default runs/evaluation)")
    a("--seed", type=int, default=0, help="base seed of the networks, as a sweep's seed (default 0)")
    a("--data_path", default=None, help="data root (default: $DC_DATA, else ./data)")
    a("--download", action="store_true", help=DOWNLOAD_HELP)
    a("--device", default=None, help="torch device (default cuda when available, else cpu)")
    return p.parse_args(argv)


def validate(args: argparse.Namespace) -> str:
    """Bad names and numbers, before any file is read; returns the sets' method, ``set:<name>``."""
    check_names(args.dataset, args.model, args.eval_mode)
    if args.augment not in AUGMENT:
        raise unknown("augment", args.augment, AUGMENT)
    for flag in ("num_eval", "epochs", "seed"):
        value = getattr(args, flag)
        wrong = value is not None and numbers.problem(value, int, ">= 0" if flag == "seed" else "> 0")
        if wrong:
            raise ConfigError(f"--{flag} {wrong}")
    name = args.name if args.name is not None else _stem(args.sets[0])
    method = f"{methods.EXTERNAL_PREFIX}{name}"
    try:
        methods.get(method)
    except ConfigError:
        raise ConfigError(f"--name {name!r}: letters, digits and _.+- (up to 64); give --name") from None
    return method


def _stem(path: str) -> str:
    """A file's stem as a set name: other characters become '_'."""
    return "".join(c if c.isalnum() or c in "_.+-" else "_" for c in Path(path).stem)[:64] or "set"


def output_path(folder: str, name: str) -> Path:
    """``folder/<name>.parquet``, or the first ``<name>-<k>.parquet`` not there: nothing is overwritten."""
    out = writable_folder(folder, "--output")
    path, k = out / f"{name}.parquet", 1
    while path.exists():
        k += 1
        path = out / f"{name}-{k}.parquet"
    return path


def run(args: argparse.Namespace) -> Path:
    from condense.data import info, load
    from evaluation import set_files

    from ..driver.outputs import versions
    from ..driver.run import code_version
    from ..results import parquet
    from ..trial import experiment, runner

    method = validate(args)
    device = resolve_device(args.device)
    sets = []  # (how a line names it, the set): every file read and checked before anything trains
    for path in args.sets:
        found = set_files.read(path, args.dataset)
        sets += [(path if len(found) == 1 else f"{path} (set {i})", s) for i, s in enumerate(found)]
    classes = info(args.dataset).num_classes  # every set has every class (set_files checks it)
    for shown, s in sets:
        if len(s) % classes:
            raise ConfigError(f"{shown}: {len(s)} images are not a whole number per class ({classes} classes)")
    out = output_path(args.output, method[len(methods.EXTERNAL_PREFIX):])
    test = load(args.dataset, args.data_path, download=args.download, offers_download=True)[1].to(device)
    sweep = Sweep(method, num_exp=len(sets), num_eval=args.num_eval, seed=args.seed,
                  eval_budget=EvalBudget(epochs=args.epochs), data_root=args.data_path, code_version=code_version())
    # the sets of one ipc are one cell's experiments, in the order given
    cells: dict[int, Cell] = {}
    for _, s in sets:
        ipc = len(s) // classes
        cells.setdefault(ipc, Cell(args.dataset, args.model, ipc, args.eval_mode, "ours", method, (TABLE,)))
    models = next(iter(cells.values())).eval_models()
    print(f"{method}: {len(sets)} set(s) of {args.dataset}; eval_mode {args.eval_mode} -> {', '.join(models)}; "
          f"{args.num_eval} nets each; device {device}", flush=True)
    ctx = experiment.Context(None, test, experiment.device_name(device))
    ledgers = {cell.cell_id: experiment.Ledger() for cell in cells.values()}  # each cell's experiments
    start, rows = time.time(), []
    sources: dict[str, list[str]] = {}  # cell id -> its sets' files, one per experiment
    accuracies: dict[tuple[str, str], list[float]] = {}
    for shown, s in sets:
        cell = cells[len(s) // classes]
        sources.setdefault(cell.cell_id, []).append(shown)
        done = runner.run(cell, sweep, ctx, ledgers[cell.cell_id], _Printer(args, shown, s, cell, sweep),
                              given=s.to(device))
        for record in done.records:
            accuracies.setdefault((cell.cell_id, record["eval_model"]), []).append(record["accuracy"])
        rows += parquet.ok_rows(method, cell, done.records)
    metadata = {"budgets": sweep.comparable(),
                "sweep": {"name": method, "cells": [c.to_config() for c in cells.values()], "sets": sources},
                "versions": versions(rows)}
    parquet.write(rows, out, metadata)
    for (cell_id, model), accs in accuracies.items():
        mu, sd = mean_std(accs)
        print(f"Summary {cell_id}, evaluated {model}: {len(sources[cell_id])} set(s) x {args.num_eval} nets, "
              f"mean = {mu:.2f} ± {sd:.2f} %  ({time.time() - start:.0f} s)", flush=True)
    print(f"results: {out} ({len(rows)} rows)", flush=True)
    return out


class _Printer:
    """The hooks of ``experiment.run`` a set made elsewhere calls (``experiment.Hooks``'s, imported
    with torch when a run starts): a line per evaluation model, the augmentation ``--augment`` chooses."""

    def __init__(self, args: argparse.Namespace, shown: str, synthetic, cell: Cell, sweep: Sweep):
        self.args, self.shown, self.synthetic, self.cell, self.sweep = args, shown, synthetic, cell, sweep

    def strategy(self, synthetic, model: str) -> str:
        return for_choice(self.args.augment, synthetic.meta, self.args.dataset, model)

    def on_evaluated(self, iteration: int, model: str, accs: list[float], seconds: float,
                     loss: float | None = None, strategy: str | None = None) -> None:
        mu, sd = mean_std(accs)
        epochs = self.sweep.eval_budget.epochs_for(strategy, self.synthetic.images.numel())
        print(f"{self.shown}  ipc {self.cell.ipc}  {model}: {mu:.2f} ± {sd:.2f} % ({len(accs)} nets, augment "
              f"{strategy}, {epochs} epochs, {seconds:.1f} s)", flush=True)

    def on_made(self, synthetic, seconds: float) -> None:
        pass


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("condense").setLevel(logging.WARNING)
    return exit_status(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
