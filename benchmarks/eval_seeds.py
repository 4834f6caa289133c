"""K-seed evaluation: the serial reference (one network after another) against the vectorised path
(the seeds as one vmapped model), same process, same synthetic set, same seeds.

    python benchmarks/eval_seeds.py [--device cuda] [--seeds 20] [--epochs 5] [--test 1000]

Trains ``--seeds`` ConvNets on an MNIST-shaped synthetic set of ipc 1 (10 images) and ipc 10 (100
images) for ``--epochs`` epochs with the paper's MNIST augmentation, both ways, and checks that both
ways give the same weights. Testing on ``--test`` MNIST-shaped images is the same code in both paths
(one network at a time, ``batch_test`` images per forward) and costs the same whatever the networks
learnt, so it is timed once, on the first ipc's networks, and added to both sides of every
whole-evaluation ratio. The issue's figure tests on 10000 images and the paper trains 1000 epochs
(training then dominates); the defaults keep the run to minutes on 2 CPU cores.
"""
from __future__ import annotations

from _common import load, measure, parser, setup

import torch

from condense.data import ImageSet, info
from condense.networks import build_network
from condense.synthetic import seeded_generator
from evaluation.graphed import train_networks_static
from evaluation.protocol import parallel_seeds
from evaluation.train import EvalBudget, test_accuracy, train_network, train_networks

STRATEGY = "crop_scale_rotate"  # the paper's choice for MNIST


def mnist_shaped(n: int, seed: int, per_class: bool) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(n // 10) if per_class else torch.randint(10, (n,), generator=g)
    return ImageSet(torch.randn((n, 1, 28, 28), generator=g), labels, info("MNIST"))


def train_serial(syn: ImageSet, seeds, budget: EvalBudget, epochs: int, device) -> list:
    """evaluate(..., vectorised=False)'s training."""
    nets = []
    for seed in seeds:
        g = seeded_generator(seed, device)
        nets.append(build_network("ConvNet", syn, g, device))
        train_network(nets[-1], syn.images, syn.labels, budget, epochs, STRATEGY, g)
    return nets


def train_vectorised(syn: ImageSet, seeds, budget: EvalBudget, epochs: int, device, k: int) -> list:
    """evaluate(...)'s default training: groups of k seeds, each group one vmapped model."""
    nets = []
    for first in range(0, len(seeds), k):
        gens = [seeded_generator(seed, device) for seed in seeds[first:first + k]]
        group = [build_network("ConvNet", syn, g, device) for g in gens]
        train_networks(group, syn.images, syn.labels, budget, epochs, STRATEGY, gens)
        nets += group
    return nets


def train_graphed(syn: ImageSet, seeds, budget: EvalBudget, epochs: int, device, k: int) -> list:
    """evaluate(...)'s training on CUDA: each group of k seeds one static step, replayed as a CUDA
    graph (run eagerly off CUDA)."""
    nets = []
    for first in range(0, len(seeds), k):
        gens = [seeded_generator(seed, device) for seed in seeds[first:first + k]]
        group = [build_network("ConvNet", syn, g, device) for g in gens]
        train_networks_static(group, syn.images, syn.labels, budget, epochs, STRATEGY, gens)
        nets += group
    return nets


@torch.no_grad()
def max_weight_difference(a: list, b: list) -> float:
    return max(float((p - q).abs().max()) for x, y in zip(a, b) for p, q in zip(x.parameters(), y.parameters()))


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--epochs", type=int, default=5, help="training epochs per network (paper: 1000)")
    p.add_argument("--test", type=int, default=1000, help="test images (the issue's figure: 10000)")
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    p.add_argument("--max-parallel", type=int, default=None, help="seeds per vmapped group (default: by memory)")
    p.add_argument("--graphed", action="store_true",
                   help="also time the static step (a replayed CUDA graph on CUDA, what evaluate uses there)")
    args = p.parse_args()
    device = setup(args)
    budget = EvalBudget()
    test = mnist_shaped(args.test, 1, per_class=False).to(device)
    seeds = list(range(args.seeds))
    summary = []
    tested = None
    for ipc in args.ipc:
        syn = mnist_shaped(10 * ipc, 100 + ipc, per_class=True).to(device)
        k = min(len(seeds), parallel_seeds("ConvNet", syn.info, len(syn), budget, device, args.max_parallel))
        print(f"\nipc{ipc}: {args.seeds} seeds x {args.epochs} epochs on {len(syn)} images; vectorised groups "
              f"of {k}; load {load()}", flush=True)
        # warm-up, untimed: one-time kernel selection and allocations must not count against either path
        train_serial(syn, seeds[:1], budget, 1, device)
        train_vectorised(syn, seeds[:k], budget, 1, device, k)
        with measure(device) as ref:
            ref_nets = train_serial(syn, seeds, budget, args.epochs, device)
        with measure(device) as fast:
            fast_nets = train_vectorised(syn, seeds, budget, args.epochs, device, k)
        if tested is None:
            with measure(device) as tested:
                for net in ref_nets:
                    test_accuracy(net, test, budget)
        train_ratio = ref["seconds"] / fast["seconds"]
        whole_ratio = (ref["seconds"] + tested["seconds"]) / (fast["seconds"] + tested["seconds"])
        print(f"  train reference {ref['seconds']:8.2f} s (peak {ref['peak_gb']:.2f} GB)   vectorised "
              f"{fast['seconds']:8.2f} s (peak {fast['peak_gb']:.2f} GB)   {train_ratio:.2f}x\n"
              f"  test  {args.seeds} nets on {args.test} images {tested['seconds']:.2f} s (the same code for "
              f"both, timed once)\n"
              f"  whole {whole_ratio:.2f}x; max |weight difference| between the paths after training: "
              f"{max_weight_difference(ref_nets, fast_nets):.1e}; load {load()}", flush=True)
        summary += [f"eval_seeds ipc{ipc} train: {train_ratio:.2f}x", f"eval_seeds ipc{ipc} whole: {whole_ratio:.2f}x"]
        if args.graphed:
            train_graphed(syn, seeds[:k], budget, 1, device, k)  # warm-up, untimed
            with measure(device) as graph:
                graph_nets = train_graphed(syn, seeds, budget, args.epochs, device, k)
            ratio = ref["seconds"] / graph["seconds"]
            print(f"  graphed {graph['seconds']:8.2f} s (peak {graph['peak_gb']:.2f} GB): {ratio:.2f}x the serial "
                  f"reference, {fast['seconds'] / graph['seconds']:.2f}x the vectorised; max |weight difference| "
                  f"from the reference {max_weight_difference(ref_nets, graph_nets):.1e}", flush=True)
            summary += [f"eval_seeds ipc{ipc} graphed train: {ratio:.2f}x",
                        f"eval_seeds ipc{ipc} graphed whole: "
                        f"{(ref['seconds'] + tested['seconds']) / (graph['seconds'] + tested['seconds']):.2f}x"]
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
