"""What the two command lines share: the checks of the flags both have, the device, the output folder
and the summary statistics they print. Their parser is ``condense.errors.OneLineParser``."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from condense import networks
from condense.data import dataset_names
from condense.errors import ConfigError, unknown
from evaluation.pools import EVAL_MODES


def check_names(dataset: str, model: str, eval_mode: str) -> None:
    """The dataset, the model and the evaluation mode are known (one line naming the allowed ones)."""
    if dataset not in dataset_names():
        raise unknown("dataset", dataset, dataset_names())
    if not networks.is_model(model):
        raise unknown("model", model, networks.list_models())
    if eval_mode not in EVAL_MODES:
        raise unknown("eval_mode", eval_mode, EVAL_MODES)


def resolve_device(name: str | None) -> torch.device:
    """``--device`` as a torch device this machine has (default: cuda when available, else cpu)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r}: not a torch device; use cpu, cuda, cuda:<index> or mps") from None
    if device.type == "cpu":
        return device
    backend = getattr(torch, device.type, None)  # torch.cuda, torch.xpu, ...
    if device.type == "mps":
        available = torch.backends.mps.is_available()
    else:
        available = getattr(backend, "is_available", lambda: False)()
    if not available:
        raise ConfigError(f"--device {name}: no {device.type} device on this machine; use --device cpu")
    count = getattr(backend, "device_count", lambda: 1)()
    if device.index is not None and device.index >= count:
        raise ConfigError(f"--device {name}: this machine has {count} {device.type} device(s), "
                          f"indices 0..{count - 1}")
    return device


def writable_folder(path: str, flag: str) -> Path:
    """A folder named by ``flag``, created if needed, once a file can be written in it."""
    out = Path(path)
    try:  # even asking whether it exists fails for a name too long
        a_file = out.exists() and not out.is_dir()
        if not a_file:
            out.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=out).close()
    except (OSError, ValueError) as err:
        raise ConfigError(f"{flag} {path}: cannot write there ({getattr(err, 'strerror', None) or err})") from None
    if a_file:
        raise ConfigError(f"{flag} {path}: names an existing file; give a folder")
    return out


def mean_std(values) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0
