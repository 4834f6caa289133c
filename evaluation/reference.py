"""The reference network of the coreset baselines and the whole-dataset bound (docs/protocol.md,
"Coreset baselines and the whole-dataset bound").

One network trained on the whole training set serves three purposes: its
embedding is the feature space of Herding and K-Center, the same training run counts Forgetting's
correct -> incorrect transitions, and its test accuracy is the whole-dataset bound. Training it is
by far the most expensive part of a baseline, so it is cached on disk per dataset, model, seed,
budget and training data: the 3 ipcs and 5 experiments of a Table 1 row reuse one network.

It is trained by the evaluation trainer (``evaluation.train``: SGD lr 0.01, momentum 0.9, weight
decay 5e-4, batch 256, DC's augmentation for the dataset) on its own plan: ``epochs`` epochs, lr x 0.1
with a fresh optimiser at half. The paper gives no epoch count, so ``epochs`` is a setting reported
beside every number it produces.

A reduced run (``max_train``) trains it on a subset of the training images, the same for the
coresets that select by it: by default a per-class subset drawn with the network's own seed
(``stratified``), so a class-sorted training set keeps every class; ``first`` keeps the first N
images, as before (for numbers pinned across versions).
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from condense import environment
from condense.baselines import SelectionReference
from condense.data import ImageSet
from condense.divergence import first_nonfinite
from condense.errors import ConfigError, NonFiniteLossError, unknown
from condense.files import write_torch
from condense.methods import WHOLE
from condense.networks import build_network
from condense.synthetic import derive_seed, seeded_generator

from .augmentation import eval_augmentation
from .train import EvalBudget, test_accuracy, train_network

log = logging.getLogger(__name__)

# Part of every cache key: bumped when what a cached file holds changes meaning (2: forgetting
# scores count a never-learned image as most forgotten), so no stale file is read.
CACHE_FORMAT = 2

STRATIFIED, FIRST = "stratified", "first"
SUBSETS = (STRATIFIED, FIRST)  # ReferenceBudget.subset: which max_train images a reduced run uses


@dataclass(frozen=True)
class ReferenceBudget:
    """How the reference network is trained; defaults are the evaluation trainer's."""
    epochs: int = 50  # our choice: the sources give none, so every number reports it
    batch_train: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True  # DC's evaluation augmentation for the dataset, as the eval trainer
    max_train: int | None = None  # use only N training images (smoke/reduced runs only)
    subset: str = STRATIFIED  # which N: SUBSETS

    @classmethod
    def smoke(cls, **overrides) -> "ReferenceBudget":
        """Seconds on a CPU: 5 epochs on 1000 images (100 per MNIST class)."""
        return dataclasses.replace(cls(epochs=5, max_train=1000), **overrides)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_train < 1 or (self.max_train is not None and self.max_train < 1):
            raise ConfigError(f"reference budget needs epochs, batch_train and max_train >= 1, got {self}")
        if self.subset not in SUBSETS:
            raise unknown("subset", self.subset, SUBSETS)

    def record(self) -> dict:
        """The budget as plain data (cache keys, sweep.json, the results' metadata); ``subset`` only
        where it picks other images than versions before it did (the first N), so their caches,
        records and resumable runs stay valid."""
        plain = dataclasses.asdict(self)
        if self.max_train is None or self.subset == FIRST:
            del plain["subset"]
        return plain

    def pool(self, train: ImageSet, seed: int) -> ImageSet:
        """The training images the reference network of ``seed`` sees, and the coresets that select
        by it select from: all of them, or ``max_train`` of them (``subset``: per class, drawn with
        ``seed``; or the first ones)."""
        if self.max_train is None or self.max_train >= len(train):
            return train
        if self.subset == FIRST:
            idx = torch.arange(self.max_train, device=train.labels.device)
        else:
            idx = stratified(train.labels, self.max_train, seed).to(train.labels.device)
        return ImageSet(train.images[idx], train.labels[idx], train.info)


