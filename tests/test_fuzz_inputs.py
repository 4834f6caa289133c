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
from orchestrator.sweep import spec

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
    from orchestrator.driver.run import main

    code = main([str(path), "--dry-run"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert (code == 0 and len(err) <= 1) or (code == 2 and len(err) == 1), (path.read_text(), code, err)


# the architecture search's dry runs plan 5040 cells each: seconds for the file's accepted mutations
@pytest.mark.parametrize("name", [pytest.param(p.name, marks=pytest.mark.slow) if p.name == "nas.yaml" else p.name
                                  for p in SWEEPS])
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
    import orchestrator.cli.seed as cli

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


def _write_root(root, kind: str, rng: random.Random):
    """A data root whose MNIST (or CIFAR-10) is corrupt in the way ``kind`` says; returns the
    dataset's name and the file at fault."""
    import os
    import pickle
    import struct

    import numpy as np

    n = 30
    images = np.random.default_rng(rng.randrange(1000)).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(n) % 10
    d = root / "MNIST"
    d.mkdir(parents=True)
    if kind in ("idx-magic", "idx-cut", "idx-labels"):
        raw = d / "raw"
        raw.mkdir()
        for split in ("train", "t10k"):
            (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
            y = labels.copy()
            if kind == "idx-labels" and split == "train":
                y[rng.randrange(n)] = rng.choice([10, 99, 255])
            (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + y.astype(np.uint8).tobytes())
        bad = raw / "train-images-idx3-ubyte" if kind != "idx-labels" else raw / "train-labels-idx1-ubyte"
        data = bad.read_bytes()
        if kind == "idx-magic":
            bad.write_bytes(struct.pack(">I", rng.randrange(2**32 - 1) | 1 << 20) + data[4:])
        elif kind == "idx-cut":
            bad.write_bytes(data[:rng.randrange(len(data))])
        return "MNIST", bad
    if kind == "cifar-evil":
        c = root / "cifar-10-batches-py"
        c.mkdir()
        witness = root / "pwned"

        class Evil:
            def __reduce__(self):
                return rng.choice([(os.system, (f"touch {witness}",)), (eval, (f"open({str(witness)!r}, 'w')",))])

        names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
        evil = rng.choice(names)
        for name in names:
            entry = {"data": images.reshape(n, -1)[:, :1].repeat(3072, 1), "labels": labels.tolist()}
            if name == evil:
                entry[rng.choice(["data", "labels", "extra"])] = Evil()
            with open(c / name, "wb") as f:
                pickle.dump(entry, f, protocol=rng.choice([2, pickle.HIGHEST_PROTOCOL]))
        return "CIFAR10", c / evil
    test_images, test_labels = images, labels
    y = labels.copy()
    if kind == "npz-labels":
        y[rng.randrange(n)] = rng.choice([-1, 10, 2**40])
    if kind == "npz-empty-test":
        test_images, test_labels = images[:0], labels[:0]
    np.savez(d / "train.npz", images=images, labels=y)
    np.savez(d / "test.npz", images=test_images, labels=test_labels)
    bad = d / ("test.npz" if kind == "npz-empty-test" else "train.npz")
    if kind == "npz-cut":
        bad.write_bytes(bad.read_bytes()[:rng.randrange(bad.stat().st_size)])
    return "MNIST", bad


DATA_KINDS = ["npz-cut", "npz-labels", "npz-empty-test", "idx-magic", "idx-cut", "idx-labels", "cifar-evil"]


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_corrupt_data_roots_are_refused_in_one_line_naming_the_file(tmp_path, kind, capsys):
    """Each kind of corrupt data root, drawn several ways: ``data.check`` (what the driver and the
    seed CLI run before anything starts) and the driver's dry run refuse it on one line naming the
    file, and reading it never runs code."""
    from condense import data
    from orchestrator.driver.run import main

    rng = random.Random(kind)
    for i in range(4):
        root = tmp_path / str(i)
        name, bad = _write_root(root, kind, rng)
        with pytest.raises(ConfigError) as exc:
            data.check(name, root)
        message = str(exc.value)
        assert "\n" not in message and str(bad) in message, (kind, message)
        assert not (root / "pwned").exists(), "a tampered CIFAR-10 batch ran code"
        sweep = root / "sweep.yaml"
        sweep.write_text(yaml.safe_dump({
            "tables": {"table1": {"datasets": [name], "models": ["ConvNet"], "ipcs": [1], "eval_modes": ["S"]}},
            "data_root": str(root)}))
        code = main([str(sweep), "--dry-run"])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and err.strip().splitlines() == [f"error: {message}"], (kind, err)
