"""Run a sweep file as one Ray Tune experiment, one trial per table cell:

    python -m orchestrator.run SWEEP [--address ADDR] [--smoke] [--resume] [--dry-run] [--output DIR]
                                     [--gpu-share F] [--cpus-per-cell N] [--download] [--list-sweeps]

SWEEP is a sweep file (sweeps/table2.yaml) or the name of one shipped with the package (table2;
``--list-sweeps`` names them). With ``--download`` (or ``download: true`` in the sweep file) a missing
dataset that torchvision publishes is fetched into the data root once, before Ray starts
(``condense/download.py``; ``DC_DATA_MIRROR`` replaces its hosts).

Before the first trial: pre-flight checks (preflight.py), then the reference-network stage
(stages.py) and an architecture search's proxy sets (proxies.py). Outputs go to ``DIR/<sweep>/``
(``<sweep>-smoke`` with --smoke): ``results.parquet``, ``curves.parquet`` and ``tables/``
(rewritten as cells end), ``plots/``, ``report.html``, ``figures/``, ``synthetic/``, an
architecture search's ``proxies/``, the reference networks (``cache/``), Ray Tune's experiment
(``tune/``) and the checkpoints a resume continues from (``checkpoints/``; see resume.py). A local run starts
its own Ray in a session of its own (local_ray.py), so a stop sent to the driver's process group
ends the run as Ctrl-C does.
Exit status: 0 all cells ok, 1 some cell failed or is unfinished, 2 bad input (or a pre-flight refusal),
or a write that failed (a full disk: the run stops at once, in one line; --resume continues it).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from condense import environment
from condense.download import DOWNLOAD_HELP
from condense.errors import ConfigError, DataNotFoundError, OneLineParser, one_line
from condense.files import WriteError, free_space, remove_temporaries, write_error, write_text
from condense.runtime import keep_freed_memory

from . import preflight, resources, stop, storage
from ..sweep.layouts import own_layouts, to_plain
from .eta import SweepClock
from .local_ray import local_environment
from .lock import RunLock, StoreLock

if TYPE_CHECKING:  # the modules below import torch: not before the arguments are parsed (fast --help)
    from ..sweep.cells import Cell
    from ..sweep.config import Sweep

TUNE_NAME = "tune"
CONNECT_TIMEOUT_S = 5.0


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m orchestrator.run", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", nargs="?", help="a sweep file (e.g. sweeps/smoke.yaml) or a shipped sweep's name "
                   "(e.g. smoke; see --list-sweeps)")
    p.add_argument("--list-sweeps", action="store_true",
                   help="print the shipped sweeps: name, cells, purpose; and exit")
    p.add_argument("--download", action="store_true",
                   help=f"{DOWNLOAD_HELP}; once, before Ray starts (or download: true in the sweep file)")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (host:port, auto, ray://...); default $RAY_ADDRESS, else a local Ray")
    p.add_argument("--smoke", action="store_true", help="cap every budget at the seconds-long smoke presets")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --output (finished cells are not recomputed)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and their budgets; start nothing")
    p.add_argument("--output", default="runs",
                   help="output root: a folder every node of a cluster mounts, or object storage s3://bucket/prefix "
                        "(default runs)")
    p.add_argument("--gpu-share", type=float, default=None, metavar="F",
                   help=f"resources: auto: the fraction of a GPU each cell gets (default {resources.GPU_SHARE} where "
                        "the cluster has GPUs; given, it is asked for even where it has none)")
    p.add_argument("--cpus-per-cell", type=int, default=None, metavar="N",
                   help=f"resources: auto: CPUs per cell (default {resources.CPUS_PER_CELL} with GPUs, 1 without)")
    return p.parse_args(argv)


def code_version() -> str:
    """What code runs: ``$DC_CODE_VERSION`` (set at submit time, for a working dir shipped without
    ``.git``), else the git commit of this checkout (with -dirty for local changes), else the
    installed package's version; never an error."""
    given = environment.text("DC_CODE_VERSION")
    if given:
        return given
    root = Path(__file__).resolve().parents[2]
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        # only this project's own repository: a copy inside some other checkout is not that commit
        if top.returncode == 0 and Path(top.stdout.strip()).resolve() == root:
            out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                                 text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        return f"dataset-condensation {metadata.version('dataset-condensation')} (no git)"
    except metadata.PackageNotFoundError:
        return "unknown (no git, no DC_CODE_VERSION)"


