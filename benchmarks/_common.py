"""Shared plumbing of the benchmark scripts: the machine header, device-synchronised timing, peak
memory. Each script runs the reference and the fast path in one process on the same inputs."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/x.py`

import torch  # noqa: E402

from condense.runtime import keep_freed_memory  # noqa: E402


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Process settings every entry point uses, then print what the figures were measured on."""
    keep_freed_memory()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"machine: {cpu} ({os.cpu_count()} cores){gpu}; torch {torch.__version__}; device {device}; "
          f"torch threads {torch.get_num_threads()}; load average {load()}", flush=True)
    return device


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def measure(device: torch.device):
    """Yields a dict that gets ``seconds`` (device work included) and ``peak_gb``: on CUDA the peak
    allocated by torch during the block; on the CPU the process's peak resident set during the
    block (sampled every 5 ms; it includes memory kept from earlier blocks, so it is an upper bound)."""
    out: dict = {}
    stop = threading.Event()
    peak = [0]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        page = os.sysconf("SC_PAGE_SIZE")

        def sample():
            with open("/proc/self/statm") as f:
                while True:
                    f.seek(0)
                    peak[0] = max(peak[0], int(f.read().split()[1]) * page)
                    if stop.wait(0.005):
                        return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    sync(device)
    start = time.perf_counter()
    try:
        yield out
    finally:
        sync(device)
        out["seconds"] = time.perf_counter() - start
        if device.type == "cuda":
            out["peak_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        else:
            stop.set()
            sampler.join()
            out["peak_gb"] = peak[0] / 1e9
