"""Arithmetic precision of the networks' passes, an explicit option that is off by default.

- ``default``: torch's own settings, which the paper's figures here were measured with (on CUDA,
  float32 matrix products; cuDNN may use TF32 for convolutions, as torch allows by default);
- ``fp32``: TF32 off for matrix products and convolutions alike: strict float32;
- ``tf32``: TF32 on for both (NVIDIA Ampere or newer; about 10 mantissa bits in the products);
- ``bf16``: bfloat16 autocast over the passes (weights, gradients and optimisers stay float32).

TF32 and autocast only exist on CUDA devices: on any other device every precision computes in
float32 exactly as ``default`` does (one log line says so), so a CPU run never changes with it.
Not one of them is on by default until a measured comparison on MNIST at ipc 1 stays within the
paper's std (docs/performance.md, *Precision*).
"""
from __future__ import annotations

import contextlib
import logging

import torch

from .errors import unknown

PRECISIONS = ("default", "fp32", "tf32", "bf16")
logger = logging.getLogger(__name__)
_said: set[str] = set()


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise unknown("precision", name, PRECISIONS)
    return name


@contextlib.contextmanager
def precision(name: str, device: torch.device | str):
    """Compute the block at precision ``name`` on ``device``; TF32 flags are restored after it."""
    check_precision(name)
    device = torch.device(device)
    if name == "default":
        yield
        return
    if device.type != "cuda":
        if name not in _said:
            _said.add(name)
            logger.info("precision %s: %s has no TF32 or autocast path here; computing in float32",
                        name, device.type)
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        if name in ("fp32", "tf32"):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
            yield
        else:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
