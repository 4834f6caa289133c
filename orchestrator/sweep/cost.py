"""What a sweep will cost: each cell's device time, estimated from a calibration measured on a named
device (``benchmarks/calibrate.py`` writes one JSON file per device into ``calibrations/``).

A calibration holds, per dataset image shape and model, a few *probes*: the time of one piece of
work that a cell's budget multiplies, measured at two or three sizes and fitted as a line
``a + b * n`` (a fixed cost per launch of the step, and a cost per image):

- ``matching``: one outer step of gradient matching, all classes, ``n`` real images per class, as
  ``Condensation`` runs it; ``per_ipc`` adds the synthetic side's cost per image per class;
- ``train``: one plain SGD step on ``n`` images (the inner loop; the reference networks);
- ``eval``: one evaluation training step on ``n`` images, per network, as ``evaluate`` runs it
  (seeds vectorised where the device does so by default);
- ``test``: testing one network on ``n`` images.

A cell's estimate is its budget's count of each piece times the piece's cost: device seconds, not
wall time (cells sharing a device or running on many nodes overlap). A reference network is counted
once per dataset, model and seed (it is cached): the coresets' of experiment ``e`` is the whole
bound's network of that experiment, so a sweep with both pays for it once. A model or shape the calibration lacks
is estimated with the ConvNet of the same shape, and the total line says how many cells that touched.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from condense import environment
from condense.data import DATASETS
from condense.errors import ConfigError
from condense.networks import multiply_adds
from evaluation.augmentation import eval_augmentation
from evaluation.continual import memory_augmentation
from evaluation.pools import eval_iterations
from evaluation.train import schedule

from .cells import CONTINUAL, proxy_cell, references, search_budget

# the project's calibrations; $DC_CALIBRATIONS names another folder (benchmarks/gpu_checks.sh's plumbing
# mode, which must not touch these)
CALIBRATIONS = Path(__file__).resolve().parents[1] / "calibrations"
FALLBACK_MODEL = "ConvNet"
# Training and test set sizes (the reference network trains on all of it; evaluation tests on all of it)
SPLITS = {"MNIST": (60000, 10000), "FashionMNIST": (60000, 10000), "SVHN": (73257, 26032),
          "CIFAR10": (50000, 10000), "CIFAR100": (50000, 10000), "TinyImageNet": (100000, 10000)}


def slug(device: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")


def shape_key(dataset: str) -> str:
    d = DATASETS[dataset]
    return f"{d.channels}x{d.image_size[0]}x{d.image_size[1]}"


def local_device(kind: str) -> str | None:
    """This machine's name for a device kind: the GPU's (torch), or the CPU's model name."""
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "cpu " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return "cpu " + (platform.processor() or platform.machine())


def device_kind(resources) -> str:
    """The device a sweep's cells compute on: a GPU when they ask for one (or for ``auto`` on a
    machine that has one), else the CPU."""
    if resources is not None:  # explicit {cpu, gpu}; None is ``auto``
        return "cuda" if resources.gpu > 0 else "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Calibration:
    device: str
    kind: str
    probes: dict  # shape -> model -> probe -> [a, b] (matching: [a, b, per_ipc])
    meta: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "Calibration":
        """A calibration file, checked: a cut-off or doctored one is one ConfigError line naming it."""
        try:
            d = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            reason = getattr(err, "strerror", None) or " ".join(str(err).split())[:200]
            raise ConfigError(f"{path}: not a calibration file ({reason}); rerun benchmarks/calibrate.py") from None
        if not isinstance(d, dict) or not isinstance(d.get("device"), str) or d.get("kind") not in ("cpu", "cuda") \
                or not _probes(d.get("probes")):
            raise ConfigError(f"{path}: not a calibration file (expected device, kind cpu or cuda, and probes: "
                              "shape -> model -> probe -> [a, b] finite numbers); rerun benchmarks/calibrate.py")
        return cls(d["device"], d["kind"], d["probes"], {k: v for k, v in d.items() if k != "probes"})

    def probe(self, shape: str, model: str, name: str) -> tuple[list[float], bool]:
        """The probe's fit, and whether it was measured for this model (else the ConvNet's)."""
        models = self.probes.get(shape, {})
        if name in models.get(model, {}):
            return models[model][name], True
        for other in (models, *self.probes.values()):
            if name in other.get(FALLBACK_MODEL, {}):
                return other[FALLBACK_MODEL][name], False
        raise KeyError(f"calibration {self.device} has no {name} probe for {FALLBACK_MODEL}")


