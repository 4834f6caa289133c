"""Process-level settings for entry points (CLI, sweep trials, benchmarks); libraries never call these."""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def wait_passively() -> bool:
    """Let idle OpenMP threads sleep rather than spin (``OMP_WAIT_POLICY=PASSIVE``, unless the
    environment sets a policy). Spinning threads of a process with a CPU thread per core fight
    every other process for the cores: on the busy 2-core machine a ResNet18BN training step took
    0.75-0.89 s spinning and 0.19-0.24 s passive, with the same weights (the threads split the work
    as before; only how they wait changes). The OpenMP runtime reads it when torch loads it, so this
    must run before torch is imported; returns whether it was in time."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True


def keep_freed_memory() -> bool:
    """Stop glibc from handing big freed tensors back to the OS.

    By default each step's activations (tens of MB) are mmap-ed, freed, unmapped and page-faulted
    in again next step: on a 2-core CPU that system time was half of a ConvNet forward+backward.
    Raising the mmap and trim thresholds keeps the memory in the heap for reuse. No-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False
