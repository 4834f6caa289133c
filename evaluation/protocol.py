"""The paper's evaluation protocol: train freshly initialised networks on a synthetic set and
test them on the real test set (PAPER.md, "Evaluation").

The seeds of one evaluation model are independent trainings of the same architecture, so by default
they train together as one vmapped model (``train_networks``): the same maths as one after another
(``train_network``, kept as the reference), with fewer and larger kernels. Testing stays one network
at a time on ``batch_test`` images: it is compute-bound already, and a vmapped forward of all K
measured slower on CPU (0.6-0.8x, with 3x the memory: grouped convolutions and vmap's unfused norm
affine), so it would buy nothing.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from condense import networks
from condense.augment import augment, strategy_for
from condense.data import DatasetInfo, ImageSet
from condense.divergence import first_nonfinite
from condense.errors import NonFiniteLossError
from condense.precision import check_precision, precision
from condense.synthetic import SyntheticSet, build_network, seeded_generator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalBudget:
    """Training budget of one evaluation network; defaults are the paper's."""
    epochs: int | None = None  # None: 1000 with augmentation, 300 without
    batch_train: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_test: int = 1024  # inference only: any size gives the same accuracy
    max_test: int | None = None  # test on the first N test images (smoke runs only)
    precision: str = "default"  # condense.precision.PRECISIONS; tf32/bf16 act on CUDA only

    def __post_init__(self) -> None:
        check_precision(self.precision)

    @classmethod
    def smoke(cls, **overrides) -> "EvalBudget":
        return dataclasses.replace(cls(epochs=100, max_test=2000), **overrides)

    def epochs_for(self, strategy: str) -> int:
        if self.epochs is not None:
            return self.epochs
        return 300 if strategy == "none" else 1000


def schedule(epochs: int) -> tuple[int, int]:
    """The original's evaluation schedule (``evaluate_synset``): ``epochs + 1`` epochs are trained,
    and the learning rate is cut after epoch index ``epochs // 2 + 1`` (1001 epochs, decay after 501).
    Returns (epochs trained, index of the first epoch at the lower rate)."""
    return epochs + 1, epochs // 2 + 2


def _sgd(params: Iterable[Tensor], lr: float, budget: EvalBudget) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=budget.momentum, weight_decay=budget.weight_decay)


def train_network(net: nn.Module, images: Tensor, labels: Tensor, budget: EvalBudget, epochs: int,
                  strategy: str, generator: torch.Generator) -> Tensor:
    """SGD with momentum and weight decay, on the original's ``schedule`` (lr x 0.1 a little after
    half the epochs, with a fresh optimiser as the paper's code). Returns every step's loss, on the
    device (reading it is the caller's sync)."""
    lr = budget.lr
    opt = _sgd(net.parameters(), lr, budget)
    net.train()
    n = images.shape[0]
    losses = []
    total, decay = schedule(epochs)
    for ep in range(total):
        if ep == decay:
            lr *= 0.1
            opt = _sgd(net.parameters(), lr, budget)
        order = torch.randperm(n, device=images.device, generator=generator)
        for start in range(0, n, budget.batch_train):
            idx = order[start:start + budget.batch_train]
            x = augment(images[idx], strategy, generator)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), labels[idx])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
    return torch.stack(losses) if losses else images.new_zeros(0)


def _stack(nets: Sequence[nn.Module]) -> tuple[nn.Module, dict, dict]:
    """A weightless copy of the architecture in train mode (the nets are put in train mode too, as
    ``train_network`` does) and the K networks' parameters and buffers stacked along a new leading
    axis (the parameters are fresh leaf tensors)."""
    for net in nets:
        net.train()
    template = copy.deepcopy(nets[0]).to("meta")
    params, buffers = stack_module_state(list(nets))
    return template, params, buffers


def _unstack(params: dict, nets: Sequence[nn.Module]) -> None:
    with torch.no_grad():
        for k, net in enumerate(nets):
            for name, p in net.named_parameters():
                p.copy_(params[name][k])


