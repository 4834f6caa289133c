"""A corpus of hostile inputs, generated: doctored results Parquets and metadata, doctored curves,
hostile set files, odd paths (FIFOs, devices, folders, links, glob characters, ``~user``) and
environment values, each with the command line that reads it and what it must do: one line on
stderr, exit 2 (or 0 where the input is harmless), nothing written outside the output folder.

    python tests/hostile_corpus.py DIR    # writes every case into DIR/<case>/ and DIR/cases.json

``tests/test_hostile_corpus.py`` builds each case in a temporary folder and runs it in-process.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RESULTS_TOOLS = ("tables", "plots", "report")
# the data root of the sweep cases (their data must be there: they fail on something else)
DATA = os.environ.get("DC_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")


@dataclass
class Case:
    name: str
    kind: str  # results | curves | set file | sweep | environment | links
    tool: str  # tables | plots | report | run | evaluation: python -m orchestrator.<tool> / python -m evaluation
    argv: list[str]
    out: str  # the folder the user named: the only place anything may be written
    words: str  # in the one line on stderr
    env: dict = field(default_factory=dict)
    code: int = 2


# ------------------------------------------------------------------------------ results files


def _rows() -> list[dict]:
    from orchestrator.results import parquet
    from orchestrator.sweep.cells import Cell

    cells = [Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ("metric",)),
             Cell("MNIST", "ConvNet", 1, "S", "mse", "DC", ("metric",))]
    return [row for k, cell in enumerate(cells) for row in parquet.ok_rows("hostile", cell, [
        {"exp": 0, "eval_model": "ConvNet", "eval_seed": i, "accuracy": 80.0 + 5 * k + i, "condense_seconds": 1.0,
         "eval_seconds": 1.0, "iterations": 10, "train_images": 60000} for i in range(2)])]


def write_results(path: Path, change: dict | None = None, drop=(), columns: dict | None = None,
                  meta: dict | None = None, rows: list[dict] | None = None) -> Path:
    """A results file: the base rows with ``change`` applied to the first, ``drop``ped columns,
    ``columns`` replaced by the given arrays, and ``meta`` as the raw key-value metadata."""
    from orchestrator.results import parquet

    rows = _rows() if rows is None else rows
    if change:
        rows[0] = {**rows[0], **change}
    table = pa.Table.from_pylist(rows, schema=parquet.SCHEMA)
    for name, values in (columns or {}).items():
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values))
    table = table.drop_columns(list(drop))
    default = {"sweep": json.dumps({"name": "hostile", "cells": []}), "budgets": "{}", "versions": "{}"}
    raw = {**default, **(meta or {})}
    table = table.replace_schema_metadata({k: v for k, v in raw.items() if v is not None})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _layouts(layouts) -> dict:
    return {"sweep": json.dumps({"name": "hostile", "layouts": layouts})}


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _link(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _cut(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return path


# name -> (make the run folder's files, words in the line); a results file is run/results.parquet
RESULTS: dict[str, tuple[Callable[[Path], object], str]] = {
    "table name ../../x from the metadata": (lambda p: write_results(
        p, {"table": ["../../x"]}, meta=_layouts({"../../x": {"rows": ["dataset"], "column": "dis_metric"}})),
        "is not a safe file name"),
    "table name ../../x": (lambda p: write_results(p, {"table": ["../../x"]}), "is not a safe file name"),
    "table name with a slash": (lambda p: write_results(p, {"table": ["a/b"]}), "is not a safe file name"),
    "table name .hidden": (lambda p: write_results(p, {"table": [".hidden"]}), "is not a safe file name"),
    "table list empty": (lambda p: write_results(p, {"table": []}), "column table"),
    "table list holding a null": (lambda p: write_results(p, {"table": [None]}), "unknown table null"),
    "table column a string": (lambda p: write_results(p, columns={"table": ["metric"] * 4}),
                              "column table: string values, expected list of strings"),
    "layouts not a mapping": (lambda p: write_results(p, meta=_layouts("garbage")), "metadata sweep.layouts"),
    "layout rows a string": (lambda p: write_results(p, meta=_layouts({"mine": {"rows": "dataset", "column": "ipc"}})),
                             "sweep.layouts.mine.rows"),
    "layout of an unknown column": (lambda p: write_results(
        p, meta=_layouts({"mine": {"rows": ["colour"], "column": "ipc"}})), "sweep.layouts.mine.rows"),
    "layout without a column": (lambda p: write_results(p, meta=_layouts({"mine": {"rows": ["dataset"]}})),
                                "sweep.layouts.mine"),
    "layout column among its rows": (lambda p: write_results(
        p, meta=_layouts({"mine": {"rows": ["ipc"], "column": "ipc"}})), "sweep.layouts.mine.column"),
    "layout named ../x": (lambda p: write_results(p, meta=_layouts({"../x": {"rows": ["ipc"], "column": "method"}})),
                          "is not a safe file name"),
    "metadata not JSON": (lambda p: write_results(p, meta={"sweep": b"{not json"}), "metadata sweep: not JSON"),
    "metadata not UTF-8": (lambda p: write_results(p, meta={"budgets": b"\xff\xfe"}), "metadata budgets: not JSON"),
    "metadata budgets a list": (lambda p: write_results(p, meta={"budgets": "[1, 2]"}),
                                "metadata budgets: expected a mapping"),
    "metadata sweep name a number": (lambda p: write_results(p, meta={"sweep": '{"name": 7}'}),
                                     "metadata sweep.name"),
    "metadata cells not a list": (lambda p: write_results(p, meta={"sweep": '{"cells": "x"}'}),
                                  "metadata sweep.cells"),
    "ipc as text": (lambda p: write_results(p, columns={"ipc": ["one"] * 4}), "column ipc: string values"),
    "ipc zero": (lambda p: write_results(p, {"ipc": 0}), "column ipc: 0.0 is not a finite number >= 1"),
    "exp negative": (lambda p: write_results(p, {"exp": -1}), "column exp"),
    "accuracy as text": (lambda p: write_results(p, columns={"accuracy": ["high"] * 4}),
                         "column accuracy: string values"),
    "accuracy 1e6": (lambda p: write_results(p, {"accuracy": 1e6}), "not a percentage in 0..100"),
    "accuracy infinite": (lambda p: write_results(p, {"accuracy": float("inf")}), "not a percentage in 0..100"),
    "accuracy negative": (lambda p: write_results(p, {"accuracy": -3.0}), "not a percentage in 0..100"),
    "accuracy nan": (lambda p: write_results(p, {"accuracy": float("nan")}), "not a percentage in 0..100"),
    "accuracy null in an ok row": (lambda p: write_results(p, {"accuracy": None}), "not a percentage in 0..100"),
    "seconds infinite": (lambda p: write_results(p, {"eval_seconds": float("inf")}), "column eval_seconds"),
    "unknown status": (lambda p: write_results(p, {"status": "done"}), "unknown status 'done'"),
    "unknown dataset": (lambda p: write_results(p, {"dataset": "IMAGENET77"}), "unknown dataset 'IMAGENET77'"),
    "unknown method": (lambda p: write_results(p, {"method": "set:../x"}), "unknown method 'set:../x'"),
    "model name of markup": (lambda p: write_results(p, {"model": "$\\frac{"}), "column model: unknown value"),
    "evaluation model of markup": (lambda p: write_results(p, {"eval_model": "<b>"}), "column eval_model"),
    "unknown eval mode": (lambda p: write_results(p, {"eval_mode": "Z"}), "column eval_mode: unknown value"),
    "distance of markup": (lambda p: write_results(p, {"dis_metric": "$l_2$"}), "column dis_metric: unknown value"),
    "unknown DSA strategy": (lambda p: write_results(p, {"dsa_strategy": "teleport"}), "column dsa_strategy"),
    "cell id ../evil": (lambda p: write_results(p, {"cell_id": "../evil"}), "is not a safe file name"),
    "cell id null": (lambda p: write_results(p, {"cell_id": None}), "column cell_id: null"),
    "dataset null": (lambda p: write_results(p, {"dataset": None}), "column dataset: null"),
    "status column missing": (lambda p: write_results(p, drop=("status",)), "missing columns status"),
    "accuracy column missing": (lambda p: write_results(p, drop=("accuracy",)), "missing columns accuracy"),
    "no rows": (lambda p: write_results(p, rows=[]), "no rows: nothing to render"),
    "not a Parquet": (lambda p: _bytes(p, b"tables: {}\n"), "cannot read results"),
    "a Parquet cut off": (lambda p: _cut(write_results(p)), "cannot read results"),
    "a folder": (lambda p: p.mkdir(parents=True), "a folder, not a regular file"),
    "a FIFO": (lambda p: _fifo(p), "a FIFO, not a regular file"),
    "a device": (lambda p: _link(p, "/dev/zero"), "a device, not a regular file"),
    "a dangling link": (lambda p: _link(p, "/nonexistent/results.parquet"), "no such file"),
}
CURVES: dict[str, tuple[Callable[[Path], object], str]] = {
    "curves not a Parquet": (lambda p: _bytes(p, b"PAR1 garbage"), "cannot read learning curves"),
    "curves cell id ../x": (lambda p: _curves(p, {"cell_id": "../x"}), "is not a safe file name"),
    "curves accuracy as text": (lambda p: _curves(p, columns={"accuracy": ["x"]}), "column accuracy: string values"),
    "curves accuracy 1e9": (lambda p: _curves(p, {"accuracy": 1e9}), "not a percentage in 0..100"),
    "curves iteration negative": (lambda p: _curves(p, {"iteration": -5}), "column iteration"),
    "curves loss infinite": (lambda p: _curves(p, {"loss": float("inf")}), "column loss"),
    "curves without iteration": (lambda p: _curves(p, drop=("iteration",)), "missing columns iteration"),
    "curves a FIFO": (lambda p: _fifo(p), "a FIFO, not a regular file"),
}


def _curves(path: Path, change: dict | None = None, drop=(), columns: dict | None = None) -> Path:
    from orchestrator.results import curves
    from orchestrator.sweep.cells import Cell

    cell = Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ("metric",))
    rows = curves.rows("hostile", cell, [{"exp": 0, "iteration": 0, "model": "ConvNet", "accs": [50.0, 52.0],
                                          "loss": float("nan")}])
    rows[0] = {**rows[0], **(change or {})}
    table = pa.Table.from_pylist(rows, schema=curves.SCHEMA)
    for name, values in (columns or {}).items():
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values))
    pq.write_table(table.drop_columns(list(drop)), path)
    return path


def _results_case(name: str, tool: str, folder: Path, make_files: bool = True) -> Case:
    make, words = RESULTS[name]
    run, out = folder / "run", folder / "out"
    if make_files:
        make(run / "results.parquet")
    argv = {"tables": [str(run / "results.parquet"), "--out", str(out)],
            "plots": [str(run / "results.parquet"), "--output", str(out)],
            "report": [str(run)]}[tool]
    return Case(name, "results", tool, argv, str(run if tool == "report" else out), words)


def _curves_case(name: str, folder: Path) -> Case:
    make, words = CURVES[name]
    write_results(folder / "run" / "results.parquet")  # valid: the curves beside them are not
    make(folder / "run" / "curves.parquet")
    return Case(name, "curves", "plots", [str(folder / "run" / "results.parquet"), "--output", str(folder / "out")],
                str(folder / "out"), words)


# ------------------------------------------------------------------------------ output folders and links


def _output_case(name: str, tool: str, folder: Path, make_files: bool = True) -> Case:
    """A valid results file; the output folder is hostile."""
    run, out = folder / "run", folder / "out"
    outside = folder / "outside.txt"
    words, code = ("cannot write", 2) if name in ("output below a file", "report.html is a folder") else ("", 0)
    if name == "output below a file":
        out = outside / "sub"
    if make_files:  # once for every tool
        write_results(run / "results.parquet")
        _bytes(outside, b"keep me\n")
        targets = [*(out / s for s in ("metric.md", "metric.tex", "metric.png", "metric.pdf")), run / "report.html"]
        if name == "output holds links to files outside":
            for path in targets:
                _link(path, str(outside))
        elif name == "output holds a link where a temporary goes":  # the name replacing() writes first
            for path in targets:
                _link(path.with_name(f".{path.name}.{os.getpid()}.tmp"), str(outside))
        elif name == "report.html is a folder":
            for path in (targets[0], targets[2], targets[4]):
                path.mkdir(parents=True)
    argv = {"tables": [str(run / "results.parquet"), "--out", str(out)],
            "plots": [str(run / "results.parquet"), "--output", str(out)], "report": [str(run)]}[tool]
    return Case(name, "links", tool, argv, str(run if tool == "report" else out), words, code=code)


OUTPUTS = ("output holds links to files outside", "output holds a link where a temporary goes", "output below a file",
           "report.html is a folder")


# ------------------------------------------------------------------------------ set files


def _pt(path: Path, content) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path


def _set(**change):
    import torch

    base = {"images": torch.randn(10, 1, 28, 28), "labels": torch.arange(10), "dataset": "MNIST", "meta": {"method": "DC"}}
    return {**base, **change}


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _sparse():
    import torch

    return torch.randn(10, 1, 28, 28).to_sparse()


def _meta_device():
    import torch

    return torch.empty(10, 1, 28, 28, device="meta")


def _quantised():
    import torch

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch says it is deprecated: it is what a hostile file holds
        return torch.quantize_per_tensor(torch.rand(10, 1, 28, 28), 0.1, 0, torch.quint8)


def _complex():
    import torch

    return torch.randn(10, 1, 28, 28, dtype=torch.complex64)


SETS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "sparse images": (lambda d: _pt(d / "s.pt", _set(images=_sparse())), "images is a sparse_coo tensor"),
    "meta-device images": (lambda d: _pt(d / "s.pt", _set(images=_meta_device())), "on the meta device"),
    "quantised images": (lambda d: _pt(d / "s.pt", _set(images=_quantised())), "of dtype quint8"),
    "complex images": (lambda d: _pt(d / "s.pt", _set(images=_complex())), "of dtype complex64"),
    "sparse tensor among other keys": (lambda d: _pt(d / "s.pt", _set(extra={"x": [_sparse()]})),
                                       "extra.x[0] is a sparse_coo tensor"),
    "meta a list": (lambda d: _pt(d / "s.pt", _set(meta=[1, 2])), "meta is list"),
    "meta method a list": (lambda d: _pt(d / "s.pt", _set(meta={"method": ["DC"]})), "meta method is list"),
    "meta iteration text": (lambda d: _pt(d / "s.pt", _set(meta={"iteration": "ten"})), "meta iteration is str"),
    "meta DSA strategy unknown": (lambda d: _pt(d / "s.pt", _set(meta={"dsa_strategy": "teleport"})),
                                  "is not a DSA strategy"),
    "dataset a number": (lambda d: _pt(d / "s.pt", _set(dataset=7)), "a set of int 7"),
    "a pickle that runs code": (lambda d: _pt(d / "s.pt", {"images": _Exploit()}), "posix.system"),
    "a torch file cut off": (lambda d: _cut(_pt(d / "s.pt", _set())), "cannot read as a torch file"),
    "npz of objects": (lambda d: _npz(d / "s.npz", images=np.array([None] * 10, dtype=object)), "cannot read as .npz"),
    "npz of complex images": (lambda d: _npz(d / "s.npz", images=np.zeros((10, 1, 28, 28), np.complex64)),
                              "images have dtype complex64"),
    "npz of text labels": (lambda d: _npz(d / "s.npz", labels=np.array(list("abcdefghij"))),
                           "labels have dtype <U1"),
    "a FIFO": (lambda d: _fifo(d / "s.npz"), "a FIFO, not a regular file"),
    "a folder": (lambda d: (d / "s.pt").mkdir(parents=True) or d / "s.pt", "a folder, not a regular file"),
    "a device": (lambda d: _link(d / "s.pt", "/dev/zero"), "a device, not a regular file"),
}


def _npz(path: Path, **change) -> Path:
    arrays = {"images": np.random.default_rng(0).normal(size=(10, 1, 28, 28)).astype(np.float32),
              "labels": np.arange(10), **change}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _set_case(name: str, folder: Path) -> Case:
    make, words = SETS[name]
    path = make(folder / "sets")
    out = folder / "out"
    return Case(name, "set file", "evaluation", [str(path), "--dataset", "MNIST", "--output", str(out),
                                                 "--device", "cpu", "--num_eval", "1", "--epochs", "1"],
                str(out), words)


# ------------------------------------------------------------------------------ sweep files, paths, environment


def _sweep(path: Path, sets: dict | None = None, **settings) -> Path:
    import yaml

    grid = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1], "eval_modes": ["S"],
            "methods": ["random", *(f"set:{n}" for n in sets or {})]}
    doc = {"tables": {"mine": grid}, "num_exp": 1, "num_eval": 1, "eval_budget": {"epochs": 1},
           **({"sets": sets} if sets else {}), **settings}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


SWEEPS: dict[str, tuple[Callable[[Path], tuple[Path, dict]], str]] = {
    "sweep file a FIFO": (lambda d: (_fifo(d / "s.yaml"), {}), "a FIFO, not a regular file"),
    "sweep file a folder": (lambda d: ((d / "s.yaml").mkdir(parents=True) or d / "s.yaml", {}),
                            "a folder, not a regular file"),
    "sweep file a device": (lambda d: (_link(d / "s.yaml", "/dev/zero"), {}), "a device, not a regular file"),
    "set path ~nosuchuser": (lambda d: (_sweep(d / "s.yaml", {"mine": {"MNIST-ipc1": ["~nosuchuser-dc/x.npz"]}}), {}),
                             "cannot expand '~nosuchuser-dc/x.npz'"),
    "set path a folder": (lambda d: ((d / "sets" / "x.npz").mkdir(parents=True) or
                                     _sweep(d / "s.yaml", {"mine": {"MNIST-ipc1": ["sets/x.npz"]}}), {}),
                          "a folder, not a regular file"),
    "set path a FIFO": (lambda d: (_fifo(d / "sets" / "x.npz") and
                                   _sweep(d / "s.yaml", {"mine": {"MNIST-ipc1": ["sets/x.npz"]}}), {}),
                        "a FIFO, not a regular file"),
    "set glob matching a device": (lambda d: (_link(d / "sets" / "x1.npz", "/dev/null") and
                                              _sweep(d / "s.yaml", {"mine": {"MNIST-ipc1": ["sets/x*.npz"]}}), {}),
                                   "a device, not a regular file"),
    "RAY_ADDRESS port of Arabic-Indic digits": (lambda d: (_sweep(d / "s.yaml"), {"RAY_ADDRESS": "127.0.0.1:١٢٣"}),
                                                "RAY_ADDRESS="),
    "RAY_ADDRESS port out of range": (lambda d: (_sweep(d / "s.yaml"), {"RAY_ADDRESS": "127.0.0.1:99999"}),
                                      "a port of ASCII digits 1..65535"),
    "RAY_ADDRESS without a port": (lambda d: (_sweep(d / "s.yaml"), {"RAY_ADDRESS": "head-node"}), "RAY_ADDRESS="),
    "DC_DATA of an unknown user": (lambda d: (_sweep(d / "s.yaml"), {"DC_DATA": "~nosuchuser-dc/data"}),
                                   "DC_DATA='~nosuchuser-dc/data': cannot expand it"),
    "DC_CODE_VERSION of two lines": (lambda d: (_sweep(d / "s.yaml"), {"DC_CODE_VERSION": "v1\nv2"}),
                                     "DC_CODE_VERSION="),
    "DC_CODE_VERSION of 500 characters": (lambda d: (_sweep(d / "s.yaml"), {"DC_CODE_VERSION": "v" * 500}),
                                          "DC_CODE_VERSION="),
    "DC_CALIBRATIONS a missing folder": (lambda d: (_sweep(d / "s.yaml"), {"DC_CALIBRATIONS": str(d / "nocal")}),
                                         "DC_CALIBRATIONS={}/nocal: no such folder"),
    "DC_CALIBRATIONS of a cut-off file": (lambda d: (_sweep(d / "s.yaml"), {"DC_CALIBRATIONS": str(
        _bytes(d / "cal" / "cpu.json", b'{"device": "cpu x", "kind": "cp').parent)}), "cpu.json: not a calibration file"),
    "DC_CALIBRATIONS of a file of another shape": (lambda d: (_sweep(d / "s.yaml"), {"DC_CALIBRATIONS": str(
        _bytes(d / "cal" / "cpu.json", b'{"device": "cpu x", "kind": "cpu", "probes": [1]}').parent)}),
        "cpu.json: not a calibration file"),
}


def _sweep_case(name: str, folder: Path) -> Case:
    make, words = SWEEPS[name]
    sweeps = folder / "sweeps"
    path, env = make(sweeps)
    out = folder / "runs"
    return Case(name, "environment" if env else "sweep", "run", [str(path), "--dry-run", "--output", str(out)],
                str(out), words.replace("{}", str(sweeps)), {"DC_DATA": DATA, **env})


def resume_without_sweep_json(folder: Path) -> Case:
    """A run folder whose sweep.json is gone, resumed with a changed num_eval: its results' metadata
    say the budgets it was made with."""
    from orchestrator.sweep import spec
    from orchestrator.sweep.cells import expand

    path = _sweep(folder / "sweeps" / "tiny.yaml")
    sweep = spec.load(path).for_run(DATA, "v", False)
    cells = [c.to_config() for c in expand(sweep)]
    run = folder / "runs" / "tiny"
    write_results(run / "results.parquet", meta={"budgets": json.dumps(sweep.comparable()),
                                                 "sweep": json.dumps({"name": "tiny", "cells": cells})})
    (run / "checkpoints").mkdir()
    _sweep(path, num_eval=3)  # changed since
    return Case("resume without sweep.json, num_eval changed", "sweep", "run",
                [str(path), "--resume", "--output", str(folder / "runs")], str(run),
                f"{run}: the budgets differ from the run being resumed",
                {"DC_DATA": DATA})


# ------------------------------------------------------------------------------ the corpus


def cases() -> dict[str, Callable[[Path], list[Case]]]:
    """Every case: its id -> what builds it in a folder and gives the command lines that read it (a
    results file is read by each results tool in turn)."""
    out: dict[str, Callable[[Path], list[Case]]] = {}
    for name in RESULTS:
        out[f"results/{name}"] = lambda f, n=name: [_results_case(n, t, f, t == RESULTS_TOOLS[0]) for t in RESULTS_TOOLS]
    for name in CURVES:
        out[f"curves/{name}"] = lambda f, n=name: [_curves_case(n, f)]
    for name in OUTPUTS:
        tools = RESULTS_TOOLS if name != "output below a file" else ("tables", "plots")  # report: no such flag
        out[f"output/{name}"] = lambda f, n=name, ts=tools: [_output_case(n, t, f, t == ts[0]) for t in ts]
    for name in SETS:
        out[f"set file/{name}"] = lambda f, n=name: [_set_case(n, f)]
    for name in SWEEPS:
        out[f"sweep/{name}"] = lambda f, n=name: [_sweep_case(n, f)]
    out["sweep/resume without sweep.json"] = lambda f: [resume_without_sweep_json(f)]
    return out


def main(argv=None) -> int:
    target = Path((argv or sys.argv[1:] or ["hostile-corpus"])[0])
    listed = []
    for i, (key, build) in enumerate(cases().items()):
        listed += [{"id": key, **asdict(case)} for case in build(target / f"{i:03d}")]
    (target / "cases.json").write_text(json.dumps(listed, indent=1, ensure_ascii=False))
    print(f"{len(listed)} command lines of {len(cases())} cases in {target}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
