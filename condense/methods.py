"""The method table: every way this project makes a set, one record each, asked by everything else.

A method is one of three kinds:
- ``condensation``: learns synthetic images step by step (DC, DSA, DM); its maker starts a run,
  ``maker(train, model, ipc, budget=, seed=, init=[, metric=][, dsa_strategy=]) -> Condensation``
  (``metric`` where ``has_metric``, ``dsa_strategy`` where ``uses_dsa``), which the caller steps to the
  end of its budget (``condense.condensation.run_condensation``); ``start`` does this by name;
- ``coreset``: selects real training images (Table 1's baselines);
  ``maker(name, pool, ipc, seed, reference) -> SyntheticSet``, where ``reference`` is the network
  trained on the pool when ``needs_reference`` (``condense.baselines.select``);
- ``bound``: makes no set (``whole``: networks trained on the whole training set, Table 1's upper bound);
- ``set``: a set made elsewhere, read from files a sweep names (``set:<name>``, not a record of the
  table: ``get`` answers for any such name; ``orchestrator.trial.experiment.external``).

Packages add methods through the entry point group ``condense.methods`` (``PLUGIN_GROUP``): each entry
point names a ``Method`` record (kind ``condensation`` or ``coreset``) whose maker follows the same
interface as the built-in ones; it joins the table when this module is imported, so the seed CLI,
sweeps and ``--list-methods`` know it by name. A plugin that cannot be loaded, or whose record is not
valid, is left out with one warning line naming it.

``budget`` names the sweep setting that holds its budget (``budget``, ``dm_budget``,
``reference_budget``); what a method does is said by its fields, never read from that name:
``uses_dsa``: it augments with DSA while it learns, and its sets are evaluated with DSA augmentation
(``evaluation.augmentation``); ``has_metric``: it matches gradients, so the gradient distance
(``dis_metric``) applies to it; ``has_loops``: its budget has the paper's outer/inner loops per ipc
(``condense.condensation.LOOPS``), so an ipc without them is refused; ``trains_networks``: it trains
networks while it condenses, so the network learning rate, batch and precision of its budget apply;
``needs_reference``: it selects by a network trained on the pool (``draws_from_pool``: the
reference budget's pool of training images is where its set, or the bound's networks, come from).
Makers are named as ``module:attribute`` and imported when a set is made, so reading the table
(``--list-methods``, the results tools) needs no torch.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import re
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Callable

from .errors import ConfigError, unknown

if TYPE_CHECKING:
    from .condensation.base import Condensation
    from .data import ImageSet

CONDENSATION, CORESET, BOUND, EXTERNAL = "condensation", "coreset", "bound", "set"
KINDS = (CONDENSATION, CORESET, BOUND)  # the kinds of the table's records
EXTERNAL_PREFIX = "set:"  # set:<name>: the files a sweep's ``sets`` name
PLUGIN_GROUP = "condense.methods"
BUDGETS = ("budget", "dm_budget", "reference_budget")  # the sweep settings a method's budget may be
# a method's name is part of cell ids, trial folders and file names
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")

logger = logging.getLogger(__name__)
DEFAULT = "DC"  # the method a cell id leaves unsaid (MNIST-ConvNet-ipc1-S-ours is DC)
WHOLE = "whole"  # the bound: one cell per dataset whatever the ipcs


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # one of KINDS
    summary: str
    budget: str | None  # the sweep setting of its budget (BUDGETS); None for an external set
    uses_dsa: bool = False
    needs_reference: bool = False
    has_metric: bool = False
    has_loops: bool = False
    trains_networks: bool = False
    default_init: str | None = None  # condensation: how its synthetic images start
    make: str | None = None  # its maker, "module:attribute" (see the module's doc); None for a bound
    source: str = "built-in"  # or the distribution of the plugin that registered it

    @property
    def learns(self) -> bool:
        """It learns its set step by step: a gradient distance, outer iterations and a learning curve
        apply to it."""
        return self.kind == CONDENSATION

    @property
    def makes_set(self) -> bool:
        """It has a set per experiment (the bound trains networks on the whole training set instead,
        so its cells have no ipc)."""
        return self.kind != BOUND

    @property
    def from_files(self) -> bool:
        """Its sets were made elsewhere and are read from the files a sweep names."""
        return self.kind == EXTERNAL

    @property
    def draws_from_pool(self) -> bool:
        """Its set (a coreset's) or its networks (the bound's) come from the reference budget's pool of
        training images, which the pool's flags and the reference network's epochs shape."""
        return self.kind in (CORESET, BOUND)

    def real_images(self, ipc: int, init: str | None = None) -> int:
        """Real training images per class a set of ``ipc`` starts from: a coreset's ``ipc``, a
        condensation's when it starts from real images (``init``, else its own), else none."""
        if self.kind == CORESET or (self.kind == CONDENSATION and (init or self.default_init) == "real"):
            return ipc
        return 0

    def maker(self) -> Callable:
        module, _, attribute = self.make.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _coreset(name: str, summary: str, needs_reference: bool = True) -> Method:
    return Method(name, CORESET, summary, "reference_budget", needs_reference=needs_reference,
                  make="condense.baselines:select")


