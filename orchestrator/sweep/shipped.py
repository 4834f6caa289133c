"""The sweep files shipped with the package, found by name: ``python -m orchestrator.run table2``.

They are the repository's ``sweeps/`` folder, installed as the package data ``orchestrator/sweeps``
(pyproject.toml maps the one to the other), so a checkout, an editable and a plain ``pip install``
find the same files. A sweep's purpose is the first sentence of the comment that opens its file.
"""
from __future__ import annotations

import os
from pathlib import Path

from condense.errors import ConfigError

SUFFIX = ".yaml"
# installed: the package data beside the code; a checkout (or an editable install): the repository's folder
_FOLDERS = (Path(__file__).resolve().parents[1] / "sweeps", Path(__file__).resolve().parents[2] / "sweeps")
_PURPOSE_CHARS = 160


def folder() -> Path | None:
    return next((f for f in _FOLDERS if f.is_dir()), None)


def names() -> list[str]:
    where = folder()
    return sorted(p.stem for p in where.glob(f"*{SUFFIX}")) if where else []


def is_name(text: str) -> bool:
    """A bare name (``table2``), not a path: no folder, no suffix."""
    return bool(text) and "/" not in text and os.sep not in text and not text.endswith((SUFFIX, ".yml"))


def resolve(text: str) -> Path:
    """The sweep file ``text`` names: a path that exists wins, then a shipped sweep of that name.
    A bare name that is neither is one line naming the shipped ones; any other path is returned as
    it is (reading it says what is wrong)."""
    path = Path(text).expanduser()
    if path.exists() or not is_name(text):
        return path
    if text in names():
        return folder() / f"{text}{SUFFIX}"
    raise ConfigError(f"sweep {text!r}: no such file here and no shipped sweep of that name; shipped: "
                      f"{', '.join(names()) or 'none'} (python -m orchestrator.run --list-sweeps)")


def purpose(path: Path) -> str:
    """The first sentence of the comment lines that open the file ('' if none)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(" ".join(lines).split())
    end = text.find(". ")
    text = text if end < 0 else text[:end + 1]
    return text if len(text) <= _PURPOSE_CHARS else text[:_PURPOSE_CHARS - 3].rsplit(" ", 1)[0] + "..."


def listing() -> list[str]:
    """One line per shipped sweep: its name, its cells and its purpose."""
    from .cells import expand
    from .spec import load

    rows = [(name, len(expand(load(folder() / f"{name}{SUFFIX}")))) for name in names()]
    if not rows:
        return ["no shipped sweeps found (the package's sweeps folder is missing)"]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {count:>4} cells  {purpose(folder() / f'{name}{SUFFIX}')}" for name, count in rows]