def _probes(probes) -> bool:
    """shape -> model -> probe -> a list of 2 or 3 finite numbers."""
    def fit(v) -> bool:
        return isinstance(v, list) and len(v) in (2, 3) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    return isinstance(probes, dict) and all(
        isinstance(models, dict) and all(isinstance(ps, dict) and all(fit(v) for v in ps.values())
                                         for ps in models.values()) for models in probes.values())


def folder() -> tuple[Path, str]:
    """Where the calibrations are, and how to name it: ``$DC_CALIBRATIONS`` (which must be a folder),
    else the project's ``orchestrator/calibrations``."""
    given = environment.folder("DC_CALIBRATIONS")
    if given is None:
        return CALIBRATIONS, str(CALIBRATIONS)
    if not given.is_dir():
        raise ConfigError(f"DC_CALIBRATIONS={given}: no such folder; point it at a folder of calibrations "
                          "(benchmarks/calibrate.py writes them) or unset it")
    return given, f"{given} (DC_CALIBRATIONS)"


def available() -> list[Calibration]:
    where, _ = folder()
    return [Calibration.read(p) for p in sorted(where.glob("*.json"))]


def choose(kind: str) -> tuple[Calibration | None, str]:
    """The calibration for this machine's device of ``kind``, else the first of that kind, else any;
    and a note saying which one and why."""
    cals = available()
    if not cals:
        return None, f"no calibration in {folder()[1]}: run benchmarks/calibrate.py"
    name = local_device(kind)
    for c in cals:
        if name is not None and slug(c.device) == slug(name):
            return c, f"calibration {c.device}"
    same = [c for c in cals if c.kind == kind] or cals
    here = name or f"no local {kind} device"
    return same[0], f"calibration {same[0].device}: none measured for {here}, so its figures are borrowed"


