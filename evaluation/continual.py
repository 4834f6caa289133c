"""Evaluating a class-incremental memory as ``CL_DM.py`` does: fresh networks with a head over every
class of the dataset, trained from scratch on the whole memory by the evaluation trainer (its
defaults are ``CL_DM.py``'s: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, 1000 epochs with
lr x 0.1 after half), augmented with DSA whatever method made the memory, and tested on the test
images of the classes seen so far only. The memory and the seen classes come from
``condense.continual``.
"""
from __future__ import annotations

from typing import Sequence

from condense import diffaug
from condense.continual import seen_test
from condense.data import ImageSet
from condense.synthetic import SyntheticSet

from .protocol import evaluate
from .train import EvalBudget

DSA_STRATEGY = diffaug.DEFAULT_STRATEGY  # CL_DM.py's, for every method: color_crop_cutout_flip_scale_rotate


def memory_augmentation(dataset: str, dsa_strategy: str = DSA_STRATEGY) -> str:
    """The trainer's strategy for a memory of ``dataset``: DSA with ``dsa_strategy`` (``auto``: the
    seed README's choice for the dataset), or none."""
    ops = diffaug.resolve(dsa_strategy, dataset)
    return "none" if ops == "none" else diffaug.EVAL_PREFIX + ops


def evaluate_memory(memory: SyntheticSet, test: ImageSet, seen: Sequence[int], model: str, seeds: Sequence[int],
                    budget: EvalBudget = EvalBudget(), dsa_strategy: str = DSA_STRATEGY, **options) -> list[float]:
    """One fresh ``model`` per seed (head over all of ``test``'s classes) trained on the whole
    ``memory`` and tested on the test images of the ``seen`` classes: their accuracies in percent.
    ``options``: ``protocol.evaluate``'s (on_result, vectorised, max_parallel, memory_share)."""
    return evaluate(memory, seen_test(test, seen), model, seeds, budget,
                    strategy=memory_augmentation(test.info.name, dsa_strategy), **options)
