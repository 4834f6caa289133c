"""Fetching a dataset into a data root: the one downloader of ``python -m orchestrator.run --download``
(and a sweep file's ``download: true``), ``python -m condense --download`` and
``python -m evaluation --download``.

What can be fetched: the datasets torchvision downloads (``DOWNLOADABLE``: MNIST, FashionMNIST, SVHN,
CIFAR10, CIFAR100), from torchvision's own list of files, URLs and MD5 sums (read from its dataset
classes, so the sums stay torchvision's). Each lands in the layout ``condense.data`` reads:
``<root>/MNIST/raw/*-ubyte`` (and FashionMNIST's), ``<root>/{train,test}_32x32.mat``,
``<root>/cifar-10-batches-py/``, ``<root>/cifar-100-python/``.

Nothing partial is left behind: every file is streamed into a hidden staging folder inside the data
root (``.download-<dataset>-*``), its length checked against what the server announced and its MD5
against torchvision's, then unpacked there; only a complete, verified dataset is moved into place
(``os.replace``, file by file: ``condense.data`` reads a dataset only when every one of its files is
there). Any failure, Ctrl-C included, removes the staging folder, so a retry starts clean. A failure
is one ``DownloadError`` line (a ``ConfigError``: exit 2 at every command line) naming the dataset,
every URL tried and why, and where to put the files by hand.

Mirror
------
``DC_DATA_MIRROR``: a base URL that replaces the datasets' hosts, for a machine that reaches the
internet only through a local copy: each file is fetched from ``$DC_DATA_MIRROR/<dataset>/<file>``
with torchvision's file name, e.g. ``$DC_DATA_MIRROR/MNIST/train-images-idx3-ubyte.gz`` or
``$DC_DATA_MIRROR/CIFAR10/cifar-10-python.tar.gz``; anything ``urllib`` opens works (``https://``,
``http://``, ``file:///``). Proxies are urllib's own (``https_proxy``, ``http_proxy``, ``no_proxy``).
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from . import environment
from .datasets import info
from .errors import ConfigError

MIRROR_ENV = "DC_DATA_MIRROR"
DOWNLOADABLE = ("MNIST", "FashionMNIST", "SVHN", "CIFAR10", "CIFAR100")
TIMEOUT_S = 60.0  # a server that sends nothing for this long has failed
_CHUNK = 1 << 16
# the command lines' --download
DOWNLOAD_HELP = (f"fetch a missing dataset ({', '.join(DOWNLOADABLE)}) into the data root, checked against "
                 f"torchvision's MD5 sums; ${MIRROR_ENV}: a base URL that replaces the datasets' hosts "
                 "(<mirror>/<dataset>/<file>)")
_USER_AGENT = "dataset-condensation (python-urllib)"


class DownloadError(ConfigError):
    """A dataset could not be fetched: one line, as bad input (exit 2)."""


@dataclass(frozen=True)
class Resource:
    """One file of a dataset as torchvision publishes it: its name, MD5 and the URLs that serve it,
    and how it becomes the dataset's files (``unpack(file, staging) -> the files made, relative to
    the data root``)."""
    file: str
    md5: str
    urls: tuple[str, ...]
    unpack: Callable[[Path, Path], list[Path]]


@dataclass(frozen=True)
class Dataset:
    name: str
    resources: tuple[Resource, ...]
    where: str  # where the files go by hand, relative to the data root


def mirror_url(mirror: str, dataset: str, file: str) -> str:
    return f"{mirror.rstrip('/')}/{dataset}/{file}"


def plan(name: str, mirror: str | None = None) -> Dataset:
    """``name``'s files, URLs and MD5 sums (torchvision's), with the hosts replaced by ``mirror``
    (default ``$DC_DATA_MIRROR``). A dataset torchvision does not download is a DownloadError."""
    import torchvision.datasets as tvd

    ds = info(name)
    mirror = environment.url(MIRROR_ENV) if mirror is None else mirror
    if ds.name not in DOWNLOADABLE:
        raise DownloadError(f"dataset {ds.name}: cannot be downloaded (only {', '.join(DOWNLOADABLE)} can); "
                            "put its files under the data root yourself")

    def urls(default: list[str], file: str) -> tuple[str, ...]:
        return (mirror_url(mirror, ds.name, file),) if mirror else tuple(default)

    if ds.name in ("MNIST", "FashionMNIST"):
        cls = getattr(tvd, ds.name)
        raw = Path(ds.name) / "raw"
        return Dataset(ds.name, tuple(
            Resource(file, md5, urls([m + file for m in cls.mirrors], file), _gunzip_into(raw))
            for file, md5 in cls.resources), f"{raw}/ (the four files unpacked: *-ubyte)")
    if ds.name == "SVHN":
        return Dataset(ds.name, tuple(
            Resource(file, md5, urls([url], file), _as_is)
            for url, file, md5 in (tvd.SVHN.split_list[s] for s in ("train", "test"))), "{train,test}_32x32.mat")
    cls = getattr(tvd, ds.name)  # CIFAR10, CIFAR100: one archive holding the folder
    return Dataset(ds.name, (Resource(cls.filename, cls.tgz_md5, urls([cls.url], cls.filename),
                                      _untar(cls.base_folder)),), f"{cls.base_folder}/ (unpacked {cls.filename})")


def fetch(name: str, root: str | os.PathLike, out: TextIO | None = None) -> None:
    """Download ``name`` into the data root ``root``: verified, unpacked, then moved into place;
    progress on ``out`` (default stdout): a bar on a terminal, plain lines otherwise. Raises
    ``DownloadError`` (nothing left in ``root`` but the folder itself)."""
    dataset = plan(name)
    root = Path(root)
    out = sys.stdout if out is None else out
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".download-{dataset.name}-", dir=root))
    except OSError as err:
        raise DownloadError(f"dataset {dataset.name}: cannot write in the data root {root} "
                            f"({err.strerror or err})") from None
    try:
        made: list[Path] = []
        for res in dataset.resources:
            file = staging / res.file
            _get_any(dataset, res, file, root, out)
            try:
                made += res.unpack(file, staging)
            except (OSError, EOFError, tarfile.TarError, ValueError) as err:
                raise DownloadError(f"dataset {dataset.name}: {res.file} passed its MD5 check but does not "
                                    f"unpack ({' '.join(str(err).split())}); put {dataset.where} under {root} "
                                    "yourself") from None
            if file.relative_to(staging) not in made:  # the archive itself is not data
                file.unlink()
        for rel in made:  # the dataset is whole and verified: into place
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, root / rel)
    except OSError as err:
        raise DownloadError(f"dataset {dataset.name}: cannot write in the data root {root} "
                            f"({err.strerror or err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"{dataset.name}: downloaded into {root}", file=out, flush=True)


def _get_any(dataset: Dataset, res: Resource, dest: Path, root: Path, out: TextIO) -> None:
    """``res`` from the first of its URLs that serves it whole and with torchvision's MD5."""
    tried = []
    for url in res.urls:
        try:
            _get(url, dest, res.md5, f"{dataset.name} {res.file}", out)
            return
        except _Failed as err:
            tried.append(f"{url} ({err})")
    setting = f"{MIRROR_ENV} is {os.environ[MIRROR_ENV]}" if os.environ.get(MIRROR_ENV) else \
        f"or set {MIRROR_ENV} to a server holding <dataset>/<file>"
    raise DownloadError(f"dataset {dataset.name}: download failed, nothing was kept; tried {'; '.join(tried)}; "
                        f"put {dataset.where} under {root} yourself ({setting})")


