"""Sweep files, loaded strictly into the config object (``config.Sweep``).

A sweep file is shaped like the tables it makes::

    tables:                       # table name (a paper's layout, layouts.TABLES, or your own) -> its grid
      table2:
        datasets: [MNIST]
        models: [MLP, ConvNet, LeNet, AlexNet, VGG11BN, ResNet18BN_AP]
        ipcs: [1]
        eval_modes: [M]
        metrics: [ours]           # default [ours]
        methods: [DC]             # default [DC]; set:<name> for an external set (sets: below)
        dsa_strategies: [crop, color]  # DSA and DM: one cell per strategy (default: the sweep's dsa_strategy)
      cl:                         # continual learning (docs/continual.md), in table cl
        steps: [5, 10]            # class-incremental steps, a cell each (each divides the dataset's classes)
        ...                       # datasets, models, ipcs, eval_modes (S or SS), methods as above
      my_table:                   # a table of your own: any other name (letters, digits, _.-; a file name)
        ...                       # the axes as above, and optionally
        rows: [dataset, ipc]      # results columns as rows (default: the axes that vary)
        columns: [method]         # the one results column as columns (default: method, if it varies)
      nas:                        # an architecture search (docs/nas.md), in a table of its own name
        datasets: [CIFAR10]
        models: [ConvNet]         # the network the proxies' sets are made with
        ipcs: [10]
        eval_modes: [S]
        proxies: [random, DC, early_stopping, whole]  # methods' sets, early stopping, the whole set (required)
        architectures: all        # the 720 ConvNets; or {sample: 24, seed: 0, max_mmacs: 20}; or model names
    include: [table1.yaml]        # more grids, from other sweep files (their settings are not used)
    sets:                         # external sets: name -> <dataset>-ipc<k> -> a file per experiment
      mine: {MNIST-ipc1: [sets/mine-*.npz]}  # or globs (sorted), relative to this file
    num_exp: 5                    # the settings below default to the paper's protocol
    num_eval: 20
    seed: 0
    budget: {iterations: 1000}    # condense.condensation.Budget fields (DC, DSA)
    dm_budget: {iterations: 20000} # condense.condensation.DMBudget fields (DM)
    eval_budget: {epochs: 300}    # evaluation.train.EvalBudget fields
    reference_budget: {epochs: 50} # evaluation.reference.ReferenceBudget: coresets' network, whole bound
    resources: auto               # default: follow the cluster (orchestrator/driver/resources.py); or
                                  # {cpu: 2, gpu: 0.25, custom: {name: 1}} to fix what a cell asks for
    shared_reference: false       # true: one reference network for all of a cell's experiments
    dsa_strategy: auto            # DSA and DM: auto (no flip for MNIST and SVHN, as the seed README's
                                  # DSA table), or ops joined by '_' for every dataset
    data_root: null               # null: $DC_DATA, else ./data
    download: false               # true: the driver fetches a missing dataset first, as --download
    max_failures: 2
    checkpoint_every: 50          # outer iterations between trial checkpoints
    early_stopping_epochs: 10     # an architecture search's early-stopping proxy: epochs on the whole set

Anything wrong (YAML syntax, a key given twice, an unknown key, a wrong type, a number that is not
finite or out of range, an unknown name, an empty axis; a file that is not UTF-8 text, over 1 MiB or
nested over 32 levels) raises ``ConfigError`` with one line naming the file, the key and what is
allowed, before Ray starts.
"""
from __future__ import annotations

import dataclasses
import glob
import math
import os
import reprlib
import types
import typing
from pathlib import Path

import yaml

from condense import diffaug, methods, networks, numbers
from condense.data import dataset_names, info
from condense.errors import ConfigError, unknown
from condense.files import SAFE_NAME_RULE, is_safe_name, regular_file, safe_name
from condense.matching import METRICS
from condense.methods import EXTERNAL_PREFIX, METHODS, WHOLE
from evaluation.pools import EVAL_MODES, SELF_MODES

