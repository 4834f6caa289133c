"""Dataset loading (the registry of names, shapes and normalisation is ``condense.datasets``, re-exported
here).

``load(name, root)`` returns ``(train, test)`` :class:`ImageSet` s of ``N x C x H x W`` images and
int64 class indices. ``ImageSet.batch(idx)`` gives images scaled to [0, 1] and normalised per
channel with the dataset's mean/std from the original code (docs/protocol.md), as float32. A dataset
whose entry says ``uint8`` (Tiny ImageNet) is held as its uint8 pixels and normalised batch by batch,
a quarter of the memory; the others are held normalised, as before.

Data root
---------
``resolve_root(root)``: an explicit argument (``--data_path``, a sweep's ``data_root``) wins, then
the ``DC_DATA`` environment variable, then ``./data``. The returned path is absolute.

Where files are looked for, in this order (the first complete source wins)
--------------------------------------------------------------------------
1. ``<root>/<NAME>/train.npz`` and ``<root>/<NAME>/test.npz`` -- the project's own format
   (``shared/data/README.md``): ``images`` uint8 ``N x H x W x C``, ``labels`` int64 ``N``.
2. torchvision's own on-disk layout under the *same* root, i.e. the ``root`` a user would pass to
   ``torchvision.datasets.<Name>(root, ...)``:

   ============  ==============================================================================
   MNIST         ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
   FashionMNIST  ``<root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
   SVHN          ``<root>/SVHN/{train,test}_32x32.mat``, else ``<root>/{train,test}_32x32.mat``
                 (the latter is what ``torchvision.datasets.SVHN(root)`` and the original DC
                 code use)
   CIFAR10       ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}``
   CIFAR100      ``<root>/cifar-100-python/{train,test}`` (fine labels)
   TinyImageNet  ``<root>/tiny-imagenet-200/`` (``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
                 ``val/val_annotations.txt``, ``val/images/``), else the original code's
                 ``<root>/tinyimagenet.pt`` (uint8 ``images_train``/``images_val``, read with
                 ``weights_only``)
   ============  ==============================================================================

   Every layout is parsed here, not by torchvision's constructors, which insist on the MD5 sums of
   the official files and would refuse any other copy (a subset, a re-packed file, a test fixture):
   the IDX files with their header checked (magic number, sizes), SVHN with ``scipy.io.loadmat``,
   CIFAR-10's batch pickles with a restricted unpickler that admits only what the format holds
   (arrays, lists, dicts, strings, numbers): a tampered batch that would run code is refused.

Nothing is downloaded unless ``download=True``; then torchvision's downloader fetches the dataset
into its layout under ``root`` (SVHN: into ``<root>`` itself). If no source is complete,
:class:`~condense.errors.DataNotFoundError` says, on one line, which dataset, every path tried and
how to fix it.

Checks
------
Whatever is read is checked (``uint8`` images of the dataset's shape, one integer label per image
in range, every class in both splits, a test split that is not empty); ``check(name, root,
per_class)`` decodes and checks a dataset without handing it out, and that every class has
``per_class`` training images, so a driver refuses bad data before any worker starts. Each problem is
one :class:`~condense.errors.ConfigError` line naming the file.

Caching
-------
The decoded uint8 pixels are cached in-process (keyed on the source files' paths, sizes and
modification times, so a changed file is re-read). Every ``load`` call builds *new* tensors
from that cache (normalised float, or a copy of the uint8 pixels), so callers own what they get back
and may modify it freely.
"""

from __future__ import annotations

import codecs
import functools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from condense.datasets import DATASETS, DatasetInfo, dataset_names, info
from condense.errors import ConfigError, DataNotFoundError

__all__ = [
    "DatasetInfo",
    "DATASETS",
    "dataset_names",
    "info",
    "ImageSet",
    "resolve_root",
    "load",
    "check",
    "normalise",
    "denormalise",
]


# --------------------------------------------------------------------------------------------
# ImageSet
# --------------------------------------------------------------------------------------------


