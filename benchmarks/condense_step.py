"""One outer iteration of gradient matching: the reference per-class loop against the fast path,
and both against the floor, in one process on the same inputs.

    python benchmarks/condense_step.py [--device cuda] [--ipc 1 10] [--batch-real N] [--repeats N] [--threads N]

The floor is the forward+backward (parameter gradients) of the iteration's real batches, one class
batch at a time, on the same fresh network: the per-class real gradients any implementation must
compute. (One batch of all classes at once measured as fast on CPU at 64 images per class and 25%
slower at 256, so the per-class floor is the lower one there.) At ipc 1 the floor sees exactly the step's batches; at ipc 10 batches
of the same size from the same data (the step's inner loop also draws from the generator).

Each path's time is the best of ``--repeats`` iterations, the three paths interleaved so that they
share the machine's conditions; the best of several also drops the first run's one-time costs.
The default runs ipc 1 only, with the paper's 256 real images per class, best of 2: about a minute
on one quiet CPU core, five on 2 busy ones. ``--ipc 1 10`` adds ipc 10 with 32 real images per class
and an inner loop of 1 epoch instead of the paper's 50 (plain training, the same code in both paths
and not part of the floor, so it only dilutes the ratios), one run: 2-3 more minutes on a quiet
core, ten on busy ones. ``--batch-real 256 --inner-loop 50`` gives the paper's ipc-10 iteration.
"""
from __future__ import annotations

from _common import load, measure, parser, setup

import torch
import torch.nn.functional as F

from condense.data import ImageSet, info
from condense.condensation import Budget, DCCondensation
from condense.networks import build_network

DEFAULTS = {1: {"batch_real": 256, "inner_loop": None, "repeats": 2},
            10: {"batch_real": 32, "inner_loop": 1, "repeats": 1}}


def mnist_shaped(per_class: int) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(per_class)
    return ImageSet(torch.randn((10 * per_class, 1, 28, 28), generator=g), labels, info("MNIST"))


class Floor:
    """The real half of ``Condensation.step`` and nothing else, drawing from a generator seeded as
    the runs' are: a fresh network, then per outer step one real batch per class and its gradient."""

    def __init__(self, run: DCCondensation):
        self.run = run

    def step(self) -> None:
        r = self.run
        net = build_network(r.model, r.train, r.generator, r.device)
        params = list(net.parameters())
        for _ in range(r.outer_loop):
            real = r.train.batch(r.sampler.sample(r.budget.batch_real, r.generator))
            for c in range(real.shape[0]):
                target = torch.full((real.shape[1],), c, device=real.device)
                torch.autograd.grad(F.cross_entropy(net(real[c]), target), params)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--ipc", type=int, nargs="+", default=[1], help="images per class (default 1; try 1 10)")
    p.add_argument("--model", default="ConvNet")
    p.add_argument("--batch-real", type=int, default=None, help="real images per class (default: 256 at ipc 1, 32 else)")
    p.add_argument("--inner-loop", type=int, default=None, help="inner epochs at ipc > 1 (default 1; paper 50)")
    p.add_argument("--repeats", type=int, default=None, help="timed iterations per path (default 2 at ipc 1, 1 else)")
    args = p.parse_args()
    device = setup(args)
    summary = []
    for ipc in args.ipc:
        d = DEFAULTS.get(ipc, DEFAULTS[10])
        batch_real = args.batch_real or d["batch_real"]
        repeats = args.repeats or d["repeats"]
        outer, inner = Budget().loops(ipc)
        inner = args.inner_loop or d["inner_loop"] or inner
        budget = Budget(batch_real=batch_real, outer_loop=outer, inner_loop=inner)
        train = mnist_shaped(max(batch_real, ipc)).to(device)
        paths = {"reference": DCCondensation(train, args.model, ipc, "ours", budget, seed=0, fast=False),
                 "fast": DCCondensation(train, args.model, ipc, "ours", budget, seed=0, fast=True),
                 # the fast path with per-class real passes: what "fast" is on a CPU; on CUDA it shows
                 # what the batched real gradients (the CUDA default) win
                 "per-class": DCCondensation(train, args.model, ipc, "ours", budget, seed=0, fast=True,
                                           batched_real=False),
                 "floor": Floor(DCCondensation(train, args.model, ipc, "ours", budget, seed=0))}
        print(f"\nipc{ipc}: {args.model}, {batch_real} real images per class, outer loop {outer}, inner loop "
              f"{inner}; best of {repeats}; load {load()}", flush=True)
        times = {name: [] for name in paths}
        peaks = {name: 0.0 for name in paths}
        for _ in range(repeats):
            for name, path in paths.items():  # interleaved: the paths share the machine's state
                with measure(device) as m:
                    path.step()
                times[name].append(m["seconds"])
                peaks[name] = max(peaks[name], m["peak_gb"])
        best = {name: min(t) for name, t in times.items()}
        for name in paths:
            print(f"  {name:9s} {best[name]:8.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[name])}; "
                  f"peak {peaks[name]:.2f} GB)")
        vs_floor, vs_ref = best["fast"] / best["floor"], best["reference"] / best["fast"]
        print(f"  fast = {vs_floor:.2f}x the floor, {vs_ref:.2f}x faster than the reference "
              f"(reference = {best['reference'] / best['floor']:.2f}x the floor); load {load()}", flush=True)
        print(f"  batched real gradients: {best['per-class'] / best['fast']:.2f}x the per-class real passes"
              f"{'' if device.type == 'cuda' else ' (both per-class off CUDA)'}", flush=True)
        summary += [f"condense_step ipc{ipc} vs floor: {vs_floor:.2f}x",
                    f"condense_step ipc{ipc} vs reference: {vs_ref:.2f}x"]
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
