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
import reprlib
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from condense import diffaug
from condense.data import DatasetInfo, info, normalise
from condense.errors import ConfigError
from condense.files import regular_file
from condense.synthetic import SyntheticSet

# the original code's result file: res_<method>_<dataset>_<model>_<ipc>ipc.pt
ORIGINAL = re.compile(r"res_(?P<method>[^_]+)_(?P<dataset>[^_]+)_(?P<model>.+)_(?P<ipc>\d+)ipc")
SUFFIXES = (".pt", ".pth", ".npz")

logger = logging.getLogger(__name__)


def read(path: str | Path, dataset: str, classes: Sequence[Sequence[int]] | None = None) -> list[SyntheticSet]:
    """The sets in ``path`` (one per experiment: a res_ file may hold several), checked against
    ``dataset``; ``meta`` says where each came from (``source``, ``index``) and, where the file says
    it, the method that made it. ``classes``: the classes of each set in turn (a continual memory's
    file, the original's ``{'data': [[images, labels] per step]}``), default every class of the dataset."""
    path, ds = Path(path), info(dataset)
    regular_file(path)  # asked with os.stat: a FIFO or a device is never opened
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"{path}: not a set file: expected {', '.join(SUFFIXES)}")
    pairs, meta = _read_npz(path) if path.suffix.lower() == ".npz" else _read_pt(path, ds)
    if not pairs:
        raise ConfigError(f"{path}: holds no set")
    if classes is not None and len(classes) != len(pairs):
        raise ConfigError(f"{path}: holds {len(pairs)} set(s); expected one per step ({len(classes)})")
    sets = []
    for i, (images, labels) in enumerate(pairs):
        where = str(path) if len(pairs) == 1 else f"{path} (set {i} of {len(pairs)})"
        images, labels = checked(images, labels, ds, where, None if classes is None else classes[i])
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
        # torch's notes on what it loads (sparse checks, deprecations) are no concern of ours: the
        # checks below refuse such a file in one line
        with torch.serialization.safe_globals(NUMPY_SCALARS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, or one holding objects other than tensors and plain data
        raise ConfigError(f"{path}: cannot read as a torch file of tensors ({_load_reason(err)})") from None
    _check_content(content, path)
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
        raise ConfigError(f"{path}: a set of {_shown(saved)}, not {ds.name}")
    meta = content.get("meta")
    if meta is None:
        return [(content["images"], content["labels"])], {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise ConfigError(f"{path}: meta is {_shown(meta)}; expected a mapping of names to values")
    for key, kind in META_TYPES.items():
        if key in meta and meta[key] is not None and not _of_type(meta[key], kind):
            raise ConfigError(f"{path}: meta {key} is {_shown(meta[key])}; expected {kind.__name__}")
    strategy = meta.get("dsa_strategy")
    if strategy is not None and not diffaug.is_strategy(strategy):
        raise ConfigError(f"{path}: meta dsa_strategy {_shown(strategy)} is not a DSA strategy "
                          f"({', '.join(diffaug.STRATEGY_FORMS)})")
    return [(content["images"], content["labels"])], dict(meta)


# What a saved set's ``meta`` may say of it, and the type each entry has (others are kept as given)
META_TYPES = {"method": str, "model": str, "metric": str, "dsa_strategy": str, "source": str,
              "iteration": int, "ipc": int, "seed": int, "index": int, "indices": list}
# A set file's tensors: images float (normalised) or uint8 (pixels), labels integers
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.bool)


def _of_type(value, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _check_content(content, path: Path) -> None:
    """Every tensor in a loaded file is dense, on the CPU (not the meta device: that holds no values),
    not quantised, of a real dtype (``DTYPES``); asked before anything else reads one."""
    stack, seen = [(content, "")], 0
    while stack:
        value, where = stack.pop()
        seen += 1
        if seen > 100_000:
            raise ConfigError(f"{path}: holds over 100000 values: not a set file")
        if isinstance(value, dict):
            stack += [(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            stack += [(v, f"{where}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, torch.Tensor):
            name = where or "the file's tensor"
            if value.layout != torch.strided:
                problem = f"a {str(value.layout).removeprefix('torch.')} tensor; a set holds dense tensors"
            elif value.device.type != "cpu":
                problem = f"on the {value.device.type} device, which holds no values; a set holds them on the CPU"
            elif value.is_quantized or value.dtype not in DTYPES:
                problem = (f"of dtype {_dtype(value)}; a set holds float or uint8 images and integer labels")
            else:
                continue
            raise ConfigError(f"{path}: {name} is {problem}")


def _load_reason(err: Exception) -> str:
    """Why torch.load refused a file, without its boilerplate (which comes first and would cut the reason
    off the line)."""
    paragraphs = [" ".join(p.split()) for p in str(err).split("\n\n") if p.strip()]
    told = [p for p in paragraphs if not p.startswith(("Weights only load failed", "Check the documentation"))]
    return _reason(Exception(told[0] if told else " ".join(paragraphs)))


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


def checked(images, labels, ds: DatasetInfo, where: str,
            classes: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` as normalised float32 N x C x H x W and ``labels`` as int64 N, or a ConfigError
    naming ``where`` and what is wrong; the set holds every class of ``classes`` and no other (default:
    every class of the dataset)."""
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
    counts = torch.bincount(labels, minlength=k).tolist()
    wanted = range(k) if classes is None else sorted(set(classes))
    absent = [str(i) for i in wanted if counts[i] == 0]
    if absent:
        needed = f"every class 0..{k - 1}" if classes is None else f"its classes {', '.join(map(str, wanted))}"
        raise ConfigError(f"{where}: no image of class {', '.join(absent)}; a set needs {needed}")
    foreign = [str(i) for i, n in enumerate(counts) if n and i not in wanted]
    if foreign:
        raise ConfigError(f"{where}: images of class {', '.join(foreign)}, not a class of this step "
                          f"({', '.join(map(str, wanted))})")
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
        if not any(np.issubdtype(value.dtype, t) for t in (np.bool_, np.integer, np.floating)) \
                or value.dtype.itemsize > 8:
            raise ConfigError(f"{where}: {name} have dtype {value.dtype}; expected numbers")
        # one layout whatever the file's: C order, native byte order (torch takes no other)
        return torch.from_numpy(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")))
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    raise ConfigError(f"{where}: {name} are a {type(value).__name__}; expected an array or tensor")


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _reason(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _shown(value) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"
