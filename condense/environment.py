"""Environment variables, read strictly: a value that cannot be what the variable names is one
``ConfigError`` line naming the variable and what is allowed, never a traceback further on.

``DC_DATA`` and ``DC_CACHE`` (folders), ``DC_CALIBRATIONS`` (a folder), ``DC_CODE_VERSION`` (text),
``DC_DATA_MIRROR`` (a URL),
``RAY_ADDRESS`` (a Ray address), ``SLURM_JOB_NUM_NODES`` / ``SLURM_NNODES`` (counts) are read through
these functions.
"""
from __future__ import annotations

import os
import re
import reprlib
from pathlib import Path

from .errors import ConfigError

MAX_TEXT = 200
# host:port, with the host a name or address of ASCII letters, digits, '.', '-', '_' (or [IPv6])
_ADDRESS = re.compile(r"(?:ray://)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")


def value(name: str, env=os.environ) -> str | None:
    """The variable's value, None where it is unset or empty."""
    return env.get(name) or None


def path_value(raw: str, source: str) -> Path:
    """``raw`` (from ``source``: a variable's name, or a flag or key) as an absolute path, ``~`` expanded."""
    shown = f"{source}={reprlib.repr(raw)}"
    if "\x00" in raw:
        raise ConfigError(f"{shown}: contains a NUL character; give a folder")
    try:
        return Path(raw).expanduser().resolve()
    except RuntimeError as err:  # ~nosuchuser, no home folder, a loop of links
        raise ConfigError(f"{shown}: cannot expand it ({err}); give a folder") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"{shown}: not a usable path ({getattr(err, 'strerror', None) or err})") from None


def folder(name: str, env=os.environ) -> Path | None:
    """A folder variable as an absolute path (it need not exist yet), None where unset."""
    raw = value(name, env)
    return None if raw is None else path_value(raw, name)


def text(name: str, env=os.environ) -> str | None:
    """A one-line printable text of at most ``MAX_TEXT`` characters, None where unset."""
    raw = value(name, env)
    if raw is not None and (len(raw) > MAX_TEXT or not raw.isprintable()):
        raise ConfigError(f"{name}={reprlib.repr(raw)}: expected one line of printable text of at most "
                          f"{MAX_TEXT} characters")
    return raw


def url(name: str, env=os.environ) -> str | None:
    """A URL (a scheme, then what ``urllib`` opens: ``https://host/...``, ``file:///...``) of one printable
    line, None where unset."""
    from urllib.parse import urlparse

    raw = text(name, env)
    if raw is not None and not (urlparse(raw).scheme.isascii() and len(urlparse(raw).scheme) > 1
                                and "://" in raw and " " not in raw):
        raise ConfigError(f"{name}={reprlib.repr(raw)}: expected a URL such as https://host/path or file:///folder")
    return raw


def count(name: str, env=os.environ, what: str = "count") -> int | None:
    """A count of ASCII digits (no sign, no spaces), None where unset."""
    raw = value(name, env)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise ConfigError(f"{name}={reprlib.repr(raw)} is not a {what} (ASCII digits)")
    return int(raw)


def ray_address(raw: str | None, source: str) -> str | None:
    """A Ray address (``auto``, ``local``, ``host:port`` or ``ray://host:port``, the port ASCII digits in
    1..65535) as given, from ``source`` (``--address`` or ``RAY_ADDRESS``)."""
    if raw is None or raw in ("auto", "local"):
        return raw
    found = _ADDRESS.fullmatch(raw)
    if not found or not 1 <= int(found["port"]) <= 65535:
        flag = f"{source} {raw!r}" if source.startswith("--") else f"{source}={reprlib.repr(raw)}"
        raise ConfigError(f"{flag}: expected host:port, ray://host:port or auto (a host of ASCII letters, digits "
                          "and .-_, a port of ASCII digits 1..65535)")
    return raw