def prepare_output(out: Path, cells: list[Cell], sweep: Sweep, resume: bool) -> None:
    """Refuse to mix two different sweeps (or a smoke and a full one) in one output folder."""
    record = {"cells": [c.to_config() for c in cells], "budgets": sweep.comparable()}
    own = own_layouts(sweep.grids)
    if own:  # the layouts of the sweep's own tables, for the results' metadata (older runs have none)
        record["layouts"] = {name: to_plain(layout) for name, layout in own.items()}
    record = json.loads(json.dumps(record))
    from .resume import CHECKPOINTS

    marker = out / "sweep.json"
    if ((out / TUNE_NAME).exists() or (out / CHECKPOINTS).exists()) and not resume:
        raise ConfigError(f"{out} already holds a run of this sweep; pass --resume to continue it, "
                          "or give another --output")
    try:
        before = json.loads(marker.read_text()) if resume and marker.exists() else record
    except (OSError, ValueError) as err:
        raise ConfigError(f"{marker}: unreadable ({err}); give another --output") from None
    if before != record:
        raise ConfigError(f"{out}: the cells or budgets differ from the run being resumed ({marker}); "
                          "give another --output for a changed sweep")
    if resume and not marker.exists():
        _same_as_results(out, record)
    write_text(marker, json.dumps(record, indent=1))


def _same_as_results(out: Path, record: dict) -> None:
    """With ``sweep.json`` gone, the run being resumed is told by its results' metadata (``budgets``,
    and ``sweep``'s cells and layouts): a changed sweep is refused, as with sweep.json."""
    from ..results import run_reader

    path = out / "results.parquet"
    if not os.path.lexists(path):
        return  # stopped before its first results: nothing says what it was
    try:
        meta = run_reader.read(path, empty_ok=True).metadata
    except ConfigError as err:
        raise ConfigError(f"{out}: sweep.json is gone and the results cannot say which sweep this run was "
                          f"({one_line(err, 300)}); give another --output") from None
    sweep = meta.get("sweep", {})
    recorded = {"budgets": meta.get("budgets"), "cells": sweep.get("cells"), "layouts": sweep.get("layouts")}
    changed = [k for k, v in recorded.items() if v is not None and v != record.get(k, {} if k == "layouts" else None)]
    if changed:
        raise ConfigError(f"{out}: the {' and '.join(changed)} differ from the run being resumed ({path}'s "
                          "metadata; sweep.json is gone); give another --output for a changed sweep")


