"""Measure, on this device, the step costs that a cell's budget multiplies, and write them to
``orchestrator/calibrations/<device>.json`` for the dry run's estimate (see orchestrator/sweep/cost.py):

    python benchmarks/calibrate.py [--device cuda] [--sweep sweeps/all.yaml] [--threads N] [--models M ...]

For each (image shape, model) the sweep's cells use, it times what those cells run, through the same
code, on random images of the dataset's shape:
- ``matching`` (condensation models): one outer iteration of ``Condensation`` with one matching
  step, at two real batch sizes with ipc 1 and at ipc 10, fitted as a + b * batch_real + c * ipc;
- ``train`` (condensation and reference models): one plain SGD step on n images, n = 10 and 100;
- ``eval`` and ``test`` (evaluation models): one evaluation training step per network as
  ``evaluate`` trains it (seeds vectorised by default on accelerators), n = 10 and 100; testing
  one network on n test images.
Each figure is the best of ``--repeats`` timings after one untimed warm-up (on a CPU, of process CPU
time: see ``best``). Probes already in the
file for other models are kept, so a long calibration can be done in parts. On a CPU the default is
one torch thread, what a sweep cell with ``resources: {cpu: 1}`` gets; small real batches there
(``--real-sizes``, default 8 32 on a CPU, 64 256 on a GPU) keep the run to minutes.
"""
from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

from _common import load, parser, setup, sync

import torch

from condense.data import DATASETS, ImageSet
from condense.methods import CONDENSATION, METHODS
from condense.condensation import Budget, DCCondensation
from condense.condensation.dc import train_epochs
from condense.networks import build_network
from condense.synthetic import seeded_generator
from evaluation.protocol import parallel_seeds
from evaluation.train import EvalBudget, schedule, test_accuracy, train_network, train_networks
from orchestrator.sweep import cost, spec
from orchestrator.sweep.cells import expand

SMALL, LARGE = 10, 100  # images in the train/eval probes (ipc 1 and 10 of a 10-class set)
TEST_SIZES = (256, 1024)
EVAL_EPOCHS = 3


def needs(sweep_path: str) -> dict[tuple[str, str], set[str]]:
    """(dataset, model) -> the probes the sweep's cells need from it."""
    out: dict[tuple[str, str], set[str]] = {}
    for cell in expand(spec.load(sweep_path)):
        own = out.setdefault((cell.dataset, cell.model), set())
        if METHODS[cell.method].kind == CONDENSATION:  # DSA and DM are costed from DC's matching probe
            own |= {"matching", "train"}
        else:
            own |= {"train", "test"} if not cell.record.makes_set else {"train"}
        if cell.record.makes_set:
            for m in cell.eval_models():
                out.setdefault((cell.dataset, m), set()).update({"eval", "test"})
    return out


def images(dataset: str, per_class: int, device) -> ImageSet:
    d = DATASETS[dataset]
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(d.num_classes).repeat_interleave(per_class)
    x = torch.randn((len(labels), d.channels, *d.image_size), generator=g)
    return ImageSet(x, labels, d).to(device)


def best(fn, repeats: int, device) -> float:
    """Seconds of ``fn``, the best of ``repeats`` after a warm-up. On a CPU it is the process's CPU
    time: with one thread that is the core's time, unaffected by other processes sharing the machine."""
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    fn()  # warm-up: kernel selection, allocations, lazy initialisation
    times = []
    for _ in range(repeats):
        sync(device)
        t = clock()
        fn()
        sync(device)
        times.append(clock() - t)
    return min(times)


def line(n1: float, t1: float, n2: float, t2: float) -> list[float]:
    b = (t2 - t1) / (n2 - n1)
    return [t1 - b * n1, b]


def probe_matching(dataset, model, sizes, repeats, device) -> list[float]:
    train = images(dataset, max(sizes), device)

    def step(n: int, ipc: int):
        run = DCCondensation(train, model, ipc, budget=Budget(batch_real=n, outer_loop=1, inner_loop=1))
        return lambda: run.step()

    t1, t2 = (best(step(n, 1), repeats, device) for n in sizes)
    t3 = best(step(sizes[0], 10), repeats, device)
    a, b = line(sizes[0], t1, sizes[1], t2)
    per_ipc = (t3 - t1) / 9
    return [a - per_ipc, b, per_ipc]


