"""Process-level settings for entry points (CLI, sweep trials, benchmarks); libraries never call these."""
from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


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
