"""The paper's evaluation protocol: train freshly initialised networks on a synthetic set and
test them on the real test set (docs/protocol.md, "Evaluation").

The seeds of one evaluation model are independent trainings of the same architecture, so on an
accelerator they train together as one vmapped model (``train.train_networks``, or as a replayed CUDA
graph, ``graphed``): the same maths as one after another (``train.train_network``, the reference),
with fewer and larger kernels. Testing stays one network
at a time on ``batch_test`` images: it is compute-bound already, and a vmapped forward of all K
measured slower on CPU (0.6-0.8x, with 3x the memory: grouped convolutions and vmap's unfused norm
affine), so it would buy nothing.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

import torch
import torch.nn as nn

from condense import networks
from condense.data import DatasetInfo, ImageSet
from condense.precision import precision
from condense.networks import build_network
from condense.synthetic import SyntheticSet, seeded_generator

from . import graphed
from .augmentation import for_set
from .train import EvalBudget, check_finite, test_accuracy, train_network, train_networks

logger = logging.getLogger(__name__)


def _free_memory(device: torch.device) -> int:
    """Bytes the device can still give (CPU: the kernel's MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _memory_for_seeds(device: torch.device, share: float | None) -> int:
    """Bytes this evaluation may plan with: on a GPU it shares with other trials, its ``share`` of the
    device's total memory (what Ray gave it), since the free memory of the moment is what every
    trial sharing the device would see and claim; otherwise what the device can still give."""
    if device.type == "cuda" and share is not None:
        return int(share * torch.cuda.mem_get_info(device)[1])
    return _free_memory(device)


def training_bytes(net: nn.Module, image_shape: tuple[int, ...], batch: int) -> int:
    """A generous estimate of one seed's share of vectorised training memory: weights, gradients,
    momentum and the stacked copy, plus every layer's output on ``batch`` images three times (kept
    for backward, its gradient, and the copies vmap makes for a batched norm affine; a ConvNet at
    ipc 10 measured about 2.5x). ``net`` may live on the meta device: only shapes are used."""
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o.numel()))
             for m in net.modules() if not list(m.children())]
    try:
        net(torch.empty((1, *image_shape), device=next(net.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    size = next(net.parameters()).element_size()
    return size * (4 * sum(p.numel() for p in net.parameters()) + 3 * batch * sum(outputs))


def parallel_seeds(model_name: str, info: DatasetInfo, num_images: int, budget: EvalBudget,
                   device: torch.device, max_parallel: int | None = None, memory_share: float | None = None,
                   strategy: str | None = None) -> int:
    """How many seeds to train at once: ``max_parallel`` if given, else as many as half the memory
    holds (the free memory, or ``memory_share`` x a GPU's total where trials share it, so a cell never
    plans past its share). BatchNorm models vectorise too: each seed keeps its own running statistics
    (``train.train_networks``). Given the augmentation ``strategy``, a group that will train as a CUDA
    graph is planned with the graph's memory (``graphed.memory_bytes``: its private pool, the
    warm-up's cache and the drawn-ahead parameters)."""
    with torch.device("meta"):
        net = networks.build(model_name, info.channels, info.num_classes, info.image_size)
    if max_parallel is not None:
        return max(1, max_parallel)
    image_shape = (info.channels, *info.image_size)
    per_seed = training_bytes(net, image_shape, min(budget.batch_train, num_images))
    if strategy is not None and _graphable(device, num_images, budget, strategy):
        epochs = budget.epochs_for(strategy, num_images * info.image_values)
        per_seed = graphed.memory_bytes(per_seed, image_shape, num_images, epochs, strategy)
    k = max(1, _memory_for_seeds(device, memory_share) // 2 // per_seed)
    logger.debug("%s: %d seeds at a time (%.2f GB each, estimated)", model_name, k, per_seed / 1e9)
    return k


def _graphable(device: torch.device, num_images: int, budget: EvalBudget, strategy: str) -> bool:
    """A seed group trains as a replayed CUDA graph (evaluation/graphed.py) on CUDA, where its steps
    are launch-bound; not under bf16 autocast (its cast cache and graph capture do not mix), nor with
    ``DC_NO_CUDA_GRAPH=1``; the CPU path is unchanged."""
    return (device.type == "cuda" and budget.precision != "bf16" and graphed.enabled()
            and graphed.supported(num_images, budget, strategy))


def evaluate(synthetic: SyntheticSet, test: ImageSet, model_name: str, seeds: Sequence[int],
             budget: EvalBudget = EvalBudget(), strategy: str | None = None,
             on_result: Callable[[int, float], None] | None = None, vectorised: bool | None = None,
             max_parallel: int | None = None, memory_share: float | None = None) -> list[float]:
    """Train one fresh ``model_name`` per seed on ``synthetic`` and return each one's test accuracy.

    The seed fixes the network's initialisation, shuffling and augmentation draws. ``strategy``
    defaults to the augmentation policy's for the set (``augmentation.for_set``: DSA and DM sets with
    DSA augmentation, as the original evaluates them, else the paper's choice for this dataset and
    evaluation model).
    With ``vectorised`` up to ``max_parallel`` seeds (default: what memory allows) train together as
    one vmapped model; ``vectorised=False`` trains them one after another (the reference);
    ``memory_share``: the fraction of a GPU this evaluation has (a trial's share), which sizes its
    seed groups. Both give the same networks
    up to float rounding. The default vectorises on accelerators only: on a CPU, where a ConvNet
    step is compute-bound, vmapped seeds measured slower than serial ones (benchmarks/eval_seeds.py
    on 2 quiet cores: 0.92x at ipc 1, 0.63x at ipc 10; 9.05x at ipc 1 on an H200).
    """
    if strategy is None:
        strategy = for_set(synthetic.meta, test.info.name, model_name)
    epochs = budget.epochs_for(strategy, synthetic.images.numel())
    device = test.device
    images, labels = synthetic.images.to(device), synthetic.labels.to(device)
    train_like = ImageSet(images, labels, test.info)
    seeds = list(seeds)
    group = 1
    if vectorised is None:
        vectorised = device.type != "cpu"
    if vectorised and len(seeds) > 1:
        group = parallel_seeds(model_name, test.info, len(images), budget, device, max_parallel, memory_share,
                               strategy)
    accs = []
    for first in range(0, len(seeds), group):
        chunk = seeds[first:first + group]
        gens = [seeded_generator(seed, device) for seed in chunk]
        nets = [build_network(model_name, train_like, g, device) for g in gens]
        with precision(budget.precision, device):
            if len(nets) == 1:
                losses = train_network(nets[0], images, labels, budget, epochs, strategy, gens[0])[None]
            elif _graphable(device, len(images), budget, strategy):
                losses = graphed.train_networks_graphed(nets, images, labels, budget, epochs, strategy, gens)
            else:
                losses = train_networks(nets, images, labels, budget, epochs, strategy, gens)
            check_finite(losses, nets, chunk, model_name, epochs, budget)
            chunk_accs = [test_accuracy(net, test, budget) for net in nets]
        for seed, acc in zip(chunk, chunk_accs):
            accs.append(acc)
            if on_result is not None:
                on_result(seed, accs[-1])
    return accs
