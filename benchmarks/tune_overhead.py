"""Ray Tune's cost per trial on this machine: a Tune run of no-op trials on the project's own local
Ray (orchestrator/local_ray.py: a head of its own, token authentication), as a sweep starts it.

    python benchmarks/tune_overhead.py [--trials 40] [--cpus-per-trial 1] [--checkpoint]

Each trial reports once, as a sweep's trial ends (with ``--checkpoint``, with a small checkpoint,
as a sweep's trial does); actors are reused, as the sweep's are. Prints the Ray start, the Tune run's
wall time, and per trial: the wall time over the trials (what a trial adds to a sweep with this
many at once) and the same times the trials that run at once (what one trial costs a CPU slot).
Work shorter than that per trial is better batched into fewer trials.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/x.py`

from orchestrator.local_ray import local_environment, local_ray  # noqa: E402


def noop(config: dict, checkpoint: bool) -> None:
    from ray import tune

    if not checkpoint:
        tune.report({"accuracy": 0.0, "done": True})
        return
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "state.json").write_text('{"records": []}')
        tune.report({"accuracy": 0.0, "done": True}, checkpoint=tune.Checkpoint.from_directory(d))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--checkpoint", action="store_true", help="each trial reports a small checkpoint")
    args = p.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    local_environment()  # before Ray is imported, as the driver does
    import ray
    from ray import tune

    start = time.perf_counter()
    with local_ray() as address, tempfile.TemporaryDirectory() as storage:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        cpus = ray.cluster_resources().get("CPU", 0)
        up = time.perf_counter() - start
        trainable = tune.with_resources(tune.with_parameters(noop, checkpoint=args.checkpoint),
                                        {"cpu": args.cpus_per_trial})
        tuner = tune.Tuner(trainable, param_space={"i": tune.grid_search(list(range(args.trials)))},
                           tune_config=tune.TuneConfig(reuse_actors=True),
                           run_config=tune.RunConfig(name="overhead", storage_path=storage, verbose=0,
                                                     checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
        begin = time.perf_counter()
        grid = tuner.fit()
        fit = time.perf_counter() - begin
        errors = sum(r.error is not None for r in grid)
        ray.shutdown()
    at_once = max(1, int(cpus // args.cpus_per_trial))
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"ray {ray.__version__}; {cpus:.0f} CPUs in Ray, {args.cpus_per_trial:g} per trial ({at_once} at once)"
          f"{'; trials checkpoint' if args.checkpoint else ''}")
    print(f"local Ray up and joined: {up:.1f} s")
    print(f"{args.trials} no-op trials ({errors} errors): Tune run {fit:.1f} s; per trial {fit / args.trials:.2f} s "
          f"of wall time, {fit * at_once / args.trials:.2f} s of a CPU slot")


if __name__ == "__main__":
    main()