def train_networks(nets: Sequence[nn.Module], images: Tensor, labels: Tensor, budget: EvalBudget,
                   epochs: int, strategy: str, generators: Sequence[torch.Generator]) -> Tensor:
    """``train_network`` for K networks of one architecture at once, as one vmapped model.

    Network k, driven by ``generators[k]``, gets the shuffles, augmentation draws (with its own batch
    mean as crop fill) and SGD updates it would get alone; its trained weights are written back
    into ``nets[k]``. Not for BatchNorm in train mode (running statistics). Returns (K, steps) losses.
    """
    k, n = len(nets), images.shape[0]
    template, params, buffers = _stack(nets)
    forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))
    lr = budget.lr
    # SGD is elementwise, so on stacked tensors it is exactly K independent optimisers (tested).
    opt = _sgd(params.values(), lr, budget)
    losses = []
    total, decay = schedule(epochs)
    for ep in range(total):
        if ep == decay:
            lr *= 0.1
            opt = _sgd(params.values(), lr, budget)
        order = torch.stack([torch.randperm(n, device=images.device, generator=g) for g in generators])
        for start in range(0, n, budget.batch_train):
            idx = order[:, start:start + budget.batch_train]  # (K, b): seed k's batch in row k
            x = augment(images[idx.flatten()], strategy, generators)
            logits = forward(params, buffers, x.view(*idx.shape, *x.shape[1:]))
            loss = F.cross_entropy(logits.flatten(0, 1), labels[idx].flatten(), reduction="none")
            loss = loss.view(idx.shape).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # the seeds share no weight: each gets the gradient of its own loss
            opt.step()
            losses.append(loss.detach())
    _unstack(params, nets)
    return torch.stack(losses, 1) if losses else images.new_zeros(k, 0)