from .cells import EARLY_STOPPING, expand, loops_problem
from .config import Grid, Resources, Sweep
from .layouts import AXES, SHOWABLE, TABLES, hidden_axes, own_layouts


# Names users may write in an axis, checked against the registries.
_ALLOWED = {
    "datasets": (lambda v: v in dataset_names(), lambda: dataset_names(), "dataset"),
    "models": (networks.is_model, lambda: [*networks.list_models(), networks.CONVNET_GRAMMAR], "model"),
    "eval_modes": (lambda v: v in EVAL_MODES, lambda: EVAL_MODES, "eval mode"),
    "metrics": (lambda v: v in METRICS, lambda: METRICS, "metric"),
    "methods": (lambda v: _is_method(v), lambda: (*METHODS, f"{EXTERNAL_PREFIX}<name>"), "method"),
    "dsa_strategies": (lambda v: v is None or diffaug.is_strategy(v), lambda: diffaug.STRATEGY_FORMS, "DSA strategy"),
}


def _is_method(name) -> bool:
    try:
        methods.get(name)
    except ConfigError:
        return False
    return True


# Fields that may be zero; every other number in a sweep must be positive.
_MAY_BE_ZERO = {"iterations", "momentum_img", "momentum", "weight_decay", "gpu", "max_failures", "seed"}
# A sweep file is a few kB: bigger or deeper is a mistake (or an attack on the parser).
MAX_BYTES, MAX_DEPTH = 1 << 20, 32


def load(path: str | Path) -> Sweep:
    """Read and check a sweep file (and what it includes)."""
    path = _resolve(Path(path), str(path))
    sweep = _load(path, stack=())
    safe_name(sweep.name, str(path), "the sweep's name (its file name)")  # a folder under --output
    for cell in expand(sweep):  # a cell's id names its trial's folder
        safe_name(cell.cell_id, str(path), "a cell id")
    return sweep


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
    settings = {k: v for k, v in raw.items() if k not in ("tables", "include", "resources", "sets")}
    sweep = dataclasses.replace(_build(Sweep, {**settings, "name": path.stem}, where, ""), grids=tuple(grids),
                                resources=_resources(raw.get("resources", "auto"), where),
                                sets=_sets(raw.get("sets", {}), path.parent, where))
    _check_own_tables(sweep.grids, where)
    _check_sets_named(sweep, where)
    if sweep.dsa_strategy != diffaug.AUTO:
        try:
            diffaug.check_strategy(sweep.dsa_strategy)
        except ConfigError as err:
            raise ConfigError(f"{where}: dsa_strategy: {err}") from None
    problems = sorted({(i, loops_problem(m, i, sweep.budget)) for g in sweep.grids for m in methods_of(g) for i in g.ipcs}
                      - {(i, None) for g in sweep.grids for i in g.ipcs})
    if problems:
        raise ConfigError(f"{where}: ipcs: {problems[0][1]}; give budget.outer_loop and budget.inner_loop "
                          "to condense it, or use a coreset method")
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
    regular_file(path, "a sweep file is a YAML file")  # asked first: a FIFO or a device is never opened
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
    if table not in TABLES and not is_safe_name(table):  # it names the table's files
        raise ConfigError(f"{where}: tables: table name {reprlib.repr(table)}: one of the paper's "
                          f"({', '.join(TABLES)}) or a name of your own: {SAFE_NAME_RULE}")
    raw = _typed(raw, dict, where, key)
    if isinstance(raw.get("columns"), str):  # columns: method
        raw = {**raw, "columns": [raw["columns"]]}
    if "architectures" in raw:  # all, a sample, or names: the names
        raw = {**raw, "architectures": _architectures(raw["architectures"], where, f"{key}.architectures")}
    _no_unknown(raw, [f.name for f in dataclasses.fields(Grid) if f.name != "table"], where, key)
    grid = _build(Grid, {**raw, "table": table}, where, key)
    if table in TABLES and (grid.rows or grid.columns):
        raise ConfigError(f"{where}: {key}: rows/columns: {table} has the paper's layout; give a table of your "
                          "own name to choose its rows and columns")
    for name, values in (("rows", grid.rows), ("columns", grid.columns)):
        for v in values:
            if v not in SHOWABLE:
                raise ConfigError(f"{where}: {key}.{name}: {unknown('results column', v, SHOWABLE)}")
    if len(grid.columns) > 1 or set(grid.rows) & set(grid.columns) or len(set(grid.rows)) != len(grid.rows):
        raise ConfigError(f"{where}: {key}: rows {list(grid.rows)}, columns {list(grid.columns)}: give one "
                          "column, and rows without it or a repeat")
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
    if grid.architectures or grid.proxies:
        _check_search(grid, raw, where)
    if "dsa_strategies" in raw and not any(methods.get(m).uses_dsa for m in methods_of(grid)):
        users = " and ".join(n for n, m in METHODS.items() if m.uses_dsa)
        raise ConfigError(f"{where}: {key}.dsa_strategies: applies to the methods {users}; the grid has "
                          f"{', '.join(methods_of(grid))}")
    if grid.steps or table == "cl":
        _check_continual(grid, raw, where)
    if table in TABLES:
        _check_hidden(grid, TABLES[table], where)
    return grid


