"""Files written whole or not at all.

Each file is written to a temporary name beside it (``.<name>.<pid>.tmp``) and renamed over the old
one, so a reader, or a ``--resume`` after a crash or a full disk, finds the old file or the new one,
never half of one. A write that fails (no space left, an I/O error, no permission) raises
``WriteError``: one line naming the file and the free space there; the old file stays and the
temporary is removed. A process killed mid-write leaves its temporary behind: ``remove_temporaries``
clears them when the next run starts.
"""
from __future__ import annotations

import os
import re
import reprlib
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import ConfigError

_TEMPORARY = re.compile(r"^\..+\.\d+\.tmp$")
# The one rule for a name that becomes a file or folder name (a sweep, a cell id, a table, a figure):
# one plain name, so nothing is written outside the folder it goes in (no '..', no separator, no
# leading dot or dash).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SAFE_NAME_RULE = "letters, digits and . _ - (starting with a letter or digit, at most 100 characters)"


def is_safe_name(name) -> bool:
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None


def safe_name(name, where: str, what: str) -> str:
    """``name`` if it is a safe file name (``SAFE_NAME``), else one ConfigError line naming ``where``
    and ``what`` the name is."""
    if not is_safe_name(name):
        raise ConfigError(f"{where}: {what} {reprlib.repr(name)} is not a safe file name; use {SAFE_NAME_RULE}")
    return name


def regular_file(path: str | os.PathLike, hint: str = "") -> Path:
    """``path`` if it is a regular file (after symlinks), else one ConfigError line saying what it is:
    asked with ``os.stat`` alone, so a FIFO or a device is never opened (a read could block)."""
    path = Path(path)
    extra = f" ({hint})" if hint else ""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file{extra}") from None
    except (OSError, ValueError) as err:  # a NUL byte, a name too long, no permission, a loop of links
        raise ConfigError(f"{path}: cannot open ({getattr(err, 'strerror', None) or err}){extra}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
                "not a regular file")
        raise ConfigError(f"{path}: {kind}, not a regular file{extra}")
    return path


class WriteError(ConfigError, OSError):
    """A file could not be written (a full disk, an I/O error): one line, as bad input, and the
    previous file kept. An ``OSError`` too, for callers that tolerate a failed write."""


def temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """``with replacing(path) as tmp:`` write ``tmp``; it replaces ``path`` when the block ends."""
    path = Path(path)
    tmp = temporary(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)  # never written through: a link left there may point anywhere
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if isinstance(err, WriteError):
            raise
        raise write_error(path, err) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the next run's remove_temporaries clears it


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_torch(path: str | os.PathLike, obj) -> None:
    """``torch.save(obj)`` to ``path``, whole or not at all. The bytes are made in memory first: torch's
    own file writer reports a full disk as a RuntimeError without the errno, a file write as OSError."""
    import io

    import torch

    with replacing(path) as tmp:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        tmp.write_bytes(buffer.getbuffer())


def write_error(path: Path, err: OSError) -> WriteError:
    """The one line for a write of ``path`` that failed with ``err``."""
    return WriteError(f"cannot write {path}: {err.strerror or err} ({free_space(path)} free there)")


def free_space(path: Path) -> str:
    """The free space of the filesystem that holds ``path`` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        for unit in ("bytes", "KB", "MB", "GB"):
            if free < 1024 or unit == "GB":
                return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
            free /= 1024
    return "unknown space"


def remove_temporaries(folder: str | os.PathLike, skip: tuple[str, ...] = ()) -> int:
    """Removes the temporaries that killed writers left under ``folder`` (not under the subfolders
    named in ``skip``); returns how many."""
    removed = 0
    for top, dirs, names in os.walk(folder):
        if Path(top) == Path(folder):
            dirs[:] = [d for d in dirs if d not in skip]
        for name in names:
            if _TEMPORARY.match(name):
                try:
                    os.unlink(os.path.join(top, name))
                    removed += 1
                except OSError:
                    pass
    return removed
