"""Noticing a diverged run (a nan or infinite loss) without a host sync per training step.

Reading a loss on the host waits for the device; per step that would stall a GPU's queue. So the
first bad step is remembered on the device and read where the caller reads results anyway (a
progress point, the end of a network's training).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import NonFiniteLossError


class FirstNonFinite:
    """The first step (and its loss) whose loss was nan or infinite, kept on the device."""

    def __init__(self, device):
        self.step = torch.full((), -1, dtype=torch.long, device=device)
        self.value = torch.zeros((), device=device)

    def update(self, loss: Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach()) & (self.step < 0)
        self.step = torch.where(bad, step, self.step)
        self.value = torch.where(bad, loss.detach().float(), self.value)

    def read(self) -> tuple[int, float] | None:
        """(step, loss) of the first bad step, or None; syncs with the device."""
        step = int(self.step)
        return None if step < 0 else (step, float(self.value))

    def reset(self) -> None:
        self.step.fill_(-1)


def first_nonfinite(losses: Tensor) -> tuple[int, float] | None:
    """(index, loss) of the first nan or infinite entry of a 1-d loss history, or None; syncs."""
    bad = torch.nonzero(~torch.isfinite(losses.detach())).flatten()
    if len(bad) == 0:
        return None
    i = int(bad[0])
    return i, float(losses[i])


def check_lr(lr: float, dtype: torch.dtype, what: str) -> None:
    """``NonFiniteLossError`` for a learning rate beyond ``dtype``'s range: its first update is
    infinite (torch refuses even to take it), so the run diverges before it starts."""
    top = torch.finfo(dtype).max
    if abs(lr) > top:
        raise NonFiniteLossError(f"{what} {lr:g} is beyond the range of {str(dtype).removeprefix('torch.')} "
                                 f"(at most {top:.4g}): every update is infinite, the run diverges")