def check_reachable(address: str | None) -> None:
    """Fail in seconds, on one line, where ray.init would wait a long time for a cluster that is not there."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")  # checked: environment.ray_address
    host = host.strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({err.strerror or err}); "
                          "start one with `ray start --head` or check --address / RAY_ADDRESS") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    from condense.data import resolve_root

    from ..sweep import cost, shipped, spec
    from ..sweep.cells import describe, expand, searches

    previous = stop.sigterm_as_ctrl_c()
    try:
        if args.list_sweeps:
            print("\n".join(shipped.listing()))
            return 0
        if not args.sweep:
            raise ConfigError("give a sweep file or a shipped sweep's name (python -m orchestrator.run --list-sweeps)")
        output = storage.parse(args.output)
        sweep = spec.load(shipped.resolve(args.sweep))
        root = resolve_root(sweep.data_root)
        sweep = sweep.for_run(str(root), code_version(), args.smoke)
        cells = expand(sweep)
        address = environment.ray_address(args.address, "--address") if args.address else \
            environment.ray_address(environment.value("RAY_ADDRESS"), "RAY_ADDRESS")
        missing = check_data(cells, root)
        if missing and (args.download or sweep.download) and not args.dry_run:
            fetch_missing(cells, root)  # once, here: never in the trials
            missing = check_data(cells, root)
        if not args.dry_run:  # external sets' files: there, readable and valid before anything starts
            from ..trial.runner import check_external

            check_external(cells, sweep)
        plan = resources.Plan(sweep.resources, args.gpu_share, args.cpus_per_cell)
        if args.dry_run:
            if missing and not address:  # first: the last line stays '<N> cells'
                print(f"warning: {missing}", file=sys.stderr, flush=True)
            per_cell, total = cost.estimate(cells, sweep, cost.device_kind(sweep.resources))
            for i, cell in enumerate(cells):
                print(describe(cell, sweep) + ("" if per_cell is None else f"  est {cost.hours(per_cell[i])}"))
            for line in searches(cells):
                print(line)
            print(plan.describe())
            print(total)
            print(f"{len(cells)} cells")
            return 0
        if missing and not address:  # a local run's trials would fail on it, one after another
            raise ConfigError(missing)
        check_reachable(address)
        # nothing is written to the output before the checks above
        name = sweep.name + ("-smoke" if args.smoke else "")
        if isinstance(output, storage.Remote):
            remote = output.child(name)
            remote.check()  # a bad bucket, endpoint or credentials: one line, before Ray
            out, lock = storage.staging(remote), StoreLock(remote)
            mirror = storage.Mirror(remote, out)
            # the nodes cannot see the driver's folder: each keeps reference networks in its own cache,
            # shipped to it through Ray's object store (stages.py)
            sweep = dataclasses.replace(sweep, cache_dir=None)
        else:
            out, mirror = output.resolve() / name, None
            preflight.check_output(out)
            lock = RunLock(out)
            # reference networks of the coreset baselines live with the run: every node sees --output
            sweep = dataclasses.replace(sweep, cache_dir=str(out / "cache"))
        if not address:
            local_environment()  # before Ray is imported
        with lock:
            if mirror is not None:
                _start_mirror(mirror, args.resume)
            remove_temporaries(out, skip=(TUNE_NAME,))  # left by a driver killed mid-write
            prepare_output(out, cells, sweep, args.resume)
            code = _run(sweep, name, cells, plan, out, address, args.resume, mirror)
            if mirror is not None:
                shutil.rmtree(out, ignore_errors=True)  # everything is in the storage now
            return code
    except ConfigError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) outside Tune's run, or a second one during it
        print("error: interrupted; finished cells and checkpoints are kept: rerun with --resume", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _start_mirror(mirror: storage.Mirror, resume: bool) -> None:
    """The driver's working copy of a run on object storage: empty, or with --resume the run as stored."""
    storage.empty(mirror.local)
    if resume:
        print(f"resuming from {mirror.remote}: {mirror.download()} files", flush=True)
    elif mirror.has_run():
        raise ConfigError(f"{mirror.remote} already holds a run of this sweep; pass --resume to continue it, "
                          "or give another --output")


def fetch_missing(cells: list[Cell], root: Path) -> None:
    """Download each dataset of the sweep that is not under the data root (a failure: one line)."""
    from condense.data import readable
    from condense.download import fetch

    for dataset in dict.fromkeys(c.dataset for c in cells):
        if not readable(dataset, root):
            fetch(dataset, root)


def check_data(cells: list[Cell], root: Path) -> str | None:
    """Open and check every dataset of the sweep once, before Ray starts (``condense.data.check``:
    readable, shapes, labels, every class in both splits, and enough training images per class for
    the cells that start from real images, as the method table says). Bad data is a ConfigError;
    a dataset that is not under the driver's data root is returned as its message (a cluster's nodes
    may hold it: preflight asks them)."""
    from condense import methods
    from condense.data import check

    from ..sweep.config import ROOT_FROM

    missing = None
    for dataset in dict.fromkeys(c.dataset for c in cells):
        own = [c for c in cells if c.dataset == dataset]
        needs = max(own, key=lambda c: methods.get(c.method).real_images(c.ipc))
        per_class = methods.get(needs.method).real_images(needs.ipc)
        try:
            check(dataset, root, per_class, f"per class that cell {needs.cell_id} starts from",
                  root_from=ROOT_FROM, offers_download=True)
        except DataNotFoundError as err:
            missing = missing or str(err)
    return missing


