"""Hostile input, generated: mutations of the shipped sweep files through the spec parser, and
bad values for every seed-CLI flag, all in this process. Nothing may raise but ConfigError (or exit 2)
with one line; a nan or infinite number, a duplicated key, bad bytes or deep nesting is always refused;
whatever is accepted holds only finite numbers, integers where ints belong."""
import copy
import dataclasses
import math
import random
import shutil
import typing

import pytest
import yaml

from condense.errors import ConfigError
from conftest import REPO
from orchestrator import spec

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
NON_FINITE = [float("nan"), float("inf"), float("-inf")]
HOSTILE = [*NON_FINITE, -1, 0, 0.5, 1.5, 10**30, -(10**30), True, None, "x", "", "a\x00b", [], {}, [1, 1],
           {"a": 1}, "ConvNetXYZ", "IMAGENET", 1e308 * 10]
N_MUTATIONS = 60  # of each file's value mutations, drawn with a fixed seed


def paths(node, prefix=()):
    """Every key path into a parsed YAML document (mappings and list items)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k)
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*prefix, i)
            yield from paths(v, (*prefix, i))


def mutated(doc, path, value=None, delete=False):
    doc = copy.deepcopy(doc)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def check_accepted(sweep) -> None:
    """Every number the parsed sweep holds is finite, and an int wherever the field is an int."""
    def walk(obj):
        if dataclasses.is_dataclass(obj):
            hints = typing.get_type_hints(type(obj))
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if hints[f.name] is int or hints[f.name] == (int | None):
                    assert value is None or type(value) is int, (f.name, value)
                walk(value)
        elif isinstance(obj, (tuple, list)):
            for v in obj:
                walk(v)
        elif isinstance(obj, float):
            assert math.isfinite(obj), obj
    walk(sweep)


def outcome(path, must_refuse: bool, what: str):
    try:
        sweep = spec.load(path)
    except ConfigError as err:
        message = str(err)
        # it names the file at fault: this one, or one it includes
        assert "\n" not in message and message.startswith(str(path.parent)) and len(message) < 2000, (what, message)
        return message
    assert not must_refuse, f"accepted: {what}"
    check_accepted(sweep)
    return None


@pytest.fixture
def folder(tmp_path):
    """The shipped sweeps, copied (a mutated file includes its siblings as the original does)."""
    for p in SWEEPS:
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


def dry_run(path, capsys) -> None:
    """An accepted sweep also gets through the driver's dry run: exit 0, or 2 on one line."""
    from orchestrator.run import main

    code = main([str(path), "--dry-run"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert (code == 0 and len(err) <= 1) or (code == 2 and len(err) == 1), (path.read_text(), code, err)


@pytest.mark.parametrize("name", [p.name for p in SWEEPS])
def test_mutated_sweep_values_and_keys(folder, name, capsys):
    doc = yaml.safe_load((folder / name).read_text())
    rng = random.Random(name)
    every = list(paths(doc))
    target = folder / f"mutant-{name}"
    refused = 0
    cases = [(p, None, True) for p in every] + [(p, v, False) for p in every for v in HOSTILE]
    cases += [((*p, "colour"), 1, False) for p in [()] + every if isinstance(_at(doc, p), dict)]  # unknown keys
    for p, value, delete in rng.sample(cases, min(N_MUTATIONS, len(cases))):
        target.write_text(yaml.safe_dump(mutated(doc, p, value, delete)))
        must = not delete and (isinstance(value, float) and not math.isfinite(value) or p[-1] == "colour"
                               or value == "a\x00b")
        message = outcome(target, must, f"{p} = {value!r} (delete={delete})")
        refused += message is not None
        if message is None:
            dry_run(target, capsys)
    assert refused > 0


def _at(doc, path):
    for p in path:
        doc = doc[p]
    return doc


@pytest.mark.parametrize("name", [p.name for p in SWEEPS])
def test_mutated_sweep_bytes(folder, name):
    text = (folder / name).read_bytes()
    rng = random.Random(name)
    target = folder / f"mutant-{name}"
    lines = text.splitlines(keepends=True)
    top = [line for line in lines if line[:1].isalpha()]
    always = [(line_ + text, f"duplicate key {line_[:20]!r}") for line_ in top]  # a top-level key given twice
    always += [(text + b"\n" + line_, f"duplicate key {line_[:20]!r} at the end") for line_ in top]
    for _ in range(10):
        at = rng.randrange(len(text) + 1)
        always.append((text[:at] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xFE])]) + text[at:], f"bad byte at {at}"))
    always.append((text + b"\nextra: " + b"[" * 1000 + b"]" * 1000 + b"\n", "1000 levels deep"))
    always.append((b"num_exp: " + b"9" * 5000 + b"\n" + text, "a 5000-digit integer"))
    always.append((text + b"#" * (spec.MAX_BYTES + 1), "oversize"))
    for data, what in always:
        target.write_bytes(data)
        outcome(target, True, what)
    for _ in range(25):  # truncated or spliced files: any outcome, but only ever one line
        a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        target.write_bytes(text[:a] + text[b:])
        outcome(target, False, f"cut {a}:{b}")


def test_seed_cli_flags_refuse_bad_values_before_data_loads(monkeypatch, tmp_path, capsys):
    """Every flag of ``python -m condense`` with hostile values: refused on one line (exit 2), or
    accepted up to the data loading, which is stopped here; non-finite or negative numbers never pass."""
    import orchestrator.seed_cli as cli

    class Loaded(Exception):
        pass

    def no_load(*a, **k):
        raise Loaded

    monkeypatch.setattr(cli, "load", no_load)
    monkeypatch.chdir(tmp_path)  # an accepted --save_path lands here
    base = ["--dataset", "MNIST", "--smoke"]
    flags = [f for f, v in vars(cli.parse_args(base)).items() if not isinstance(v, bool)]
    numeric = {f for f in flags if isinstance(getattr(cli.parse_args([*base, f"--{f}", "1"]), f), (int, float))}
    assert {"lr_img", "lr_net", "ipc", "num_exp", "Iteration", "seed"} <= numeric
    values = ["nan", "inf", "-inf", "1e400", "-1", "0", "abc", "", "9" * 30, "-" + "9" * 30, "1.5", "0x10", "None"]
    for flag in flags:
        for value in values:
            args = [*base, f"--{flag}", value]
            try:
                try:
                    code = cli.main(args)
                except SystemExit as exit_:
                    code = exit_.code
            except Loaded:
                code = "loaded"
            err = capsys.readouterr().err
            lines = [line for line in err.splitlines() if line.strip()]
            if code == "loaded":
                assert not (flag in numeric and value in ("nan", "inf", "-inf", "1e400", "-1")), args
                continue
            assert code == 2 and len(lines) == 1 and "Traceback" not in err, (args, code, err)
