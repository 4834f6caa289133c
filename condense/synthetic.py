"""Gradient matching (docs/protocol.md, "Condensation by gradient matching (DC)"): learn ``ipc`` images per class whose training
gradients match those of real batches, over many freshly initialised networks."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from . import networks
from .data import ImageSet
from .divergence import FirstNonFinite, check_lr
from .errors import ConfigError, NonFiniteLossError, unknown
from .files import write_torch
from .matching import check_metric, distance
from .precision import check_precision, precision

INITS = ("noise", "real")
# (outer_loop, inner_loop) by images per class, from the paper
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclass(frozen=True)
class Budget:
    """Condensation budget; defaults are the paper's."""
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


@dataclass
class SyntheticSet:
    """A small labelled image set (condensed or selected), normalised like its dataset."""
    images: Tensor
    labels: Tensor
    dataset: str
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "SyntheticSet":
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def save(self, path: str | Path) -> None:
        write_torch(path, {"images": self.images.detach().cpu(), "labels": self.labels.cpu(),
                           "dataset": self.dataset, "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path) -> "SyntheticSet":
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(d["images"], d["labels"], d["dataset"], d["meta"])


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def build_network(name: str, train: ImageSet, generator: torch.Generator, device) -> nn.Module:
    """A freshly initialised network whose weights come from ``generator``, not the global RNG."""
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    info = train.info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = networks.build(name, info.channels, info.num_classes, info.image_size)
    # pageable host memory is staged at once: the copy does not wait for the device's queue
    return net.to(device, non_blocking=True)


class ClassSampler:
    """Draws real batches per class on the device, without replacement within a class."""

    def __init__(self, labels: Tensor, num_classes: int):
        per_class = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
        counts = [len(p) for p in per_class]
        self.smallest = min(counts)  # a host int: sample() must not read it back from the device
        if self.smallest == 0:
            absent = ", ".join(str(c) for c, n in enumerate(counts) if n == 0)
            raise ConfigError(f"no training image of class {absent}; every class needs at least one")
        width = max(counts)
        self.index = torch.zeros((num_classes, width), dtype=torch.long, device=labels.device)
        for c, p in enumerate(per_class):
            self.index[c, : len(p)] = p
        sizes = torch.tensor(counts, device=labels.device)
        self.valid = torch.arange(width, device=labels.device) < sizes[:, None]

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """(classes, n) indices into the training set; n is capped at the smallest class."""
        n = min(n, self.smallest)
        keys = torch.rand(self.index.shape, device=self.index.device, generator=generator)
        keys = keys.masked_fill(~self.valid, 2.0)  # padding sorts last
        pos = keys.topk(n, dim=1, largest=False).indices
        return self.index.gather(1, pos)


def class_gradients_loss(net: nn.Module, real: Tensor, syn: Tensor, metric: str) -> Tensor:
    """Sum over classes of distance(grad of synthetic loss, grad of real loss): the paper's loop,
    kept as the reference that ``class_gradients_loss_fast`` is tested against.

    real: (classes, batch, C, H, W); syn: (classes, ipc, C, H, W).
    """
    params = [p for p in net.parameters() if p.requires_grad]
    loss = syn.new_zeros(())
    for c in range(real.shape[0]):
        target_real = torch.full((real.shape[1],), c, device=real.device)
        g_real = torch.autograd.grad(F.cross_entropy(net(real[c]), target_real), params)
        g_real = [g.detach() for g in g_real]
        target_syn = torch.full((syn.shape[1],), c, device=syn.device)
        g_syn = torch.autograd.grad(F.cross_entropy(net(syn[c]), target_syn), params, create_graph=True)
        loss = loss + distance(g_syn, g_real, metric)
    return loss


# Input values in one forward of real images where the classes' batches are taken together (DM's
# embedding, DC's batched real gradients), whole classes at a time. MNIST's and CIFAR-10's paper
# batches (2,560 images) stay one pass; CIFAR-100's and Tiny ImageNet's (25,600 and 51,200 images,
# whose first ConvNet layer alone would output 13 and 107 GB) go in passes of about 3 GB of it.
REAL_PASS_VALUES = 2**24


def class_passes(real: Tensor) -> tuple[Tensor, ...]:
    """``real`` (classes, batch, C, H, W) split along the classes into passes of at most
    ``REAL_PASS_VALUES`` input values (one class at least)."""
    return real.split(max(1, REAL_PASS_VALUES // max(1, real[0].numel())))


def real_gradients_batched(net: nn.Module, real: Tensor, params: list[Tensor]) -> list[Tensor]:
    """Every class's real-loss gradient from one forward of the classes' batches and one batched
    backward (``is_grads_batched``: the per-class losses' gradients, vmapped over the backward), in
    ``class_passes`` for a dataset with many classes. Returns per parameter (classes, *shape). For a
    GPU, where the per-class passes are launch-bound; valid when no layer mixes images of different
    classes (no BatchNorm in train mode)."""
    grads, first = [], 0
    for part in class_passes(real):
        c, b = part.shape[:2]
        logits = net(part.flatten(0, 1))
        targets = torch.arange(first, first + c, device=real.device).repeat_interleave(b)
        per_class = F.cross_entropy(logits, targets, reduction="none").view(c, b).mean(1)
        eye = torch.eye(c, device=real.device, dtype=per_class.dtype)
        grads.append(torch.autograd.grad(per_class, params, grad_outputs=eye, is_grads_batched=True))
        first += c
    return [torch.cat(per_param) for per_param in zip(*grads)]


def class_gradients_loss_fast(net: nn.Module, real: Tensor, syn: Tensor, metric: str,
                              batched_real: bool = False) -> Tensor:
    """The same loss as ``class_gradients_loss``, with the many small launches batched.

    The synthetic side (a handful of images per class, a gradient kept differentiable, a double
    backward) is launch-bound: one ``vmap`` over the classes does it in one pass, and another vmaps
    the distances. The real side stays one plain fwd+bwd per class: a class batch (256 images) is
    already big enough to fill the device, and vmapping it measured slower on CPU (per-class weight
    gradients become grouped convolutions) while holding every class's activations at once.
    ``batched_real`` computes it with ``real_gradients_batched`` instead (Condensation's default on
    CUDA only, where the per-class passes are launch-bound; not yet measured there).

    Valid when a class's gradient depends only on that class's images, i.e. no BatchNorm in train
    mode (batch statistics would mix the classes, and running-stat updates cannot be vmapped); such
    a network is sent to the reference loop. Condensation freezes BN before matching, so it never is.
    """
    if any(m.training for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        return class_gradients_loss(net, real, syn, metric)
    params = {k: p for k, p in net.named_parameters() if p.requires_grad}
    buffers = dict(net.named_buffers())
    if batched_real:
        g_real = real_gradients_batched(net, real, list(params.values()))
    else:
        g_real = []
        for c in range(real.shape[0]):
            target = torch.full((real.shape[1],), c, device=real.device)
            g_real.append(torch.autograd.grad(F.cross_entropy(net(real[c]), target), list(params.values())))
        g_real = [torch.stack(per_class) for per_class in zip(*g_real)]  # per parameter: (classes, *shape)

    def class_loss(p: dict, images: Tensor, label: Tensor) -> Tensor:
        logits = functional_call(net, (p, buffers), (images,))
        return F.cross_entropy(logits, label.expand(images.shape[0]))

    labels = torch.arange(syn.shape[0], device=syn.device)
    # differentiable w.r.t. syn: torch.func.grad composes with the outer autograd
    g_syn = vmap(grad(class_loss), in_dims=(None, 0, 0))(params, syn, labels)
    per_class_distance = vmap(lambda s, r: distance(s, r, metric))
    return per_class_distance([g_syn[k] for k in params], g_real).sum()


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


class Condensation:
    """The state of one DC run; ``step()`` is one outer iteration of the paper.

    Its ``state_dict`` holds everything needed to resume bit-for-bit: images, image optimiser,
    iteration and the generator's state. ``fast=False`` matches gradients with the reference
    per-class loop instead of the vmapped one (same loss and image gradient up to float rounding).
    ``batched_real`` (default: on CUDA only) takes the fast path's real gradients of all classes
    from one batched pass (``real_gradients_batched``); the CPU path is unchanged.
    """
    method = "DC"
    dsa_strategy: str | None = None  # DSA and DM: their augmentation, which evaluation follows too

    def __init__(self, train: ImageSet, model: str, ipc: int, metric: str = "ours",
                 budget: Budget = Budget(), seed: int = 0, init: str = "noise", fast: bool = True,
                 batched_real: bool | None = None):
        if ipc < 1:
            raise ConfigError(f"ipc must be >= 1, got {ipc}")
        if init not in INITS:
            raise unknown("init", init, INITS)
        if not networks.is_model(model):
            raise unknown("model", model, networks.list_models())
        self.train, self.model, self.ipc = train, model, ipc
        self.metric, self.budget = check_metric(metric), budget
        self.inner_augment: Callable[[Tensor], Tensor] | None = None  # DSA augments the inner loop
        self.outer_loop, self.inner_loop = budget.loops(ipc)
        self.device = train.device
        batched_real = self.device.type == "cuda" if batched_real is None else batched_real
        self.matching_loss = (functools.partial(class_gradients_loss_fast, batched_real=batched_real) if fast
                              else class_gradients_loss)
        self.generator = seeded_generator(seed, self.device)
        # Each outer iteration's network seed is drawn on the host: from a device generator that
        # would be a host sync per iteration. On the CPU it is the run's generator itself.
        self.net_generator = (self.generator if self.device.type == "cpu"
                              else seeded_generator(derive_seed(seed, "networks")))
        self.sampler = ClassSampler(train.labels, train.info.num_classes)
        if init == "real" and self.sampler.smallest < ipc:
            raise ConfigError(f"init real starts from {ipc} training images per class, but the smallest class "
                              f"of {train.info.name} has {self.sampler.smallest}")
        k, (c, h, w) = train.info.num_classes, (train.info.channels, *train.info.image_size)
        self.labels = torch.arange(k, device=self.device).repeat_interleave(ipc)
        if init == "noise":
            images = torch.randn((k * ipc, c, h, w), device=self.device, generator=self.generator)
        else:
            images = train.batch(self.sampler.sample(ipc, self.generator).flatten())  # an index: a copy
        self.images = images.requires_grad_(True)
        check_lr(budget.image_lr(model), images.dtype, "image lr")
        if hasattr(budget, "lr_net"):  # DM's budget trains no network
            check_lr(budget.lr_net, images.dtype, "network lr")
        self.optimizer = torch.optim.SGD([self.images], lr=budget.image_lr(model), momentum=budget.momentum_img)
        self.iteration = 0
        self._loss_sum = torch.zeros((), device=self.device)  # device-side: no host sync per step
        self._loss_count = 0
        self._diverged = FirstNonFinite(self.device)

    def step(self) -> None:
        """One outer iteration: a fresh network, ``outer_loop`` image updates, inner training between."""
        with precision(self.budget.precision, self.device):
            self._step()

    def _step(self) -> None:
        b = self.budget
        net = build_network(self.model, self.train, self.net_generator, self.device)
        net_opt = torch.optim.SGD(net.parameters(), lr=b.lr_net)
        bn = networks.has_batchnorm(net)
        k = self.train.info.num_classes
        shape = self.images.shape[1:]
        for outer in range(self.outer_loop):
            if bn:
                idx = self.sampler.sample(b.bn_real_per_class, self.generator).flatten()
                freeze_batchnorm_on(net, self.train.batch(idx))
            real = self.train.batch(self.sampler.sample(b.batch_real, self.generator))
            loss = self.matching_loss(net, real, self.images.view(k, self.ipc, *shape), self.metric)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.record_loss(loss)
            if outer == self.outer_loop - 1:
                break
            train_epochs(net, self.images.detach().clone(), self.labels, net_opt,
                         self.inner_loop, b.batch_train, self.generator, self.inner_augment)
        self.iteration += 1

    def record_loss(self, loss: Tensor) -> None:
        """Count one step's loss (a 0-dim tensor, left on the device) towards ``mean_loss`` and the
        divergence check; a method's ``step`` calls it once per image update."""
        self._loss_sum += loss.detach()
        self._loss_count += 1
        self._diverged.update(loss, self.iteration)

    def mean_loss(self) -> float:
        """Mean matching loss per class and outer step since the last call (syncs with the device)."""
        value = float(self._loss_sum) / max(1, self._loss_count * self.train.info.num_classes)
        self._loss_sum.zero_()
        self._loss_count = 0
        return value

    def check_finite(self) -> None:
        """Raise ``NonFiniteLossError`` naming the first outer iteration whose matching loss was nan
        or infinite, or after which the images were (one host sync: call it where results are read)."""
        bad = self._diverged.read()
        lrs = f"image lr {self.budget.image_lr(self.model)}"
        if hasattr(self.budget, "lr_net"):  # DM's budget trains no network
            lrs += f", network lr {self.budget.lr_net}"
        if bad is not None:
            raise NonFiniteLossError(f"matching loss is {bad[1]} at outer iteration {bad[0]} of "
                                     f"{self.budget.iterations} ({lrs}): the condensation diverged")
        if self.iteration and not bool(torch.isfinite(self.images).all()):  # the last update's doing
            raise NonFiniteLossError(f"synthetic images are not finite after outer iteration {self.iteration - 1} "
                                     f"of {self.budget.iterations} ({lrs}): the condensation diverged")

    def synthetic(self) -> SyntheticSet:
        meta = {"model": self.model, "ipc": self.ipc, "metric": self.metric, "iteration": self.iteration,
                "method": self.method}
        if self.dsa_strategy is not None:
            meta["dsa_strategy"] = self.dsa_strategy
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), self.train.info.name, meta)

    def state_dict(self) -> dict:
        return {"images": self.images.detach().cpu(), "optimizer": self.optimizer.state_dict(),
                "iteration": self.iteration, "generator": self.generator.get_state(),
                "net_generator": self.net_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = state["iteration"]
        self.generator.set_state(state["generator"])
        self.net_generator.set_state(state["net_generator"])  # after: on the CPU they are one generator


ProgressFn = Callable[[int, Condensation], None]


def condense(train: ImageSet, model: str, ipc: int, metric: str = "ours", budget: Budget = Budget(),
             seed: int = 0, init: str = "noise", on_progress: ProgressFn | None = None,
             progress_at: Iterable[int] = (), fast: bool = True) -> SyntheticSet:
    """Run gradient matching for ``budget.iterations`` outer iterations and return the set.

    ``on_progress(iteration, condensation)`` is called before the iterations in ``progress_at``
    (and at the end, iteration == budget.iterations, if listed): the place to evaluate or report.
    """
    run = Condensation(train, model, ipc, metric, budget, seed, init, fast)
    return run_condensation(run, on_progress, progress_at)


def run_condensation(run: Condensation, on_progress: ProgressFn | None = None,
                     progress_at: Iterable[int] = ()) -> SyntheticSet:
    """Continue ``run`` (fresh or restored) to the end of its budget.

    A nan or infinite loss (matching, or an evaluation's in ``on_progress``) raises
    ``NonFiniteLossError`` naming the iteration, at the next progress point or the end.
    """
    points = set(progress_at)
    while True:
        at_point = on_progress is not None and run.iteration in points
        if at_point or run.iteration >= run.budget.iterations:
            run.check_finite()
        if at_point:
            try:
                on_progress(run.iteration, run)
            except NonFiniteLossError as err:
                raise NonFiniteLossError(f"at outer iteration {run.iteration}: {err}") from None
        if run.iteration >= run.budget.iterations:
            return run.synthetic()
        run.step()


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (e.g. a cell id and an experiment index)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
