"""The seed's single-cell command line, with the original flag names:

    python -m condense --dataset MNIST --model ConvNet --ipc 1 --eval_mode S

Makes ``--num_exp`` sets (condensed with ``--method DC``, ``DSA`` or ``DM``, selected real images
with a coreset method), evaluates each on the eval pool (``--num_eval`` fresh networks per model)
and writes the sets, the accuracies (JSON) and image grids to ``--save_path``. ``--method whole``
instead trains and tests one network per experiment on the whole training set (the bound of Table 1).
The flags become one cell and a sweep config (``config.Sweep``), and its sets are made and evaluated
as a sweep's trial makes them (``experiment``): the same cell gets the same seeds either way.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

from condense import diffaug, methods, networks, numbers
from condense.condensation import INITS, Budget, DMBudget
from condense.data import ImageSet, check, dataset_names, info, load
from condense.download import DOWNLOAD_HELP
from condense.errors import ConfigError, OneLineParser, exit_status, unknown
from condense.files import write_text
from condense.matching import METRICS
from condense.methods import METHODS
from condense.precision import PRECISIONS, check_precision
from condense.runtime import keep_freed_memory
from condense.visualise import save_grid
from evaluation.pools import POOLS
from evaluation.reference import STRATIFIED, SUBSETS, ReferenceBudget, resolve_cache_dir
from evaluation.train import EvalBudget

from ..sweep.cells import Cell, loops_problem
from ..sweep.config import Sweep, smoke_for_set
from ..trial import experiment, runner
from .common import check_names, mean_std, resolve_device, writable_folder


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m condense", description=__doc__.split("\n\n")[0])
    a = p.add_argument
    kinds = "; ".join(f"{kind}: {', '.join(methods.names(kind))}" for kind in methods.KINDS)
    pools = "; ".join(f"{mode}: {' '.join(models)}" for mode, models in POOLS.items())
    a("--method", default=methods.DEFAULT, help=f"how the set is made, from the method table (--list-methods): {kinds}; "
      "a bound makes no set: one network per experiment trained on the whole training set (--ipc and --num_eval "
      f"do not apply) (default {methods.DEFAULT})")
    a("--dataset", default="CIFAR10", help=f"one of {', '.join(dataset_names())} (default CIFAR10, as the seed)")
    a("--model", default="ConvNet", help="network to condense with (see --list-models)")
    a("--ipc", type=int, default=1, help="images per class (default 1)")
    a("--eval_mode", default="S", help="S (the model itself, a BN model without its BN) or SS (the model itself, BN kept), "
      "evaluated at iteration 0, half and last (DM every 2000 and last); or a pool, evaluated at the last iteration: "
      f"{pools} (default S)")
    a("--num_exp", type=int, default=None, help="condensation runs (default 5; 1 with --smoke)")
    a("--num_eval", type=int, default=None, help="networks trained per eval model and run (default 20; 2 with --smoke)")
    a("--epoch_eval_train", type=int, default=None,
      help="epochs to train each eval network (default 1000 with augmentation, else 300; with --smoke 100, "
      "fewer for a set holding more values than MNIST's at ipc 1: 10 at ipc 10)")
    a("--Iteration", type=int, default=None,
      help="outer iterations (default 1000, DM 20000; with --smoke 20, DM 50, fewer for a set holding more values "
      "than MNIST's at ipc 1: 10 at ipc 10)")
    a("--lr_img", type=float, default=None, help="image learning rate (default 0.1, 0.01 for MLP; DM 1)")
    a("--lr_net", type=float, default=0.01, help="network learning rate (default 0.01)")
    a("--batch_real", type=int, default=None, help="real images per class per step (default 256; 64 with --smoke)")
    a("--batch_train", type=int, default=256, help="batch size when training networks (default 256)")
    a("--init", default=None, help=f"synthetic image initialisation: {' | '.join(INITS)} "
      "(default noise for DC, real for DSA and DM)")
    a("--dsa_strategy", default=None,
      help=f"DSA and DM: the differentiable siamese augmentation's ops joined by '_', from {', '.join(diffaug.OPS)}, "
      f"or none; auto: the seed README's table setting, {diffaug.NO_FLIP_STRATEGY} for "
      f"{' and '.join(diffaug.NO_FLIP_DATASETS)}, else {diffaug.DEFAULT_STRATEGY} (default {diffaug.DEFAULT_STRATEGY}, "
      "as main.py)")
    a("--dis_metric", default="ours", help=f"gradient distance: {' | '.join(METRICS)} (default ours)")
    a("--data_path", default=None, help="data root (default: $DC_DATA, else ./data)")
    a("--download", action="store_true", help=DOWNLOAD_HELP)
    a("--save_path", default="result", help="where sets, accuracies and image grids go (default result)")
    a("--device", default=None, help="torch device (default cuda when available, else cpu)")
    a("--seed", type=int, default=0, help="base seed; runs and eval networks derive theirs from it (default 0)")
    a("--epoch_reference", type=int, default=None,
      help="coresets and whole: epochs of the reference network trained on the whole training set, whose "
      "features herding/kcenter use, whose run counts forgetting, and which is the whole bound (default 50; 5 with --smoke)")
    a("--max_train", type=int, default=None,
      help="coresets and whole: use only N training images (default all; 1000 with --smoke), chosen as "
      "--max_train_subset says")
    a("--max_train_subset", default=None,
      help=f"which N: {' | '.join(SUBSETS)} (default {STRATIFIED}: an equal share of every class, drawn with the "
      "reference network's seed; first: the first N, as before)")
    a("--cache_dir", default=None,
      help="where reference networks are cached (default $DC_CACHE, else $XDG_CACHE_HOME/condense or ~/.cache/condense)")
    a("--precision", default="default", help=f"arithmetic of the networks' passes: {' | '.join(PRECISIONS)}; "
      "tf32 and bf16 act on CUDA only, a CPU computes float32 whatever the choice (default: torch's own)")
    a("--smoke", action="store_true", help="seconds-long budgets for a quick end-to-end check")
    a("--list-models", action="store_true", help="print every registered network name and exit")
    a("--list-methods", action="store_true", help="print the method table (kind, budget, DSA, reference, init) and exit")
    return p.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    """Reject bad names and numbers before any data is loaded."""
    method = methods.get(args.method)
    if method.from_files:
        raise ConfigError(f"--method {args.method}: a set made elsewhere is evaluated by `python -m evaluation "
                          "SET --dataset D`, or named in a sweep's sets")
    check_names(args.dataset, args.model, args.eval_mode)
    if args.dis_metric not in METRICS:
        raise unknown("dis_metric", args.dis_metric, METRICS)
    if args.init is not None and args.init not in INITS:
        raise unknown("init", args.init, INITS)
    check_precision(args.precision)
    if args.max_train_subset is not None and args.max_train_subset not in SUBSETS:
        raise unknown("--max_train_subset", args.max_train_subset, SUBSETS)
    if not method.draws_from_pool:  # these shape the reference network, which it has none of
        shaping = ("epoch_reference", "max_train", "max_train_subset")
        given = [f"--{n}" for n in shaping if getattr(args, n) is not None]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise ConfigError(f"{' and '.join(given)} {verb} to the coreset methods and whole, "
                              f"not to --method {args.method}")
    if args.dsa_strategy is not None:
        if not method.uses_dsa:
            users = " and ".join(n for n, m in METHODS.items() if m.uses_dsa)
            raise ConfigError(f"--dsa_strategy applies to --method {users}, not to --method {args.method}")
        diffaug.resolve(args.dsa_strategy, args.dataset)
    # Every number flag: floats (learning rates) finite and > 0, ints within int64 and >= 1, but these.
    for name, value in vars(args).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            wrong = numbers.problem(value, type(value), ">= 0" if name in _MAY_BE_ZERO else "> 0")
            if wrong:
                raise ConfigError(f"--{name} {wrong}")
    problem = loops_problem(args.method, args.ipc, Budget())  # DM has no inner loop: any ipc
    if problem:
        raise ConfigError(f"--ipc {args.ipc}: {problem}; pick one of those, or a coreset --method")


_MAY_BE_ZERO = {"Iteration", "seed"}


def sweep_for(args: argparse.Namespace) -> Sweep:
    """The flags as a sweep config: the method's budget with the flags that set it, the paper's
    evaluation (or the smoke presets), and main.py's DSA strategy unless --dsa_strategy says otherwise."""
    if args.smoke:  # the presets, iterations scaled to the set as a smoke sweep's cells get them; flags below win
        d = info(args.dataset)
        values = args.ipc * d.num_classes * d.image_values
        budget, dm_budget, eval_budget = (smoke_for_set(Budget.smoke(), values), smoke_for_set(DMBudget.smoke(), values),
                                          EvalBudget.smoke())
    else:
        budget, dm_budget, eval_budget = Budget(), DMBudget(), EvalBudget()
    given = {"iterations": args.Iteration, "batch_real": args.batch_real, "lr_img": args.lr_img}
    given = {k: v for k, v in given.items() if v is not None}
    method = METHODS[args.method]
    if method.trains_networks:  # the network lr, batch and precision flags set its budget too
        given.update(lr_net=args.lr_net, batch_train=args.batch_train, precision=args.precision)
    budgets = {"budget": budget, "dm_budget": dm_budget}
    if method.budget in budgets:  # the flags set the method's own budget
        budgets[method.budget] = dataclasses.replace(budgets[method.budget], **given)
    budget, dm_budget = budgets["budget"], budgets["dm_budget"]
    eval_budget = dataclasses.replace(eval_budget, lr=args.lr_net, batch_train=args.batch_train,
                                      precision=args.precision)
    if args.epoch_eval_train is not None:
        eval_budget = dataclasses.replace(eval_budget, epochs=args.epoch_eval_train, max_train_values=None)  # as asked
    # the reference network's budget (coresets and whole): the evaluation trainer's lr and batch
    reference = dataclasses.replace(ReferenceBudget.smoke() if args.smoke else ReferenceBudget(),
                                    lr=args.lr_net, batch_train=args.batch_train)
    if args.epoch_reference is not None:
        reference = dataclasses.replace(reference, epochs=args.epoch_reference)
    if args.max_train is not None:
        reference = dataclasses.replace(reference, max_train=args.max_train)
    if args.max_train_subset is not None:
        reference = dataclasses.replace(reference, subset=args.max_train_subset)
    num_exp = args.num_exp if args.num_exp is not None else (1 if args.smoke else 5)
    num_eval = args.num_eval if args.num_eval is not None else (2 if args.smoke else 20)
    return Sweep("cli", num_exp=num_exp, num_eval=num_eval, seed=args.seed, budget=budget, dm_budget=dm_budget,
                 eval_budget=eval_budget, reference_budget=reference,
                 dsa_strategy=args.dsa_strategy or diffaug.DEFAULT_STRATEGY, data_root=args.data_path,
                 cache_dir=args.cache_dir)


