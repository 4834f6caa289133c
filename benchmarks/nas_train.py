"""One architecture's training and test at the smoke budget: what a trial of the architecture search
costs, per architecture of a seeded sample of the search space (condense.networks.sample_search_space).

    DC_DATA=... python benchmarks/nas_train.py [--archs 24] [--seed 0] [--images 100,2000] [--threads 1]

For each set size N in ``--images`` (N/10 real MNIST training images per class: 100 is an ipc-10
proxy), each architecture is trained by the evaluation protocol (``evaluation.protocol.evaluate``,
one seed) with ``EvalBudget.smoke()`` (its epochs capped by the set's size: 10 for 100 images, 1 for
2000) and tested on its 2000 test images. Prints each architecture's seconds and accuracy, then the
total, median and slowest per set size.
"""
from __future__ import annotations

import statistics
import time

from _common import parser, setup

import torch

from condense.data import load
from condense.networks import sample_search_space
from condense.synthetic import SyntheticSet
from evaluation.protocol import evaluate
from evaluation.train import EvalBudget


def first_per_class(train, n: int) -> SyntheticSet:
    idx = torch.cat([i[:n // 10] for i in train.indices_per_class()])
    return SyntheticSet(train.batch(idx), train.labels[idx], "MNIST", {"method": "random"})


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", default="100,2000", help="comma-separated set sizes")
    args = p.parse_args()
    device = setup(args)
    train, test = load("MNIST")
    train, test = train.to(device), test.to(device)
    budget = EvalBudget.smoke()
    archs = sample_search_space(args.archs, args.seed)
    for n in (int(x) for x in args.images.split(",")):
        proxy = first_per_class(train, n)
        epochs = budget.epochs_for("none", proxy.images.numel())
        print(f"-- {n} images, {epochs} epochs, {budget.max_test} test images", flush=True)
        seconds = []
        for name in archs:
            start = time.perf_counter()
            (acc,) = evaluate(proxy, test, name, [0], budget)
            seconds.append(time.perf_counter() - start)
            print(f"{name:24s} {seconds[-1]:7.2f} s  {acc:6.2f} %", flush=True)
        print(f"{n} images: {len(archs)} architectures in {sum(seconds):.1f} s; median {statistics.median(seconds):.2f} s, "
              f"slowest {max(seconds):.2f} s ({archs[seconds.index(max(seconds))]}), fastest {min(seconds):.2f} s",
              flush=True)


if __name__ == "__main__":
    main()
