"""The dataset files ``condense.data.load`` reads: where each dataset's files are looked for under
a data root (its sources, in preference order), and one reader per format, each returning a split's
(images uint8 N x H x W x C, labels int64 N), checked by ``condense.data``.

Same pixels, same arrays: whatever a file's layout (a greyscale set stored N x H x W without its
channel axis, Fortran order, big-endian numbers, a view with odd strides), :func:`read` hands out
the images N x H x W x C in one memory layout (C order, native byte order, the strides of a fresh
array) and the labels likewise, so the tensors made from them, and the kernels a network picks for
them, are the same bit for bit.

Where files are looked for, in this order (the first complete source wins):

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
"""
from __future__ import annotations

import codecs
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .datasets import DatasetInfo
from .errors import ConfigError


@dataclass(frozen=True)
class Source:
    """One place a dataset's files may be: their format (``kind``, which ``read`` dispatches on) and paths."""
    kind: str  # "npz" | "idx" | "svhn" | "cifar10" | "cifar100" | "tiny_folder" | "tiny_pt"
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


def sources(ds: DatasetInfo, root: Path) -> list[Source]:
    """Every place ``ds`` may be found under ``root``, in preference order."""
    npz_dir = root / ds.name
    out = [
        Source(
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
            Source(
                "idx",
                idx("train"),
                idx("t10k"),
                f"{raw}{os.sep}{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte",
            )
        )
    elif ds.name == "SVHN":
        for d in (root / "SVHN", root):
            out.append(
                Source(
                    "svhn",
                    (d / "train_32x32.mat",),
                    (d / "test_32x32.mat",),
                    f"{d}{os.sep}{{train,test}}_32x32.mat",
                )
            )
    elif ds.name == "CIFAR100":
        d = root / "cifar-100-python"
        out.append(Source("cifar100", (d / "train",), (d / "test",), f"{d}{os.sep}{{train,test}}"))
    elif ds.name == "TinyImageNet":
        d = root / "tiny-imagenet-200"
        out.append(Source("tiny_folder", (d / "wnids.txt",), (d / "val" / "val_annotations.txt",),
                           f"{d}{os.sep}{{wnids.txt,train/<wnid>/images/*.JPEG,val/val_annotations.txt}}"))
        out.append(Source("tiny_pt", (root / "tinyimagenet.pt",), (root / "tinyimagenet.pt",),
                           str(root / "tinyimagenet.pt")))
    elif ds.name == "CIFAR10":
        d = root / "cifar-10-batches-py"
        out.append(
            Source(
                "cifar10",
                tuple(d / f"data_batch_{i}" for i in range(1, 6)),
                (d / "test_batch",),
                f"{d}{os.sep}{{data_batch_1..5,test_batch}}",
            )
        )
    return out


def describe(src: Source) -> str:
    """``src.shown``, plus which files are missing when only some of them are there."""
    files = src.train + src.test
    missing = [p.name for p in files if not p.is_file()]
    if 0 < len(missing) < len(files):
        return f"{src.shown} (incomplete, missing {', '.join(missing)})"
    return src.shown


def find(ds: DatasetInfo, root: Path) -> tuple[Source | None, list[Source]]:
    """The first complete source of ``ds`` under ``root`` (None if none is), and every source tried."""
    srcs = sources(ds, root)
    for s in srcs:
        if s.exists():
            return s, srcs
    return None, srcs


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
    return _read_idx_file(paths[0], "images"), _read_idx_file(paths[1], "labels").astype(np.int64)  # N x H x W


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


def read(src: Source, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` (train or test) of ``src``: its format's reader's arrays in one layout (``one_layout``)."""
    images, labels = _read_format(src, split)
    if isinstance(images, np.ndarray) and images.ndim == 3:  # N x H x W: one channel
        images = images[..., None]
    return one_layout(images), one_layout(labels)


def one_layout(array) -> np.ndarray:
    """``array`` in C order and native byte order with the strides of a fresh array (a size-1 axis
    added by indexing has stride 0, which C order alone does not undo); copied only where it differs."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("=") if array.dtype.byteorder not in ("=", "|") else array.dtype
    strides, step = [], dtype.itemsize
    for size in reversed(array.shape):
        strides.insert(0, step)
        step *= size
    if dtype == array.dtype and array.flags.c_contiguous and array.strides == tuple(strides):
        return array
    out = np.empty(array.shape, dtype=dtype)
    out[...] = array
    return out


def _read_format(src: Source, split: str) -> tuple[np.ndarray, np.ndarray]:
    paths = src.train if split == "train" else src.test
    if src.kind == "npz":
        return _read_npz(paths[0])
    if src.kind == "idx":
        return _read_idx(paths)
    if src.kind == "svhn":
        return _read_svhn(paths[0])
    if src.kind == "cifar100":
        return _read_cifar100(paths[0])
    if src.kind == "tiny_folder":
        return _read_tiny_folder(src.train[0].parent, split)  # the folder holding wnids.txt
    if src.kind == "tiny_pt":
        return _read_tiny_pt(paths[0], split)
    return _read_cifar(paths)
