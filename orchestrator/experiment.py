"""One experiment of a cell, without Ray: how its set is made and how it is evaluated.

The sweep's trials (``trainable``) and the seed's command line (``seed_cli``) both make and evaluate
sets here, so the same cell and experiment get the same seeds, budgets, initialisation and
augmentation whichever runs it:
- the experiment's seed is ``derive_seed(sweep.seed, cell_id, exp)``; the evaluation networks'
  derive from it, the evaluation model and the iteration (``eval_seeds``);
- a condensation starts with the method's budget, its default initialisation and the sweep's DSA
  strategy for the dataset (``start``); a coreset selects from the reference budget's pool with
  the experiment's reference network (``select``); the bound trains networks on the whole pool
  (``whole_accuracy``).
"""
from __future__ import annotations

from condense import methods
from condense.data import ImageSet
from condense.methods import CONDENSATION, METHODS
from condense.synthetic import Condensation, SyntheticSet, derive_seed
from evaluation import reference
from evaluation.protocol import evaluate

from .cells import Cell
from .config import Sweep


def start(cell: Cell, train: ImageSet, sweep: Sweep, exp: int, init: str | None = None) -> Condensation:
    """A fresh condensation run of the cell's experiment ``exp`` (``init``: the method's own by default)."""
    return methods.start(cell.method, train, cell.model, cell.ipc, sweep.budget_for(cell.method),
                         seed=cell.exp_seed(sweep.seed, exp), metric=cell.metric, init=init,
                         dsa_strategy=sweep.dsa_strategy_for(cell.dataset, cell.dsa_strategy))


def pool(cell: Cell, train: ImageSet, sweep: Sweep) -> ImageSet:
    """The training images the cell's method draws on (a coreset's and the bound's: the reference pool)."""
    return train if METHODS[cell.method].kind == CONDENSATION else sweep.reference_budget.pool(train)


def select(cell: Cell, train: ImageSet, sweep: Sweep, exp: int) -> SyntheticSet:
    """The coreset of the cell's experiment ``exp``, chosen with that experiment's reference network."""
    method = METHODS[cell.method]
    chosen_from = sweep.reference_budget.pool(train)
    guide = None
    if method.needs_reference:
        guide = reference.for_selection(chosen_from, cell.model, sweep.reference_budget, sweep.reference_seed(exp),
                                        sweep.cache_dir)
    synthetic = method.maker()(cell.method, chosen_from, cell.ipc, cell.exp_seed(sweep.seed, exp), guide)
    synthetic.meta.setdefault("model", cell.model)
    return synthetic


def eval_seeds(exp_seed: int, model: str, iteration: int, num_eval: int) -> list[int]:
    return [derive_seed(exp_seed, "eval", model, iteration, i) for i in range(num_eval)]


def evaluate_set(synthetic: SyntheticSet, test: ImageSet, sweep: Sweep, exp_seed: int, model: str, iteration: int,
                 memory_share: float | None = None) -> tuple[list[int], list[float]]:
    """Train ``sweep.num_eval`` fresh ``model`` networks on the set and test them: (seeds, accuracies)."""
    seeds = eval_seeds(exp_seed, model, iteration, sweep.num_eval)
    return seeds, evaluate(synthetic, test, model, seeds, sweep.eval_budget, memory_share=memory_share)


def whole_seed(sweep: Sweep, exp: int) -> int:
    """The bound's network of experiment ``exp``: seed + exp (experiment 0's is the coresets' reference)."""
    return sweep.seed + exp


def whole_accuracy(train: ImageSet, test: ImageSet, sweep: Sweep, exp: int, model: str) -> float:
    """The whole-dataset bound of experiment ``exp``: one ``model`` trained on the whole pool, tested."""
    return reference.whole(train, test, [whole_seed(sweep, exp)], sweep.reference_budget, model=model,
                           cache_dir=sweep.cache_dir, eval_budget=sweep.eval_budget)[0]
