"""Sweep files, loaded strictly into the config object (``config.Sweep``).

A sweep file is shaped like the tables it makes::

    tables:                       # table name (a layout of layouts.TABLES) -> its grid
      table2:
        datasets: [MNIST]
        models: [MLP, ConvNet, LeNet, AlexNet, VGG11BN, ResNet18BN_AP]
        ipcs: [1]
        eval_modes: [M]
        metrics: [ours]           # default [ours]
        methods: [DC]             # default [DC]
        dsa_strategies: [crop, color]  # DSA and DM: one cell per strategy (default: the sweep's dsa_strategy)
    include: [table1.yaml]        # more grids, from other sweep files (their settings are not used)
    num_exp: 5                    # the settings below default to the paper's protocol
    num_eval: 20
    seed: 0
    budget: {iterations: 1000}    # condense.synthetic.Budget fields (DC, DSA)
    dm_budget: {iterations: 20000} # condense.dm.DMBudget fields (DM)
    eval_budget: {epochs: 300}    # evaluation.train.EvalBudget fields
    reference_budget: {epochs: 50} # evaluation.reference.ReferenceBudget: coresets' network, whole bound
    resources: auto               # default: follow the cluster (orchestrator/resources.py); or
                                  # {cpu: 2, gpu: 0.25, custom: {name: 1}} to fix what a cell asks for
    shared_reference: false       # true: one reference network for all of a cell's experiments
    dsa_strategy: auto            # DSA and DM: auto (no flip for MNIST and SVHN, as the seed README's
                                  # DSA table), or ops joined by '_' for every dataset
    data_root: null               # null: $DC_DATA, else ./data
    max_failures: 2
    checkpoint_every: 50          # outer iterations between trial checkpoints

Anything wrong (YAML syntax, a key given twice, an unknown key, a wrong type, a number that is not
finite or out of range, an unknown name, an empty axis; a file that is not UTF-8 text, over 1 MiB or
nested over 32 levels) raises ``ConfigError`` with one line naming the file, the key and what is
allowed, before Ray starts.
"""
from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from pathlib import Path

import yaml

from condense import diffaug, networks, numbers
from condense.data import dataset_names
from condense.errors import ConfigError, unknown
from condense.matching import METRICS
from condense.methods import METHODS
from evaluation.pools import EVAL_MODES

from .config import Grid, Resources, Sweep
from .layouts import AXES, TABLES, hidden_axes


# Names users may write in an axis, checked against the registries.
_ALLOWED = {
    "datasets": (lambda v: v in dataset_names(), lambda: dataset_names(), "dataset"),
    "models": (networks.is_model, lambda: [*networks.list_models(), networks.CONVNET_GRAMMAR], "model"),
    "eval_modes": (lambda v: v in EVAL_MODES, lambda: EVAL_MODES, "eval mode"),
    "metrics": (lambda v: v in METRICS, lambda: METRICS, "metric"),
    "methods": (lambda v: v in METHODS, lambda: tuple(METHODS), "method"),
    "dsa_strategies": (lambda v: v is None or diffaug.is_strategy(v), lambda: diffaug.STRATEGY_FORMS, "DSA strategy"),
}
# Fields that may be zero; every other number in a sweep must be positive.
_MAY_BE_ZERO = {"iterations", "momentum_img", "momentum", "weight_decay", "gpu", "max_failures", "seed"}
# A sweep file is a few kB: bigger or deeper is a mistake (or an attack on the parser).
MAX_BYTES, MAX_DEPTH = 1 << 20, 32


def load(path: str | Path) -> Sweep:
    """Read and check a sweep file (and what it includes)."""
    return _load(_resolve(Path(path), str(path)), stack=())


def _resolve(path: Path, where: str) -> Path:
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError) as err:  # a NUL byte, a symlink loop
        raise ConfigError(f"{where}: cannot resolve the path {str(path)!r}: {err}") from None


