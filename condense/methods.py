"""The seed repository's three condensation methods, as runs of one ``Condensation`` machinery.

- DC (``main.py``): gradient matching, ``condense.synthetic.Condensation``.
- DSA (``main.py --method DSA``): gradient matching where, in each matching step, the real batch and
  the synthetic images of a class get the same random differentiable augmentation
  (``diffaug.siamese``), and the inner loop trains the network on synthetic images augmented per
  batch (one op, parameters per image), as the original does.
- DM (``main_DM.py``): each iteration a freshly initialised network, used without its classifier
  (``embed``); per class the squared distance between the mean embedding of the real batch and that
  of the synthetic images, both augmented with one shared DSA draw, summed over classes; one image
  update per iteration, no inner loop. The real images of all classes are embedded in one batch and
  the synthetic ones in another, which is the original's BatchNorm branch (batch statistics over
  every class) and, without BatchNorm, the same as its per-class loop.
DSA and DM sets are evaluated with DSA augmentation (their ``meta["eval_augment"]``), as the
original does. Like DC's, their runs stop with ``NonFiniteLossError`` once the loss or the images
turn non-finite (``Condensation.check_finite``): such a set is never a result.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from . import diffaug
from .data import ImageSet
from .errors import unknown
from .synthetic import Budget, Condensation, SyntheticSet, build_network

CONDENSATION_METHODS = ("DC", "DSA", "DM")
# Synthetic initialisation by method: DC's and main_DM.py's defaults, and --init real for DSA, the
# setting of the DSA table in the seed repository's README.
DEFAULT_INIT = {"DC": "noise", "DSA": "real", "DM": "real"}


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


def distribution_matching_loss(embed: Callable[[Tensor], Tensor], real: Tensor, syn: Tensor) -> Tensor:
    """sum_c || mean_i embed(real[c, i]) - mean_j embed(syn[c, j]) ||^2.

    real: (classes, batch, C, H, W), a constant; syn: (classes, ipc, C, H, W).
    """
    k = real.shape[0]
    with torch.no_grad():
        mean_real = embed(real.flatten(0, 1)).view(k, real.shape[1], -1).mean(1)
    mean_syn = embed(syn.flatten(0, 1)).view(k, syn.shape[1], -1).mean(1)
    return ((mean_real - mean_syn) ** 2).sum()


class _Augmented:
    """What DSA and DM add to a run's set: its method and DSA strategy, and DSA evaluation."""
    method: str
    dsa_strategy: str

    def synthetic(self) -> SyntheticSet:
        s = super().synthetic()
        s.meta.update(method=self.method, dsa_strategy=self.dsa_strategy,
                      eval_augment=diffaug.eval_strategy(self.dsa_strategy))
        return s


class DSACondensation(_Augmented, Condensation):
    method = "DSA"

    def __init__(self, train: ImageSet, model: str, ipc: int, metric: str = "ours", budget: Budget = Budget(),
                 seed: int = 0, init: str = DEFAULT_INIT["DSA"], fast: bool = True,
                 dsa_strategy: str = diffaug.DEFAULT_STRATEGY):
        self.dsa_strategy = diffaug.check_strategy(dsa_strategy)
        super().__init__(train, model, ipc, metric, budget, seed, init, fast)
        match = self.matching_loss

        def siamese_loss(net, real: Tensor, syn: Tensor, metric: str) -> Tensor:
            real, syn = diffaug.siamese(real, syn, self.dsa_strategy, self.generator)
            return match(net, real, syn, metric)

        self.matching_loss = siamese_loss
        self.inner_augment = lambda images: diffaug.augment(images, self.dsa_strategy, self.generator)


class DMCondensation(_Augmented, Condensation):
    method = "DM"

    def __init__(self, train: ImageSet, model: str, ipc: int, budget: DMBudget = DMBudget(), seed: int = 0,
                 init: str = DEFAULT_INIT["DM"], dsa_strategy: str = diffaug.DEFAULT_STRATEGY):
        self.dsa_strategy = diffaug.check_strategy(dsa_strategy)
        super().__init__(train, model, ipc, "ours", budget, seed, init)

    def step(self) -> None:
        """One iteration: a fresh embedding network, one update of every synthetic image."""
        net = build_network(self.model, self.train, self.net_generator, self.device)
        net.train()  # BatchNorm uses the batch's statistics, as the original
        net.requires_grad_(False)  # only the images learn
        k = self.train.info.num_classes
        real = self.train.images[self.sampler.sample(self.budget.batch_real, self.generator)]
        syn = self.images.view(k, self.ipc, *self.images.shape[1:])
        real, syn = diffaug.siamese(real, syn, self.dsa_strategy, self.generator)
        loss = distribution_matching_loss(net.embed, real, syn)
        self._diverged.update(loss, self.iteration)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self._loss_sum += loss.detach()
        self._loss_count += 1
        self.iteration += 1


def default_budget(method: str, smoke: bool = False) -> Budget | DMBudget:
    cls = DMBudget if method == "DM" else Budget
    return cls.smoke() if smoke else cls()


def make_condensation(method: str, train: ImageSet, model: str, ipc: int, metric: str = "ours",
                      budget: Budget | DMBudget | None = None, seed: int = 0, init: str | None = None,
                      dsa_strategy: str = diffaug.DEFAULT_STRATEGY) -> Condensation:
    """A fresh run of ``method``; ``budget`` and ``init`` default to the method's own."""
    if method not in CONDENSATION_METHODS:
        raise unknown("condensation method", method, CONDENSATION_METHODS)
    budget = default_budget(method) if budget is None else budget
    init = DEFAULT_INIT[method] if init is None else init
    if method == "DM":
        return DMCondensation(train, model, ipc, budget, seed, init, dsa_strategy)
    if method == "DSA":
        return DSACondensation(train, model, ipc, metric, budget, seed, init, dsa_strategy=dsa_strategy)
    return Condensation(train, model, ipc, metric, budget, seed, init)
