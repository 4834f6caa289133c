"""Dataset registry and loading.

``load(name, root)`` returns ``(train, test)`` :class:`ImageSet` s whose images are float32
``N x C x H x W`` tensors, scaled to [0, 1] and normalised per channel with the dataset's
mean/std from the original code (docs/protocol.md); labels are int64 class indices.

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
   ============  ==============================================================================

   MNIST/FashionMNIST are read with ``torchvision.datasets.MNIST/FashionMNIST(root,
   download=False)`` (its ``.data``/``.targets`` tensors, no per-item PIL). SVHN and CIFAR10 are
   parsed directly (``scipy.io.loadmat`` / the batch pickles, exactly as torchvision does),
   because torchvision's constructors insist on the MD5 sums of the official files and would
   refuse any other copy (a subset, a re-packed file, a test fixture).

Nothing is downloaded unless ``download=True``; then torchvision's downloader fetches the dataset
into its layout under ``root`` (SVHN: into ``<root>`` itself). If no source is complete,
:class:`~condense.errors.DataNotFoundError` says, on one line, which dataset, every path tried and
how to fix it.

Caching
-------
The decoded uint8 pixels are cached in-process (keyed on the source files' paths, sizes and
modification times, so a changed file is re-read). Every ``load`` call builds *new* float
tensors from that cache, so callers own what they get back and may modify it freely.
"""

from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from condense.errors import ConfigError, DataNotFoundError, unknown

__all__ = [
    "DatasetInfo",
    "DATASETS",
    "dataset_names",
    "info",
    "ImageSet",
    "resolve_root",
    "load",
    "normalise",
    "denormalise",
]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    image_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]


_DIGITS = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("MNIST", 1, (28, 28), 10, (0.1307,), (0.3081,), _DIGITS),
        DatasetInfo(
            "FashionMNIST",
            1,
            (28, 28),
            10,
            (0.2861,),
            (0.3530,),
            (
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
        ),
        DatasetInfo(
            "SVHN", 3, (32, 32), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), _DIGITS
        ),
        DatasetInfo(
            "CIFAR10",
            3,
            (32, 32),
            10,
            (0.4914, 0.4822, 0.4465),
            (0.2023, 0.1994, 0.2010),
            (
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ),
        ),
    )
}


def dataset_names() -> list[str]:
    """The dataset names users may type, in registry order."""
    return list(DATASETS)


def info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` (exact, else case-insensitive match)."""
    if name in DATASETS:
        return DATASETS[name]
    if isinstance(name, str):
        for key, value in DATASETS.items():
            if key.lower() == name.lower():
                return value
    raise unknown("dataset", name, dataset_names())


# --------------------------------------------------------------------------------------------
# ImageSet
# --------------------------------------------------------------------------------------------


@dataclass
class ImageSet:
    """Normalised float32 images ``N x C x H x W`` with int64 labels ``N``."""

    images: Tensor
    labels: Tensor
    info: DatasetInfo

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.labels.dim() != 1 or len(self.images) != len(self.labels):
            raise ValueError(
                f"ImageSet needs images N x C x H x W and labels N; got {tuple(self.images.shape)} "
                f"and {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "ImageSet":
        """A new ImageSet with images and labels on ``device``."""
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


def _read_idx(ds: DatasetInfo, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    import torchvision.datasets as tvd

    cls = tvd.MNIST if ds.name == "MNIST" else tvd.FashionMNIST
    tv = cls(str(root), train=train, download=False)
    images = tv.data.numpy()[..., None]  # N x H x W -> N x H x W x 1
    return images, tv.targets.numpy().astype(np.int64)


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io as sio

    mat = sio.loadmat(str(path))
    if "X" not in mat or "y" not in mat:
        raise ConfigError(f"{path}: expected variables X and y")
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)))  # H W C N -> N H W C
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0  # SVHN stores digit 0 as class 10
    return images, labels


def _read_cifar(paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    data, labels = [], []
    for p in paths:
        with open(p, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    images = np.vstack(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


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
    if split == "train":  # every method draws images of every class
        absent = np.flatnonzero(np.bincount(labels, minlength=ds.num_classes) == 0)
        if len(absent):
            raise ConfigError(f"{where}: no training image of class {', '.join(map(str, absent))}; "
                              f"{ds.name} needs images of every class 0..{ds.num_classes - 1}")


@functools.lru_cache(maxsize=8)
def _read_cached(ds: DatasetInfo, src: _Source, root: Path, stamp: tuple) -> tuple[Tensor, ...]:
    """Decode ``src`` into uint8 N x C x H x W and int64 N tensors (train, test). Never handed out."""
    del stamp  # part of the cache key only
    out: list[Tensor] = []
    for split, paths in (("train", src.train), ("test", src.test)):
        where = str(paths[0]) if len(paths) == 1 else src.shown
        try:
            if src.kind == "npz":
                images, labels = _read_npz(paths[0])
            elif src.kind == "idx":
                images, labels = _read_idx(ds, root, train=(split == "train"))
            elif src.kind == "svhn":
                images, labels = _read_svhn(paths[0])
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


def normalise(u8: Tensor, ds: DatasetInfo) -> Tensor:
    """uint8 N x C x H x W -> new float32 tensor, (x/255 - mean) / std per channel."""
    std = torch.tensor(ds.std, dtype=torch.float32)
    mean = torch.tensor(ds.mean, dtype=torch.float32)
    scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1)
    shift = (-mean / std).view(1, -1, 1, 1)
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
    if ds.name == "SVHN":
        for split in ("train", "test"):
            tvd.SVHN(r, split=split, download=True)
    else:
        cls = {"MNIST": tvd.MNIST, "FashionMNIST": tvd.FashionMNIST, "CIFAR10": tvd.CIFAR10}[ds.name]
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


def _not_found(ds: DatasetInfo, base: Path, tried: list[_Source]) -> DataNotFoundError:
    paths = "; ".join(_describe(s) for s in tried)
    return DataNotFoundError(
        f"dataset {ds.name} not found under data root {base} (tried: {paths}); "
        f"put the files there or point --data_path / DC_DATA at the folder that holds them, "
        f"or pass --download to fetch {ds.name} into {base}"
    )


def require(name: str, root: str | os.PathLike | None = None) -> None:
    """Raise ``DataNotFoundError`` (``load``'s message) unless ``name``'s files are under the data
    root; reads none of them, so a driver checks in milliseconds what a worker will load."""
    ds = info(name)
    base = resolve_root(root)
    src, tried = _find(ds, base)
    if src is None:
        raise _not_found(ds, base, tried)
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
    name: str, root: str | os.PathLike | None = None, download: bool = False
) -> tuple[ImageSet, ImageSet]:
    """Load ``name`` from ``resolve_root(root)`` as normalised ``(train, test)`` ImageSets.

    The returned tensors are fresh (not shared with the cache or other callers).
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
                f"{base} yourself (or point --data_path / DC_DATA at them)"
            ) from err
        src, tried = _find(ds, base)
    if src is None:
        raise _not_found(ds, base, tried)
    x_tr, y_tr, x_te, y_te = _read_cached(ds, src, base, src.stamp())
    train = ImageSet(normalise(x_tr, ds), y_tr.clone(), ds)
    test = ImageSet(normalise(x_te, ds), y_te.clone(), ds)
    return train, test
