"""The cluster path without a cluster: pre-flight refusals, the reference-network stage's plan,
results rewritten as cells end, the code version without git (the Ray end-to-end tests are in
test_cluster_ray.py)."""
import dataclasses
import subprocess
import types
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import torch

from condense.errors import ConfigError
from evaluation.reference import ReferenceBudget
from condense.condensation import Budget
from condense.synthetic import SyntheticSet
from conftest import REPO, data_root
from evaluation.train import EvalBudget
from orchestrator.driver import preflight, run
from orchestrator.sweep import spec
from orchestrator.trial import stages, trainable
from orchestrator.sweep.cells import Cell, expand
from orchestrator.sweep.config import Sweep
from orchestrator.driver.live import LiveResults


def node(cpu, gpu=0, alive=True, **custom):
    return {"Alive": alive, "Resources": {"CPU": cpu, "GPU": gpu, "memory": 1e9, **custom}}


def test_a_request_no_node_can_hold_is_refused_naming_both():
    preflight.check_request({"CPU": 2, "GPU": 0.25}, [node(2), node(8, 1)])  # the GPU node holds it
    with pytest.raises(ConfigError) as err:
        preflight.check_request({"CPU": 2, "GPU": 1}, [node(2), node(16), node(64, 8, alive=False)])
    assert str(err.value) == ("a cell asks for 2 CPUs + 1 GPU, more than any node has: the cluster's 2 node(s) offer "
                              "16 CPUs + 0 GPUs | 2 CPUs + 0 GPUs; lower --gpu-share or use a cluster with GPUs")
    with pytest.raises(ConfigError, match=r"asks for 1 CPU \+ 1 far, .* offer 4 CPUs \+ 0 far \+ 0 GPUs"):
        preflight.check_request({"CPU": 1, "GPU": 0, "far": 1}, [node(4)])
    preflight.check_request({"CPU": 1, "GPU": 0, "far": 1}, [node(4), node(1, far=1)])


