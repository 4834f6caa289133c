"""Training a network on a set, and testing it: the one trainer that evaluation networks
(``protocol``, ``graphed``) and reference networks (``reference``) all use.

The budget (``EvalBudget``), the original's schedule (``schedule``), the optimiser (SGD with momentum
and weight decay, a fresh one at the lr cut), one network (``train_network``, the reference
implementation), K networks of one architecture as one vmapped model (``train_networks``, the same
maths), their stacking, and the test accuracy.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from condense.augment import augment
from condense.data import ImageSet
from condense.divergence import check_lr, first_nonfinite
from condense.errors import NonFiniteLossError
from condense.precision import check_precision


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
    # smoke runs only: fewer epochs where epochs x the set's values (images x C x H x W) would pass
    # this, so that a smoke run of a big set stays short: the smoke preset keeps MNIST ipc 1's 100
    # epochs, and gives its ipc 10 10 and ipc 50 2 (a pass costs about as much per value at any ipc)
    max_train_values: int | None = None
    precision: str = "default"  # condense.precision.PRECISIONS; tf32/bf16 act on CUDA only

    def __post_init__(self) -> None:
        check_precision(self.precision)

    @classmethod
    def smoke(cls, **overrides) -> "EvalBudget":
        return dataclasses.replace(cls(epochs=100, max_test=2000, max_train_values=100 * 10 * 28 * 28), **overrides)

    def epochs_for(self, strategy: str, set_values: int = 0) -> int:
        """Epochs for a set trained with augmentation ``strategy`` (``evaluation.augmentation``) that
        holds ``set_values`` values (images x C x H x W; 0: not capped by ``max_train_values``)."""
        epochs = self.epochs if self.epochs is not None else (300 if strategy == "none" else 1000)
        if self.max_train_values is None or set_values <= 0:
            return epochs
        return max(1, min(epochs, self.max_train_values // set_values))


class Optimised(Protocol):
    """What the trainer reads of a budget (EvalBudget, reference.ReferenceBudget)."""
    batch_train: int
    lr: float
    momentum: float
    weight_decay: float


def schedule(epochs: int) -> tuple[int, int]:
    """The original's evaluation schedule (``evaluate_synset``): ``epochs + 1`` epochs are trained,
    and the learning rate is cut after epoch index ``epochs // 2 + 1`` (1001 epochs, decay after 501).
    Returns (epochs trained, index of the first epoch at the lower rate)."""
    return epochs + 1, epochs // 2 + 2


def sgd(params: Iterable[Tensor], lr: float, budget: Optimised) -> torch.optim.SGD:
    params = list(params)
    check_lr(lr, params[0].dtype, "network lr")
    return torch.optim.SGD(params, lr=lr, momentum=budget.momentum, weight_decay=budget.weight_decay)


def train_network(net: nn.Module, images: Tensor | ImageSet, labels: Tensor, budget: Optimised, epochs: int,
                  strategy: str, generator: torch.Generator, *, plan: tuple[int, int] | None = None,
                  on_batch: Callable[[Tensor, Tensor], None] | None = None,
                  on_epoch: Callable[[int], None] | None = None) -> Tensor:
    """SGD with momentum and weight decay, on the original's ``schedule(epochs)`` (lr x 0.1 a little
    after half the epochs, with a fresh optimiser as the paper's code), or on ``plan`` (epochs
    trained, first epoch at the lower rate). ``images``: a set's tensor, or a real ImageSet, whose
    batches come normalised from ``ImageSet.batch`` (uint8 pixels stay uint8 on the device).
    ``on_batch(indices, logits)`` sees every batch and ``on_epoch(epoch)`` every epoch's end.
    Returns every step's loss, on the device (reading it is the caller's sync)."""
    lr = budget.lr
    opt = sgd(net.parameters(), lr, budget)
    net.train()
    rows = images.batch if isinstance(images, ImageSet) else images.__getitem__
    n, device = len(images), labels.device
    losses = []
    total, decay = schedule(epochs) if plan is None else plan
    for ep in range(total):
        if ep == decay:
            lr *= 0.1
            opt = sgd(net.parameters(), lr, budget)
        order = torch.randperm(n, device=device, generator=generator)
        for start in range(0, n, budget.batch_train):
            idx = order[start:start + budget.batch_train]
            x = augment(rows(idx), strategy, generator)
            opt.zero_grad(set_to_none=True)
            logits = net(x)
            loss = F.cross_entropy(logits, labels[idx])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            if on_batch is not None:
                on_batch(idx, logits.detach())
        if on_epoch is not None:
            on_epoch(ep)
    return torch.stack(losses) if losses else torch.zeros(0, device=device)


def stack_networks(nets: Sequence[nn.Module]) -> tuple[nn.Module, dict, dict]:
    """A weightless copy of the architecture in train mode (the nets are put in train mode too, as
    ``train_network`` does) and the K networks' parameters and buffers stacked along a new leading
    axis (the parameters are fresh leaf tensors)."""
    for net in nets:
        net.train()
    template = copy.deepcopy(nets[0]).to("meta")
    params, buffers = stack_module_state(list(nets))
    return template, params, buffers


def unstack_networks(params: dict, nets: Sequence[nn.Module], buffers: dict | None = None) -> None:
    """Write the stacked parameters (and buffers: BatchNorm's running statistics, which the vmapped
    forward updated in place, per seed) back into the K networks."""
    with torch.no_grad():
        for k, net in enumerate(nets):
            for name, p in net.named_parameters():
                p.copy_(params[name][k])
            for name, b in net.named_buffers() if buffers else ():
                b.copy_(buffers[name][k])


def train_networks(nets: Sequence[nn.Module], images: Tensor, labels: Tensor, budget: EvalBudget,
                   epochs: int, strategy: str, generators: Sequence[torch.Generator]) -> Tensor:
    """``train_network`` for K networks of one architecture at once, as one vmapped model.

    Network k, driven by ``generators[k]``, gets the shuffles, augmentation draws (with its own batch
    mean as crop fill) and SGD updates it would get alone; its trained weights are written back
    into ``nets[k]``. BatchNorm keeps its exact semantics: each seed normalises with its own batch's
    statistics and updates its own running statistics (stacked buffers, updated in place under vmap,
    written back), which test_accuracy's eval mode then uses. Returns (K, steps) losses.
    """
    k, n = len(nets), images.shape[0]
    template, params, buffers = stack_networks(nets)
    forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))
    lr = budget.lr
    # SGD is elementwise, so on stacked tensors it is exactly K independent optimisers (tested).
    opt = sgd(params.values(), lr, budget)
    losses = []
    total, decay = schedule(epochs)
    for ep in range(total):
        if ep == decay:
            lr *= 0.1
            opt = sgd(params.values(), lr, budget)
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
    unstack_networks(params, nets, buffers)
    return torch.stack(losses, 1) if losses else images.new_zeros(k, 0)


@torch.no_grad()
def test_accuracy(net: nn.Module, test: ImageSet, budget: EvalBudget) -> float:
    """Accuracy in percent on the (first ``budget.max_test``) real test images."""
    net.eval()
    n = len(test) if budget.max_test is None else min(budget.max_test, len(test))
    correct = torch.zeros((), dtype=torch.long, device=test.device)
    for start in range(0, n, budget.batch_test):
        x = test.batch(slice(start, min(n, start + budget.batch_test)))
        y = test.labels[start:min(n, start + budget.batch_test)]
        correct += (net(x).argmax(1) == y).sum()
    return 100.0 * int(correct) / n


def check_finite(losses: Tensor, nets: Sequence[nn.Module], seeds: Sequence[int], model_name: str, epochs: int,
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
