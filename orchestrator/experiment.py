"""One experiment of a cell, without Ray: how its set is made and how it is evaluated.

The sweep's trials (``trainable``) and the seed's command line (``seed_cli``) both make and evaluate
sets here, so the same cell and experiment get the same seeds, budgets, initialisation and
augmentation whichever runs it:
- the experiment's seed is ``derive_seed(sweep.seed, cell_id, exp)``; the evaluation networks'
  derive from it, the evaluation model and the iteration (``eval_seeds``);
- a condensation starts with the method's budget, its default initialisation and the sweep's DSA
  strategy for the dataset (``start``); a coreset selects from the reference budget's pool with
  the experiment's reference network (``select``; a reduced run's pool is drawn with that
  network's seed, ``pool``); the bound trains networks on the whole pool
  (``whole_accuracy``); an external set (``set:<name>``) is the experiment's set of the files the
  sweep names for the cell (``external``), checked before the run starts (``check_external``).
"""
from __future__ import annotations

import glob
from pathlib import Path

from condense import methods
from condense.condensation import Condensation
from condense.data import ImageSet, info
from condense.errors import ConfigError
from condense.methods import CONDENSATION
from condense.synthetic import SyntheticSet, derive_seed
from evaluation import reference, set_files
from evaluation.protocol import evaluate

from .cells import Cell
from .config import Sweep


def start(cell: Cell, train: ImageSet, sweep: Sweep, exp: int, init: str | None = None) -> Condensation:
    """A fresh condensation run of the cell's experiment ``exp`` (``init``: the method's own by default)."""
    return methods.start(cell.method, train, cell.model, cell.ipc, sweep.budget_for(cell.method),
                         seed=cell.exp_seed(sweep.seed, exp), metric=cell.metric, init=init,
                         dsa_strategy=sweep.dsa_strategy_for(cell.dataset, cell.dsa_strategy))


def pool(cell: Cell, train: ImageSet, sweep: Sweep, exp: int = 0) -> ImageSet:
    """The training images the cell's method draws on in experiment ``exp``: a coreset's and the
    bound's are those of the experiment's reference network. A reduced run's subset is drawn with
    that network's seed, so a network and the coresets selected by it see the same images."""
    if methods.get(cell.method).kind == CONDENSATION:
        return train
    seed = sweep.whole_seed(exp) if cell.bound else sweep.reference_seed(exp)
    return sweep.reference_budget.pool(train, seed)


def train_images(cell: Cell, train: ImageSet, sweep: Sweep) -> int | None:
    """How many training images the cell's method drew on (unknown for a set made elsewhere; the
    same number in every experiment)."""
    return None if cell.external else len(pool(cell, train, sweep))


def select(cell: Cell, train: ImageSet, sweep: Sweep, exp: int) -> SyntheticSet:
    """The coreset of the cell's experiment ``exp``, chosen with that experiment's reference network."""
    method = methods.get(cell.method)
    chosen_from = pool(cell, train, sweep, exp)
    guide = None
    if method.needs_reference:
        guide = reference.for_selection(chosen_from, cell.model, sweep.reference_budget, sweep.reference_seed(exp),
                                        sweep.cache_dir)
    synthetic = method.maker()(cell.method, chosen_from, cell.ipc, cell.exp_seed(sweep.seed, exp), guide)
    synthetic.meta.setdefault("model", cell.model)
    return synthetic


def external_sets(cell: Cell, sweep: Sweep) -> list[SyntheticSet]:
    """Every set the sweep's files hold for the external cell, in the order of its list (a glob's
    matches sorted, a res_ file's experiments in turn), each checked against the cell's dataset and ipc."""
    name = cell.method
    files = sweep.set_files(name, cell.dataset, cell.ipc)
    # spec expanded the globs that matched: one left is a pattern that matched nothing
    missing = [f for f in files if glob.has_magic(f) or not Path(f).is_file()]
    if missing:
        raise ConfigError(f"{name}: {cell.dataset}-ipc{cell.ipc}: no such file: {', '.join(missing)}")
    sets = [s for f in files for s in set_files.read(f, cell.dataset)]
    classes = info(cell.dataset).num_classes
    for s in sets:
        if len(s) != cell.ipc * classes:
            raise ConfigError(f"{s.meta['source']}: {len(s)} images, but {name} is listed under "
                              f"{cell.dataset}-ipc{cell.ipc}: {cell.ipc * classes} ({cell.ipc} per class)")
    return sets


def external(cell: Cell, sweep: Sweep, exp: int) -> SyntheticSet:
    """Experiment ``exp``'s set of an external cell: the ``exp``-th set of its files."""
    synthetic = external_sets(cell, sweep)[exp]
    synthetic.meta.setdefault("model", cell.model)
    return synthetic


def check_external(cells: list[Cell], sweep: Sweep) -> None:
    """Before the run: every external cell's files are there, readable and valid sets of its dataset
    and ipc, enough of them for ``num_exp`` experiments (the first ``num_exp`` are evaluated)."""
    for cell in cells:
        if not cell.external:
            continue
        found = len(external_sets(cell, sweep))
        if found < sweep.num_exp:
            raise ConfigError(f"{cell.method}: {cell.dataset}-ipc{cell.ipc}: its files hold {found} set(s), but "
                              f"num_exp is {sweep.num_exp}: give one set per experiment")


def eval_seeds(exp_seed: int, model: str, iteration: int, num_eval: int) -> list[int]:
    return [derive_seed(exp_seed, "eval", model, iteration, i) for i in range(num_eval)]


def evaluate_set(synthetic: SyntheticSet, test: ImageSet, sweep: Sweep, exp_seed: int, model: str, iteration: int,
                 memory_share: float | None = None, strategy: str | None = None) -> tuple[list[int], list[float]]:
    """Train ``sweep.num_eval`` fresh ``model`` networks on the set and test them: (seeds, accuracies).
    ``strategy``: the augmentation (default: the policy's for the set, ``evaluation.augmentation``)."""
    seeds = eval_seeds(exp_seed, model, iteration, sweep.num_eval)
    return seeds, evaluate(synthetic, test, model, seeds, sweep.eval_budget, strategy=strategy,
                           memory_share=memory_share)


def whole_accuracy(train: ImageSet, test: ImageSet, sweep: Sweep, exp: int, model: str) -> float:
    """The whole-dataset bound of experiment ``exp``: one ``model`` trained on the whole pool, tested."""
    return reference.whole(train, test, [sweep.whole_seed(exp)], sweep.reference_budget, model=model,
                           cache_dir=sweep.cache_dir, eval_budget=sweep.eval_budget)[0]