def test_an_output_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"--output .*file/runs: not writable"):
        preflight.check_output(tmp_path / "file" / "runs")
    preflight.check_output(tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []  # the probe leaves nothing behind


def test_a_node_probe_reports_the_data_root_datasets_and_output(tmp_path):
    ok = preflight.probe(str(data_root()), ["MNIST", "CIFAR10"], str(tmp_path))
    assert ok == {"root": None, "datasets": {"MNIST": True, "CIFAR10": (data_root() / "cifar-10-batches-py").exists()},
                  "output": None}
    bad = preflight.probe(str(tmp_path / "nowhere"), ["MNIST"], str(tmp_path / "nowhere"))
    assert bad["root"] == "missing" and bad["datasets"] == {} and bad["output"]


def test_the_stage_trains_one_reference_per_experiment_or_one_shared(tmp_path):
    sweep = spec.load(REPO / "sweeps" / "table1.yaml")
    cells = [c for c in expand(sweep) if c.dataset == "MNIST"]
    settings = Sweep("t", budget=Budget(), eval_budget=EvalBudget(), reference_budget=ReferenceBudget(), num_exp=3, num_eval=2, seed=10, data_root="/d",
                        checkpoint_every=5, code_version="v")
    # herding, kcenter and forgetting use experiment e's network, seed 10 + e: the whole cell's of that experiment
    assert [str(k) for k in stages.needed(cells, settings)] == [f"MNIST-ConvNet-seed{s}" for s in (10, 11, 12)]
    shared = dataclasses.replace(settings, shared_reference=True)
    assert len(stages.needed(cells, shared)) == 3  # the whole bound keeps its 3 networks
    no_whole = [c for c in cells if c.method != "whole"]
    assert [str(k) for k in stages.needed(no_whole, shared)] == ["MNIST-ConvNet-seed10"]
    assert stages.needed([c for c in cells if c.method in ("DC", "random")], settings) == []


CELLS = [Cell("MNIST", "MLP", 1, "S", m, "DC", ("metric",)) for m in ("ours", "mse", "cos")]


def fake_trial(tmp_path, cell: Cell, status: str, accuracy: float | None = None):
    """What LiveResults reads of a Tune trial: its config, status, last result and checkpoint."""
    checkpoint = None
    if accuracy is not None:
        folder = tmp_path / cell.cell_id
        folder.mkdir()
        record = {"exp": 0, "eval_model": "MLP", "eval_seed": 1, "accuracy": accuracy, "condense_seconds": 1.0,
                  "eval_seconds": 1.0, "iterations": 2, "train_images": 60000, "code_version": "v",
                  "torch_version": "t", "device": "cpu", "device_name": "cpu", "started_at": 0.0, "finished_at": 1.0}
        torch.save({"exp": 1, "records": [record]}, folder / trainable.STATE_FILE)
        SyntheticSet(torch.zeros(10, 1, 28, 28), torch.arange(10), "MNIST", {}).save(folder / trainable.set_file(0))
        checkpoint = types.SimpleNamespace(as_directory=lambda: _Dir(folder))
    return types.SimpleNamespace(config={"cell": cell.to_config()}, status=status, checkpoint=checkpoint,
                                 last_result={"done": True} if accuracy is not None else {},
                                 get_pickled_error=lambda: RuntimeError("boom"))


class _Dir:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        return False


def test_results_are_rewritten_as_each_cell_ends(tmp_path):
    out = tmp_path / "out"
    live = LiveResults(CELLS, "tiny", out)
    live.setup()
    first = fake_trial(tmp_path, CELLS[0], "RUNNING", accuracy=50.0)  # Tune marks it TERMINATED after the callback
    running = fake_trial(tmp_path, CELLS[1], "RUNNING")
    live.on_trial_complete(0, [first, running], first)
    df = pd.read_parquet(out / "results.parquet")
    assert df.cell_id.tolist() == [CELLS[0].cell_id] and df.status.tolist() == ["ok"]  # the running cell is absent
    assert "| MLP | 50.00 ± 0.00 |" in (out / "tables" / "metric.md").read_text()
    assert (out / "figures" / f"{CELLS[0].cell_id}.png").exists()

    first.status = "TERMINATED"
    failed = fake_trial(tmp_path, CELLS[1], "RUNNING")
    live.on_trial_error(0, [first, failed], failed)
    df = pd.read_parquet(out / "results.parquet")
    assert df.set_index("cell_id").status.to_dict() == {CELLS[0].cell_id: "ok", CELLS[1].cell_id: "error"}
    assert "RuntimeError: boom" in df.error.iloc[1]
    assert sorted(p.name for p in (out / "tables").iterdir()) == ["metric.md", "metric.tex"]  # no temp files left
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    # a resumed run: the callback starts afresh and collects the cells it finds ended with the next one
    resumed = LiveResults(CELLS, "tiny", out)
    resumed.setup()
    failed.status = "ERROR"
    third = fake_trial(tmp_path, CELLS[2], "RUNNING", accuracy=70.0)
    resumed.on_trial_complete(0, [first, failed, third], third)
    assert sorted(pd.read_parquet(out / "results.parquet").cell_id.unique()) == sorted(c.cell_id for c in CELLS)


def test_a_write_that_fails_while_cells_run_stops_the_run_and_keeps_the_files_before_it(tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    from orchestrator.driver import live as live_module

    out = tmp_path / "out"
    live = LiveResults(CELLS, "tiny", out)
    live.setup()
    first = fake_trial(tmp_path, CELLS[0], "TERMINATED", accuracy=50.0)
    live.on_trial_complete(0, [first], first)
    before = (out / "results.parquet").read_bytes()
    stops = []
    monkeypatch.setattr(live_module.stop, "as_ctrl_c", lambda: stops.append(1))
    real = pq.write_table

    def full(table, where, **kwargs):  # half a file, then the disk is full
        (Path(where)).write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    second = fake_trial(tmp_path, CELLS[1], "TERMINATED", accuracy=60.0)
    live.on_trial_complete(0, [first, second], second)
    assert stops == [1], "the run goes on after a failed write"
    line = str(live.write_error)
    assert line.startswith(f"cannot write {out / 'results.parquet'}: No space left on device (") and "free there" in line
    assert (out / "results.parquet").read_bytes() == before  # what was there stays, whole
    assert [p.name for p in out.rglob("*") if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(pq, "write_table", real)
    third = fake_trial(tmp_path, CELLS[2], "TERMINATED", accuracy=70.0)
    live.on_trial_complete(0, [first, second, third], third)  # a cell ending while the run stops
    assert stops == [1] and (out / "results.parquet").read_bytes() == before  # nothing more is written


def test_the_code_version_never_fails_without_git(monkeypatch):
    monkeypatch.setenv("DC_CODE_VERSION", "abc123-dirty")
    assert run.code_version() == "abc123-dirty"  # written at submit time
    monkeypatch.delenv("DC_CODE_VERSION")
    assert run.code_version() == subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO,
                                                capture_output=True, text=True).stdout.strip()

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(run.subprocess, "run", no_git)
    monkeypatch.setattr(run.metadata, "version", lambda name: "0.1.0")
    assert run.code_version() == "dataset-condensation 0.1.0 (no git)"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(run.metadata, "version", not_installed)
    assert run.code_version() == "unknown (no git, no DC_CODE_VERSION)"


def test_the_working_dir_upload_leaves_out_the_venv_runs_and_data():
    """What `ray job submit --working-dir .` packs: Ray's own rules (.gitignore, .rayignore) applied to
    this checkout; .venv is a symlink here and a multi-GB folder elsewhere."""
    from ray._private.runtime_env.packaging import _dir_travel

    seen = []
    _dir_travel(REPO, [], lambda p: seen.append(p.relative_to(REPO).as_posix()), include_gitignore=True)
    top = {p.split("/")[0] for p in seen}
    assert {"orchestrator", "condense", "evaluation", "sweeps", "pyproject.toml"} <= top
    assert not top & {".venv", "runs", "data", ".git", ".gpudata", ".whl"}, sorted(top)
    assert not [p for p in seen if p.endswith(".pt")]