def probe_train(dataset, model, repeats, device) -> list[float]:
    times = []
    for n in (SMALL, LARGE):
        s = images(dataset, n // 10, device)
        net = build_network(model, s, seeded_generator(0), device)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        gen = seeded_generator(1, device)
        times.append(best(lambda: train_epochs(net, s.images, s.labels, opt, 1, n, gen), repeats, device))
    return line(SMALL, times[0], LARGE, times[1])


def probe_eval(dataset, model, repeats, device) -> list[float]:
    """Per network and step, as ``evaluate`` trains: serial on a CPU, vectorised groups elsewhere."""
    times = []
    budget = EvalBudget(epochs=EVAL_EPOCHS)
    steps = schedule(EVAL_EPOCHS)[0]  # one batch per epoch at these sizes
    for n in (SMALL, LARGE):
        s = images(dataset, n // 10, device)
        k = 1 if device.type == "cpu" else min(20, parallel_seeds(model, s.info, n, budget, device))

        def train():
            gens = [seeded_generator(i, device) for i in range(k)]
            nets = [build_network(model, s, g, device) for g in gens]
            if k == 1:
                train_network(nets[0], s.images, s.labels, budget, EVAL_EPOCHS, "crop_scale_rotate", gens[0])
            else:
                train_networks(nets, s.images, s.labels, budget, EVAL_EPOCHS, "crop_scale_rotate", gens)

        times.append(best(train, repeats, device) / (k * steps))
    return line(SMALL, times[0], LARGE, times[1])


def probe_test(dataset, model, repeats, device) -> list[float]:
    test = images(dataset, max(TEST_SIZES) // 10, device)
    net = build_network(model, test, seeded_generator(0), device)
    times = [best(lambda: test_accuracy(net, test, EvalBudget(max_test=n)), repeats, device) for n in TEST_SIZES]
    return line(TEST_SIZES[0], times[0], TEST_SIZES[1], times[1])


PROBES = {"train": probe_train, "eval": probe_eval, "test": probe_test}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--sweep", default="sweeps/all.yaml", help="calibrate what this sweep's cells use")
    p.add_argument("--models", nargs="+", default=None, help="only these models")
    p.add_argument("--repeats", type=int, default=None, help="timings per figure, best kept (CPU 2, GPU 3)")
    p.add_argument("--real-sizes", type=int, nargs=2, default=None, help="real images per class in the matching probe")
    p.add_argument("--output", default=None, help="calibration file (default orchestrator/calibrations/<device>.json)")
    args = p.parse_args()
    cpu = torch.device(args.device).type == "cpu"
    if cpu and args.threads is None:
        args.threads = 1
    if cpu and args.threads != 1:
        p.error("on a CPU the probes time process CPU time, which sums threads: calibrate with --threads 1")
    device = setup(args)
    repeats = args.repeats or (2 if cpu else 3)
    sizes = args.real_sizes or ((8, 32) if cpu else (64, 256))
    name = cost.local_device(device.type)
    path = cost.folder()[0] / f"{cost.slug(name)}.json" if args.output is None else Path(args.output)
    data = json.loads(path.read_text()) if path.exists() else {"probes": {}}
    data.update({"device": name, "kind": device.type, "torch": torch.__version__,
                 "threads": torch.get_num_threads() if cpu else None, "clock": "process CPU time" if cpu else "wall", "repeats": repeats,
                 "real_sizes": list(sizes), "measured": datetime.date.today().isoformat(),
                 "command": "python benchmarks/calibrate.py " + " ".join(sys.argv[1:])})
    per_shape: dict[tuple[str, str], tuple[str, set[str]]] = {}  # the step cost depends on the shape only
    for (dataset, model), probes in needs(args.sweep).items():
        if args.models is None or model in args.models:
            per_shape.setdefault((cost.shape_key(dataset), model), (dataset, set()))[1].update(probes)
    # the ConvNet first: the estimate borrows its figures for any model not calibrated (yet)
    order = sorted(per_shape, key=lambda k: (k[1] != cost.FALLBACK_MODEL, k[1], k[0]))
    for shape, model in order:
        dataset, probes = per_shape[(shape, model)]
        t0 = time.perf_counter()
        fits = data["probes"].setdefault(shape, {}).setdefault(model, {})
        for probe in sorted(probes):
            if probe == "matching":
                fits[probe] = probe_matching(dataset, model, sizes, repeats, device)
            else:
                fits[probe] = PROBES[probe](dataset, model, repeats, device)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")  # after each model: progress kept
        print(f"{shape} {model}: {', '.join(f'{k} {v[0]:.4f}+{v[1]:.2e}n' for k, v in sorted(fits.items()))} "
              f"({time.perf_counter() - t0:.0f} s, load {load()})", flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
