"""The augmentation policy: how a set is augmented while an evaluation network trains on it, and so
how long it trains (``EvalBudget.epochs_for``: 300 epochs without augmentation, 1000 with).

One function decides it for every caller (evaluation, the reference networks, the dry run, the cost
model); sets carry only the facts it needs (their method and DSA strategy, in ``meta``).
"""
from __future__ import annotations

from condense import diffaug
from condense.augment import strategy_for
from condense.methods import DEFAULT, METHODS


def eval_augmentation(method: str, dataset: str, eval_model: str, dsa_strategy: str | None = None) -> str:
    """The trainer's strategy name for a set of ``method`` on ``dataset`` trained into ``eval_model``.

    A method that learns with DSA (DSA, DM) is evaluated with DSA's augmentation, its ``dsa_strategy``
    (``auto`` resolved per dataset; a set that names none was made with main.py's default), as the
    original does; every other method, an unknown one included, gets DC's choice for the dataset and
    evaluation model (``condense.augment.strategy_for``), as does a DSA strategy of ``none``.
    """
    known = METHODS.get(method)
    if known is not None and known.uses_dsa:
        ops = diffaug.resolve(dsa_strategy or diffaug.DEFAULT_STRATEGY, dataset)
        if ops != "none":
            return diffaug.EVAL_PREFIX + ops
    return strategy_for(dataset, eval_model)


def for_set(meta: dict, dataset: str, eval_model: str) -> str:
    """``eval_augmentation`` from what a set's ``meta`` says of it (a set without a method: DC's rule)."""
    return eval_augmentation(meta.get("method", DEFAULT), dataset, eval_model, meta.get("dsa_strategy"))


AUGMENT = ("auto", "none", "dsa")  # python -m evaluation --augment


def for_choice(choice: str, meta: dict, dataset: str, eval_model: str) -> str:
    """``--augment``'s strategy: ``auto`` follows the set's method where its file says it, else DC's
    rule (``for_set``); ``none`` trains without augmentation (300 epochs by default); ``dsa`` with DSA's
    augmentation, the set's own strategy if it names one, else main.py's default."""
    if choice == "auto":
        return for_set(meta, dataset, eval_model)
    if choice == "none":
        return "none"
    ops = diffaug.resolve(meta.get("dsa_strategy") or diffaug.DEFAULT_STRATEGY, dataset)
    return "none" if ops == "none" else diffaug.EVAL_PREFIX + ops
