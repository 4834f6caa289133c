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

``train_networks_graphed`` is what ``evaluate`` calls on CUDA: if the capture or a replay raises, the
group is trained again by ``train_networks`` (eager, on the stream that was current) from the same
starting weights and generator states, with one warning naming the error, so a result is all graph
or all eager. ``DC_NO_CUDA_GRAPH=1`` turns the graph path off (``enabled``). Every stream, graph and
buffer lives on the device of the images (``cuda:1`` included), and ``memory_bytes`` is what a
graphed seed costs the seed-group plan (``protocol.parallel_seeds``).
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from condense.augment import apply, draw
from condense.errors import one_line

from .train import EvalBudget, schedule, stack_networks, train_networks, unstack_networks

logger = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps before capture (cuDNN's algorithm choice, the allocator's pools)
OFF_SWITCH = "DC_NO_CUDA_GRAPH"


def enabled() -> bool:
    """False when ``DC_NO_CUDA_GRAPH`` is set to anything but "" or "0" (for debugging, or as a user's
    switch): then every seed group trains eagerly."""
    return os.environ.get(OFF_SWITCH, "") in ("", "0")


def supported(num_images: int, budget: EvalBudget, strategy: str) -> bool:
    """Whole-batch epochs (a static shape) and an augmentation with a fixed-size draw."""
    return num_images <= budget.batch_train and strategy in ("none", "crop_scale_rotate")


def memory_bytes(training_bytes: int, image_shape: tuple[int, ...], num_images: int, epochs: int,
                 strategy: str) -> int:
    """One seed's device memory when its group trains as a graph, given its eager ``training_bytes``
    (``protocol.training_bytes``): that twice, since the warm-up steps' activations and gradients stay
    in the allocator's cache for the side stream while the graph's private pool holds its own set for
    the replays; plus every epoch's drawn-ahead shuffle and augmentation parameters."""
    per_epoch = num_images * torch.empty((), dtype=torch.long).element_size()  # the shuffle
    if strategy != "none":
        drawn = draw((num_images, *image_shape), strategy, torch.Generator(), device="cpu")
        per_epoch += sum(v.numel() * v.element_size() for v in drawn.values())
    return 2 * training_bytes + schedule(epochs)[0] * per_epoch


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
        if capture:
            # the warm-up steps are real steps; the captured one is recorded, not run: each replay
            # is one epoch's step
            start = min(WARMUP_STEPS, self.total)
            on_graph(self.images.device, lambda: self._epochs(range(start), None),
                     self.step if start < self.total else None,
                     lambda graph: self._epochs(range(start, self.total), graph))
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


def on_graph(device: torch.device, warm_up: Callable[[], None], step: Callable[[], None] | None,
             replay: Callable[[torch.cuda.CUDAGraph], None]) -> None:
    """``warm_up()`` and the capture of ``step`` on a side stream of ``device`` (torch's graph rules
    ask for a side stream), then ``replay(graph)`` on the stream that was current there. Everything is
    asked of ``device``, not of the current device. The stream contexts restore the current stream
    however they are left, and a capture that raises is ended first, so a failure never leaves the
    process on the side stream nor a stream capturing."""
    with torch.cuda.device(device):
        current = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(current)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(side):
            warm_up()
            if step is not None:
                try:
                    torch.cuda.synchronize(device)  # as torch.cuda.graph: nothing pending enters the capture
                    graph.capture_begin()
                    step()
                except BaseException:
                    # end whatever began (global capture mode would fail other threads' allocations);
                    # an invalidated or unbegun capture raises again here: the first error is the one
                    with contextlib.suppress(RuntimeError):
                        graph.capture_end()
                    raise
                graph.capture_end()
        current.wait_stream(side)
        replay(graph)


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


def train_networks_graphed(nets: Sequence[nn.Module], images: Tensor, labels: Tensor, budget: EvalBudget,
                           epochs: int, strategy: str, generators: Sequence[torch.Generator]) -> Tensor:
    """The group as a replayed CUDA graph on the images' device; if the capture or a replay raises,
    the group trains by ``train_networks`` instead, from the same starting weights and generator
    states (drawing ahead moved them), with one warning line naming the error. Returns (K, steps)
    losses of one path or the other, never a mix."""
    if not supported(images.shape[0], budget, strategy):
        raise ValueError(f"a graphed group needs images <= batch_train and a noise-free strategy, got "
                         f"{images.shape[0]} images, batch {budget.batch_train}, {strategy!r}")
    weights = [{name: t.clone() for name, t in net.state_dict().items()} for net in nets]
    draws = [g.get_state() for g in generators]
    try:
        return StaticTraining(nets, images, labels, budget, epochs, strategy, generators).run(capture=True)
    except RuntimeError as err:  # CUDA's errors, torch's graph rules and out-of-memory are RuntimeErrors
        error = f"{type(err).__name__}: {one_line(err, 300)}"
    logger.warning("CUDA graph of %d seeds failed (%s): the group trains eagerly from the same start "
                   "(%s=1 turns graphs off)", len(nets), error, OFF_SWITCH)
    if images.device.type == "cuda":
        torch.cuda.synchronize(images.device)  # the side stream's work is done before its memory is reused
        torch.cuda.empty_cache()  # the graph's private pool and the side stream's cache go back
    for net, state in zip(nets, weights):
        net.load_state_dict(state)
    for g, state in zip(generators, draws):
        g.set_state(state)
    return train_networks(nets, images, labels, budget, epochs, strategy, generators)