def stratified(labels: Tensor, n: int, seed: int) -> Tensor:
    """Indices of ``n`` of ``labels`` (n <= len), in their order: each class present an equal share
    (floor or ceil of n / classes; which classes get the ceil drawn with ``seed``), a class with
    fewer images all of them and the others the rest; the images of a class drawn with ``seed``."""
    g = torch.Generator().manual_seed(derive_seed(seed, "reference pool"))
    labels = labels.cpu()
    counts = torch.bincount(labels).tolist()
    classes = [c for c, k in enumerate(counts) if k]
    quota = dict.fromkeys(classes, 0)
    left, open_ = n, classes
    while open_ and left >= len(open_):  # equal shares; a class that runs out leaves the rest to others
        share = left // len(open_)
        for c in open_:
            take = min(share, counts[c] - quota[c])
            quota[c] += take
            left -= take
        open_ = [c for c in open_ if quota[c] < counts[c]]
    for k in torch.randperm(len(open_), generator=g)[:left].tolist():  # fewer left than classes: one each
        quota[open_[k]] += 1
    chosen = []
    for c in classes:
        own = torch.nonzero(labels == c, as_tuple=False).flatten()
        chosen.append(own[torch.randperm(len(own), generator=g)[:quota[c]]])
    return torch.cat(chosen).sort().values


class ForgettingCounter:
    """Counts, per training image, the presentations where it went from correct to incorrect.

    As Toneva et al. (2019): an image starts "not yet correct", so its first presentations can only
    learn it; a forgetting event is a presentation misclassified right after one classified correctly.
    """

    def __init__(self, n: int, device):
        self.counts = torch.zeros(n, dtype=torch.long, device=device)
        self.last_correct = torch.zeros(n, dtype=torch.bool, device=device)
        self.learned = torch.zeros(n, dtype=torch.bool, device=device)  # classified correctly at least once
        self.presented = torch.zeros(n, dtype=torch.long, device=device)

    def update(self, idx: Tensor, correct: Tensor) -> None:
        """``idx``: distinct image indices of one batch; ``correct``: their predictions were right."""
        self.counts[idx] += (self.last_correct[idx] & ~correct).long()
        self.last_correct[idx] = correct
        self.learned[idx] |= correct
        self.presented[idx] += 1

    def scores(self) -> Tensor:
        """What Forgetting ranks by, as the authors' code (order_examples_by_forgetting.py): the
        forgetting events, or, for an image never learned, as many as its presentations, the most
        there can be: unlearnable images count as the most forgettable, not the least."""
        return torch.where(self.learned, self.counts, self.presented)


@dataclass
class Reference:
    """A trained reference network (weights) and the forgetting scores of its training run
    (:meth:`ForgettingCounter.scores`)."""
    model: str
    state: dict
    forgetting: Tensor
    epochs: int

    def network(self, train: ImageSet, device) -> nn.Module:
        net = build_network(self.model, train, seeded_generator(0, device), device)
        net.load_state_dict(self.state)
        return net.eval()


