"""Coreset baselines of Table 1 (docs/protocol.md, "Coreset baselines and the whole-dataset bound").

``select(method, pool, ipc, seed, reference)`` picks ``ipc`` real images per class of ``pool`` and
returns a :class:`SyntheticSet`, so evaluation, figures and results treat a coreset like a condensed set:
- ``random``: uniform per class, without replacement;
- ``herding``: greedy; each pick keeps the running mean of the selected features closest to the class
  mean of features (Welling 2009, as in iCaRL and the DC authors' later code);
- ``kcenter``: greedy farthest point; starts from the image nearest the class mean (deterministic,
  common practice), then repeatedly takes the image farthest from everything selected;
- ``forgetting``: the images with the most correct -> incorrect transitions while the reference
  network trained (Toneva et al. 2019), an image never classified correctly counting as the most
  forgotten, as in the authors' code; ties broken at random with ``seed``.
Features are the penultimate-layer embedding of a reference network trained on the pool, which the
caller gives (``evaluation.reference`` trains and caches it with the evaluation trainer); herding and
k-center are deterministic given it, so callers give each experiment its own reference network for
experiments that differ as the paper's std implies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

from .data import ImageSet
from .errors import ConfigError, unknown
from .synthetic import SyntheticSet, seeded_generator


@dataclass
class SelectionReference:
    """What herding, k-center and forgetting select by: a network trained on the pool (in eval mode,
    on the pool's device), its forgetting scores per pool image, and what to record about it."""
    net: nn.Module
    forgetting: Tensor
    meta: dict = field(default_factory=dict)


@torch.no_grad()
def embed(net: nn.Module, images: Tensor, batch: int = 1024) -> Tensor:
    """Penultimate-layer features of ``images`` (N, D), in inference mode."""
    net.eval()
    return torch.cat([net.embed(images[s:s + batch]) for s in range(0, images.shape[0], batch)])


def herding(features: Tensor, k: int) -> Tensor:
    """Indices of ``k`` rows of ``features`` (N, D): row t minimises
    || class mean - mean(selected rows + row t) ||, without replacement."""
    mu = features.mean(0)
    total = torch.zeros_like(mu)
    taken = torch.zeros(features.shape[0], dtype=torch.bool, device=features.device)
    picks = []
    for t in range(1, k + 1):
        # || mu - (total + f) / t || is smallest where || t * mu - total - f || is
        dist = (t * mu - total - features).pow(2).sum(1).masked_fill(taken, float("inf"))
        i = dist.argmin(0, keepdim=True)  # a 1-element index tensor: no host sync
        total = total + features[i].squeeze(0)
        taken[i] = True
        picks.append(i)
    return torch.cat(picks)


def k_center(features: Tensor, k: int) -> Tensor:
    """Indices of ``k`` rows of ``features`` (N, D): the row nearest the mean, then greedily the row
    farthest (Euclidean) from its nearest selected row."""
    i = (features - features.mean(0)).pow(2).sum(1).argmin(0, keepdim=True)
    nearest = torch.full(features.shape[:1], float("inf"), device=features.device)  # to the selected set
    picks = []
    for _ in range(k):
        picks.append(i)
        nearest = torch.minimum(nearest, (features - features[i]).pow(2).sum(1))
        nearest[i] = -1.0  # a selected row is never farthest, even among duplicates
        i = nearest.argmax(0, keepdim=True)
    return torch.cat(picks)


def most_forgotten(counts: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Indices of the ``k`` largest ``counts``; equal counts are ordered at random."""
    shuffle = torch.randperm(counts.shape[0], device=counts.device, generator=generator)
    order = counts[shuffle].sort(descending=True, stable=True).indices  # stable: ties keep the random order
    return shuffle[order[:k]]


@dataclass
class _Context:
    """What a rule may use besides one class's pool indices."""
    method: str
    pool: ImageSet
    generator: torch.Generator
    given: SelectionReference | None = None

    @property
    def reference(self) -> SelectionReference:
        """The reference network, for a rule that selects by one."""
        if self.given is None:
            raise ValueError(f"{self.method} selects by a reference network; none was given")
        return self.given


# Each rule picks ``ipc`` positions within ``idx``, one class's indices into the pool.
RULES: dict[str, Callable[[Tensor, int, _Context], Tensor]] = {
    "random": lambda idx, ipc, ctx: torch.randperm(len(idx), device=idx.device, generator=ctx.generator)[:ipc],
    "herding": lambda idx, ipc, ctx: herding(embed(ctx.reference.net, ctx.pool.batch(idx)), ipc),
    "kcenter": lambda idx, ipc, ctx: k_center(embed(ctx.reference.net, ctx.pool.batch(idx)), ipc),
    "forgetting": lambda idx, ipc, ctx: most_forgotten(ctx.reference.forgetting[idx], ipc, ctx.generator),
}


def select(method: str, pool: ImageSet, ipc: int, seed: int,
           reference: SelectionReference | None = None) -> SyntheticSet:
    """``ipc`` real images per class of ``pool`` chosen by ``method``.

    ``seed`` drives the random draws (random, forgetting's ties); herding, kcenter and forgetting
    select by ``reference`` (the caller gives it where the method's record says it needs one), whose
    ``meta`` the set's records. ``meta["indices"]`` are the chosen rows of ``pool``, class by class.
    """
    if method not in RULES:
        raise unknown("method", method, tuple(RULES))
    if ipc < 1:
        raise ConfigError(f"ipc must be >= 1, got {ipc}")
    per_class = pool.indices_per_class()
    short = [c for c, idx in enumerate(per_class) if len(idx) < ipc]
    if short:
        raise ConfigError(f"{method} needs {ipc} images per class, but classes {short} of the "
                          f"{len(pool)} {pool.info.name} training images have fewer")
    device = pool.device
    ctx = _Context(method, pool, seeded_generator(seed, device), reference)
    chosen = torch.cat([idx[RULES[method](idx, ipc, ctx)] for idx in per_class])
    meta = {"method": method, "ipc": ipc, "seed": seed, "indices": chosen.tolist()}
    if reference is not None:
        meta.update(reference.meta)
    return SyntheticSet(pool.batch(chosen), pool.labels[chosen], pool.info.name, meta)