@dataclasses.dataclass
class Run:
    """What every method's runner needs: the flags, the cell and sweep they make, the data on the device."""
    args: argparse.Namespace
    cell: Cell
    sweep: Sweep
    train: ImageSet
    test: ImageSet
    out: Path
    start: float = dataclasses.field(default_factory=time.time)

    @property
    def models(self) -> list[str]:
        return self.cell.eval_models()

    def header(self, tag: str, what: str) -> None:
        s = self.sweep
        nets = f" x {s.num_eval} nets" if self.cell.record.makes_set else ""
        print(f"{tag}: eval_mode {self.cell.eval_mode} -> {', '.join(self.models)}; {s.num_exp} exp{nets}; "
              f"{what}; device {self.test.device}", flush=True)


def run(args: argparse.Namespace) -> dict:
    validate(args)
    device = resolve_device(args.device)
    sweep = sweep_for(args)
    out = writable_folder(args.save_path, "--save_path")
    method = METHODS[args.method]
    cell = Cell(args.dataset, args.model, args.ipc if method.makes_set else 0, args.eval_mode, args.dis_metric,
                args.method, ())
    if experiment.references(cell, sweep):
        writable_folder(args.cache_dir or str(resolve_cache_dir()), "--cache_dir")
    train, test = load(args.dataset, args.data_path, download=args.download, offers_download=True)
    how = f"--init {args.init or method.default_init} starts from" if method.learns else \
        f"--method {args.method} selects"
    check(args.dataset, args.data_path, method.real_images(args.ipc, args.init), f"per class that {how} at --ipc {args.ipc}")
    r = Run(args, cell, sweep, train.to(device), test.to(device), out)
    tag, what, budgets, summary = _wording(r)
    r.header(tag, what)
    results: dict = {"args": vars(args), **budgets, "eval_budget": dataclasses.asdict(sweep.eval_budget),
                     "accuracies": {m: [] for m in r.models}}
    if method.learns:
        results["by_iteration"] = []
    ledger = experiment.Ledger()
    ctx = experiment.Context(r.train, r.test, experiment.device_name(device))
    for exp in range(sweep.num_exp):
        done = runner.run(cell, sweep, ctx, ledger, _Printer(r, exp), init=args.init)
        for record in done.records:
            results["accuracies"][record["eval_model"]].append(record["accuracy"])
        if method.learns:
            results["by_iteration"] += [{k: p[k] for k in ("exp", "iteration", "model", "accs")} for p in done.curve]
        if "indices" in done.synthetic.meta:  # a selection's: which training images it chose
            results.setdefault("indices", []).append(done.synthetic.meta["indices"])
        if method.makes_set:
            done.synthetic.save(r.out / f"syn_{tag}_exp{exp}.pt")
            save_grid(done.synthetic, r.out / f"vis_{tag}_exp{exp}.png")
    return finish(r, tag, results, summary)