def methods_of(grid: Grid) -> tuple[str, ...]:
    """The methods whose sets or data the grid's cells use: an architecture search's proxies' (early
    stopping trains on the whole set), else its methods."""
    if not grid.architectures:
        return grid.methods
    return tuple(dict.fromkeys(WHOLE if p == EARLY_STOPPING else p for p in grid.proxies))


def _architectures(raw, where: str, key: str) -> list:
    """``all`` (the 720 ConvNets of the search space), ``{sample: n, seed: s, max_mmacs: m}`` (a seeded
    sample spanning every axis value, optionally of the cheaper ones), or a list of model names."""
    if raw == "all":
        return list(networks.search_space())
    if isinstance(raw, dict):
        _no_unknown(raw, ("sample", "seed", "max_mmacs"), where, key)
        if "sample" not in raw:
            raise ConfigError(f"{where}: {key}.sample: missing; give the sample's size")
        n = _check_range(_typed(raw["sample"], int, where, f"{key}.sample"), "sample", where, f"{key}.sample")
        seed = _check_range(_typed(raw.get("seed", 0), int, where, f"{key}.seed"), "seed", where, f"{key}.seed")
        cap = raw.get("max_mmacs")
        if cap is not None:
            cap = _check_range(_typed(cap, float, where, f"{key}.max_mmacs"), "max_mmacs", where, f"{key}.max_mmacs")
        try:
            return networks.sample_search_space(n, seed, cap)
        except ConfigError as err:
            raise ConfigError(f"{where}: {key}: {err}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: {key}: expected all, {{sample: <n>, seed: <s>, max_mmacs: <m>}} or a list of "
                          f"model names, got {_show(raw)}")
    return raw


