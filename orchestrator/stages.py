"""The reference-network stage: before the grid, the driver trains every reference network that the
coreset and whole cells need (one per dataset, model, seed and reference budget), each as a Ray task
with a cell's resources, into the run's cache. The cells then only load them: no trial waits on
another's training while holding its share of a GPU, and a resumed run finds them in the cache.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from condense import methods

from .cells import Cell
from .config import Sweep


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
    keys = set()
    for cell in cells:
        if methods.get(cell.method).needs_reference:
            keys |= {Needed(cell.dataset, cell.model, sweep.reference_seed(e)) for e in range(sweep.num_exp)}
        elif cell.bound:
            keys |= {Needed(cell.dataset, m, sweep.whole_seed(e)) for m in cell.eval_models() for e in range(sweep.num_exp)}
    return sorted(keys)


def train(key: Needed, sweep: Sweep) -> float:
    """A Ray task: the reference network ``key`` in the run's cache (trained unless already there)."""
    import ray
    import torch

    from condense.data import load
    from evaluation.reference import reference

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
    start = time.perf_counter()
    pool, _ = load(key.dataset, sweep.data_root)
    reference(pool.to(device), key.model, sweep.reference_budget, key.seed, sweep.cache_dir)
    return time.perf_counter() - start


def run(ray, keys: list[Needed], request: dict[str, float], sweep: Sweep,
        say: Callable[[str], None]) -> dict[Needed, str]:
    """Train (or find) ``keys`` in parallel as far as the cluster allows; returns the failures, which
    are reported and left to the cells that need them (they retry, then fail with the error)."""
    from .progress import error_line

    if not keys:
        return {}
    custom = {k: v for k, v in request.items() if k not in ("CPU", "GPU")}
    task = ray.remote(train).options(num_cpus=request["CPU"], num_gpus=request["GPU"], resources=custom or None)
    say(f"reference networks: {len(keys)} for the coreset and whole cells, before they start")
    pending = {task.remote(k, sweep): k for k in keys}
    failed = {}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(ref)
        try:
            seconds = ray.get(ref)
            say(f"reference {key}: ready in {seconds:.0f} s ({len(keys) - len(pending)}/{len(keys)})")
        except ray.exceptions.RayError as err:
            failed[key] = error_line(err)
            say(f"reference {key}: FAILED ({len(keys) - len(pending)}/{len(keys)}): {failed[key]}")
    return failed