def _load(path: Path, stack: tuple[Path, ...]) -> Sweep:
    where = str(path)
    if path in stack:
        raise ConfigError(f"{where}: include: the file includes itself")
    if len(stack) > MAX_DEPTH:
        raise ConfigError(f"{where}: include: more than {MAX_DEPTH} files deep")
    raw = _read_yaml(path)
    top = {f.name for f in dataclasses.fields(Sweep)} - set(Sweep.DRIVER_KEYS) | {"tables", "include"}
    _no_unknown(raw, top, where, "")
    grids = []
    for i, name in enumerate(_typed(raw.get("include", []), list[str], where, "include")):
        included = _resolve(path.parent / name, where)
        if not included.is_file():
            raise ConfigError(f"{where}: include[{i}]: no sweep file {name!r} beside it ({included})")
        grids += _load(included, (*stack, path)).grids
    tables = _typed(raw.get("tables", {}), dict, where, "tables")
    for table, grid in tables.items():
        grids.append(_grid(table, grid, where))
    if not grids:
        raise ConfigError(f"{where}: no cells: give 'tables' (table name -> grid) or 'include'")
    settings = {k: v for k, v in raw.items() if k not in ("tables", "include", "resources")}
    sweep = dataclasses.replace(_build(Sweep, {**settings, "name": path.stem}, where, ""), grids=tuple(grids),
                                resources=_resources(raw.get("resources", "auto"), where))
    if sweep.dsa_strategy != diffaug.AUTO:
        try:
            diffaug.check_strategy(sweep.dsa_strategy)
        except ConfigError as err:
            raise ConfigError(f"{where}: dsa_strategy: {err}") from None
    for ipc in sorted({i for g in sweep.grids if any(METHODS[m].has_loops for m in g.methods) for i in g.ipcs}):
        try:
            sweep.budget.loops(ipc)
        except ConfigError as err:
            raise ConfigError(f"{where}: ipcs: {err}; give budget.outer_loop and budget.inner_loop "
                              "to condense it, or use a coreset method") from None
    return sweep


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that a sweep file must not be."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that also refuses a key given twice in one mapping (PyYAML keeps the last,
    silently), nesting over ``MAX_DEPTH`` and integers Python will not parse (over 4300 digits)."""

    def compose_node(self, parent, index):
        self.depth = getattr(self, "depth", 0) + 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(None, None, f"nested over {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    seen = first.setdefault((key.tag, key.value), key)
                    if seen is not key:
                        raise _Refused(None, None, f"key {reprlib.repr(key.value)} given twice (first at line "
                                       f"{seen.start_mark.line + 1}); give each key once", key.start_mark)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise _Refused(None, None, f"integer of {len(node.value)} digits is too long", node.start_mark) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
def _resources(raw, where: str) -> Resources | None:
    """``auto`` (None), or an explicit ``{cpu, gpu, custom}``."""
    if raw == "auto":
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: resources: expected auto or a mapping {{cpu, gpu, custom}}, got {_show(raw)}")
    custom = _typed(raw.get("custom", {}), dict, where, "resources.custom")
    for name, amount in custom.items():
        if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                or not math.isfinite(amount) or amount <= 0:
            raise ConfigError(f"{where}: resources.custom: expected resource name -> amount > 0, "
                              f"got {name!r}: {amount!r}")
    explicit = _build(Resources, {k: v for k, v in raw.items() if k != "custom"}, where, "resources")
    return dataclasses.replace(explicit, custom=tuple(sorted((k, float(v)) for k, v in custom.items())))


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        raise ConfigError(f"{path}: cannot read the sweep file ({reason})") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: over {MAX_BYTES >> 20} MiB: not a sweep file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if isinstance(err, _Refused):
            raise ConfigError(f"{path}: {at}: {problem}") from None
        raise ConfigError(f"{path}: YAML syntax error{' at ' + at if at else ''}: {problem}") from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{path}: a sweep file is a mapping with keys 'tables' or 'include' "
                          f"and settings; got {got}")
    return raw


def _grid(table, raw, where: str) -> Grid:
    key = f"tables.{table}"
    if table not in TABLES:
        raise ConfigError(f"{where}: tables: unknown table {table!r}; allowed: {', '.join(TABLES)}")
    raw = _typed(raw, dict, where, key)
    _no_unknown(raw, [f.name for f in dataclasses.fields(Grid) if f.name != "table"], where, key)
    grid = _build(Grid, {**raw, "table": table}, where, key)
    for axis in AXES:
        values = getattr(grid, axis)
        if not values:
            raise ConfigError(f"{where}: {key}.{axis}: empty; give at least one value")
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}: {key}.{axis}: lists a value twice: {list(values)}")
        if axis in _ALLOWED:
            ok, allowed, kind = _ALLOWED[axis]
            for value in values:
                if not ok(value):
                    raise ConfigError(f"{where}: {key}.{axis}: {unknown(kind, value, allowed())}")
    if "dsa_strategies" in raw and not any(METHODS[m].uses_dsa for m in grid.methods):
        users = " and ".join(n for n, m in METHODS.items() if m.uses_dsa)
        raise ConfigError(f"{where}: {key}.dsa_strategies: applies to the methods {users}; the grid has "
                          f"{', '.join(grid.methods)}")
    for axis in hidden_axes(table):
        if len(getattr(grid, axis)) != 1:
            raise ConfigError(f"{where}: {key}.{axis}: the {table} layout shows rows "
                              f"{'/'.join(TABLES[table].rows)} and columns {TABLES[table].column}, "
                              f"so {axis} takes one value; got {list(getattr(grid, axis))}")
    return grid


def _build(cls, raw: dict, where: str, key: str):
    """``cls(**raw)`` with every field type-checked; unknown keys and missing required keys fail."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _no_unknown(raw, fields, where, key)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name not in raw:
            if f.default is dataclasses.MISSING:
                raise ConfigError(f"{where}: {sub}: missing; it is required")
            continue
        if dataclasses.is_dataclass(hints[name]):
            values[name] = _build(hints[name], _typed(raw[name], dict, where, sub), where, sub)
        else:
            values[name] = _check_range(_typed(raw[name], hints[name], where, sub), name, where, sub)
    try:
        return cls(**values)
    except ConfigError as err:  # a dataclass's own check (e.g. ReferenceBudget's): name the file
        raise ConfigError(f"{where}: {key or cls.__name__}: {err}") from None