def _run(sweep: Sweep, name: str, cells: list[Cell], plan: resources.Plan, out: Path,
         address: str | None, resume: bool, mirror: storage.Mirror | None = None) -> int:
    from . import outputs
    from .resume import prepare

    # a resume continues from the run folder's own records (resume.py), never Tune's pickled state
    known, starts = prepare(out, out / TUNE_NAME, cells, sweep, name) if resume else ({}, {})
    if mirror is not None:
        mirror.sync()  # the storage as the working copy now is: Tune's old folder gone, checkpoints kept
    if known or starts:
        print(f"resuming: {len(known)} of {len(cells)} cells finished before, {len(starts)} continue from "
              "their checkpoints", flush=True)
    todo = [c for c in cells if c.cell_id not in known]
    ok_before = sum(len(o.ok) for o in known.values())
    clock = SweepClock(len(cells), {c.cell_id: None for c in todo}, ok_before, len(known) - ok_before)
    result_grid = []
    if todo:  # a resume of a finished run only rewrites the outputs: no Ray
        result_grid = _tune(sweep, name, cells, todo, known, starts, plan, out, address, mirror, clock)
        if result_grid is None:
            if mirror is not None:
                mirror.push()
            return 1
    outcome = outputs.collect(result_grid, cells, name, out, known)
    for md in outputs.write(outcome, out):
        print("\n" + md)
    where = out if mirror is None else mirror.remote
    if mirror is not None:
        mirror.push()
    print(f"results: {where}/results.parquet ({len(outcome.rows)} rows); curves, tables, plots, figures, "
          f"synthetic sets beside it\nreport: {where}/report.html")
    if todo:
        print(clock.summary())
    summary = f"{len(cells)} cells: {len(outcome.ok)} ok"
    if outcome.failed:
        summary += f", {len(outcome.failed)} failed: " + "; ".join(f"{c} ({e})" for c, e in outcome.failed.items())
    if outcome.unfinished:
        summary += f", {len(outcome.unfinished)} unfinished ({', '.join(outcome.unfinished)}): rerun with --resume"
    print(summary, flush=True)
    return 0 if len(outcome.ok) == len(cells) else 1


