"""The evaluation training of a seed group as one static step, replayed as a CUDA graph.

On a GPU an evaluation network's step is launch-bound (at ipc 1: 10 images, a few hundred small
kernels), so ``train_networks_static`` expresses the whole training of K vmapped seeds as one step
whose every input lives in a fixed device buffer:
- the shuffles and augmentation parameters of every epoch are drawn ahead, from each seed's own
  generator in the order ``train_networks`` draws them (so every seed gets the same draws and its
  generator ends where it would), and the step reads its epoch's slice by a device step counter;
- the SGD update (momentum, weight decay) is written out in place on the stacked weights, with the
  learning rate in a device scalar; the lr cut's fresh optimiser is a zeroed momentum buffer (a
  fresh SGD's first step sets the buffer to the gradient: 0.9 * 0 + g is g exactly);
- each step writes its losses into a (K, steps) buffer.
With ``capture=True`` (CUDA only) the step is captured once as a CUDA graph after a few eager
warm-up steps and replayed for the rest: a step costs one graph launch. With ``capture=False`` the
same step runs eagerly, on any device: that is how its maths is tested on the CPU against the
serial reference (``train_network``). Only whole-batch epochs (images <= batch_train: ipc <= 25 at
10 classes) and the noise-free strategies are expressed this way; ``supported`` says when.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from condense.augment import apply, draw

from .train import EvalBudget, schedule, stack_networks, unstack_networks

WARMUP_STEPS = 3  # eager steps before capture (cuDNN's algorithm choice, the allocator's pools)


def supported(num_images: int, budget: EvalBudget, strategy: str) -> bool:
    """Whole-batch epochs (a static shape) and an augmentation with a fixed-size draw."""
    return num_images <= budget.batch_train and strategy in ("none", "crop_scale_rotate")


def _draw_ahead(images: Tensor, strategy: str, generators: Sequence[torch.Generator], epochs: int):
    """Every epoch's shuffle (epochs, K, n) and augmentation parameters (epochs, ...), drawn as
    ``train_networks`` draws them: per epoch the shuffles, then the epoch's one batch's parameters."""
    k, n = len(generators), images.shape[0]
    dev = images.device
    orders, drawn = [], []
    for _ in range(epochs):
        orders.append(torch.stack([torch.randperm(n, device=dev, generator=g) for g in generators]))
        if strategy != "none":
            drawn.append(draw((k * n, *images.shape[1:]), strategy, generators, device=dev))
    params = {key: torch.stack([d[key] for d in drawn]) for key in (drawn[0] if drawn else {})}
    return torch.stack(orders), params


class StaticTraining:
    """The buffers and the one step; ``run`` drives it, eagerly or as a replayed CUDA graph."""

    def __init__(self, nets: Sequence[nn.Module], images: Tensor, labels: Tensor, budget: EvalBudget,
                 epochs: int, strategy: str, generators: Sequence[torch.Generator]):
        self.nets, self.k, self.n = nets, len(nets), images.shape[0]
        self.images, self.labels, self.strategy, self.budget = images, labels, strategy, budget
        self.total, self.decay = schedule(epochs)
        template, self.params, self.buffers = stack_networks(nets)
        self.forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))
        self.weights = list(self.params.values())
        for p in self.weights:
            p.requires_grad_(True)
        self.momentum = [torch.zeros_like(p) for p in self.weights]
        self.lr = torch.full((), budget.lr, device=images.device)
        self.step_index = torch.zeros(1, dtype=torch.long, device=images.device)
        self.losses = torch.zeros((self.k, self.total), device=images.device)
        self.orders, self.drawn = _draw_ahead(images, strategy, generators, self.total)

    def step(self) -> None:
        """One SGD step of every seed; reads and advances ``step_index`` on the device."""
        s = self.step_index
        order = self.orders.index_select(0, s)[0]  # (K, n): every seed's shuffle of this epoch
        x = self.images[order.flatten()]
        if self.strategy != "none":
            drawn = {key: v.index_select(0, s)[0] for key, v in self.drawn.items()}
            x = apply(x, self.strategy, drawn, groups=self.k)
        logits = self.forward(self.params, self.buffers, x.view(self.k, self.n, *x.shape[1:]))
        loss = F.cross_entropy(logits.flatten(0, 1), self.labels[order.flatten()], reduction="none")
        loss = loss.view(self.k, self.n).mean(1)
        grads = torch.autograd.grad(loss.sum(), self.weights)
        b = self.budget
        with torch.no_grad():
            for p, g, m in zip(self.weights, grads, self.momentum):
                m.mul_(b.momentum).add_(g.add(p, alpha=b.weight_decay))  # torch.optim.SGD's update
                p.sub_(m * self.lr)
            self.losses.index_copy_(1, s, loss.detach()[:, None])
            s.add_(1)

    def _cut_lr(self) -> None:
        """The reference's fresh optimiser at the decay epoch: lr x 0.1, momentum reset."""
        self.lr.mul_(0.1)
        for m in self.momentum:
            m.zero_()

    def run(self, capture: bool) -> Tensor:
        start = 0
        if capture:
            # eager warm-up steps on a side stream, as torch.cuda.graphs asks; they are real steps
            start = min(WARMUP_STEPS, self.total)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._epochs(range(start), None)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            if start < self.total:
                with torch.cuda.graph(graph):
                    self.step()  # recorded, not run: each replay below is one epoch's step
            self._epochs(range(start, self.total), graph)
        else:
            self._epochs(range(self.total), None)
        unstack_networks(self.params, self.nets, self.buffers)  # BatchNorm's running statistics too
        return self.losses

    def _epochs(self, epochs: range, graph) -> None:
        for ep in epochs:
            if ep == self.decay:
                self._cut_lr()
            if graph is None:
                self.step()
            else:
                graph.replay()


def train_networks_static(nets: Sequence[nn.Module], images: Tensor, labels: Tensor, budget: EvalBudget,
                          epochs: int, strategy: str, generators: Sequence[torch.Generator],
                          capture: bool | None = None) -> Tensor:
    """``train_networks`` as one static step (see the module's doc); returns (K, steps) losses.
    ``capture`` defaults to True on CUDA; it needs ``supported(...)``."""
    if not supported(images.shape[0], budget, strategy):
        raise ValueError(f"static training needs images <= batch_train and a noise-free strategy, got "
                         f"{images.shape[0]} images, batch {budget.batch_train}, {strategy!r}")
    capture = images.device.type == "cuda" if capture is None else capture
    if capture and images.device.type != "cuda":
        raise ValueError("CUDA graph capture needs a CUDA device")
    return StaticTraining(nets, images, labels, budget, epochs, strategy, generators).run(capture)
