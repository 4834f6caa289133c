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

Files
-----
Where each dataset's files are looked for under the root, and how each format is read and refused
when it would run code: ``condense.readers``.

Nothing is downloaded unless ``download=True``; then ``condense.download`` fetches the dataset into
torchvision's layout under ``root`` (SVHN: into ``<root>`` itself). If no source is complete,
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

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from condense.datasets import DATASETS, DatasetInfo, dataset_names, info
from condense import environment
from condense.download import DOWNLOADABLE, fetch
from condense.errors import ConfigError, DataNotFoundError
from condense.readers import Source, describe, find, read

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
# Root
# --------------------------------------------------------------------------------------------


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """Explicit ``root`` > ``$DC_DATA`` > ``./data``, as an absolute path."""
    if root is None or str(root) == "":
        return environment.folder("DC_DATA") or Path("data").resolve()
    return environment.path_value(str(root), "data root")


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
def _read_cached(ds: DatasetInfo, src: Source, stamp: tuple) -> tuple[Tensor, ...]:
    """Decode ``src`` into uint8 N x C x H x W and int64 N tensors (train, test). Never handed out."""
    del stamp  # part of the cache key only
    out: list[Tensor] = []
    for split, paths in (("train", src.train), ("test", src.test)):
        where = ", ".join(map(str, paths)) if len(paths) <= 2 else src.shown  # IDX: images, labels
        try:
            images, labels = read(src, split)
        except ConfigError:
            raise
        except Exception as err:  # corrupt / unreadable file
            msg = " ".join(str(err).split()) or type(err).__name__
            raise ConfigError(f"cannot read {ds.name} {split} data from {where}: {msg}") from err
        _check(ds, images, labels, where, split)
        # images in one layout (readers.read): the same pixels give the same tensor, strides included
        out.append(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
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



# How a user points the command line at a data root; a sweep's driver and trials say theirs.
ROOT_FLAGS = "--data_path / DC_DATA"


def _not_found(ds: DatasetInfo, base: Path, tried: list[Source], download: bool,
               root_from: str) -> DataNotFoundError:
    """``download``: the caller has a --download flag to point at; ``root_from``: how its user
    sets the data root."""
    paths = "; ".join(describe(s) for s in tried)
    fetch = f", or pass --download to fetch {ds.name} into {base}" if download and ds.name in DOWNLOADABLE else ""
    return DataNotFoundError(
        f"dataset {ds.name} not found under data root {base} (tried: {paths}); "
        f"put the files there or point {root_from} at the folder that holds them{fetch}"
    )


def check(name: str, root: str | os.PathLike | None = None, per_class: int = 0, why: str = "",
          root_from: str = ROOT_FLAGS, offers_download: bool = False) -> None:
    """Decode ``name``'s files under the data root once and check them as ``load`` does, and that
    every class has ``per_class`` training images (``why``: what needs them, for the message).
    ``DataNotFoundError`` when the files are not there (``root_from``: how the caller's user sets
    the root; ``offers_download``: the caller has a --download flag), ``ConfigError`` naming the file
    otherwise."""
    ds = info(name)
    base = resolve_root(root)
    src, tried = find(ds, base)
    if src is None:
        raise _not_found(ds, base, tried, download=offers_download, root_from=root_from)
    _, labels, _, _ = _read_cached(ds, src, src.stamp())
    counts = torch.bincount(labels, minlength=ds.num_classes)
    short = int(counts.argmin())
    if int(counts[short]) < per_class:
        where = str(src.train[0]) if len(src.train) == 1 else src.shown
        raise ConfigError(f"{where}: class {short} has {int(counts[short])} training images, fewer than the "
                          f"{per_class} {why or 'asked for'}")


def readable(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``load(name, root)`` finds every file of ``name`` and can open it (nothing decoded)."""
    src, _ = find(info(name), resolve_root(root))
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
    src, tried = find(ds, base)
    if src is None and download:
        fetch(ds.name, base)  # a failure is one DownloadError line
        src, tried = find(ds, base)
    if src is None:
        raise _not_found(ds, base, tried, download=offers_download, root_from=root_from)
    x_tr, y_tr, x_te, y_te = _read_cached(ds, src, src.stamp())
    held = (lambda u8: u8.clone()) if ds.uint8 else (lambda u8: normalise(u8, ds))
    return ImageSet(held(x_tr), y_tr.clone(), ds), ImageSet(held(x_te), y_te.clone(), ds)