@dataclass
class ImageSet:
    """Images ``N x C x H x W`` with int64 labels ``N``: either normalised float, or the dataset's
    uint8 pixels (``info.uint8``), which ``batch`` normalises on the images' device. Whatever reads
    real images reads them through ``batch``, so both give the same float32 values."""

    images: Tensor
    labels: Tensor
    info: DatasetInfo

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.labels.dim() != 1 or len(self.images) != len(self.labels):
            raise ValueError(
                f"ImageSet needs images N x C x H x W and labels N; got {tuple(self.images.shape)} "
                f"and {tuple(self.labels.shape)}"
            )
        # made once on the images' device: a batch then costs no host-to-device copy
        self._affine = _affine(self.info, self.images.device) if self.images.dtype == torch.uint8 else None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def batch(self, idx) -> Tensor:
        """Normalised float images at ``idx`` (an index tensor or a slice). Stored normalised: the
        stored rows themselves (a view for a slice); stored uint8: a new float32 tensor."""
        rows = self.images[idx]
        return rows if self._affine is None else normalise(rows, self.info, self._affine)

    def to(self, device) -> "ImageSet":
        """A new ImageSet with images and labels on ``device`` (uint8 images stay uint8)."""
        return ImageSet(self.images.to(device), self.labels.to(device), self.info)

    def indices_per_class(self) -> list[Tensor]:
        """``result[c]`` = LongTensor of the indices with label ``c`` (on the labels' device)."""
        return [
            torch.nonzero(self.labels == c, as_tuple=False).flatten()
            for c in range(self.info.num_classes)
        ]


# --------------------------------------------------------------------------------------------
# Root and sources
# --------------------------------------------------------------------------------------------


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """Explicit ``root`` > ``$DC_DATA`` > ``./data``, as an absolute path."""
    if root is None or str(root) == "":
        root = os.environ.get("DC_DATA") or "data"
    return Path(root).expanduser().resolve()


@dataclass(frozen=True)
class _Source:
    kind: str  # "npz" | "idx" | "svhn" | "cifar10"
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    shown: str  # compact description of the paths, for error messages

    def exists(self) -> bool:
        return all(p.is_file() for p in self.train + self.test)

    def stamp(self) -> tuple:
        out = []
        for p in self.train + self.test:
            st = p.stat()
            out.append((str(p), st.st_size, st.st_mtime_ns))
        return tuple(out)