def _wording(r: Run) -> tuple[str, str, dict, str]:
    """How the cell's lines and file names say what it does: its tag, the header's words, the
    budgets its JSON records and the summary's words."""
    args, cell, sweep, method = r.args, r.cell, r.sweep, r.cell.record
    tag = f"{args.method}_{args.dataset}_{args.model}_{args.ipc}ipc"
    reference = {"reference_budget": dataclasses.asdict(sweep.reference_budget)}
    if method.learns:
        budget = sweep.budget_for(cell.method)
        init = args.init or method.default_init
        how = f"init {init}" + (f", DSA {sweep.dsa_strategy_for(cell.dataset)}" if method.uses_dsa else "")
        return (tag, f"{budget.iterations} iterations; {how}", {"budget": dataclasses.asdict(budget)},
                f"trained {args.model}")
    if not method.makes_set:
        what = (f"trained on {len(experiment.pool(cell, r.train, sweep))} images for "
                f"{sweep.reference_budget.epochs} epochs")
        return f"whole_{args.dataset}_{args.model}", what, reference, what
    source = f"selected from {len(experiment.pool(cell, r.train, sweep))} training images"
    if experiment.references(cell, sweep):
        # each experiment its own reference network (seed + exp, the whole bound's): the spread
        # over experiments includes the reference network's, as the paper's std implies
        seeds = [sweep.reference_seed(e) for e in range(sweep.num_exp)]
        source += (f" with a reference {args.model} of {sweep.reference_budget.epochs} epochs per exp "
                   f"(seeds {seeds[0]}..{seeds[-1]})")
    return tag, source, reference, f"selected by {args.method}"


