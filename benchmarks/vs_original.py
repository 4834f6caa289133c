"""Our code against the original (the authors' code in ../shared/anchors/DatasetCondensation), one
MNIST ConvNet cell at the same budget, one after the other, each in its own subprocess:

    python benchmarks/vs_original.py [--device cuda] [--ipc 1|10|50] [--iterations N] [--nets N] [--epochs N]
        [--batch-real N] [--max-test N]

Both sides run one experiment: ``--iterations`` outer iterations (the original trains one more, its
loop runs to the last evaluation and past it), evaluated like the original's mode S (at 0, every 500
and the last iteration) with ``--nets`` fresh ConvNets of ``--epochs`` epochs each (both train
``epochs + 1``, the original's schedule), tested on the 10,000 test images (``--max-test``: the
first N, for a plumbing run). ``--batch-real`` sets both sides' real images per class per matching
step (paper: 256). The original runs unchanged: ``_original_shim.py`` only times its phases and sets
its epochs and test images (see there), on MNIST converted to its torchvision layout by its own
``mnist_raw.py`` in a temporary folder.

Per phase it prints ``<phase> vs original: N.NNx``, the original's time over ours (above 1: ours is
faster): condensation in seconds per outer iteration, evaluation in seconds per network (training
and test), and the whole cell (data loading included, interpreter start and imports not), then
both final accuracies. ``--device cpu`` hides the GPUs from the original (it picks CUDA by itself).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "_original_shim.py"


def eval_points(iterations: int) -> list[int]:
    """When the original's mode S evaluates: every 500 iterations and at the last."""
    return sorted({*range(0, iterations + 1, 500), iterations})


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cpu or cuda (default cuda)")
    p.add_argument("--ipc", type=int, default=1, choices=(1, 10, 50))
    p.add_argument("--iterations", type=int, default=1000, help="outer iterations (paper: 1000)")
    p.add_argument("--nets", type=int, default=20, help="evaluation networks per evaluation point (paper: 20)")
    p.add_argument("--epochs", type=int, default=1000, help="epochs per evaluation network (paper, MNIST: 1000)")
    p.add_argument("--batch-real", type=int, default=256, help="real images per class per matching step (paper: 256)")
    p.add_argument("--max-test", type=int, default=None, help="test on the first N test images (default all 10000)")
    p.add_argument("--seed", type=int, default=0, help="our side's seed (the original seeds nothing)")
    p.add_argument("--original", default=str(ROOT.parent / "shared" / "anchors" / "DatasetCondensation"),
                   help="the original code's folder (default ../shared/anchors/DatasetCondensation)")
    p.add_argument("--data", default=os.environ.get("DC_DATA", "data"),
                   help="data root holding MNIST/{train,test}.npz (default $DC_DATA, else ./data)")
    p.add_argument("--side", choices=("ours",), help=argparse.SUPPRESS)  # the child that runs our cell
    args = p.parse_args(argv)
    for name in ("iterations", "nets", "batch_real", "max_test"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.epochs < 0:
        p.error(f"--epochs must be >= 0, got {args.epochs}")
    return args


def run_ours(args: argparse.Namespace) -> dict:
    """Our cell, timed by phase (device-synchronised at each phase boundary only)."""
    sys.path.insert(0, str(ROOT))
    import torch

    from condense.data import load
    from condense.runtime import keep_freed_memory
    from condense.condensation import Budget, DCCondensation
    from condense.synthetic import derive_seed
    from evaluation.protocol import evaluate
    from evaluation.train import EvalBudget

    keep_freed_memory()
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    train, test = load("MNIST", args.data)
    train, test = train.to(device), test.to(device)
    budget = Budget(iterations=args.iterations, batch_real=args.batch_real)
    run = DCCondensation(train, "ConvNet", args.ipc, budget=budget, seed=args.seed)
    sync()
    phases = {"setup": time.perf_counter() - start, "condensation": 0.0, "evaluation": 0.0}
    points, accs = eval_points(args.iterations), []
    mark = time.perf_counter()
    while True:
        if run.iteration in points:
            sync()
            now = time.perf_counter()
            phases["condensation"] += now - mark
            seeds = [derive_seed(args.seed, "eval", run.iteration, k) for k in range(args.nets)]
            accs = evaluate(run.synthetic(), test, "ConvNet", seeds, EvalBudget(epochs=args.epochs, max_test=args.max_test))
            mark = time.perf_counter()  # evaluate reads its accuracies back: the device is done
            phases["evaluation"] += mark - now
        if run.iteration >= args.iterations:
            break
        run.step()
    sync()
    end = time.perf_counter()
    phases["condensation"] += end - mark
    return {"seconds": end - start, "phases": phases, "accs": accs, "device": str(device),
            "counts": {"condensation": args.iterations, "evaluation": len(points) * args.nets}}


def run_original(args: argparse.Namespace, work: Path) -> dict:
    original = Path(args.original).resolve()
    if not (original / "main.py").exists():
        sys.exit(f"error: no original code at {original} (main.py missing): pass --original DIR")
    npz = Path(args.data) / "MNIST"
    if not (npz / "train.npz").exists():
        sys.exit(f"error: {npz}/train.npz not found: pass --data ROOT (the folder holding MNIST/)")
    data = work / "data"
    subprocess.run([sys.executable, str(original / "mnist_raw.py"), str(npz), str(data)], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the original uses CUDA whenever it sees a GPU
    cmd = [sys.executable, str(SHIM), str(original), str(args.epochs), str(args.max_test or "all"), "--",
           "--dataset", "MNIST", "--model", "ConvNet", "--ipc", str(args.ipc), "--eval_mode", "S",
           "--Iteration", str(args.iterations), "--batch_real", str(args.batch_real),
           "--num_exp", "1", "--num_eval", str(args.nets), "--data_path", str(data),
           "--save_path", str(work / "out")]
    return child(cmd, env, work, "original")


def child(cmd: list[str], env: dict, cwd: Path, name: str) -> dict:
    """Run one side; its output goes to a log beside the result, its RESULT line is returned."""
    log = cwd / f"{name}.log"
    with open(log, "w") as f:
        code = subprocess.run(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    lines = log.read_text().splitlines()
    result = [line for line in lines if line.startswith("RESULT ")]
    if code != 0 or not result:
        tail = "\n".join(lines[-15:])
        sys.exit(f"error: the {name} side failed (exit {code}):\n{tail}")
    return json.loads(result[-1][len("RESULT "):])


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    m = sum(values) / len(values)
    s = (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5
    return f"{m:.2f} ± {s:.2f} %"


def report(ours: dict, orig: dict, args: argparse.Namespace) -> list[str]:
    def per(r: dict, phase: str) -> float:
        return r["phases"][phase] / max(1, r["counts"][phase])

    lines = []
    for phase, unit in (("condensation", "outer iteration"), ("evaluation", "network")):
        a, b = per(ours, phase), per(orig, phase)
        lines.append(f"{phase} vs original: {b / a:.2f}x   (s per {unit}: ours {a:.3f}, original {b:.3f}; "
                     f"{ours['counts'][phase]} and {orig['counts'][phase]} timed)")
    a, b = ours["seconds"], orig["seconds"]
    lines.append(f"cell vs original: {b / a:.2f}x   (s: ours {a:.1f}, original {b:.1f}; setup ours "
                 f"{ours['phases']['setup']:.1f}, original {orig['phases']['setup']:.1f})")
    final = args.nets
    lines.append(f"accuracy (final, {final} nets): ours {mean_std(ours['accs'][-final:])}, "
                 f"original {mean_std(orig['accs'][-final:])}")
    return lines


def main() -> None:
    args = parse_args()
    args.data = str(Path(args.data).resolve())  # the sides run in a temporary folder
    if args.side == "ours":
        print("RESULT " + json.dumps(run_ours(args)), flush=True)
        return
    print(f"machine: {platform.processor() or platform.machine()} ({os.cpu_count()} cores); device {args.device}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"cell: MNIST ConvNet ipc {args.ipc}, {args.iterations} iterations ({args.batch_real} real images per "
          f"class), evaluated at {'/'.join(map(str, eval_points(args.iterations)))} with {args.nets} nets x "
          f"{args.epochs} (+1) epochs, tested on {args.max_test or 'all'} test images", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="dc_vs_original_") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        mine = ["--device", args.device, "--ipc", str(args.ipc), "--iterations", str(args.iterations), "--nets",
                str(args.nets), "--epochs", str(args.epochs), "--batch-real", str(args.batch_real),
                "--seed", str(args.seed), "--data", args.data, *(["--max-test", str(args.max_test)] if args.max_test else [])]
        ours = child([sys.executable, str(Path(__file__).resolve()), *mine, "--side", "ours"], env, work, "ours")
        print(f"ours done in {time.perf_counter() - t0:.1f} s (wall, with imports)", flush=True)
        t0 = time.perf_counter()
        orig = run_original(args, work)
        print(f"original done in {time.perf_counter() - t0:.1f} s (wall, with imports and data conversion); "
              f"it ran on {orig['device']}", flush=True)
    print("\n".join(report(ours, orig, args)))


if __name__ == "__main__":
    main()