def _sources(ds: DatasetInfo, root: Path) -> list[_Source]:
    """Every place ``ds`` may be found under ``root``, in preference order."""
    npz_dir = root / ds.name
    out = [
        _Source(
            "npz",
            (npz_dir / "train.npz",),
            (npz_dir / "test.npz",),
            f"{npz_dir}{os.sep}{{train,test}}.npz",
        )
    ]
    if ds.name in ("MNIST", "FashionMNIST"):
        raw = root / ds.name / "raw"

        def idx(split: str) -> tuple[Path, ...]:
            return (raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte")

        out.append(
            _Source(
                "idx",
                idx("train"),
                idx("t10k"),
                f"{raw}{os.sep}{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte",
            )
        )
    elif ds.name == "SVHN":
        for d in (root / "SVHN", root):
            out.append(
                _Source(
                    "svhn",
                    (d / "train_32x32.mat",),
                    (d / "test_32x32.mat",),
                    f"{d}{os.sep}{{train,test}}_32x32.mat",
                )
            )
    elif ds.name == "CIFAR100":
        d = root / "cifar-100-python"
        out.append(_Source("cifar100", (d / "train",), (d / "test",), f"{d}{os.sep}{{train,test}}"))
    elif ds.name == "TinyImageNet":
        d = root / "tiny-imagenet-200"
        out.append(_Source("tiny_folder", (d / "wnids.txt",), (d / "val" / "val_annotations.txt",),
                           f"{d}{os.sep}{{wnids.txt,train/<wnid>/images/*.JPEG,val/val_annotations.txt}}"))
        out.append(_Source("tiny_pt", (root / "tinyimagenet.pt",), (root / "tinyimagenet.pt",),
                           str(root / "tinyimagenet.pt")))
    elif ds.name == "CIFAR10":
        d = root / "cifar-10-batches-py"
        out.append(
            _Source(
                "cifar10",
                tuple(d / f"data_batch_{i}" for i in range(1, 6)),
                (d / "test_batch",),
                f"{d}{os.sep}{{data_batch_1..5,test_batch}}",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Readers: each returns (images uint8 N x H x W x C, labels int64 N) per split
# --------------------------------------------------------------------------------------------


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as d:
        missing = {"images", "labels"} - set(d.files)
        if missing:
            raise ConfigError(
                f"{path}: missing array(s) {', '.join(sorted(missing))} (has: {', '.join(d.files)})"
            )
        return d["images"], d["labels"]


# IDX (yann.lecun.com's MNIST format): magic 0x0000 08 <ndim> (unsigned bytes), then ndim big-endian sizes
_IDX_NDIM = {"images": 3, "labels": 1}


def _read_idx_file(path: Path, kind: str) -> np.ndarray:
    raw = path.read_bytes()
    ndim = _IDX_NDIM[kind]
    magic, head = 0x0800 + ndim, 4 * (ndim + 1)
    got = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if got != magic:
        found = f"magic number {got:#010x}" if got is not None else f"only {len(raw)} bytes"
        raise ConfigError(f"{path}: not an IDX {kind} file ({found}, expected {magic:#010x})")
    if len(raw) < head:
        raise ConfigError(f"{path}: IDX header cut off ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 * i + 4: 4 * i + 8], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(raw) - head != size:
        raise ConfigError(f"{path}: the IDX header says {'x'.join(map(str, dims))} ({size} bytes of data), "
                          f"the file holds {len(raw) - head}: truncated or not this file")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims).copy()  # writable, as torch wants


def _read_idx(paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    images = _read_idx_file(paths[0], "images")[..., None]  # N x H x W -> N x H x W x 1
    return images, _read_idx_file(paths[1], "labels").astype(np.int64)


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io as sio

    mat = sio.loadmat(str(path))
    if "X" not in mat or "y" not in mat:
        raise ConfigError(f"{path}: expected variables X and y")
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)))  # H W C N -> N H W C
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0  # SVHN stores digit 0 as class 10
    return images, labels


try:  # numpy >= 2 keeps the array reconstructors here, older numpy under numpy.core
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # pragma: no cover
    from numpy.core import multiarray as _multiarray, numeric as _numeric


def _latin1(text: str, encoding: str) -> bytes:
    """What a protocol-2 pickle calls to rebuild bytes (``_codecs.encode``), for latin-1 alone."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"bytes encoded as {encoding!r}")
    return codecs.encode(text, "latin1")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (a dict of a uint8 array, lists of labels and file names, strings)
    and nothing else: any other global, the way a pickle runs code, is refused."""
    ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1,
               **{(m, n): getattr(_multiarray, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                  for n in ("_reconstruct", "scalar")},
               # pickle protocol 5 rebuilds an array from its buffer
               **{(m, "_frombuffer"): _numeric._frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")}}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}; a CIFAR-10 batch holds only arrays, "
                                         "lists, dicts and strings, so it was not loaded")
        return self.ALLOWED[(module, name)]


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list]:
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise ConfigError(f"{path}: refused: {err}") from None
    if isinstance(entry, dict):  # a batch pickled by Python 3 has bytes keys
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    labels = entry.get("labels", entry.get("fine_labels")) if isinstance(entry, dict) else None
    data = entry.get("data") if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        got = f"{list(data.shape)} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ConfigError(f"{path}: not a CIFAR-10 batch: 'data' is {got}, expected [N, 3072] uint8")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise ConfigError(f"{path}: not a CIFAR-10 batch: 'labels' is not a list of {len(data)} integers")
    return data, labels


def _read_cifar(paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    data, labels = [], []
    for p in paths:
        batch, batch_labels = _read_cifar_batch(p)
        data.append(batch)
        labels.extend(batch_labels)
    images = np.vstack(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a file we are pointed at must not run code."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refuses {module}.{name}: a CIFAR file holds arrays and lists only")
        return super().find_class(module, name)


def _read_cifar100(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's cifar-100-python/{train,test}, fine labels. Keys are str in the official (Python 2)
    files read as latin1, bytes in a Python 3 pickle: both are read."""
    with open(path, "rb") as f:
        entry = _ArraysOnly(f, encoding="latin1").load()
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: not a CIFAR-100 batch (a {type(entry).__name__}, not a dict)")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    missing = {"data", "fine_labels"} - set(entry)
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(sorted(missing))} (has: {', '.join(map(str, entry))})")
    images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(entry["fine_labels"], dtype=np.int64)


def _read_tiny_folder(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The standard tiny-imagenet-200 folder: train/<wnid>/images/*.JPEG per class of wnids.txt, and
    val/images/* labelled by val/val_annotations.txt; classes in wnids.txt's order. A missing class
    folder, an unknown class or an unreadable image is one ConfigError naming the path."""
    wnids = (d / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}
    files: list[tuple[Path, int]] = []
    if split == "train":
        for w in wnids:
            folder = d / "train" / w / "images"
            found = sorted(folder.glob("*.JPEG")) if folder.is_dir() else []
            if not found:
                raise ConfigError(f"{folder}: no training images of class {w} (listed in {d / 'wnids.txt'}); "
                                  "Tiny ImageNet needs train/<wnid>/images/*.JPEG for every class")
            files += [(f, index[w]) for f in found]
    else:
        annotations = d / "val" / "val_annotations.txt"
        for n, line in enumerate(annotations.read_text().splitlines(), 1):
            if not line.strip():
                continue
            name, wnid = (line.split("	") + [""])[:2]
            if wnid not in index:
                raise ConfigError(f"{annotations}: line {n}: class {wnid!r} is not in {d / 'wnids.txt'}")
            files.append((d / "val" / "images" / name, index[wnid]))
    from PIL import Image

    images = np.empty((len(files), 64, 64, 3), dtype=np.uint8)
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(f) as im:
                pixels = np.asarray(im.convert("RGB"))  # a few Tiny ImageNet JPEGs are greyscale
        except (OSError, ValueError, SyntaxError) as err:
            raise ConfigError(f"{f}: not a readable image ({' '.join(str(err).split()) or type(err).__name__})") from None
        if pixels.shape != (64, 64, 3):
            raise ConfigError(f"{f}: {pixels.shape[1]}x{pixels.shape[0]} pixels; Tiny ImageNet images are 64x64")
        images[i] = pixels
    return images, np.asarray([label for _, label in files], dtype=np.int64)


def _read_tiny_pt(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The original code's tinyimagenet.pt: ``images_train``/``images_val`` uint8 N x 3 x 64 x 64 and
    ``labels_train``/``labels_val``; loaded with weights_only (tensors, lists and strings, no code)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    part = "train" if split == "train" else "val"
    keys = (f"images_{part}", f"labels_{part}")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        has = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path}: needs {' and '.join(keys)} (has: {has})")
    images, labels = data[keys[0]], data[keys[1]]
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        got = f"{list(images.shape)} {images.dtype}" if isinstance(images, Tensor) else type(images).__name__
        raise ConfigError(f"{path}: {keys[0]} is {got}; the original's file holds uint8 N x 3 x 64 x 64")
    return images.permute(0, 2, 3, 1).numpy(), torch.as_tensor(labels).numpy().astype(np.int64)


def _check(ds: DatasetInfo, images: np.ndarray, labels: np.ndarray, where: str, split: str) -> None:
    h, w = ds.image_size
    want = f"[N, {h}, {w}, {ds.channels}] uint8"
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (h, w, ds.channels):
        raise ConfigError(
            f"{where}: images are {list(images.shape)} {images.dtype}, but {ds.name} needs {want}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ConfigError(
            f"{where}: labels are {list(labels.shape)}, expected [{len(images)}] (one per image)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"{where}: labels have dtype {labels.dtype}, expected integers")
    if len(labels) and (labels.min() < 0 or labels.max() >= ds.num_classes):
        raise ConfigError(
            f"{where}: labels range {labels.min()}..{labels.max()}, "
            f"but {ds.name} has classes 0..{ds.num_classes - 1}"
        )
    if not len(labels):
        raise ConfigError(f"{where}: the {split} split is empty; {ds.name} needs {split} images of every class")
    # every method draws images of every class, and every class is tested
    absent = np.flatnonzero(np.bincount(labels, minlength=ds.num_classes) == 0)
    if len(absent):
        kind = "training" if split == "train" else "test"
        raise ConfigError(f"{where}: no {kind} image of class {', '.join(map(str, absent))}; "
                          f"{ds.name} needs images of every class 0..{ds.num_classes - 1}")


@functools.lru_cache(maxsize=8)
def _read_cached(ds: DatasetInfo, src: _Source, stamp: tuple) -> tuple[Tensor, ...]:
    """Decode ``src`` into uint8 N x C x H x W and int64 N tensors (train, test). Never handed out."""
    del stamp  # part of the cache key only
    out: list[Tensor] = []
    for split, paths in (("train", src.train), ("test", src.test)):
        where = ", ".join(map(str, paths)) if len(paths) <= 2 else src.shown  # IDX: images, labels
        try:
            if src.kind == "npz":
                images, labels = _read_npz(paths[0])
            elif src.kind == "idx":
                images, labels = _read_idx(paths)
            elif src.kind == "svhn":
                images, labels = _read_svhn(paths[0])
            elif src.kind == "cifar100":
                images, labels = _read_cifar100(paths[0])
            elif src.kind == "tiny_folder":
                images, labels = _read_tiny_folder(src.train[0].parent, split)  # the folder holding wnids.txt
            elif src.kind == "tiny_pt":
                images, labels = _read_tiny_pt(paths[0], split)
            else:
                images, labels = _read_cifar(paths)
        except ConfigError:
            raise
        except Exception as err:  # corrupt / unreadable file
            msg = " ".join(str(err).split()) or type(err).__name__
            raise ConfigError(f"cannot read {ds.name} {split} data from {where}: {msg}") from err
        if images.ndim == 3 and ds.channels == 1:  # tolerate N x H x W for greyscale
            images = images[..., None]
        _check(ds, images, labels, where, split)
        out.append(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous())
        out.append(torch.from_numpy(labels.astype(np.int64, copy=True)))
    return tuple(out)


def _affine(ds: DatasetInfo, device) -> tuple[Tensor, Tensor]:
    """float32 (scale, shift), each 1 x C x 1 x 1 on ``device``, with u8 * scale + shift =
    (u8 / 255 - mean) / std: computed on the CPU, so every device normalises with the same numbers."""
    std = torch.tensor(ds.std, dtype=torch.float32)
    mean = torch.tensor(ds.mean, dtype=torch.float32)
    scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1)
    shift = (-mean / std).view(1, -1, 1, 1)
    return scale.to(device), shift.to(device)


def normalise(u8: Tensor, ds: DatasetInfo, affine: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """uint8 N x C x H x W -> new float32 tensor, (x/255 - mean) / std per channel; ``affine``:
    ``_affine(ds, u8.device)`` made beforehand. Elementwise, so a batch normalised alone equals
    the same rows of the whole set normalised at once, bit for bit."""
    scale, shift = affine if affine is not None else _affine(ds, u8.device)
    out = u8.to(torch.float32)
    out.mul_(scale).add_(shift)
    return out


def denormalise(images: Tensor, info: DatasetInfo) -> Tensor:
    """Undo the normalisation: ``images * std + mean`` clamped to [0, 1] (C x H x W or N x C x H x W)."""
    std = torch.tensor(info.std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    mean = torch.tensor(info.mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images * std + mean).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------


def _download(ds: DatasetInfo, root: Path) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    r = str(root)
    if ds.name == "TinyImageNet":
        raise ValueError("torchvision has no Tiny ImageNet downloader: unpack tiny-imagenet-200.zip there")
    if ds.name == "SVHN":
        for split in ("train", "test"):
            tvd.SVHN(r, split=split, download=True)
    else:
        cls = {"MNIST": tvd.MNIST, "FashionMNIST": tvd.FashionMNIST, "CIFAR10": tvd.CIFAR10,
               "CIFAR100": tvd.CIFAR100}[ds.name]
        for train in (True, False):
            cls(r, train=train, download=True)


def _describe(src: _Source) -> str:
    """``src.shown``, plus which files are missing when only some of them are there."""
    files = src.train + src.test
    missing = [p.name for p in files if not p.is_file()]
    if 0 < len(missing) < len(files):
        return f"{src.shown} (incomplete, missing {', '.join(missing)})"
    return src.shown


def _find(ds: DatasetInfo, root: Path) -> tuple[_Source | None, list[_Source]]:
    srcs = _sources(ds, root)
    for s in srcs:
        if s.exists():
            return s, srcs
    return None, srcs


# How a user points the command line at a data root; a sweep's driver and trials say theirs.
ROOT_FLAGS = "--data_path / DC_DATA"


def _not_found(ds: DatasetInfo, base: Path, tried: list[_Source], download: bool,
               root_from: str) -> DataNotFoundError:
    """``download``: the caller has a --download flag to point at; ``root_from``: how its user
    sets the data root."""
    paths = "; ".join(_describe(s) for s in tried)
    fetch = f", or pass --download to fetch {ds.name} into {base}" if download else ""
    return DataNotFoundError(
        f"dataset {ds.name} not found under data root {base} (tried: {paths}); "
        f"put the files there or point {root_from} at the folder that holds them{fetch}"
    )


def check(name: str, root: str | os.PathLike | None = None, per_class: int = 0, why: str = "",
          root_from: str = ROOT_FLAGS) -> None:
    """Decode ``name``'s files under the data root once and check them as ``load`` does, and that
    every class has ``per_class`` training images (``why``: what needs them, for the message).
    ``DataNotFoundError`` when the files are not there (``root_from``: how the caller's user sets
    the root), ``ConfigError`` naming the file otherwise."""
    ds = info(name)
    base = resolve_root(root)
    src, tried = _find(ds, base)
    if src is None:
        raise _not_found(ds, base, tried, download=False, root_from=root_from)
    _, labels, _, _ = _read_cached(ds, src, src.stamp())
    counts = torch.bincount(labels, minlength=ds.num_classes)
    short = int(counts.argmin())
    if int(counts[short]) < per_class:
        where = str(src.train[0]) if len(src.train) == 1 else src.shown
        raise ConfigError(f"{where}: class {short} has {int(counts[short])} training images, fewer than the "
                          f"{per_class} {why or 'asked for'}")


def readable(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``load(name, root)`` finds every file of ``name`` and can open it (nothing decoded)."""
    src, _ = _find(info(name), resolve_root(root))
    try:
        for p in (src.train + src.test) if src is not None else ():
            with open(p, "rb") as f:
                f.read(1)
    except OSError:
        return False
    return src is not None


def load(
    name: str, root: str | os.PathLike | None = None, download: bool = False, *, offers_download: bool = False,
    root_from: str = ROOT_FLAGS,
) -> tuple[ImageSet, ImageSet]:
    """Load ``name`` from ``resolve_root(root)`` as ``(train, test)`` ImageSets: normalised float32
    images, or uint8 pixels for a dataset whose entry says ``uint8`` (``ImageSet.batch`` normalises).

    The returned tensors are fresh (not shared with the cache or other callers). Files that are not
    there are a ``DataNotFoundError`` that says how to point at them (``root_from``) and, where the
    caller has a --download flag (``offers_download``), to pass it.
    """
    ds = info(name)
    base = resolve_root(root)
    src, tried = _find(ds, base)
    if src is None and download:
        try:
            _download(ds, base)
        except Exception as err:
            msg = " ".join(str(err).split()) or type(err).__name__
            raise DataNotFoundError(
                f"dataset {ds.name}: download into {base} failed ({msg}); put the files under "
                f"{base} yourself (or point {root_from} at them)"
            ) from err
        src, tried = _find(ds, base)
    if src is None:
        raise _not_found(ds, base, tried, download=offers_download, root_from=root_from)
    x_tr, y_tr, x_te, y_te = _read_cached(ds, src, src.stamp())
    held = (lambda u8: u8.clone()) if ds.uint8 else (lambda u8: normalise(u8, ds))
    return ImageSet(held(x_tr), y_tr.clone(), ds), ImageSet(held(x_te), y_te.clone(), ds)
