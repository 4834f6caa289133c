"""The method table: every way this project makes a set, one record each, asked by everything else.

A method is one of three kinds:
- ``condensation``: learns synthetic images step by step (DC, DSA, DM); its maker starts a run,
  ``maker(train, model, ipc, budget=, seed=, init=[, metric=][, dsa_strategy=]) -> Condensation``
  (``metric`` where ``has_metric``, ``dsa_strategy`` where ``uses_dsa``), which the caller steps to the
  end of its budget (``condense.synthetic.run_condensation``); ``start`` does this by name;
- ``coreset``: selects real training images (Table 1's baselines);
  ``maker(name, pool, ipc, seed, reference) -> SyntheticSet``, where ``reference`` is the network
  trained on the pool when ``needs_reference`` (``condense.baselines.select``);
- ``bound``: makes no set (``whole``: networks trained on the whole training set, Table 1's upper bound).

``budget`` names the sweep setting that holds its budget (``budget``, ``dm_budget``,
``reference_budget``); ``uses_dsa``: it augments with DSA while it learns, and its sets are evaluated
with DSA augmentation (``evaluation.augmentation``); ``has_metric``: it matches gradients, so the
gradient distance (``dis_metric``) applies to it. Makers are named as ``module:attribute`` and
imported when a set is made, so reading the table (``--list-methods``, the results tools) needs no torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .errors import unknown

if TYPE_CHECKING:
    from .data import ImageSet
    from .synthetic import Condensation

CONDENSATION, CORESET, BOUND = "condensation", "coreset", "bound"
KINDS = (CONDENSATION, CORESET, BOUND)
DEFAULT = "DC"  # the method a cell id leaves unsaid (MNIST-ConvNet-ipc1-S-ours is DC)
WHOLE = "whole"  # the bound: one cell per dataset whatever the ipcs


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # one of KINDS
    summary: str
    budget: str  # the sweep setting of its budget
    uses_dsa: bool = False
    needs_reference: bool = False
    has_metric: bool = False
    default_init: str | None = None  # condensation: how its synthetic images start
    make: str | None = None  # its maker, "module:attribute" (see the module's doc); None for a bound

    @property
    def has_loops(self) -> bool:
        """Its budget has the paper's outer/inner loops per ipc (condense.synthetic.LOOPS)."""
        return self.budget == "budget"

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


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("DC", CONDENSATION, "gradient matching (Zhao et al. 2021)", "budget", has_metric=True,
           default_init="noise", make="condense.synthetic:Condensation"),
    # init real: the setting of the DSA table in the seed repository's README
    Method("DSA", CONDENSATION, "gradient matching with differentiable siamese augmentation", "budget",
           uses_dsa=True, has_metric=True, default_init="real", make="condense.dsa:DSACondensation"),
    Method("DM", CONDENSATION, "distribution matching of embeddings (main_DM.py)", "dm_budget", uses_dsa=True,
           default_init="real", make="condense.dm:DMCondensation"),
    _coreset("random", "real images drawn uniformly per class", needs_reference=False),
    _coreset("herding", "real images whose feature mean follows the class mean"),
    _coreset("kcenter", "real images that cover the class in feature space (greedy k-center)"),
    _coreset("forgetting", "the real images forgotten most while the reference network trained"),
    Method(WHOLE, BOUND, "no set: networks trained on the whole training set (the upper bound)",
           "reference_budget"),
)}


def get(name: str) -> Method:
    """The method called ``name``; a ConfigError naming the allowed ones otherwise."""
    if name not in METHODS:
        raise unknown("method", name, tuple(METHODS))
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
    rows = [("method", "kind", "budget", "DSA", "reference", "metric", "init", "what it does")]
    for m in METHODS.values():
        rows.append((m.name, m.kind, m.budget, "yes" if m.uses_dsa else "-", "yes" if m.needs_reference else "-",
                     "yes" if m.has_metric else "-", m.default_init or "-", m.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows)
