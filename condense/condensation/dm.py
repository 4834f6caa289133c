"""DM (the seed repository's ``main_DM.py``): distribution matching.

Each iteration a freshly initialised network, used without its classifier (``embed``); per class the
squared distance between the mean embedding of the real batch and that of the synthetic images, both
augmented with one shared DSA draw, summed over classes; one image update per iteration, no inner
loop. The real images of all classes are embedded in one batch and the synthetic ones in another,
which is the original's BatchNorm branch (batch statistics over every class) and, without BatchNorm,
the same as its per-class loop; there the real images of many classes (CIFAR-100, Tiny ImageNet) are
embedded a few classes at a time (``matching.class_passes``), so that a pass's activations stay a
few GB. Like DC's, a run stops with ``NonFiniteLossError`` once the loss or the images turn
non-finite (``Condensation.check_finite``). It trains no network: no inner loop, no network
learning rate.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .. import diffaug
from ..data import ImageSet
from ..matching import class_passes
from ..methods import METHODS
from ..networks import build_network, has_batchnorm
from .base import Condensation


@dataclass(frozen=True)
class DMBudget:
    """DM's budget; defaults are main_DM.py's."""
    iterations: int = 20000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum_img: float = 0.5
    eval_every: int = 2000  # mode S evaluates at its multiples and the last iteration

    @classmethod
    def smoke(cls, **overrides) -> "DMBudget":
        """Seconds-long on a CPU (evaluated at 0, 25 and 50)."""
        return dataclasses.replace(cls(iterations=50, batch_real=64, eval_every=25), **overrides)

    def loops(self, ipc: int) -> tuple[int, int]:
        return 1, 0  # one image update per iteration, no network training

    def image_lr(self, model: str) -> float:
        return self.lr_img


def distribution_matching_loss(embed: Callable[[Tensor], Tensor], real: Tensor, syn: Tensor,
                               one_pass: bool = False) -> Tensor:
    """sum_c || mean_i embed(real[c, i]) - mean_j embed(syn[c, j]) ||^2.

    real: (classes, batch, C, H, W), a constant; syn: (classes, ipc, C, H, W). The real images are
    embedded in ``class_passes`` (one pass up to CIFAR-10's size), or all at once with ``one_pass``:
    a network with BatchNorm, whose batch statistics span every class.
    """
    k, b = real.shape[:2]
    with torch.no_grad():
        passes = (real,) if one_pass else class_passes(real)
        mean_real = torch.cat([embed(part.flatten(0, 1)).view(len(part), b, -1).mean(1) for part in passes])
    mean_syn = embed(syn.flatten(0, 1)).view(k, syn.shape[1], -1).mean(1)
    return ((mean_real - mean_syn) ** 2).sum()


class DMCondensation(Condensation):
    method = "DM"

    def __init__(self, train: ImageSet, model: str, ipc: int, budget: DMBudget = DMBudget(), seed: int = 0,
                 init: str | None = None, dsa_strategy: str = diffaug.DEFAULT_STRATEGY):
        self.dsa_strategy = diffaug.check_strategy(dsa_strategy)
        super().__init__(train, model, ipc, budget, seed, init or METHODS[self.method].default_init)

    def step(self) -> None:
        """One iteration: a fresh embedding network, one update of every synthetic image."""
        net = build_network(self.model, self.train, self.net_generator, self.device)
        net.train()  # BatchNorm uses the batch's statistics, as the original
        net.requires_grad_(False)  # only the images learn
        k = self.train.info.num_classes
        real = self.train.batch(self.sampler.sample(self.budget.batch_real, self.generator))
        syn = self.images.view(k, self.ipc, *self.images.shape[1:])
        real, syn = diffaug.siamese(real, syn, self.dsa_strategy, self.generator)
        self.update_images(distribution_matching_loss(net.embed, real, syn, one_pass=has_batchnorm(net)))
        self.iteration += 1