@torch.no_grad()
def test_accuracy(net: nn.Module, test: ImageSet, budget: EvalBudget) -> float:
    """Accuracy in percent on the (first ``max_test``) real test images."""
    net.eval()
    n = len(test) if budget.max_test is None else min(budget.max_test, len(test))
    correct = torch.zeros((), dtype=torch.long, device=test.images.device)
    for start in range(0, n, budget.batch_test):
        x = test.images[start:min(n, start + budget.batch_test)]
        y = test.labels[start:min(n, start + budget.batch_test)]
        correct += (net(x).argmax(1) == y).sum()
    return 100.0 * int(correct) / n


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
                   device: torch.device, max_parallel: int | None = None, memory_share: float | None = None) -> int:
    """How many seeds to train at once: ``max_parallel`` if given, else as many as half the memory
    holds (the free memory, or ``memory_share`` x a GPU's total where trials share it); 1 (serial)
    for a model with BatchNorm, whose running statistics are updated in train mode and cannot be
    vmapped faithfully."""
    with torch.device("meta"):
        net = networks.build(model_name, info.channels, info.num_classes, info.image_size)
    if networks.has_batchnorm(net):
        logger.info("%s has BatchNorm (running statistics in train mode): its seeds train one after "
                    "another, not vectorised", model_name)
        return 1
    if max_parallel is not None:
        return max(1, max_parallel)
    per_seed = training_bytes(net, (info.channels, *info.image_size), min(budget.batch_train, num_images))
    k = max(1, _memory_for_seeds(device, memory_share) // 2 // per_seed)
    logger.debug("%s: %d seeds at a time (%.2f GB each, estimated)", model_name, k, per_seed / 1e9)
    return k


def _check_finite(losses: Tensor, nets: Sequence[nn.Module], seeds: Sequence[int], model_name: str, epochs: int,
                  budget: EvalBudget) -> None:
    """``NonFiniteLossError`` naming the network and epoch if a (K, steps) loss history, or a trained
    network's weights (its last step's update), are not all finite: a diverged network's accuracy is
    not a result. Read once per training, never per step."""
    weights = [torch.stack([torch.isfinite(p).all() for p in net.parameters()]).all() for net in nets]
    if bool(torch.isfinite(losses).all() & torch.stack(weights).all()):
        return
    for seed, history, ok in zip(seeds, losses, weights):
        bad = first_nonfinite(history)
        if bad is not None:
            steps_per_epoch = max(1, history.shape[0] // max(1, epochs))
            raise NonFiniteLossError(
                f"evaluation loss of {model_name} (seed {seed}) is {bad[1]} at epoch {bad[0] // steps_per_epoch + 1} "
                f"of {epochs} (lr {budget.lr}): the network diverged")
        if not ok:
            raise NonFiniteLossError(f"weights of {model_name} (seed {seed}) are not finite after {epochs} epochs "
                                     f"(lr {budget.lr}): the network diverged")


def _graphable(device: torch.device, num_images: int, budget: EvalBudget, strategy: str) -> bool:
    """A seed group trains as a replayed CUDA graph (evaluation/graphed.py) on CUDA, where its steps
    are launch-bound; not under bf16 autocast (its cast cache and graph capture do not mix); the
    CPU path is unchanged."""
    from .graphed import supported
    return device.type == "cuda" and budget.precision != "bf16" and supported(num_images, budget, strategy)


def evaluate(synthetic: SyntheticSet, test: ImageSet, model_name: str, seeds: Sequence[int],
             budget: EvalBudget = EvalBudget(), strategy: str | None = None,
             on_result: Callable[[int, float], None] | None = None, vectorised: bool | None = None,
             max_parallel: int | None = None, memory_share: float | None = None) -> list[float]:
    """Train one fresh ``model_name`` per seed on ``synthetic`` and return each one's test accuracy.

    The seed fixes the network's initialisation, shuffling and augmentation draws. ``strategy``
    defaults to the set's ``meta["eval_augment"]`` (DSA and DM sets: DSA augmentation, as the
    original evaluates them), else to the paper's choice for this dataset and evaluation model.
    With ``vectorised`` up to ``max_parallel`` seeds (default: what memory allows) train together as
    one vmapped model; ``vectorised=False`` trains them one after another (the reference);
    ``memory_share``: the fraction of a GPU this evaluation has (a trial's share), which sizes its
    seed groups. Both give the same networks
    up to float rounding. The default vectorises on accelerators only: on a CPU, where a ConvNet
    step is compute-bound, vmapped seeds measured slower than serial ones (benchmarks/eval_seeds.py
    on 2 quiet cores: 0.92x at ipc 1, 0.63x at ipc 10; 9.05x at ipc 1 on an H200).
    """
    if strategy is None:  # the set's own (DSA and DM sets: DSA augmentation), else the paper's choice
        strategy = synthetic.meta.get("eval_augment") or strategy_for(test.info.name, model_name)
    epochs = budget.epochs_for(strategy)
    device = test.images.device
    images, labels = synthetic.images.to(device), synthetic.labels.to(device)
    train_like = ImageSet(images, labels, test.info)
    seeds = list(seeds)
    group = 1
    if vectorised is None:
        vectorised = device.type != "cpu"
    if vectorised and len(seeds) > 1:
        group = parallel_seeds(model_name, test.info, len(images), budget, device, max_parallel, memory_share)
    accs = []
    for first in range(0, len(seeds), group):
        chunk = seeds[first:first + group]
        gens = [seeded_generator(seed, device) for seed in chunk]
        nets = [build_network(model_name, train_like, g, device) for g in gens]
        with precision(budget.precision, device):
            if len(nets) == 1:
                losses = train_network(nets[0], images, labels, budget, epochs, strategy, gens[0])[None]
            elif _graphable(device, len(images), budget, strategy):
                from .graphed import train_networks_static
                losses = train_networks_static(nets, images, labels, budget, epochs, strategy, gens, capture=True)
            else:
                losses = train_networks(nets, images, labels, budget, epochs, strategy, gens)
            _check_finite(losses, nets, chunk, model_name, epochs, budget)
            chunk_accs = [test_accuracy(net, test, budget) for net in nets]
        for seed, acc in zip(chunk, chunk_accs):
            accs.append(acc)
            if on_result is not None:
                on_result(seed, accs[-1])
    return accs
