"""The reference-network stage: before the grid, the driver trains every reference network that the
coreset and whole cells need (one per dataset, model, seed and reference budget), each as a Ray task
with a cell's resources, into the run's cache. The cells then only load them: no trial waits on
another's training while holding its share of a GPU, and a resumed run finds them in the cache.

On object storage no node sees another's files: each task then trains into its node's own cache and
returns the file, which the driver keeps in the run (``cache/``, uploaded with it, so that a resume
hands it back to the tasks instead of training again) and ships to every trial through Ray's object
store (``trainable.train_cell``'s ``references``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..sweep.cells import Cell, references
from ..sweep.config import ROOT_FROM, Sweep


@dataclass(frozen=True, order=True)
class Needed:
    dataset: str
    model: str
    seed: int

    def __str__(self) -> str:
        return f"{self.dataset}-{self.model}-seed{self.seed}"


def needed(cells: list[Cell], sweep: Sweep) -> list[Needed]:
    """Every reference network the cells load: a coreset cell's, one per experiment (or the shared
    one); a whole cell's, one per evaluation model and experiment (seed + exp)."""
    return sorted({Needed(*key) for cell in cells for key in references(cell, sweep)})


def train(key: Needed, sweep: Sweep, known: dict[str, bytes] | None = None) -> tuple[float, str | None, bytes | None]:
    """A Ray task: the reference network ``key`` in the cache (trained unless already there); its
    seconds, and with ``known`` (a run on object storage: the files the run kept, put in this node's
    cache first) the cache file's name and bytes."""
    import ray
    import torch

    from condense.data import load
    from condense.files import write_bytes
    from evaluation.reference import cache_file, reference, resolve_cache_dir

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
    start = time.perf_counter()
    pool, _ = load(key.dataset, sweep.data_root, root_from=ROOT_FROM)
    for name, data in (known or {}).items():
        write_bytes(resolve_cache_dir(sweep.cache_dir) / "reference" / name, data)
    reference(pool.to(device), key.model, sweep.reference_budget, key.seed, sweep.cache_dir)
    if known is None:
        return time.perf_counter() - start, None, None
    path = cache_file(pool, key.model, sweep.reference_budget, key.seed, sweep.cache_dir)
    return time.perf_counter() - start, path.name, path.read_bytes()


def run(ray, keys: list[Needed], request: dict[str, float], sweep: Sweep,
        say: Callable[[str], None], keep: Path | None = None) -> dict[str, object]:
    """Train (or find) ``keys`` in parallel as far as the cluster allows. Failures are reported and
    left to the cells that need them (they retry, then fail with the error). With ``keep`` (the run's
    ``cache`` folder on a run on object storage) the networks are kept there and returned as
    file name -> Ray object, for the trials; else {}."""
    from condense.files import write_bytes

    from condense.errors import error_line

    if not keys:
        return {}
    custom = {k: v for k, v in request.items() if k not in ("CPU", "GPU")}
    task = ray.remote(train).options(num_cpus=request["CPU"], num_gpus=request["GPU"], resources=custom or None)
    say(f"reference networks: {len(keys)} for the coreset and whole cells, before they start")
    pending = {task.remote(k, sweep, None if keep is None else kept(keep, k)): k for k in keys}
    shipped = {}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(ref)
        try:
            seconds, name, data = ray.get(ref)
            say(f"reference {key}: ready in {seconds:.0f} s ({len(keys) - len(pending)}/{len(keys)})")
        except ray.exceptions.RayError as err:
            say(f"reference {key}: FAILED ({len(keys) - len(pending)}/{len(keys)}): {error_line(err)}")
            continue
        if keep is not None:
            write_bytes(keep / "reference" / name, data)
            shipped[name] = ray.put(data)
    return shipped


def kept(folder: Path, key: Needed) -> dict[str, bytes]:
    """The files of ``key``'s network that the run kept in ``folder`` (one per training data and budget)."""
    return {p.name: p.read_bytes() for p in sorted((folder / "reference").glob(f"{key}-e*.pt"))}
