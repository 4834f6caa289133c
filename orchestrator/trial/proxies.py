"""An architecture search's proxy sets, made once before the search (docs/nas.md).

Each proxy that is a method's set (random, herding, DC, DSA, DM, a plugin's, ``set:<name>`` files) is
made by the cell of the paper's experiment with that method (``cells.proxy_cell``: the same seeds,
so the same set as a methods sweep's experiment), one set per experiment, as a Ray task with a
cell's resources (``experiment.make_set``: learnt, selected or read, and not evaluated). The driver
keeps them in the run, ``proxies/<cell>-exp<e>.pt`` (the format of a sweep's ``synthetic/``, so any
of them can be read back as a ``set:`` file), with a figure of each in ``figures/``; a resumed run
finds them there. They travel to every trial with the sweep (``Sweep.proxy_sets``; ``nas.proxy_set`` reads them). A set that
could not be made is reported, and the search's cells that train on it fail saying so.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from condense.synthetic import SyntheticSet

from ..sweep.cells import Cell, proxy_cell
from ..sweep.config import ROOT_FROM, Sweep
from .nas import file_name

FOLDER = "proxies"


def needed(cells: list[Cell]) -> list[Cell]:
    """The cells whose sets the search's cells train on, once each, in order."""
    found: dict[str, Cell] = {}
    for cell in cells:
        if cell.architecture is not None and cell.record.makes_set:
            proxy = proxy_cell(cell)
            found.setdefault(proxy.cell_id, proxy)
    return list(found.values())


def make(proxy: Cell, sweep: Sweep, references: dict | None = None) -> tuple[float, list[SyntheticSet]]:
    """A Ray task: the proxy cell's sets, one per experiment, and the seconds they took."""
    import ray
    import torch

    from condense.data import load

    from .experiment import make_set
    from .trainable import receive

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
    start = time.perf_counter()
    receive(references or {}, sweep.cache_dir)  # a coreset's reference network, where nodes share no folder
    sweep = sweep.for_cell(proxy)
    train = None if proxy.record.from_files else load(proxy.dataset, sweep.data_root, root_from=ROOT_FROM)[0].to(device)
    sets = [make_set(proxy, sweep, train, exp).to("cpu") for exp in range(sweep.num_exp)]
    return time.perf_counter() - start, sets


def run(ray, cells: list[Cell], sweep: Sweep, request: dict[str, float], say: Callable[[str], None], out: Path,
        references: dict | None = None) -> Sweep:
    """Make (or find in ``out``) the proxy sets of the search's cells among ``cells``, in parallel as
    far as the cluster allows; the sweep carrying them to the trials."""
    from condense.errors import error_line
    from condense.visualise import save_grid

    proxies = needed(cells)
    if not proxies:
        return sweep
    folder = out / FOLDER
    kept, todo = {}, []
    for proxy in proxies:
        files = [folder / file_name(proxy, e) for e in range(sweep.num_exp)]
        if all(f.is_file() for f in files):
            kept.update((f.name, f.read_bytes()) for f in files)
        else:
            todo.append(proxy)
    say(f"proxy sets: {len(proxies)} for the architecture search, {len(proxies) - len(todo)} made before"
        + (f"; making {len(todo)} before the search" if todo else ""))
    custom = {k: v for k, v in request.items() if k not in ("CPU", "GPU")}
    task = ray.remote(make).options(num_cpus=request["CPU"], num_gpus=request["GPU"], resources=custom or None)
    pending = {task.remote(p, sweep, references): p for p in todo}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        proxy = pending.pop(ref)
        done = f"({len(todo) - len(pending)}/{len(todo)})"
        try:
            seconds, sets = ray.get(ref)
        except ray.exceptions.RayError as err:
            say(f"proxy set {proxy.cell_id}: FAILED {done}: {error_line(err)}")
            continue
        for exp, synthetic in enumerate(sets):
            path = folder / file_name(proxy, exp)
            synthetic.save(path)
            kept[path.name] = path.read_bytes()
        save_grid(sets[0], out / "figures" / f"{proxy.cell_id}.png")
        say(f"proxy set {proxy.cell_id}: ready in {seconds:.0f} s {done}")
    return dataclasses.replace(sweep, proxy_sets=tuple(sorted(kept.items())))