def _tune(sweep: Sweep, name: str, cells: list[Cell], todo: list[Cell], known: dict, starts: dict[str, str],
          plan: resources.Plan, out: Path, address: str | None, mirror: storage.Mirror | None, clock: SweepClock):
    """The cells ``todo`` as a fresh Tune experiment in ``out/tune``; its result grid, or None when Ray
    itself gave up (said on stderr). ``clock`` follows the cells (the status lines and their ETA)."""
    # Before Ray is imported: the legacy reporter is silent at verbose=0 (the driver prints its own
    # lines), and forced experiment snapshots (num_to_keep=1) are expected, not worth a warning.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from .local_ray import local_ray

    keep_freed_memory()
    with contextlib.ExitStack() as stack:
        # our own local Ray, in a session of its own: a stop sent to our process group reaches us alone
        joined = address is not None
        address = address or stack.enter_context(local_ray())
        import ray
        from ray import tune

        from ..trial import proxies, stages
        from .live import LiveResults
        from condense.errors import error_line

        from .progress import ProgressPrinter
        from ..trial.trainable import train_cell, trial_name

        _init_ray(ray, address, joined)
        stack.callback(ray.shutdown)
        signal.signal(signal.SIGTERM, stop.as_ctrl_c)  # ray.init installed its own, which ends the driver at once
        # A failed trial's traceback goes to its error.txt; the driver prints one line naming it.
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)

        def say(text: str) -> None:  # the stage's lines come before the trials' clock starts
            print(text, flush=True)

        resources.show_tune_warnings(say)  # e.g. cells that wait on resources a busy cluster lacks
        request = plan.request(ray.cluster_resources().get("GPU", 0))
        print(f"sweep {name}: {len(todo)} cells on {address if joined else 'a local Ray'} "
              f"({ray.cluster_resources().get('CPU', 0):.0f} CPUs, {ray.cluster_resources().get('GPU', 0):.0f} "
              f"GPUs), {resources.show(request)} per cell -> {out}", flush=True)
        if joined:  # a cluster we were given: on SLURM, its nodes must be the allocation's
            preflight.check_slurm(ray.nodes())
        preflight.check_request(request, ray.nodes())
        clock.estimated(*_estimates(cells, todo, sweep, request))
        target = out if mirror is None else mirror.remote
        preflight.check_nodes(ray, sweep.data_root, sorted({c.dataset for c in todo}), target)
        try:
            shipped = stages.run(ray, stages.needed(todo, sweep), request, sweep, say,
                                 None if mirror is None else out / "cache")
            # an architecture search's proxy sets, made once before it; they travel with the sweep
            sweep = proxies.run(ray, todo, sweep, request, say, out, shipped)
            if mirror is None:
                storage_path, filesystem = str(out), None
                begin = {c: tune.Checkpoint.from_directory(folder) for c, folder in starts.items()}
            else:  # Tune writes to the storage from every node; resumed cells start from their stored checkpoint
                mirror.push()
                storage_path, filesystem = mirror.remote.tune_storage()
                begin = {c: tune.Checkpoint(mirror.remote.checkpoint_path(Path(folder).relative_to(out).as_posix()),
                                            filesystem) for c, folder in starts.items()}
            trainable = tune.with_resources(
                tune.with_parameters(train_cell, sweep=sweep, starts=begin, references=shipped), request)
            live = LiveResults(cells, name, out, known, None if mirror is None else mirror.push)
            tuner = tune.Tuner(
                trainable,
                param_space={"cell": tune.grid_search([c.to_config() for c in todo])},
                # reuse_actors: a worker keeps its imports and decoded datasets for the next cell
                tune_config=tune.TuneConfig(trial_name_creator=trial_name, trial_dirname_creator=trial_name,
                                            reuse_actors=True),
                run_config=tune.RunConfig(
                    name=TUNE_NAME, storage_path=storage_path, storage_filesystem=filesystem, verbose=0,
                    callbacks=[ProgressPrinter(len(cells), out / "errors", len(known), clock), live],
                    failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
            ctrl_c = signal.getsignal(signal.SIGINT)
            try:
                grid = tuner.fit()
            except (EOFError, pickle.UnpicklingError) as err:
                # Tune reads back its own files as the run ends (a trial's pickled error): a full disk
                # leaves them cut off
                if live.write_error is None:
                    raise WriteError(f"cannot read back Ray Tune's files in {out / TUNE_NAME} ({error_line(err)}; "
                                     f"{free_space(out)} free there): finished cells and checkpoints are kept, "
                                     "rerun with --resume once the disk has room") from None
            finally:
                signal.signal(signal.SIGINT, ctrl_c)  # Tune's handler would swallow a later Ctrl-C or SIGTERM
            if live.write_error is not None:  # it stopped the run; the final write is not tried either
                raise WriteError(f"{live.write_error}; the run stopped: finished cells and checkpoints are kept, "
                                 "rerun with --resume once the disk has room")
            return grid
        except WriteError:
            raise
        except OSError as err:  # Tune's own experiment state on a full disk: one line, as our files
            raise WriteError(f"{write_error(Path(err.filename or out / TUNE_NAME), err)}; the run stopped: finished "
                             "cells and checkpoints are kept, rerun with --resume once the disk has room") from None
        except (RuntimeError, ray.exceptions.RayError) as err:
            # Ray itself gave up (e.g. its memory monitor killed workers while Tune was placing them):
            # the run folder keeps every finished cell and checkpoint for --resume.
            print(f"error: the Ray run stopped: {error_line(err)}\nfinished cells and checkpoints are kept in "
                  f"{out}: rerun with --resume", file=sys.stderr)
            return None


def _estimates(cells: list[Cell], todo: list[Cell], sweep: Sweep, request: dict) -> tuple[dict, str]:
    """The cost model's seconds for each cell of ``todo`` (None without a calibration), as the dry run
    prints them, for the device a cell asks for; and their total in device time."""
    from ..sweep import cost

    try:
        per_cell, _ = cost.estimate(cells, sweep, "cuda" if request.get("GPU", 0) > 0 else "cpu")
    except (KeyError, ValueError, OSError):  # an unreadable calibration: the run goes on, its ETA from the cells
        per_cell = None
    by_id = {c.cell_id: None if per_cell is None else per_cell[i] for i, c in enumerate(cells)}
    mine = {c.cell_id: by_id[c.cell_id] for c in todo}
    return mine, "" if per_cell is None else cost.device_time(sum(mine.values()))


def _init_ray(ray, address: str, joined: bool) -> None:
    """Connect to ``address``: a cluster given with --address (``joined``), or our local head."""
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
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
    if not joined:
        raise ConfigError(f"cannot connect to the local Ray started for this run: {reason[:300]}")
    raise ConfigError(f"cannot join the Ray cluster at {address}: {reason[:300]}{hint}")