class _Printer(experiment.Hooks):
    """The seed CLI's lines: a loss line every tenth of a condensation (as the original's every 10
    iterations), one line per evaluation, one per selection."""

    def __init__(self, r: Run, exp: int):
        self.r, self.exp = r, exp

    def progress_points(self, last: int) -> set[int]:
        every = max(1, last // 10)
        return set(range(every, last, every))

    def on_progress(self, iteration: int, run, metrics: dict, saved: bool) -> None:
        if "accuracy" not in metrics:  # an evaluation's point has its own lines
            print(f"exp {self.exp} iter {iteration:4d}  loss {metrics['loss']:.4f}  "
                  f"(total {time.time() - self.r.start:.0f} s)", flush=True)

    def on_made(self, synthetic, seconds: float) -> None:
        print(f"exp {self.exp} selected {len(synthetic)} images ({seconds:.1f} s)", flush=True)

    def on_evaluated(self, iteration: int, model: str, accs: list[float], seconds: float,
                     loss: float | None = None, strategy: str | None = None) -> None:
        total = f"total {time.time() - self.r.start:.0f} s"
        method = self.r.cell.record
        if not method.makes_set:
            print(f"exp {self.exp} whole  {model} {_wording(self.r)[1]}: {accs[0]:.2f} % ({seconds:.1f} s, {total})",
                  flush=True)
            return
        mu, sd = mean_std(accs)
        if loss is None:
            print(f"exp {self.exp} {self.r.args.method}  eval {model}: {mu:.2f} ± {sd:.2f} % ({len(accs)} nets, "
                  f"{seconds:.1f} s, {total})", flush=True)
            return
        shown = f"loss {loss:.4f}" if iteration else "(no step yet)"
        print(f"exp {self.exp} iter {iteration:4d}  {shown}  eval {model}: {mu:.2f} ± {sd:.2f} % "
              f"({len(accs)} nets, {seconds:.1f} s, {total})", flush=True)


def finish(r: Run, tag: str, results: dict, how: str) -> dict:
    """Write the accuracies JSON and print one summary line per eval model."""
    write_text(r.out / f"acc_{tag}.json", json.dumps(results, indent=1))
    for m in r.models:
        mu, sd = mean_std(results["accuracies"][m])
        print(f"Summary {tag} {how}, evaluated {m}: {len(results['accuracies'][m])} nets, "
              f"mean = {mu:.2f} ± {sd:.2f} %  ({time.time() - r.start:.0f} s)", flush=True)
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print("\n".join(networks.list_models()))
        return 0
    if args.list_methods:
        print(methods.table())
        return 0
    keep_freed_memory()
    # the library's notes, and the reference network's progress (one line per epoch)
    for name in ("condense", "evaluation.reference"):
        log = logging.getLogger(name)
        log.setLevel(logging.INFO)
        if not log.handlers:
            log.addHandler(logging.StreamHandler(sys.stdout))
    return exit_status(lambda: run(args))