def train_reference(train: ImageSet, model: str, budget: ReferenceBudget, seed: int) -> Reference:
    """Train ``model`` on all of ``train`` with the evaluation trainer, counting forgetting events."""
    device = train.device
    g = seeded_generator(seed, device)
    net = build_network(model, train, g, device)
    # the augmentation of the whole bound's networks, which these are: DC's for the dataset and model
    strategy = eval_augmentation(WHOLE, train.info.name, model) if budget.augment else "none"
    counter = ForgettingCounter(len(train), device)

    def count(idx: Tensor, logits: Tensor) -> None:
        counter.update(idx, logits.argmax(1) == train.labels[idx])

    def report(epoch: int) -> None:
        if log.isEnabledFor(logging.INFO):  # one host sync per epoch, only when someone listens
            acc = 100.0 * float(counter.last_correct.float().mean())
            log.info("reference %s seed %d: epoch %d/%d, train accuracy %.2f %%", model, seed, epoch + 1,
                     budget.epochs, acc)

    losses = train_network(net, train, train.labels, budget, budget.epochs, strategy, g,
                           plan=(budget.epochs, budget.epochs // 2), on_batch=count, on_epoch=report)
    bad = first_nonfinite(losses)
    if bad is not None:  # never cached: a diverged network is not a reference
        steps_per_epoch = -(-len(train) // budget.batch_train)
        raise NonFiniteLossError(f"reference {model} training loss is {bad[1]} at epoch "
                                 f"{bad[0] // steps_per_epoch + 1} of {budget.epochs} (lr {budget.lr}): "
                                 "the network diverged")
    if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
        raise NonFiniteLossError(f"reference {model} weights are not finite after {budget.epochs} epochs "
                                 f"(lr {budget.lr}): the network diverged")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return Reference(model, state, counter.scores().cpu(), budget.epochs)


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Explicit ``cache_dir`` > ``$DC_CACHE`` > ``$XDG_CACHE_HOME/condense`` (``~/.cache/condense``)."""
    if cache_dir is None or str(cache_dir) == "":
        return environment.folder("DC_CACHE") or (environment.folder("XDG_CACHE_HOME") or
                                                  environment.path_value("~/.cache", "the home folder")) / "condense"
    return environment.path_value(str(cache_dir), "cache folder")


def _cache_path(train: ImageSet, model: str, budget: ReferenceBudget, seed: int, cache_dir: Path) -> Path:
    """One file per (dataset, model, seed, budget, exact training data): a changed copy of the data
    or any budget field gives a new file instead of a stale network."""
    h = hashlib.sha256(repr((CACHE_FORMAT, model, seed, budget.record())).encode())
    h.update(train.images.detach().cpu().contiguous().numpy().tobytes())
    h.update(train.labels.cpu().numpy().tobytes())
    return cache_dir / "reference" / f"{train.info.name}-{model}-seed{seed}-e{budget.epochs}-{h.hexdigest()[:16]}.pt"


def cache_file(train: ImageSet, model: str, budget: ReferenceBudget, seed: int,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``reference`` keeps the network for these arguments."""
    return _cache_path(budget.pool(train, seed), model, budget, seed, resolve_cache_dir(cache_dir))


def reference(train: ImageSet, model: str = "ConvNet", budget: ReferenceBudget = ReferenceBudget(),
              seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Reference:
    """The reference network for ``budget.pool(train, seed)``: from the cache, else trained and cached."""
    pool = budget.pool(train, seed)
    path = _cache_path(pool, model, budget, seed, resolve_cache_dir(cache_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Concurrent callers (a sweep's coreset cells start together) wait for the first one's network
    # instead of each training their own; the lock is released when the file closes.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            cached = _read_cache(path)
            if cached is not None:
                return cached
        log.info("training reference %s on %d %s images for %d epochs (cache: %s)", model, len(pool),
                 pool.info.name, budget.epochs, path)
        ref = train_reference(pool, model, budget, seed)
        write_torch(path, dataclasses.asdict(ref))  # renamed when whole: no reader sees half a file
    return ref


def _read_cache(path: Path) -> Reference | None:
    """A cached reference network, or None (with a warning) for a file that is cut off or not one
    of ours: it is only a cache, so the network is trained again and the file replaced."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        return Reference(d["model"], d["state"], d["forgetting"], d["epochs"])
    except Exception as err:  # torch.load's errors for a damaged file have no common type
        log.warning("reference cache %s is unreadable (%s): training the network again", path,
                    " ".join(str(err).split())[:200] or type(err).__name__)
        return None


def for_selection(pool: ImageSet, model: str, budget: ReferenceBudget, seed: int,
                  cache_dir: str | os.PathLike | None = None) -> SelectionReference:
    """What a coreset selects by (``condense.baselines``): the reference network of ``pool``
    (``budget.pool(train, seed)``), from the cache or trained, on the pool's device."""
    ref = reference(pool, model, budget, seed, cache_dir)
    return SelectionReference(ref.network(pool, pool.device), ref.forgetting.to(pool.device),
                              {"model": model, "reference_seed": seed, "reference_epochs": ref.epochs,
                               "reference_images": len(pool)})


def whole(train: ImageSet, test: ImageSet, seeds: Sequence[int], budget: ReferenceBudget = ReferenceBudget(),
          model: str = "ConvNet", cache_dir: str | os.PathLike | None = None,
          eval_budget: EvalBudget = EvalBudget()) -> list[float]:
    """The whole-dataset bound: test accuracy (%) of one reference network per seed, each trained on
    all of ``budget.pool(train, seed)`` for ``budget.epochs`` epochs (cached, shared with the baselines) and
    tested as an evaluation network (``eval_budget``'s test images)."""
    device = test.device
    return [test_accuracy(reference(train, model, budget, s, cache_dir).network(train, device), test, eval_budget)
            for s in seeds]
