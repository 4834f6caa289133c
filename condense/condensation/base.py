"""What every condensation run shares: its synthetic images and their optimiser, the generators it
draws from, real batches per class, the loss bookkeeping and divergence check, its resumable state,
and the loop that steps it to the end of its budget. A method says what one step does (``step``)
and which learning rates it uses (``learning_rates``)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Iterable

import torch
from torch import Tensor

from .. import networks
from ..data import ImageSet
from ..divergence import FirstNonFinite, check_lr
from ..errors import ConfigError, NonFiniteLossError, unknown
from ..synthetic import SyntheticSet, derive_seed, seeded_generator

INITS = ("noise", "real")


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


class Condensation(ABC):
    """One condensation run: ``ipc`` synthetic images per class of ``train``, started from noise or
    real images (``init``), updated by ``step()`` (one outer iteration) until ``budget.iterations``.

    Its ``state_dict`` holds everything needed to resume bit-for-bit: images, image optimiser,
    iteration and the generators' states. ``budget`` is the method's own (it has ``iterations``,
    ``momentum_img`` and ``image_lr(model)``).
    """
    method: ClassVar[str]
    dsa_strategy: str | None = None  # DSA and DM: their augmentation, which evaluation follows too
    metric = "ours"  # the gradient distance, recorded with the set; a method that matches gradients sets its own

    def __init__(self, train: ImageSet, model: str, ipc: int, budget, seed: int = 0, init: str = "noise"):
        if ipc < 1:
            raise ConfigError(f"ipc must be >= 1, got {ipc}")
        if init not in INITS:
            raise unknown("init", init, INITS)
        if not networks.is_model(model):
            raise unknown("model", model, networks.list_models())
        self.train, self.model, self.ipc, self.budget = train, model, ipc, budget
        self.device = train.device
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
        for what, lr in self.learning_rates().items():
            check_lr(lr, images.dtype, what)
        self.optimizer = torch.optim.SGD([self.images], lr=budget.image_lr(model), momentum=budget.momentum_img)
        self.iteration = 0
        self._loss_sum = torch.zeros((), device=self.device)  # device-side: no host sync per step
        self._loss_count = 0
        self._diverged = FirstNonFinite(self.device)

    @abstractmethod
    def step(self) -> None:
        """One outer iteration of the method; it ends with ``self.iteration += 1``."""

    def learning_rates(self) -> dict[str, float]:
        """The learning rates the run uses, by what they move (checked at the start, named when it diverges)."""
        return {"image lr": self.budget.image_lr(self.model)}

    def update_images(self, loss: Tensor) -> None:
        """One image update down ``loss``, counted by ``record_loss``."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.record_loss(loss)

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
        lrs = ", ".join(f"{what} {lr}" for what, lr in self.learning_rates().items())
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


def run_condensation(run: Condensation, on_progress: ProgressFn | None = None,
                     progress_at: Iterable[int] = ()) -> SyntheticSet:
    """Continue ``run`` (fresh or restored) to the end of its budget.

    ``on_progress(iteration, run)`` is called before the iterations in ``progress_at`` (and at the
    end, iteration == budget.iterations, if listed): the place to evaluate or report. A nan or
    infinite loss (matching, or an evaluation's in ``on_progress``) raises ``NonFiniteLossError``
    naming the iteration, at the next progress point or the end.
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