class Estimator:
    """Device seconds per cell, from one calibration; remembers what it had to borrow."""

    def __init__(self, calibration: Calibration):
        self.cal = calibration
        self.borrowed: set[str] = set()  # "shape/model" pairs estimated with the ConvNet's probes
        self.scaled: set[str] = set()  # ... and those scaled by their multiply-adds (an architecture search's)
        self._proxies: set[str] = set()  # the proxy sets of architecture searches counted so far
        self._references: set[tuple[str, str, int]] = set()  # (dataset, model, seed) trained so far

    def _fit(self, dataset: str, model: str, probe: str, n: float, ipc: float = 0, scaled: bool = False) -> float:
        """The probe's cost at ``n`` images; ``scaled``: where the model's probe is borrowed from the
        ConvNet, its cost per image scaled by the two networks' multiply-adds (an architecture search's
        ConvNets differ in cost by three orders of magnitude)."""
        shape = shape_key(dataset)
        fit, measured = self.cal.probe(shape, model, probe)
        per_image = fit[1]
        if not measured:
            ratio = self._ratio(dataset, model) if scaled else None
            if ratio is None:
                self.borrowed.add(f"{shape}/{model}")
            else:
                self.scaled.add(f"{shape}/{model}")
                per_image *= ratio
        extra = fit[2] * ipc if len(fit) > 2 else 0.0
        return max(0.0, fit[0] + per_image * n + extra)

    def _ratio(self, dataset: str, model: str) -> float | None:
        d = DATASETS[dataset]
        mine, base = (multiply_adds(m, d.channels, d.image_size) for m in (model, FALLBACK_MODEL))
        return None if mine is None or base is None else mine / base

    def _epoch(self, dataset: str, model: str, probe: str, images: int, batch: int, scaled: bool = False) -> float:
        """One epoch over ``images`` in batches of ``batch`` (the last one smaller)."""
        full, rest = divmod(images, batch)
        cost = full * self._fit(dataset, model, probe, batch, scaled=scaled)
        return cost + (self._fit(dataset, model, probe, rest, scaled=scaled) if rest else 0.0)

    def _evaluation(self, cell, s, images: int, points: int) -> float:
        eb = s.eval_budget
        n_test = SPLITS[cell.dataset][1] if eb.max_test is None else min(eb.max_test, SPLITS[cell.dataset][1])
        total = 0.0
        for m in cell.eval_models():
            strategy = eval_augmentation(cell.method, cell.dataset, m, cell.dsa_strategy or s.dsa_strategy)
            epochs = schedule(eb.epochs_for(strategy, images * DATASETS[cell.dataset].image_values))[0]
            per_net = epochs * self._epoch(cell.dataset, m, "eval", images, eb.batch_train)
            per_net += self._fit(cell.dataset, m, "test", n_test)
            total += s.num_eval * per_net
        return s.num_exp * points * total

    def _references_once(self, dataset: str, model: str, seeds, s) -> float:
        """Training the reference networks of ``seeds`` not yet counted (plain training on the pool)."""
        new = {(dataset, model, seed) for seed in seeds} - self._references
        self._references |= new
        r = s.reference_budget
        pool = SPLITS[dataset][0] if r.max_train is None else min(r.max_train, SPLITS[dataset][0])
        return len(new) * r.epochs * self._epoch(dataset, model, "train", pool, r.batch_train)

    def _continual(self, cell, s) -> float:
        """A continual cell: per class order and step, the step's set made from its classes alone (a
        condensation's steps over its share of the classes, a coreset's reference network on their
        images), then the networks trained on the memory and tested on the seen classes' test images."""
        d = DATASETS[cell.dataset]
        per_step = d.num_classes // cell.steps
        share = per_step / d.num_classes
        n_train, n_test = SPLITS[cell.dataset]
        method, making = cell.record, 0.0
        if method.learns:
            b = s.budget_for(cell.method)
            outer, inner = b.loops(cell.ipc)
            step = share * self._fit(cell.dataset, cell.model, "matching", b.batch_real, cell.ipc)
            inner_epoch = 0.0 if not inner else self._epoch(cell.dataset, cell.model, "train", per_step * cell.ipc,
                                                            b.batch_train)
            making = b.iterations * (outer * step + (outer - 1) * inner * inner_epoch)
        elif method.needs_reference:
            r = s.reference_budget
            pool = round(share * n_train) if r.max_train is None else min(r.max_train, round(share * n_train))
            making = r.epochs * self._epoch(cell.dataset, cell.model, "train", pool, r.batch_train)
        eb = s.eval_budget
        strategy = memory_augmentation(cell.dataset, s.dsa_strategy_for(cell.dataset, cell.dsa_strategy))
        total = 0.0
        for t in range(1, cell.steps + 1):
            images, tested = t * per_step * cell.ipc, round(t * share * n_test)
            tested = tested if eb.max_test is None else min(eb.max_test, tested)
            for m in cell.eval_models():
                epochs = schedule(eb.epochs_for(strategy, images * d.image_values))[0]
                per_net = epochs * self._epoch(cell.dataset, m, "eval", images, eb.batch_train)
                total += s.num_eval * (per_net + self._fit(cell.dataset, m, "test", tested))
            total += making
        return s.num_exp * total

    def _search(self, cell, s) -> float:
        """An architecture search's cell: its architecture trained on the proxy and tested; the first
        cell of a proxy also pays for making the proxy's sets (the stage before the search)."""
        d = DATASETS[cell.dataset]
        budget = search_budget(cell, s)
        if cell.record.makes_set:
            images = d.num_classes * cell.ipc
        else:
            r = s.reference_budget
            images = SPLITS[cell.dataset][0] if r.max_train is None else min(r.max_train, SPLITS[cell.dataset][0])
        strategy = eval_augmentation(cell.method, cell.dataset, cell.architecture, cell.dsa_strategy or s.dsa_strategy)
        epochs = schedule(budget.epochs_for(strategy, images * d.image_values))[0]
        n_test = SPLITS[cell.dataset][1] if budget.max_test is None else min(budget.max_test, SPLITS[cell.dataset][1])
        per_net = (epochs * self._epoch(cell.dataset, cell.architecture, "eval", images, budget.batch_train, True)
                   + self._fit(cell.dataset, cell.architecture, "test", n_test, scaled=True))
        cost = s.num_exp * s.num_eval * per_net
        proxy = proxy_cell(cell) if cell.record.makes_set else None
        if proxy is not None and proxy.cell_id not in self._proxies:
            self._proxies.add(proxy.cell_id)
            cost += self.cell_seconds(proxy, dataclasses.replace(s, num_eval=0))  # made, not evaluated
        return cost

    def cell_seconds(self, cell, s) -> float:
        s = s.for_cell(cell)
        if cell.architecture is not None:
            return self._search(cell, s)
        if cell.experiment == CONTINUAL:
            return self._continual(cell, s)
        classes = DATASETS[cell.dataset].num_classes
        method = cell.record
        if not method.makes_set:  # the bound: per evaluation model, one network of seed + e per experiment, then its test
            n_test = SPLITS[cell.dataset][1]
            seeds = [s.whole_seed(e) for e in range(s.num_exp)]
            return sum(self._references_once(cell.dataset, m, seeds, s)
                       + s.num_exp * self._fit(cell.dataset, m, "test", n_test) for m in cell.eval_models())
        if not method.learns:  # a coreset or a set made elsewhere: evaluated once
            cost = self._evaluation(cell, s, classes * cell.ipc, points=1)
            needed = references(cell, s)
            if needed:
                cost += self._references_once(cell.dataset, cell.model, sorted(seed for *_, seed in needed), s)
            return cost
        # DSA as DC (its augmentation not counted); DM one matching-sized step per iteration, no inner loop
        b = s.budget_for(cell.method)
        outer, inner = b.loops(cell.ipc)
        step = self._fit(cell.dataset, cell.model, "matching", b.batch_real, cell.ipc)
        inner_epoch = self._epoch(cell.dataset, cell.model, "train", classes * cell.ipc, b.batch_train) if inner else 0.0
        per_iteration = outer * step + (outer - 1) * inner * inner_epoch
        points = len(eval_iterations(cell.eval_mode, b.iterations, b.eval_every))
        return s.num_exp * b.iterations * per_iteration + self._evaluation(cell, s, classes * cell.ipc, points)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def device_time(seconds: float) -> str:
    """The total, in hours unless they round to zero, then in minutes or seconds."""
    if f"{seconds / 3600:.1f}" != "0.0":
        return f"{seconds / 3600:.1f} device-hours"
    return f"{seconds / 60:.0f} device-minutes" if seconds >= 60 else f"{seconds:.0f} device-seconds"


def estimate(cells, sweep, kind: str) -> tuple[list[float] | None, str]:
    """Each cell's estimated device seconds and the total line; (None, line) without a calibration."""
    cal, why = choose(kind)
    if cal is None:
        return None, f"estimated ? device-hours: {why} (an estimate needs one)"
    est = Estimator(cal)
    per_cell = [est.cell_seconds(c, sweep) for c in cells]
    note = f"{why}"
    if est.borrowed:
        note += f"; {len(est.borrowed)} model/shape pairs not calibrated, estimated as the {FALLBACK_MODEL}"
    if est.scaled:
        note += (f"; {len(est.scaled)} searched architecture/shape pairs not calibrated, estimated as the "
                 f"{FALLBACK_MODEL} scaled by their multiply-adds")
    line = (f"estimated {device_time(sum(per_cell))} on {cal.device} ({note}; an estimate from measured step "
            f"costs, device time summed over cells, not wall time)")
    return per_cell, line
