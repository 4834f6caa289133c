"""Gradient matching (DC; docs/protocol.md, "Condensation by gradient matching (DC)"): learn ``ipc``
images per class whose training gradients match those of real batches, over many freshly
initialised networks, each trained on the synthetic images between image updates."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..data import ImageSet
from ..errors import ConfigError
from ..matching import check_metric, class_gradients_loss, class_gradients_loss_fast
from ..networks import build_network, has_batchnorm
from ..precision import check_precision, precision
from ..synthetic import SyntheticSet
from .base import Condensation, ProgressFn, run_condensation

# (outer_loop, inner_loop) by images per class, from the paper
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclass(frozen=True)
class Budget:
    """Gradient matching's budget (DC, DSA); defaults are the paper's."""
    iterations: int = 1000
    batch_real: int = 256
    batch_train: int = 256
    lr_img: float | None = None  # None: 0.1, or 0.01 for MLP
    lr_net: float = 0.01
    momentum_img: float = 0.5
    outer_loop: int | None = None  # None: from LOOPS by ipc
    inner_loop: int | None = None
    max_outer_loop: int | None = None  # caps on the loops whichever way they are set (None: no cap)
    max_inner_loop: int | None = None
    bn_real_per_class: int = 16
    precision: str = "default"  # condense.precision.PRECISIONS; tf32/bf16 act on CUDA only
    eval_every: ClassVar[None] = None  # mode S evaluates at 0, half and last (DMBudget sets one)

    def __post_init__(self) -> None:
        check_precision(self.precision)

    @classmethod
    def smoke(cls, **overrides) -> "Budget":
        """Seconds-long on a CPU: few iterations, small real batches, at most 2 x 1 loops (ipc 1's
        1 x 1 stays; the paper's ipc 50 would be 50 x 10): two image updates with the network trained
        between them, the paper's step in miniature. --smoke also cuts the iterations for a large set
        (the driver's and the seed CLI's smoke_for_set)."""
        return dataclasses.replace(cls(iterations=20, batch_real=64, max_outer_loop=2, max_inner_loop=1),
                                   **overrides)

    def loops(self, ipc: int) -> tuple[int, int]:
        if self.outer_loop is not None and self.inner_loop is not None:
            outer, inner = self.outer_loop, self.inner_loop
        elif ipc not in LOOPS:  # each caller says how its user gives loops (a sweep's budget, ...)
            raise ConfigError(f"no paper loop setting for ipc {ipc} (defined for {sorted(LOOPS)})")
        else:
            outer, inner = self.outer_loop or LOOPS[ipc][0], self.inner_loop or LOOPS[ipc][1]
        return min(outer, self.max_outer_loop or outer), min(inner, self.max_inner_loop or inner)

    def image_lr(self, model: str) -> float:
        if self.lr_img is not None:
            return self.lr_img
        return 0.01 if model == "MLP" else 0.1


def freeze_batchnorm_on(net: nn.Module, images: Tensor) -> None:
    """Set BN statistics from a real batch in train mode, then freeze them for matching."""
    net.train()
    with torch.no_grad():
        net(images)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def train_epochs(net: nn.Module, images: Tensor, labels: Tensor, optimizer: torch.optim.Optimizer,
                 epochs: int, batch: int, generator: torch.Generator,
                 augment: Callable[[Tensor], Tensor] | None = None) -> None:
    """Plain shuffled mini-batch training (the inner loop); DC augments nothing here, DSA each batch."""
    net.train()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], device=images.device, generator=generator)
        for start in range(0, images.shape[0], batch):
            idx = order[start:start + batch]
            x = images[idx] if augment is None else augment(images[idx])
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), labels[idx]).backward()
            optimizer.step()


class DCCondensation(Condensation):
    """A DC run; ``step()`` is one outer iteration of the paper: a fresh network, ``outer_loop``
    image updates, the network trained on the synthetic images between them.

    ``fast=False`` matches gradients with the reference per-class loop instead of the vmapped one
    (same loss and image gradient up to float rounding). ``batched_real`` (default: on CUDA only)
    takes the fast path's real gradients of all classes from one batched pass
    (``matching.real_gradients_batched``); the CPU path is unchanged.
    """
    method = "DC"

    def __init__(self, train: ImageSet, model: str, ipc: int, metric: str = "ours",
                 budget: Budget = Budget(), seed: int = 0, init: str = "noise", fast: bool = True,
                 batched_real: bool | None = None):
        super().__init__(train, model, ipc, budget, seed, init)
        self.metric = check_metric(metric)
        self.outer_loop, self.inner_loop = budget.loops(ipc)
        self.inner_augment: Callable[[Tensor], Tensor] | None = None  # DSA augments the inner loop
        batched_real = self.device.type == "cuda" if batched_real is None else batched_real
        self.matching_loss = (functools.partial(class_gradients_loss_fast, batched_real=batched_real) if fast
                              else class_gradients_loss)

    def learning_rates(self) -> dict[str, float]:
        return {**super().learning_rates(), "network lr": self.budget.lr_net}

    def step(self) -> None:
        with precision(self.budget.precision, self.device):
            self._step()

    def _step(self) -> None:
        b = self.budget
        net = build_network(self.model, self.train, self.net_generator, self.device)
        net_opt = torch.optim.SGD(net.parameters(), lr=b.lr_net)
        bn = has_batchnorm(net)
        k = self.train.info.num_classes
        shape = self.images.shape[1:]
        for outer in range(self.outer_loop):
            if bn:
                idx = self.sampler.sample(b.bn_real_per_class, self.generator).flatten()
                freeze_batchnorm_on(net, self.train.batch(idx))
            real = self.train.batch(self.sampler.sample(b.batch_real, self.generator))
            self.update_images(self.matching_loss(net, real, self.images.view(k, self.ipc, *shape), self.metric))
            if outer == self.outer_loop - 1:
                break
            train_epochs(net, self.images.detach().clone(), self.labels, net_opt,
                         self.inner_loop, b.batch_train, self.generator, self.inner_augment)
        self.iteration += 1


def condense(train: ImageSet, model: str, ipc: int, metric: str = "ours", budget: Budget = Budget(),
             seed: int = 0, init: str = "noise", on_progress: ProgressFn | None = None,
             progress_at: Iterable[int] = (), fast: bool = True) -> SyntheticSet:
    """Run gradient matching for ``budget.iterations`` outer iterations and return the set
    (``on_progress``, ``progress_at``: as ``run_condensation``'s)."""
    run = DCCondensation(train, model, ipc, metric, budget, seed, init, fast)
    return run_condensation(run, on_progress, progress_at)
