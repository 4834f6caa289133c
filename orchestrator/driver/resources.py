"""What one cell (one trial, and one reference-network task) asks Ray for.

``resources: auto`` (a sweep file's default) follows the cluster: where it has GPUs each cell gets
``gpu_share`` of one (four cells a GPU by default) and ``cpus_per_cell`` CPUs; without GPUs, one CPU.
``--gpu-share`` and ``--cpus-per-cell`` override those defaults (a GPU share given on the command
line is asked for even where the cluster has no GPU, which the pre-flight then refuses); an explicit
``{cpu, gpu}`` in the sweep file wins over both.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from condense.errors import ConfigError

if TYPE_CHECKING:  # config imports torch: not before the arguments are parsed (fast --help)
    from ..sweep.config import Resources

GPU_SHARE, CPUS_PER_CELL = 0.25, 2
_TUNE_RESOURCE_WARNINGS = "ray.tune.execution.insufficient_resources_manager"


@dataclass(frozen=True)
class Plan:
    explicit: Resources | None  # the sweep file's, which wins
    gpu_share: float | None = None  # from the command line
    cpus_per_cell: int | None = None

    def __post_init__(self):
        if self.gpu_share is not None and not 0 < self.gpu_share <= 1:
            raise ConfigError(f"--gpu-share {self.gpu_share}: must be in (0, 1] (a fraction of one GPU)")
        if self.cpus_per_cell is not None and self.cpus_per_cell < 1:
            raise ConfigError(f"--cpus-per-cell {self.cpus_per_cell}: must be >= 1")

    def request(self, cluster_gpus: float) -> dict[str, float]:
        """One cell's request, in Ray's resource names, on a cluster with ``cluster_gpus`` GPUs."""
        if self.explicit is not None:
            r = self.explicit
            return {"CPU": r.cpu, "GPU": r.gpu, **dict(r.custom)}
        if cluster_gpus > 0 or self.gpu_share is not None:
            cpu = CPUS_PER_CELL if self.cpus_per_cell is None else self.cpus_per_cell
            return {"CPU": float(cpu), "GPU": GPU_SHARE if self.gpu_share is None else self.gpu_share}
        return {"CPU": float(1 if self.cpus_per_cell is None else self.cpus_per_cell), "GPU": 0.0}

    def describe(self) -> str:
        """The dry run's line: what a cell gets (with GPUs and without, since nothing is started)."""
        if self.explicit is not None:
            ignored = [f for f, v in (("--gpu-share", self.gpu_share), ("--cpus-per-cell", self.cpus_per_cell))
                       if v is not None]
            note = f"; {' and '.join(ignored)} not applied" if ignored else ""
            return f"resources: {show(self.request(0))} per cell, from the sweep file{note}"
        return (f"resources: auto (with GPUs: {show(self.request(1))} per cell; "
                f"without GPUs: {show(self.request(0))} per cell)")


def show(request: dict[str, float]) -> str:
    """E.g. ``2 CPUs + 0.25 GPU`` (a zero GPU is left out)."""
    parts = []
    for name, amount in request.items():
        if name == "GPU" and amount == 0:
            continue
        unit = {"CPU": "CPU", "GPU": "GPU"}.get(name, name)
        parts.append(f"{amount:g} {unit}{'s' if name == 'CPU' and amount != 1 else ''}")
    return " + ".join(parts)



def show_tune_warnings(say: Callable[[str], None]) -> None:
    """Tune's warning that no trial could start for lack of resources, as a progress line (the rest
    of Tune's logging stays silenced: the driver prints its own lines)."""
    class _Line(logging.Handler):
        def emit(self, record):
            say("resources: " + " ".join(record.getMessage().split()))

    log = logging.getLogger(_TUNE_RESOURCE_WARNINGS)
    log.setLevel(logging.WARNING)
    log.propagate = False
    log.handlers = [h for h in log.handlers if type(h).__name__ != "_Line"]  # one driver run, one handler
    log.addHandler(_Line())