def _typed(value, hint, where: str, key: str):
    """``value`` if it has type ``hint`` (lists become tuples; an int is a valid float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _typed(value, hint, where, key)
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list, got {_show(value)}")
        items = [_typed(v, args[0], where, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint in (int, float):  # finite, integral where an int belongs, within int64
        wrong = numbers.problem(value, hint, minimum="any")
        if wrong:
            raise ConfigError(f"{where}: {key}: {wrong}")
        return float(value) if hint is float else value
    if isinstance(value, str) and "\x00" in value:  # no path or name holds one; open() would raise
        raise ConfigError(f"{where}: {key}: contains a NUL character")
    if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise ConfigError(f"{where}: {key}: expected {hint.__name__}, got {_show(value)}")
    return value


def _check_range(value, name: str, where: str, key: str):
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            wrong = numbers.problem(v, type(v), ">= 0" if name in _MAY_BE_ZERO else "> 0")
            wrong = wrong or (numbers.gpu_problem(v) if name == "gpu" else None)
            if wrong:
                raise ConfigError(f"{where}: {key}: {wrong}")
    return value


def _no_unknown(raw: dict, allowed, where: str, key: str) -> None:
    for k in raw:
        if k not in allowed:
            name = k if isinstance(k, str) and len(k) <= 60 else reprlib.repr(k)
            at = f"{key}.{name}" if key else name
            raise ConfigError(f"{where}: {at}: unknown key; allowed: {', '.join(sorted(allowed))}")


def _show(value) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {reprlib.repr(value)}"  # bounded: aliases can nest
