"""The paper's evaluation protocol: train freshly initialised networks on a synthetic set and
test them on the real test set (PAPER.md, "Evaluation")."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from condense.augment import augment, strategy_for
from condense.data import ImageSet
from condense.synthetic import SyntheticSet, build_network, seeded_generator


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

    @classmethod
    def smoke(cls, **overrides) -> "EvalBudget":
        return dataclasses.replace(cls(epochs=100, max_test=2000), **overrides)

    def epochs_for(self, strategy: str) -> int:
        if self.epochs is not None:
            return self.epochs
        return 300 if strategy == "none" else 1000


def train_network(net: nn.Module, images: Tensor, labels: Tensor, budget: EvalBudget, epochs: int,
                  strategy: str, generator: torch.Generator) -> None:
    """SGD with momentum and weight decay; lr x 0.1 after half the epochs (fresh optimiser, as the
    paper's code does)."""
    lr = budget.lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=budget.momentum, weight_decay=budget.weight_decay)
    net.train()
    n = images.shape[0]
    for ep in range(epochs):
        if ep == epochs // 2:
            lr *= 0.1
            opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=budget.momentum,
                                  weight_decay=budget.weight_decay)
        order = torch.randperm(n, device=images.device, generator=generator)
        for start in range(0, n, budget.batch_train):
            idx = order[start:start + budget.batch_train]
            x = augment(images[idx], strategy, generator)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), labels[idx]).backward()
            opt.step()


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


def evaluate(synthetic: SyntheticSet, test: ImageSet, model_name: str, seeds: Sequence[int],
             budget: EvalBudget = EvalBudget(), strategy: str | None = None,
             on_result: Callable[[int, float], None] | None = None) -> list[float]:
    """Train one fresh ``model_name`` per seed on ``synthetic`` and return each one's test accuracy.

    The seed fixes the network's initialisation, shuffling and augmentation draws. ``strategy``
    defaults to the paper's choice for this dataset and evaluation model.
    """
    strategy = strategy_for(test.info.name, model_name) if strategy is None else strategy
    epochs = budget.epochs_for(strategy)
    device = test.images.device
    images, labels = synthetic.images.to(device), synthetic.labels.to(device)
    train_like = ImageSet(images, labels, test.info)
    accs = []
    for seed in seeds:
        g = seeded_generator(seed, device)
        net = build_network(model_name, train_like, g, device)
        train_network(net, images, labels, budget, epochs, strategy, g)
        acc = test_accuracy(net, test, budget)
        accs.append(acc)
        if on_result is not None:
            on_result(seed, acc)
    return accs