def _check_search(grid: Grid, raw: dict, where: str) -> None:
    """An architecture search's grid: architectures and proxies both, the whole set among the proxies,
    models the network table builds, and no axis of the paper's experiments that it does not use."""
    key = f"tables.{grid.table}"
    for name in ("architectures", "proxies"):
        if not getattr(grid, name):
            raise ConfigError(f"{where}: {key}.{name}: missing or empty; an architecture search gives both "
                              "architectures and proxies")
    for name in ("methods", "rows", "columns"):
        if name in raw:
            raise ConfigError(f"{where}: {key}.{name}: not in an architecture search, which names its "
                              "proxies under proxies: and has its own table")
    if grid.table in TABLES:
        raise ConfigError(f"{where}: {key}: an architecture search's table is one of your own name (e.g. nas), "
                          f"not the paper's {grid.table}")
    for name, values in (("architectures", grid.architectures), ("proxies", grid.proxies)):
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}: {key}.{name}: lists a value twice")
    for name in grid.architectures:
        if not networks.is_model(name):
            raise ConfigError(f"{where}: {key}.architectures: "
                              f"{unknown('model', name, [*networks.list_models(), networks.CONVNET_GRAMMAR])}")
    for proxy in grid.proxies:
        if proxy != EARLY_STOPPING and not _is_method(proxy):
            raise ConfigError(f"{where}: {key}.proxies: "
                              f"{unknown('proxy', proxy, (*METHODS, f'{EXTERNAL_PREFIX}<name>', EARLY_STOPPING))}")
    if WHOLE not in grid.proxies:
        raise ConfigError(f"{where}: {key}.proxies: give {WHOLE}, the whole training set: the ground truth "
                          "the proxies' rankings are compared with")


def _check_continual(grid: Grid, raw: dict, where: str) -> None:
    """A continual grid (``steps``) fills table cl (continual learning's layout), which holds no other,
    and names its steps (each divides every dataset's classes), methods that make a set and the
    training model's own evaluation (S, SS)."""
    key = f"tables.{grid.table}"
    if not grid.steps:
        raise ConfigError(f"{where}: {key}.steps: table cl is continual learning's: give the numbers of "
                          "class-incremental steps, e.g. [5, 10]")
    if grid.architectures or grid.proxies:
        raise ConfigError(f"{where}: {key}.steps: a grid is an architecture search or continual learning, not both")
    if grid.table != "cl":
        raise ConfigError(f"{where}: {key}: a continual grid fills table cl (a row per dataset, steps and "
                          f"method, a column per step), not {grid.table}")
    if len(set(grid.steps)) != len(grid.steps):
        raise ConfigError(f"{where}: {key}.steps: lists a value twice: {list(grid.steps)}")
    for dataset in grid.datasets:
        classes = info(dataset).num_classes
        for steps in grid.steps:
            if classes % steps:
                raise ConfigError(f"{where}: {key}.steps: {steps} does not divide {dataset}'s {classes} classes "
                                  "into equal steps")
    for method in grid.methods:
        if not methods.get(method).makes_set:
            raise ConfigError(f"{where}: {key}.methods: {method} makes no set; a continual memory is made by a "
                              "method that makes one")
    for mode in grid.eval_modes:
        if mode not in SELF_MODES:
            raise ConfigError(f"{where}: {key}.eval_modes: {mode}: a continual memory is evaluated on the "
                              f"training model itself ({', '.join(SELF_MODES)})")


def _check_hidden(grid: Grid, layout, where: str) -> None:
    key = f"tables.{grid.table}"
    for axis in hidden_axes(layout):
        if len(getattr(grid, axis)) != 1:
            raise ConfigError(f"{where}: {key}.{axis}: the {grid.table} layout shows rows "
                              f"{'/'.join(layout.rows)} and columns {layout.column}, "
                              f"so {axis} takes one value; got {list(getattr(grid, axis))}")


def _check_own_tables(grids: tuple[Grid, ...], where: str) -> None:
    """A table of the sweep's own shows every axis that varies: none is averaged in a cell."""
    for name, layout in own_layouts(grids).items():
        if layout.column in layout.rows:
            raise ConfigError(f"{where}: tables.{name}: rows {list(layout.rows)} leave no axis for the columns; "
                              "give columns:")
        for grid in (g for g in grids if g.table == name):
            _check_hidden(grid, layout, where)
            if "eval_model" not in (*layout.rows, layout.column) and any(m != "S" for m in grid.eval_modes):
                raise ConfigError(f"{where}: tables.{name}: eval_modes {list(grid.eval_modes)} train several "
                                  "models per cell: add eval_model to rows or columns")


