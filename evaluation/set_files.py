"""Sets made elsewhere, read from files and checked before any network trains on them
(``python -m evaluation``, a sweep's ``set:<name>`` methods; docs/protocol.md, "Evaluating a set made
elsewhere").

Formats, told apart by their content:
- this project's saved sets (``SyntheticSet.save``: a sweep's ``synthetic/<cell>-exp<e>.pt``, the seed
  CLI's ``syn_*.pt``): normalised images, labels, the dataset and what made them (``meta``);
- the original code's ``res_<method>_<dataset>_<model>_<ipc>ipc.pt``: ``{'data': [[images, labels], ...]}``,
  one pair per experiment, images normalised with the dataset's mean/std; the file name says the method
  (so the augmentation policy follows it) and the dataset;
- ``.pt`` or ``.npz`` holding ``images`` and ``labels``: float N x C x H x W, normalised, or uint8
  N x H x W x C / N x C x H x W (N x H x W for one channel) raw pixels, normalised here as the dataset is.

Every set is checked against the dataset: its image shape, one integer label per image in range,
every class present, finite values; soft labels (N x classes floats) are refused. A failure is one
``ConfigError`` line naming the file. Nothing is unpickled: ``torch.load(weights_only=True)``,
``np.load(allow_pickle=False)``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from condense.data import DatasetInfo, info, normalise
from condense.errors import ConfigError
from condense.synthetic import SyntheticSet

# the original code's result file: res_<method>_<dataset>_<model>_<ipc>ipc.pt
ORIGINAL = re.compile(r"res_(?P<method>[^_]+)_(?P<dataset>[^_]+)_(?P<model>.+)_(?P<ipc>\d+)ipc")
SUFFIXES = (".pt", ".pth", ".npz")

logger = logging.getLogger(__name__)


def read(path: str | Path, dataset: str) -> list[SyntheticSet]:
    """The sets in ``path`` (one per experiment: a res_ file may hold several), checked against
    ``dataset``; ``meta`` says where each came from (``source``, ``index``) and, where the file says
    it, the method that made it."""
    path, ds = Path(path), info(dataset)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"{path}: not a set file: expected {', '.join(SUFFIXES)}")
    pairs, meta = _read_npz(path) if path.suffix.lower() == ".npz" else _read_pt(path, ds)
    if not pairs:
        raise ConfigError(f"{path}: holds no set")
    sets = []
    for i, (images, labels) in enumerate(pairs):
        where = str(path) if len(pairs) == 1 else f"{path} (set {i} of {len(pairs)})"
        images, labels = checked(images, labels, ds, where)
        sets.append(SyntheticSet(images, labels, ds.name, {**meta, "source": str(path), "index": i}))
    return sets


def _read_npz(path: Path) -> tuple[list, dict]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"images", "labels"} - set(z.files)
            if missing:
                raise ConfigError(f"{path}: no array {' or '.join(sorted(missing))} (has: {', '.join(z.files) or 'none'})")
            return [(z["images"], z["labels"])], {}
    except ConfigError:
        raise
    except Exception as err:  # not a zip, an object array (pickled), a truncated file
        raise ConfigError(f"{path}: cannot read as .npz ({_reason(err)})") from None


# The original code's files also hold its accuracies as numpy scalars (np.float64): admit numpy's
# scalar and dtype constructors, which rebuild a number from its dtype and raw bytes and run nothing.
NUMPY_SCALARS = [np._core.multiarray.scalar, np.dtype,
                 *(getattr(np.dtypes, f"{kind}DType") for kind in ("Float16", "Float32", "Float64", "Int8", "Int16",
                                                                     "Int32", "Int64", "UInt8", "Bool"))]


def _read_pt(path: Path, ds: DatasetInfo) -> tuple[list, dict]:
    try:
        with torch.serialization.safe_globals(NUMPY_SCALARS):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, or one holding objects other than tensors and plain data
        raise ConfigError(f"{path}: cannot read as a torch file of tensors ({_reason(err)})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: holds a {type(content).__name__}; expected a dict with 'images' and "
                          "'labels', or the original code's {'data': [[images, labels], ...]}")
    if "data" in content:
        return _original(path, content["data"], ds)
    missing = {"images", "labels"} - set(content)
    if missing:
        raise ConfigError(f"{path}: no {' or '.join(sorted(missing))} (has: {', '.join(map(str, content)) or 'nothing'}); "
                          "expected 'images' and 'labels', or the original code's 'data'")
    saved = content.get("dataset")
    if saved is not None and saved != ds.name:
        raise ConfigError(f"{path}: a set of {saved}, not {ds.name}")
    meta = content.get("meta") if isinstance(content.get("meta"), dict) else {}
    return [(content["images"], content["labels"])], dict(meta)


def _original(path: Path, data, ds: DatasetInfo) -> tuple[list, dict]:
    """The original code's ``{'data': [[images, labels], ...]}``; its file name says the method."""
    if not isinstance(data, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in data):
        raise ConfigError(f"{path}: 'data' is not a list of [images, labels] pairs (the original code's format)")
    meta = {}
    named = ORIGINAL.fullmatch(path.stem)
    if named:
        if named["dataset"] != ds.name:
            raise ConfigError(f"{path}: the file name says {named['dataset']}, not {ds.name}")
        meta = {"method": named["method"], "model": named["model"]}
    return [tuple(p) for p in data], meta


