"""DSA (the seed repository's ``main.py --method DSA``): gradient matching where, in each matching
step, the real batch and the synthetic images of a class get the same random differentiable
augmentation (``diffaug.siamese``), and the inner loop trains the network on synthetic images
augmented per batch (one op, parameters per image), as the original does.

Its sets say their method and strategy, so evaluation augments them with DSA too
(``evaluation.augmentation``).
"""
from __future__ import annotations

from torch import Tensor

from .. import diffaug
from ..data import ImageSet
from ..methods import METHODS
from .dc import Budget, DCCondensation


class DSACondensation(DCCondensation):
    method = "DSA"

    def __init__(self, train: ImageSet, model: str, ipc: int, metric: str = "ours", budget: Budget = Budget(),
                 seed: int = 0, init: str | None = None, fast: bool = True,
                 dsa_strategy: str = diffaug.DEFAULT_STRATEGY):
        self.dsa_strategy = diffaug.check_strategy(dsa_strategy)
        super().__init__(train, model, ipc, metric, budget, seed, init or METHODS[self.method].default_init, fast)
        match = self.matching_loss

        def siamese_loss(net, real: Tensor, syn: Tensor, metric: str) -> Tensor:
            real, syn = diffaug.siamese(real, syn, self.dsa_strategy, self.generator)
            return match(net, real, syn, metric)

        self.matching_loss = siamese_loss
        self.inner_augment = lambda images: diffaug.augment(images, self.dsa_strategy, self.generator)