def _sets(raw, base, where: str) -> tuple:
    """``sets``: name -> ``<dataset>-ipc<k>`` -> files (a path or glob per entry, relative to the
    sweep file; see ``_set_paths``)."""
    out = []
    for name, by_key in _typed(raw, dict, where, "sets").items():
        key = f"sets.{name}"
        try:
            methods.get(f"{EXTERNAL_PREFIX}{name}")
        except (ConfigError, TypeError):
            raise ConfigError(f"{where}: {key}: a set's name is letters, digits and _.+- (up to 64)") from None
        entries = []
        for position, files in _typed(by_key, dict, where, key).items():
            dataset, _, ipc = str(position).rpartition("-ipc")
            if dataset not in dataset_names() or not ipc.isdigit() or int(ipc) < 1:
                raise ConfigError(f"{where}: {key}: {reprlib.repr(position)}: expected <dataset>-ipc<k>, e.g. "
                                  f"MNIST-ipc1, with a dataset of {', '.join(dataset_names())}")
            if isinstance(files, str):
                files = [files]
            paths = []
            for i, f in enumerate(_typed(files, list[str], where, f"{key}.{position}")):
                paths += _set_paths(f, base, where, f"{key}.{position}[{i}]")
            if not paths:
                raise ConfigError(f"{where}: {key}.{position}: empty; give a file per experiment or a glob")
            entries.append((f"{dataset}-ipc{int(ipc)}", tuple(paths)))
        out.append((name, tuple(entries)))
    return tuple(out)


def _set_paths(entry: str, base: Path, where: str, key: str) -> list[str]:
    """The files of one ``sets`` entry. Literal first: a file of that exact name is that file, even
    with glob characters in it (``set[1].npz``); else a glob is expanded, sorted. One that names
    nothing stays, and the run's pre-flight names it (``experiment.check_external``), as a missing
    file. What is there must be a regular file (never a FIFO, device or folder: one line)."""
    try:
        given = Path(entry).expanduser()  # an absolute path stays as it is
    except RuntimeError as err:  # ~nosuchuser, or no home folder
        raise ConfigError(f"{where}: {key}: cannot expand {reprlib.repr(entry)} ({err})") from None
    full = base / given
    try:
        literal = os.path.lexists(full)
    except (OSError, ValueError) as err:  # a name too long
        raise ConfigError(f"{where}: {key}: {reprlib.repr(entry)}: {getattr(err, 'strerror', None) or err}") from None
    if literal or not glob.has_magic(str(given)):
        found = [str(full)]
    else:  # the sweep file's own folder is taken literally, whatever its name holds
        found = sorted(glob.glob(str(Path(glob.escape(str(base))) / given))) or [str(full)]
    for path in found:
        if os.path.lexists(path):
            try:
                regular_file(path)
            except ConfigError as err:
                raise ConfigError(f"{where}: {key}: {err}") from None
    return found


def _check_sets_named(sweep: Sweep, where: str) -> None:
    """Every ``set:<name>`` of a grid has files for each dataset and ipc of the grid."""
    for grid in sweep.grids:
        for method in (m for m in methods_of(grid) if methods.get(m).from_files):
            name = method[len(EXTERNAL_PREFIX):]
            given = dict(dict(sweep.sets).get(name, ()))
            for dataset in grid.datasets:
                for ipc in grid.ipcs:
                    if f"{dataset}-ipc{ipc}" not in given:
                        has = f"sets.{name} has {', '.join(given) or 'nothing'}" if name in dict(sweep.sets) \
                            else "no sets entry of that name"
                        raise ConfigError(f"{where}: tables.{grid.table}.methods: {method}: no files for "
                                          f"{dataset}-ipc{ipc} ({has}); add sets: {{{name}: {{{dataset}-ipc{ipc}: "
                                          "[file per experiment]}}")


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