class _Failed(Exception):
    """One URL did not give the file; the message says why, briefly."""


def _get(url: str, dest: Path, md5: str, label: str, out: TextIO) -> None:
    digest, got, size = hashlib.md5(), 0, None
    bar = _Bar(label, url, out)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as f:
            announced = response.headers.get("Content-Length")
            size = int(announced) if announced and announced.isdigit() else None
            bar.start(size)
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                digest.update(chunk)
                got += len(chunk)
                bar.update(got)
    except urllib.error.HTTPError as err:
        raise _Failed(f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _Failed(_reason(err.reason)) from None
    except http.client.IncompleteRead:
        raise _Failed(f"the server closed the connection after {got} of {size} bytes") from None
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise _Failed(_reason(err)) from None
    finally:
        bar.end()
    if size is not None and got != size:
        raise _Failed(f"the server closed the connection after {got} of {size} bytes")
    if digest.hexdigest() != md5:
        raise _Failed(f"MD5 {digest.hexdigest()} is not torchvision's {md5} (truncated or another file)")


def _reason(err) -> str:
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"no answer in {TIMEOUT_S:.0f} s"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return " ".join(str(err).split()) or type(err).__name__


def _gunzip_into(folder: Path):
    def unpack(file: Path, staging: Path) -> list[Path]:
        rel = folder / file.name.removesuffix(".gz")
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(file, "rb") as src, open(staging / rel, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        return [rel]
    return unpack


def _as_is(file: Path, staging: Path) -> list[Path]:
    return [file.relative_to(staging)]


def _untar(folder: str):
    """Unpack the archive's ``folder`` (and nothing outside it: links, devices and paths that leave
    the staging folder are refused)."""
    def unpack(file: Path, staging: Path) -> list[Path]:
        made = []
        with tarfile.open(file, "r:*") as tar:
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if m.isdir():
                    continue
                if not m.isfile() or not parts or parts[0] != folder or ".." in parts or Path(m.name).is_absolute():
                    raise ValueError(f"unexpected member {m.name!r}")
                target = staging / m.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                made.append(Path(m.name))
        if not made:
            raise ValueError(f"no {folder}/ in the archive")
        return made
    return unpack


class _Bar:
    """A file's progress: a bar redrawn in place on a terminal, else a line when it starts and one
    when it ends."""

    def __init__(self, label: str, url: str, out: TextIO):
        self.label, self.url, self.out = label, url, out
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.size, self.got, self.shown, self.began = None, 0, 0.0, time.monotonic()

    def start(self, size: int | None) -> None:
        self.size = size
        if not self.tty:
            print(f"downloading {self.label} ({_mb(size)}) from {self.url}", file=self.out, flush=True)

    def update(self, got: int) -> None:
        self.got = got
        now = time.monotonic()
        if self.tty and now - self.shown >= 0.1:
            self.shown = now
            if self.size:
                done = int(30 * got / self.size)
                text = f"[{'#' * done}{'.' * (30 - done)}] {100 * got / self.size:3.0f}% of {_mb(self.size)}"
            else:
                text = f"{_mb(got)}"
            self.out.write(f"\r\033[K{self.label} {text}")
            self.out.flush()

    def end(self) -> None:
        seconds = time.monotonic() - self.began
        if self.tty:
            self.out.write("\r\033[K")
            self.out.flush()
        if self.got:
            print(f"{self.label}: {_mb(self.got)} in {seconds:.1f} s", file=self.out, flush=True)


def _mb(n: int | None) -> str:
    return "size unknown" if n is None else f"{n / 1e6:.1f} MB"
