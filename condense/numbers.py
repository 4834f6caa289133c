"""The rules every user-given number follows, wherever it comes from (a sweep file, a CLI flag).

Generic on purpose: a new float setting is checked finite and a new int setting checked integral
without anyone listing them. Only which settings may be zero (or negative) is named.
"""
from __future__ import annotations

import math
import reprlib

# Seeds and counts end up in int64 tensors and Parquet columns.
MAX_INT = 2**63 - 1


def problem(value, kind: type, minimum: str = "> 0") -> str | None:
    """What is wrong with ``value`` as a setting of type ``kind`` (int or float), or None.

    ``minimum`` is ``"> 0"``, ``">= 0"`` or ``"any"``. An int is a valid float; a bool is never a number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)):
        return f"expected {kind.__name__}, got {type(value).__name__} {reprlib.repr(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if isinstance(value, int) and abs(value) > MAX_INT:
        return f"must be below 2**63, got a number of {len(str(abs(value)))} digits"
    if (minimum == "> 0" and value <= 0) or (minimum == ">= 0" and value < 0):
        return f"must be {minimum}, got {value}"
    return None


def gpu_problem(value: float) -> str | None:
    """A GPU request is a share of one device, (0, 1], or whole devices (0 asks for none)."""
    if value > 1 and value != int(value):
        return f"must be a share of one GPU in (0, 1] or a whole number of GPUs, got {value}"
    return None
