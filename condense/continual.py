"""Class-incremental learning with condensed memories, the set logic (the original's ``CL_DM.py``):
a dataset's classes in a seeded order, split into steps; each step's training images as a dataset of
their own, from which any method of the table makes that step's set; the memory after step t, the
union of the sets of steps 1..t; the test images of the classes seen so far.

Steps are numbered from 1, as the results number them. ``evaluation.continual`` trains networks on a
memory and tests them on the seen classes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .data import ImageSet
from .errors import ConfigError
from .synthetic import SyntheticSet


def class_order(seed: int, num_classes: int) -> list[int]:
    """The class order of ``seed``: the permutation ``np.random.seed(seed); np.random.permutation(C)``
    gives (CL_DM.py's orders), drawn from a generator of its own (the same Mersenne Twister stream)
    so that numpy's global random state is left as it was."""
    return np.random.RandomState(seed).permutation(num_classes).tolist()


@dataclass(frozen=True)
class ClassSteps:
    """``num_classes`` classes in the order of ``seed``, learnt ``steps`` steps of equally many classes."""
    num_classes: int
    steps: int
    seed: int

    def __post_init__(self) -> None:
        if self.steps < 1 or self.num_classes % self.steps:
            raise ConfigError(f"steps {self.steps}: the {self.num_classes} classes must split into equal steps "
                              f"(a divisor of {self.num_classes})")

    @property
    def order(self) -> list[int]:
        return class_order(self.seed, self.num_classes)

    @property
    def per_step(self) -> int:
        return self.num_classes // self.steps

    def classes(self, step: int) -> list[int]:
        """The classes step ``step`` (1..steps) adds, in the order's order."""
        self._check(step)
        return self.order[(step - 1) * self.per_step: step * self.per_step]

    def seen(self, step: int) -> list[int]:
        """Every class of steps 1..``step``."""
        self._check(step)
        return self.order[: step * self.per_step]

    def _check(self, step: int) -> None:
        if not 1 <= step <= self.steps:
            raise ValueError(f"step {step}: steps are numbered 1..{self.steps}")


def step_images(train: ImageSet, classes: Sequence[int]) -> ImageSet:
    """The training images of ``classes`` alone, as a dataset of ``len(classes)`` classes in which
    class ``classes[i]`` is label i (images in their order in ``train``).

    Why relabelled: every method makes ``ipc`` images for each class 0..num_classes-1 of the set it
    is given (a condensation's sampler and labels, a coreset's per-class loop, a plugin's maker), and
    a class without images is an error to them. As a dataset of its own classes a step's set is made
    by any method unchanged, with networks whose head covers that step's classes alone; ``to_global``
    gives its labels back. The dataset keeps its name, so per-dataset choices (DSA's ``auto``) hold."""
    classes = list(classes)
    lookup = torch.full((train.info.num_classes,), -1, dtype=torch.long, device=train.labels.device)
    lookup[classes] = torch.arange(len(classes), device=train.labels.device)
    idx = torch.nonzero(lookup[train.labels] >= 0, as_tuple=False).flatten()
    names = tuple(train.info.class_names[c] for c in classes)
    step_info = dataclasses.replace(train.info, num_classes=len(classes), class_names=names)
    return ImageSet(train.images[idx], lookup[train.labels[idx]], step_info)


def to_global(step_set: SyntheticSet, classes: Sequence[int]) -> SyntheticSet:
    """A set made from ``step_images(train, classes)``, with its labels back in the dataset's classes."""
    mapping = torch.tensor(list(classes), dtype=torch.long, device=step_set.labels.device)
    return dataclasses.replace(step_set, labels=mapping[step_set.labels],
                               meta={**step_set.meta, "classes": list(classes)})


def memory(step_sets: Sequence[SyntheticSet]) -> SyntheticSet:
    """The memory after the last of ``step_sets`` (steps 1..t, dataset labels): their union, and
    nothing else (CL_DM.py's learner keeps no other image)."""
    if not step_sets:
        raise ValueError("a memory needs the set of step 1 at least")
    first = step_sets[0]
    return SyntheticSet(torch.cat([s.images for s in step_sets]), torch.cat([s.labels for s in step_sets]),
                        first.dataset, {"method": first.meta.get("method"), "steps": len(step_sets)})


def seen_test(test: ImageSet, seen: Sequence[int]) -> ImageSet:
    """The test images of the ``seen`` classes only, with the dataset's labels and classes (a network
    tested on them has a head over every class)."""
    wanted = torch.tensor(list(seen), dtype=torch.long, device=test.labels.device)
    idx = torch.nonzero(torch.isin(test.labels, wanted), as_tuple=False).flatten()
    return ImageSet(test.images[idx], test.labels[idx], test.info)
