"""Condensation runs: the base every method's run shares (``base``: images, generators, resumable
state, ``run_condensation``) and one module per method: ``dc`` (gradient matching and its budget),
``dsa`` (DC with siamese augmentation), ``dm`` (distribution matching and its budget)."""
from .base import INITS, ClassSampler, Condensation, ProgressFn, run_condensation
from .dc import LOOPS, Budget, DCCondensation, condense
from .dm import DMBudget, DMCondensation, distribution_matching_loss
from .dsa import DSACondensation

__all__ = ["INITS", "LOOPS", "Budget", "ClassSampler", "Condensation", "DCCondensation", "DMBudget",
           "DMCondensation", "DSACondensation", "ProgressFn", "condense", "distribution_matching_loss",
           "run_condensation"]
