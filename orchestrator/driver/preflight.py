"""Checks before the first trial, so a sweep that cannot run says why at once instead of waiting.

Each refusal is a ``ConfigError`` (one line, exit 2): a cell's request larger than every node, the
data root unreadable on a node (or a dataset present on some nodes only), ``--output`` not
writable (by the driver, or on a node: every node writes checkpoints there), and inside a SLURM
allocation a Ray cluster whose node count is not the allocation's. The per-node checks run as one
small task pinned to each alive node.
"""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from condense import environment
from condense.errors import ConfigError

from .resources import show

NODE_TIMEOUT_S = 60.0  # a node that has not answered by then is named in the refusal
_NOT_CUSTOM = ("CPU", "GPU", "memory", "object_store_memory")


def check_output(out: Path) -> None:
    """``--output`` must be a folder the driver can create and write in."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".preflight-"):
            pass
    except OSError as err:
        raise ConfigError(f"--output {out}: not writable ({err.strerror or err})") from None


def check_request(request: dict[str, float], nodes: list[dict]) -> None:
    """Some alive node (``ray.nodes()`` entries) must hold a whole cell's request, or no cell can start."""
    alive = [n for n in nodes if n.get("Alive")]
    if any(all(n["Resources"].get(k, 0) >= v for k, v in request.items() if v > 0) for n in alive):
        return
    asked = [k for k, v in request.items() if v > 0]
    offers = sorted({_offer(n["Resources"], asked) for n in alive})
    hint = ("lower --gpu-share or use a cluster with GPUs" if request.get("GPU", 0) > 0 and
            not any(n["Resources"].get("GPU", 0) for n in alive) else
            "lower --gpu-share / --cpus-per-cell or the sweep file's resources, or add a node that has it")
    raise ConfigError(f"a cell asks for {show(request)}, more than any node has: the cluster's {len(alive)} "
                      f"node(s) offer {' | '.join(offers) or 'nothing'}; {hint}")


def check_slurm(nodes: list[dict], env=os.environ) -> None:
    """Inside a SLURM allocation, the cluster joined with --address must be the allocation's: one alive
    Ray node per allocated node. Fewer means a node's Ray did not start (its cells would never run
    there); more, that --address names some other cluster."""
    name = "SLURM_JOB_NUM_NODES" if env.get("SLURM_JOB_NUM_NODES") else "SLURM_NNODES"
    allocated = environment.count(name, env, "node count")
    if allocated is None:
        return  # not inside an allocation
    alive = [n for n in nodes if n.get("Alive")]
    if len(alive) == allocated:
        return
    hosts = sorted({str(n.get("NodeManagerHostname") or n.get("NodeManagerAddress")) for n in alive})
    raise ConfigError(f"Ray sees {len(alive)} node(s) ({', '.join(hosts) or 'none'}) but the SLURM allocation has "
                      f"{allocated} ({name}): start one Ray node on each allocated node (cluster/slurm/sweep.sbatch "
                      "does), or check that --address is this allocation's head")


def _offer(resources: dict, asked: list[str]) -> str:
    shown = {"CPU": resources.get("CPU", 0), "GPU": resources.get("GPU", 0),
             **{k: resources.get(k, 0) for k in asked if k not in _NOT_CUSTOM}}
    return f"{show(shown)}" + (" + 0 GPUs" if not shown["GPU"] else "")


def probe(data_root: str, datasets: list[str], out) -> dict:
    """Runs on one node: can it read the data root and each dataset, and write in ``out`` (a folder,
    or a ``storage.Remote``: write, read back and delete there)?"""
    from condense.data import readable

    report = {"root": None, "datasets": {}, "output": None}
    if not os.access(data_root, os.R_OK | os.X_OK) or not os.path.isdir(data_root):
        report["root"] = "missing" if not os.path.exists(data_root) else "not a readable folder"
    else:
        report["datasets"] = {name: readable(name, data_root) for name in datasets}
    if not isinstance(out, str):
        report["output"] = out.probe(f"{socket.gethostname()}-{os.getpid()}")
        return report
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".preflight-"):
            pass
    except OSError as err:
        report["output"] = err.strerror or str(err)
    return report


def check_nodes(ray, data_root: str, datasets: list[str], out) -> None:
    """One ``probe`` per alive node, pinned to it; refuses what some node cannot do."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(probe)
    nodes = {}
    for n in ray.nodes():
        if n.get("Alive"):
            ref = task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                data_root, datasets, str(out) if isinstance(out, Path) else out)
            nodes[ref] = f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})"
    ready, late = ray.wait(list(nodes), num_returns=len(nodes), timeout=NODE_TIMEOUT_S)
    if late:
        raise ConfigError(f"pre-flight: node(s) {', '.join(nodes[r] for r in late)} did not answer within "
                          f"{NODE_TIMEOUT_S:.0f} s")
    try:
        reports = {nodes[r]: ray.get(r) for r in ready}
    except ray.exceptions.RayError as err:
        raise ConfigError(f"pre-flight task failed: {' '.join(str(err).split())[:300]}") from None
    bad_root = {n: r["root"] for n, r in reports.items() if r["root"]}
    if bad_root:
        raise ConfigError(f"data root {data_root} is not readable on node(s) "
                          f"{', '.join(f'{n}: {why}' for n, why in bad_root.items())}; every node needs the data at "
                          "the same path (data_root / DC_DATA)")
    for name in datasets:
        lacking = [n for n, r in reports.items() if not r["datasets"][name]]
        if 0 < len(lacking) < len(reports):  # missing everywhere: the cells' own error rows say so
            raise ConfigError(f"dataset {name} is not readable under {data_root} on node(s) {', '.join(lacking)}, "
                              "though other nodes have it: every node needs the same data")
    bad_out = {n: r["output"] for n, r in reports.items() if r["output"]}
    if bad_out:
        where = "shared storage at the same path" if isinstance(out, Path) else "with credentials on every node"
        raise ConfigError(f"--output {out} is not writable on node(s) "
                          f"{', '.join(f'{n}: {why}' for n, why in bad_out.items())}; every node writes "
                          f"checkpoints there: {where}")
