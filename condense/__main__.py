"""The seed's single-cell command line, with the original flag names:

    python -m condense --dataset MNIST --model ConvNet --ipc 1 --eval_mode S

Condenses ``--num_exp`` synthetic sets, evaluates each on the eval pool (``--num_eval`` fresh
networks per model) and writes the sets, the accuracies (JSON) and image grids to ``--save_path``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from . import networks
from .data import dataset_names, load
from .errors import ConfigError, unknown
from .matching import METRICS
from .runtime import keep_freed_memory
from .synthetic import INITS, Budget, Condensation, derive_seed, run_condensation
from .visualise import save_grid

METHODS = ("DC",)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as every other bad input
        self.exit(2, f"error: {message}\n")


def parse_args(argv=None) -> argparse.Namespace:
    p = _Parser(prog="python -m condense", description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--method", default="DC", help=f"how the set is made: {', '.join(METHODS)} (default DC)")
    a("--dataset", default="CIFAR10", help=f"one of {', '.join(dataset_names())} (default CIFAR10, as the seed)")
    a("--model", default="ConvNet", help="network to condense with (see --list-models)")
    a("--ipc", type=int, default=1, help="images per class (default 1)")
    a("--eval_mode", default="S", help="S (the model itself) or a pool: M W D A P N (default S)")
    a("--num_exp", type=int, default=None, help="condensation runs (default 5; 1 with --smoke)")
    a("--num_eval", type=int, default=None, help="networks trained per eval model and run (default 20; 2 with --smoke)")
    a("--epoch_eval_train", type=int, default=None,
      help="epochs to train each eval network (default 1000 with augmentation, else 300)")
    a("--Iteration", type=int, default=None, help="outer iterations (default 1000; 20 with --smoke)")
    a("--lr_img", type=float, default=None, help="image learning rate (default 0.1; 0.01 for MLP)")
    a("--lr_net", type=float, default=0.01, help="network learning rate (default 0.01)")
    a("--batch_real", type=int, default=None, help="real images per class per step (default 256; 64 with --smoke)")
    a("--batch_train", type=int, default=256, help="batch size when training networks (default 256)")
    a("--init", default="noise", help=f"synthetic image initialisation: {' | '.join(INITS)} (default noise)")
    a("--dis_metric", default="ours", help=f"gradient distance: {' | '.join(METRICS)} (default ours)")
    a("--data_path", default=None, help="data root (default: $DC_DATA, else ./data)")
    a("--download", action="store_true", help="let torchvision download a missing dataset into the data root")
    a("--save_path", default="result", help="where sets, accuracies and image grids go (default result)")
    a("--device", default=None, help="torch device (default cuda when available, else cpu)")
    a("--seed", type=int, default=0, help="base seed; runs and eval networks derive theirs from it (default 0)")
    a("--smoke", action="store_true", help="seconds-long budgets for a quick end-to-end check")
    a("--list-models", action="store_true", help="print every registered network name and exit")
    return p.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    """Reject bad names before any data is loaded."""
    from evaluation.pools import EVAL_MODES
    if args.method not in METHODS:
        raise unknown("method", args.method, METHODS)
    if args.dataset not in dataset_names():
        raise unknown("dataset", args.dataset, dataset_names())
    if not networks.is_model(args.model):
        raise unknown("model", args.model, networks.list_models())
    if args.eval_mode not in EVAL_MODES:
        raise unknown("eval_mode", args.eval_mode, EVAL_MODES)
    if args.dis_metric not in METRICS:
        raise unknown("dis_metric", args.dis_metric, METRICS)
    if args.init not in INITS:
        raise unknown("init", args.init, INITS)
    for name in ("ipc", "num_exp", "num_eval", "Iteration", "batch_real", "batch_train", "epoch_eval_train"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "Iteration" else 1):
            raise ConfigError(f"--{name} must be >= {0 if name == 'Iteration' else 1}, got {value}")


def budgets(args: argparse.Namespace):
    from evaluation.protocol import EvalBudget
    base, eval_base = (Budget.smoke(), EvalBudget.smoke()) if args.smoke else (Budget(), EvalBudget())
    given = {"iterations": args.Iteration, "batch_real": args.batch_real, "lr_img": args.lr_img}
    budget = dataclasses.replace(base, lr_net=args.lr_net, batch_train=args.batch_train,
                                 **{k: v for k, v in given.items() if v is not None})
    eval_budget = dataclasses.replace(eval_base, lr=args.lr_net, batch_train=args.batch_train)
    if args.epoch_eval_train is not None:
        eval_budget = dataclasses.replace(eval_budget, epochs=args.epoch_eval_train)
    num_exp = args.num_exp if args.num_exp is not None else (1 if args.smoke else 5)
    num_eval = args.num_eval if args.num_eval is not None else (2 if args.smoke else 20)
    return budget, eval_budget, num_exp, num_eval


def mean_std(values) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0


def run(args: argparse.Namespace) -> dict:
    from evaluation.pools import eval_iterations, eval_models
    from evaluation.protocol import evaluate
    validate(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    budget, eval_budget, num_exp, num_eval = budgets(args)
    budget.loops(args.ipc)  # fail now, not after loading data, on an ipc without loop settings
    train, test = load(args.dataset, args.data_path, download=args.download)
    train, test = train.to(device), test.to(device)
    models = eval_models(args.eval_mode, args.model)
    points = eval_iterations(args.eval_mode, budget.iterations)
    tag = f"{args.method}_{args.dataset}_{args.model}_{args.ipc}ipc"
    out = Path(args.save_path)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{tag}: eval_mode {args.eval_mode} -> {', '.join(models)}; {num_exp} exp x {num_eval} nets; "
          f"{budget.iterations} iterations; device {device}", flush=True)
    results: dict = {"args": vars(args), "budget": dataclasses.asdict(budget),
                     "eval_budget": dataclasses.asdict(eval_budget), "accuracies": {m: [] for m in models},
                     "by_iteration": []}
    start = time.time()
    for exp in range(num_exp):
        seed = derive_seed(args.seed, tag, args.dis_metric, args.init, exp)
        run_ = Condensation(train, args.model, args.ipc, args.dis_metric, budget, seed, args.init)

        def on_eval(iteration: int, state: Condensation) -> None:
            loss = state.mean_loss() if iteration else float("nan")
            synthetic = state.synthetic()
            for m in models:
                t0 = time.time()
                seeds = [derive_seed(seed, "eval", m, iteration, i) for i in range(num_eval)]
                accs = evaluate(synthetic, test, m, seeds, eval_budget)
                mu, sd = mean_std(accs)
                results["by_iteration"].append({"exp": exp, "iteration": iteration, "model": m, "accs": accs})
                if iteration == budget.iterations:
                    results["accuracies"][m] += accs
                print(f"exp {exp} iter {iteration:4d}  loss {loss:.4f}  eval {m}: {mu:.2f} ± {sd:.2f} % "
                      f"({len(accs)} nets, {time.time() - t0:.1f} s, total {time.time() - start:.0f} s)",
                      flush=True)

        synthetic = run_condensation(run_, on_eval, points)
        synthetic.save(out / f"syn_{tag}_exp{exp}.pt")
        save_grid(synthetic, out / f"vis_{tag}_exp{exp}.png")
    (out / f"acc_{tag}.json").write_text(json.dumps(results, indent=1))
    for m in models:
        mu, sd = mean_std(results["accuracies"][m])
        print(f"Summary {tag} trained {args.model}, evaluated {m}: {len(results['accuracies'][m])} nets, "
              f"mean = {mu:.2f} ± {sd:.2f} %  ({time.time() - start:.0f} s)", flush=True)
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print("\n".join(networks.list_models()))
        return 0
    keep_freed_memory()
    try:
        run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
