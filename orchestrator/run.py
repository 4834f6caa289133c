"""Run a sweep file as one Ray Tune experiment, one trial per table cell:

    python -m orchestrator.run sweeps/table2.yaml [--address ADDR] [--smoke] [--resume] [--dry-run] [--output DIR]

Outputs go to ``DIR/<sweep>/`` (``<sweep>-smoke`` with --smoke): ``results.parquet``,
``curves.parquet``, ``tables/``, ``plots/``, ``report.html``, ``figures/``, ``synthetic/`` and Ray
Tune's own experiment (``tune/``) that --resume continues.
Exit status: 0 all cells ok, 1 some cell failed or is unfinished, 2 bad input.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from condense.errors import ConfigError
from condense.runtime import keep_freed_memory

if TYPE_CHECKING:  # the modules below import torch: not before the arguments are parsed (fast --help)
    from . import spec
    from .cells import Cell, Settings

TUNE_NAME = "tune"
CONNECT_TIMEOUT_S = 5.0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as every other bad input
        self.exit(2, f"error: {message}\n")


def parse_args(argv=None) -> argparse.Namespace:
    p = _Parser(prog="python -m orchestrator.run", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", help="a sweep file, e.g. sweeps/smoke.yaml")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (host:port, auto, ray://...); default $RAY_ADDRESS, else a local Ray")
    p.add_argument("--smoke", action="store_true", help="cap every budget at the seconds-long smoke presets")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --output (finished cells are not recomputed)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and their budgets; start nothing")
    p.add_argument("--output", default="runs", help="output root, shared by all nodes on a cluster (default runs)")
    return p.parse_args(argv)


def code_version() -> str:
    """The git commit this checkout runs (with -dirty for local changes), else the package version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    return f"dataset-condensation {metadata.version('dataset-condensation')}"


def prepare_output(out: Path, cells: list[Cell], settings: Settings, resume: bool) -> None:
    """Refuse to mix two different sweeps (or a smoke and a full one) in one output folder."""
    record = json.loads(json.dumps({"cells": [c.to_config() for c in cells], "settings": settings.comparable()}))
    marker = out / "sweep.json"
    if (out / TUNE_NAME).exists() and not resume:
        raise ConfigError(f"{out} already holds a run of this sweep; pass --resume to continue it, "
                          "or give another --output")
    if resume and marker.exists() and json.loads(marker.read_text()) != record:
        raise ConfigError(f"{out}: the cells or budgets differ from the run being resumed ({marker}); "
                          "give another --output for a changed sweep")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(record, indent=1))


def check_reachable(address: str | None) -> None:
    """Fail in seconds, on one line, where ray.init would wait a long time for a cluster that is not there."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({err.strerror or err}); "
                          "start one with `ray start --head` or check --address / RAY_ADDRESS") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    from condense.data import resolve_root

    from . import spec
    from .cells import describe, expand, settings_for

    try:
        sweep = spec.load(args.sweep)
        settings = settings_for(sweep, str(resolve_root(sweep.data_root)), code_version(), args.smoke)
        cells = expand(sweep)
        if args.dry_run:
            for cell in cells:
                print(describe(cell, settings))
            print(f"{len(cells)} cells")
            return 0
        name = sweep.name + ("-smoke" if args.smoke else "")
        out = Path(args.output).resolve() / name
        # reference networks of the coreset baselines live with the run: every node sees --output
        settings = dataclasses.replace(settings, cache_dir=str(out / "cache"))
        address = args.address or os.environ.get("RAY_ADDRESS")
        prepare_output(out, cells, settings, args.resume)
        check_reachable(address)
        return _run(sweep, name, cells, settings, out, address, args.resume)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(sweep: spec.Sweep, name: str, cells: list[Cell], settings: Settings, out: Path,
         address: str | None, resume: bool) -> int:
    # Before Ray is imported: the legacy reporter is silent at verbose=0 (the driver prints its own
    # lines), and forced experiment snapshots (num_to_keep=1) are expected, not worth a warning.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    from ray import tune

    from . import outputs
    from .progress import ProgressPrinter, error_line
    from .trainable import train_cell, trial_name

    keep_freed_memory()
    _init_ray(ray, address)
    # A failed trial's traceback goes to its error.txt; the driver prints one line naming it.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    where = address or "a local Ray"
    print(f"sweep {name}: {len(cells)} cells on {where} ({ray.cluster_resources().get('CPU', 0):.0f} CPUs, "
          f"{ray.cluster_resources().get('GPU', 0):.0f} GPUs) -> {out}", flush=True)
    try:
        trainable = tune.with_resources(tune.with_parameters(train_cell, settings=settings),
                                        {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu})
        path = str(out / TUNE_NAME)
        if resume and tune.Tuner.can_restore(path):
            tuner = tune.Tuner.restore(path, trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"cell": tune.grid_search([c.to_config() for c in cells])},
                # reuse_actors: a worker keeps its imports and decoded datasets for the next cell
                tune_config=tune.TuneConfig(trial_name_creator=trial_name, trial_dirname_creator=trial_name,
                                            reuse_actors=True),
                run_config=tune.RunConfig(
                    name=TUNE_NAME, storage_path=str(out), verbose=0, callbacks=[ProgressPrinter(len(cells))],
                    failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
        result_grid = tuner.fit()
    except (RuntimeError, ray.exceptions.RayError) as err:
        # Ray itself gave up (e.g. its memory monitor killed workers while Tune was placing them):
        # the experiment folder keeps every finished cell and checkpoint for --resume.
        print(f"error: the Ray run stopped: {error_line(err)}\nfinished cells and checkpoints are kept in "
              f"{out / TUNE_NAME}: rerun with --resume", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    outcome = outputs.collect(result_grid, cells, name, out)
    for md in outputs.write(outcome, out):
        print("\n" + md)
    print(f"results: {out / 'results.parquet'} ({len(outcome.rows)} rows); curves, tables, plots, figures, "
          f"synthetic sets beside it\nreport: {out / 'report.html'}")
    summary = f"{len(cells)} cells: {len(outcome.ok)} ok"
    if outcome.failed:
        summary += f", {len(outcome.failed)} failed: " + "; ".join(f"{c} ({e})" for c, e in outcome.failed.items())
    if outcome.unfinished:
        summary += f", {len(outcome.unfinished)} unfinished ({', '.join(outcome.unfinished)}): rerun with --resume"
    print(summary, flush=True)
    return 0 if len(outcome.ok) == len(cells) else 1


def _init_ray(ray, address: str | None) -> None:
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if not address:
        # "local": always a fresh Ray of our own, never a `ray start` cluster found on this machine
        ray.init(address="local", include_dashboard=False, **quiet)
        return
    # Joining a cluster that does not answer (or refuses our token) retries once a second, each
    # retry a warning from Ray's C++ core on fd 2: bound the retries and turn them into one line.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(int(CONNECT_TIMEOUT_S)))
    with tempfile.TemporaryFile(mode="w+") as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            ray.init(address=address, **quiet)
            failure = None
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:
            failure = err
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read()
    if failure is None:
        sys.stderr.write(text)
        return
    reasons = [line.split("from GCS server: ", 1)[-1] for line in text.splitlines() if "GCS server" in line]
    reason = reasons[-1] if reasons else " ".join(str(failure).split())
    hint = " (is RAY_AUTH_TOKEN the cluster's token? see `ray get-auth-token`)" if "uth" in reason else ""
    raise ConfigError(f"cannot join the Ray cluster at {address}: {reason[:300]}{hint}")


if __name__ == "__main__":
    sys.exit(main())