BUILT_IN: dict[str, Method] = {m.name: m for m in (
    Method("DC", CONDENSATION, "gradient matching (Zhao et al. 2021)", "budget", has_metric=True,
           has_loops=True, trains_networks=True, default_init="noise",
           make="condense.condensation.dc:DCCondensation"),
    # init real: the setting of the DSA table in the seed repository's README
    Method("DSA", CONDENSATION, "gradient matching with differentiable siamese augmentation", "budget",
           uses_dsa=True, has_metric=True, has_loops=True, trains_networks=True, default_init="real",
           make="condense.condensation.dsa:DSACondensation"),
    Method("DM", CONDENSATION, "distribution matching of embeddings (main_DM.py)", "dm_budget", uses_dsa=True,
           default_init="real", make="condense.condensation.dm:DMCondensation"),
    _coreset("random", "real images drawn uniformly per class", needs_reference=False),
    _coreset("herding", "real images whose feature mean follows the class mean"),
    _coreset("kcenter", "real images that cover the class in feature space (greedy k-center)"),
    _coreset("forgetting", "the real images forgotten most while the reference network trained"),
    Method(WHOLE, BOUND, "no set: networks trained on the whole training set (the upper bound)",
           "reference_budget"),
)}


def plugin_problem(method, entry_name: str) -> str | None:
    """What is wrong with a plugin's record, or None."""
    if not isinstance(method, Method):
        return f"names a {type(method).__name__}, not a condense.methods.Method"
    if method.name != entry_name:
        return f"its Method is called {method.name!r}, the entry point {entry_name!r}: give both one name"
    if not isinstance(method.name, str) or not _NAME.fullmatch(method.name) or method.name.startswith("set"):
        return (f"name {method.name!r}: letters, digits and _.+- (up to 64), not starting with 'set' "
                "(external sets' prefix)")
    if method.name in BUILT_IN:
        return f"name {method.name!r} is a built-in method's"
    if method.kind not in (CONDENSATION, CORESET):
        return f"kind {method.kind!r}: a plugin makes sets, kind {CONDENSATION} or {CORESET}"
    if method.budget not in BUDGETS:
        return f"budget {method.budget!r}: one of {', '.join(BUDGETS)}"
    if not isinstance(method.make, str) or ":" not in method.make:
        return f"make {method.make!r}: its maker as 'module:attribute'"
    return None


def plugins() -> dict[str, Method]:
    """The methods that installed packages register under ``PLUGIN_GROUP``; a broken one is
    left out with a warning line (the built-in methods work whatever a plugin does)."""
    found: dict[str, Method] = {}
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        dist = getattr(entry.dist, "name", None) or entry.value
        try:
            method = entry.load()
        except Exception as err:  # a plugin's own import error: name it, keep going
            logger.warning("method plugin %s (%s) not loaded: %s: %s", entry.name, dist, type(err).__name__,
                           " ".join(str(err).split())[:200])
            continue
        problem = plugin_problem(method, entry.name) or (
            f"name {entry.name!r} registered twice" if entry.name in found else None)
        if problem:
            logger.warning("method plugin %s (%s) left out: %s", entry.name, dist, problem)
            continue
        found[method.name] = dataclasses.replace(method, source=dist)
    return found


METHODS: dict[str, Method] = {**BUILT_IN, **plugins()}


def external(name: str) -> Method:
    """The record of the external set ``set:<name>`` (a sweep's ``sets`` name its files)."""
    set_name = name[len(EXTERNAL_PREFIX):]
    if not _NAME.fullmatch(set_name):
        raise ConfigError(f"method {name!r}: a set's name after {EXTERNAL_PREFIX!r} is letters, digits and "
                          "_.+- (up to 64)")
    return Method(name, EXTERNAL, "a set made elsewhere, read from the files the sweep names", None)


def get(name: str) -> Method:
    """The method called ``name`` (an external set ``set:<name>`` too); a ConfigError naming the
    allowed ones otherwise."""
    if isinstance(name, str) and name.startswith(EXTERNAL_PREFIX):
        return external(name)
    if name not in METHODS:
        raise unknown("method", name, (*METHODS, f"{EXTERNAL_PREFIX}<name>"))
    return METHODS[name]


def names(kind: str | None = None) -> tuple[str, ...]:
    return tuple(n for n, m in METHODS.items() if kind is None or m.kind == kind)


def start(name: str, train: ImageSet, model: str, ipc: int, budget, seed: int = 0, metric: str = "ours",
          init: str | None = None, dsa_strategy: str | None = None) -> Condensation:
    """A fresh run of the condensation method ``name`` (``init`` defaults to the method's own)."""
    method = get(name)
    if method.kind != CONDENSATION:
        raise unknown("condensation method", name, names(CONDENSATION))
    given = {"budget": budget, "seed": seed, "init": init or method.default_init}
    if method.has_metric:
        given["metric"] = metric
    if method.uses_dsa and dsa_strategy is not None:
        given["dsa_strategy"] = dsa_strategy
    return method.maker()(train, model, ipc, **given)


def table() -> str:
    """What ``--list-methods`` prints: one line per method."""
    rows = [("method", "kind", "budget", "DSA", "reference", "metric", "init", "from", "what it does")]
    for m in METHODS.values():
        rows.append((m.name, m.kind, m.budget, "yes" if m.uses_dsa else "-", "yes" if m.needs_reference else "-",
                     "yes" if m.has_metric else "-", m.default_init or "-", m.source, m.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows)