def checked(images, labels, ds: DatasetInfo, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` as normalised float32 N x C x H x W and ``labels`` as int64 N, or a ConfigError
    naming ``where`` and what is wrong."""
    images, labels = _tensor(images, "images", where), _tensor(labels, "labels", where)
    raw_dtype = images.dtype
    c, (h, w), k = ds.channels, ds.image_size, ds.num_classes
    if labels.dim() == 2 and labels.is_floating_point():
        raise ConfigError(f"{where}: labels are {list(labels.shape)} floats: soft labels are not supported; "
                          "give one class index per image")
    if labels.dim() != 1:
        raise ConfigError(f"{where}: labels are {list(labels.shape)}; expected one class index per image")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        if labels.is_complex() or labels.dtype == torch.bool or not bool(torch.all(labels == labels.round())):
            raise ConfigError(f"{where}: labels have dtype {labels.dtype} with non-integer values; "
                              "expected class indices")
    labels = labels.to(torch.int64)
    if images.dtype == torch.uint8:
        images = _pixels(images, ds, where)
    elif images.is_floating_point():
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, h, w):
            raise ConfigError(f"{where}: images are {list(images.shape)} {_dtype(images)}; {ds.name} needs float "
                              f"N x {c} x {h} x {w} (normalised) or uint8 N x {h} x {w} x {c} / N x {c} x {h} x {w} pixels")
        images = images.to(torch.float32)
    else:
        raise ConfigError(f"{where}: images have dtype {_dtype(images)}; expected float (normalised) or uint8 (pixels)")
    if len(images) == 0:
        raise ConfigError(f"{where}: holds no images")
    if len(labels) != len(images):
        raise ConfigError(f"{where}: {len(images)} images but {len(labels)} labels; expected one label per image")
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise ConfigError(f"{where}: labels range {int(labels.min())}..{int(labels.max())}, but {ds.name} has "
                          f"classes 0..{k - 1}")
    absent = [str(i) for i, n in enumerate(torch.bincount(labels, minlength=k).tolist()) if n == 0]
    if absent:
        raise ConfigError(f"{where}: no image of class {', '.join(absent)}; a set needs every class 0..{k - 1}")
    bad = (~torch.isfinite(images)).sum().item()
    if bad:
        raise ConfigError(f"{where}: {bad} image value(s) are nan or infinite")
    # after every check: a refused set says one line; normalised images of a dataset go below 0
    if raw_dtype.is_floating_point and float(images.min()) >= 0 and float(images.max()) <= 1:
        logger.warning("warning: %s: float images all lie in [0, 1]: they are taken as normalised with %s's "
                       "mean/std; give uint8 pixels (normalised here) if they are not", where, ds.name)
    return images.contiguous(), labels


def _pixels(images: torch.Tensor, ds: DatasetInfo, where: str) -> torch.Tensor:
    """uint8 pixels (N x H x W x C, N x C x H x W, or N x H x W for one channel), normalised."""
    c, (h, w) = ds.channels, ds.image_size
    shape = tuple(images.shape[1:])
    if images.dim() == 3 and c == 1 and shape == (h, w):
        images = images[:, None]
    elif images.dim() == 4 and shape == (h, w, c):
        images = images.permute(0, 3, 1, 2)
    elif not (images.dim() == 4 and shape == (c, h, w)):
        raise ConfigError(f"{where}: images are {list(images.shape)} uint8; {ds.name} pixels are N x {h} x {w} x {c} "
                          f"or N x {c} x {h} x {w}")
    return normalise(images.contiguous(), ds)


def _tensor(value, name: str, where: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if not any(np.issubdtype(value.dtype, t) for t in (np.bool_, np.integer, np.floating)):
            raise ConfigError(f"{where}: {name} have dtype {value.dtype}; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    raise ConfigError(f"{where}: {name} are a {type(value).__name__}; expected an array or tensor")


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _reason(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
