"""One experiment of an architecture search's cell (docs/nas.md): the cell's architecture, freshly
initialised, trained on its proxy with the evaluation trainer and the search's budget
(``cells.search_budget``) and tested on the real test set. The proxy is a method's set (made before
the search: ``proxies``), the whole training set for the early-stopping epochs, or the whole
training set (the ground truth; in a reduced run, the reference budget's pool, as the bound's).

The networks' seeds derive from the dataset, the architecture and the experiment alone, so an
architecture starts from the same weights on every proxy: the proxies are compared pairwise.
"""
from __future__ import annotations

import io
import time

from condense.errors import ConfigError
from condense.synthetic import SyntheticSet, derive_seed
from evaluation.augmentation import for_set
from evaluation.protocol import evaluate

from ..sweep.cells import Cell, proxy_cell, search_budget
from ..sweep.config import Sweep
from . import experiment


def file_name(proxy: Cell, exp: int) -> str:
    """The file of experiment ``exp``'s set of a proxy (the cell that makes it: ``cells.proxy_cell``)."""
    return f"{proxy.cell_id}-exp{exp}.pt"


def proxy_set(cell: Cell, sweep: Sweep, exp: int) -> SyntheticSet:
    """Experiment ``exp``'s set of the proxy a search's cell trains on, as the stage before the search
    made it (``proxies``)."""
    name = file_name(proxy_cell(cell), exp)
    data = dict(sweep.proxy_sets).get(name)
    if data is None:
        raise ConfigError(f"the {cell.proxy} proxy set {name} was not made before the search "
                          "(the run's log says why)")
    return SyntheticSet.load(io.BytesIO(data))


def network_seeds(cell: Cell, sweep: Sweep, exp: int) -> list[int]:
    return [derive_seed(sweep.seed, f"{cell.dataset}-nas-{cell.architecture}", exp, i) for i in range(sweep.num_eval)]


def training_set(cell: Cell, sweep: Sweep, ctx: experiment.Context, exp: int) -> SyntheticSet:
    """What the cell's architecture trains on in experiment ``exp``."""
    if cell.record.makes_set:
        return proxy_set(cell, sweep, exp)
    pool = experiment.pool(cell, ctx.train, sweep, exp)
    return SyntheticSet(pool.batch(slice(None)), pool.labels, cell.dataset, {"method": cell.method})


def run(cell: Cell, sweep: Sweep, ctx: experiment.Context, ledger: experiment.Ledger,
        hooks: experiment.Hooks = experiment.Hooks(), **given) -> experiment.Experiment:
    """Experiment ``ledger.exp`` of the search's cell: ``num_eval`` networks of its architecture
    trained on the proxy and tested; its records say the training's epochs and images."""
    first, first_point = len(ledger.records), len(ledger.by_iteration)
    data = training_set(cell, sweep, ctx, ledger.exp)
    budget = search_budget(cell, sweep)
    strategy = hooks.strategy(data, cell.architecture)
    epochs = budget.epochs_for(strategy or for_set(data.meta, cell.dataset, cell.architecture), data.images.numel())
    seeds = network_seeds(cell, sweep, ledger.exp)
    began = time.perf_counter()
    accs = evaluate(data, ctx.test, cell.architecture, seeds, budget, strategy=strategy, memory_share=ctx.memory_share)
    seconds = time.perf_counter() - began
    hooks.on_evaluated(epochs, cell.architecture, accs, seconds, None, strategy)
    # iterations: a learnt set's outer iterations, and the whole set's epochs, as the paper's rows
    iterations = int(data.meta.get("iteration", 0)) if cell.record.makes_set else epochs
    ledger.records += [{**experiment._record(cell, sweep, ctx, ledger, cell.architecture, seed, acc, None, seconds,
                                             iterations, len(data)), "epochs": epochs}
                       for seed, acc in zip(seeds, accs)]
    # nothing to keep per cell: the proxy's set is kept once (proxies/), the whole set is the dataset
    kept = SyntheticSet(data.images[:0].cpu(), data.labels[:0].cpu(), cell.dataset, {"method": cell.method})
    return experiment._end(ledger, kept, first, first_point, iterations)
