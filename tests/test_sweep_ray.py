"""Sweeps end to end through Ray Tune, with tiny budgets: a failing cell, a crash and --resume,
and a real `ray start` head (token auth on) joined with --address."""
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, data_root
from orchestrator import curves, results, trainable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a hung Ray run fails, never blocks CI

TINY = {"num_exp": 1, "num_eval": 2, "seed": 0, "budget": {"iterations": 2, "batch_real": 16},
        "eval_budget": {"epochs": 5, "max_test": 200}, "resources": {"cpu": 1, "gpu": 0}, "checkpoint_every": 1,
        "max_failures": 0}
MLP_METRICS = {"metric": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"],
                          "metrics": ["ours", "mse"]}}


def sweep_file(tmp_path: Path, tables: dict, name="tiny", **settings) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"tables": tables, **TINY, **settings}))
    return path


def env(**extra) -> dict:
    return {**os.environ, "DC_DATA": str(data_root()), "PYTHONWARNINGS": "ignore", **extra}


def orchestrate(*args, environ=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.run", *map(str, args)], cwd=REPO,
                          env=environ or env(), capture_output=True, text=True, timeout=timeout)


def progress_lines(stdout: str, cell_id: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.search(rf"\] {re.escape(cell_id)}: exp \d", line)]


def checkpoints(tune_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(tune_dir)): p.stat().st_mtime for p in tune_dir.glob("*/checkpoint_*")}


def test_a_failing_cell_is_kept_as_error_and_the_others_finish(tmp_path):
    root = tmp_path / "data"  # a data root that has MNIST but not FashionMNIST
    root.mkdir()
    (root / "MNIST").symlink_to(data_root() / "MNIST")
    grid = {"table1": {"datasets": ["MNIST", "FashionMNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"]}}
    r = orchestrate(sweep_file(tmp_path, grid, data_root=str(root), max_failures=1), "--output", tmp_path / "runs")
    assert r.returncode == 1, r.stdout + r.stderr
    out = tmp_path / "runs" / "tiny"
    df = results.read(out / "results.parquet")
    failed, ok = df[df.dataset == "FashionMNIST"], df[df.dataset == "MNIST"]
    assert len(ok) == 2 and (ok.status == "ok").all() and ok.accuracy.between(0, 100).all()
    assert len(failed) == 1 and failed.status.tolist() == ["error"] and failed.accuracy.isna().all()
    assert "DataNotFoundError" in failed.error.iloc[0] and str(root) in failed.error.iloc[0]
    assert "FashionMNIST-MLP-ipc1-S-ours: crashed" in r.stdout  # retried once (max_failures 1) ...
    assert "FashionMNIST-MLP-ipc1-S-ours: FAILED" in r.stdout  # ... then given up
    assert r.stdout.strip().splitlines()[-1].startswith("2 cells: 1 ok, 1 failed: FashionMNIST-MLP-ipc1-S-ours (")
    assert "| FashionMNIST | 1 | failed |" in (out / "tables" / "table1.md").read_text()
    assert [p.name for p in (out / "figures").iterdir()] == ["MNIST-MLP-ipc1-S-ours.png"]


def test_killed_sweep_resumes_without_redoing_finished_cells(tmp_path):
    grid = {"metric": {**MLP_METRICS["metric"], "metrics": ["ours", "mse", "cos"]}}
    # one cell at a time (2 CPUs each), so when the second is part-way the first is done
    path = sweep_file(tmp_path, grid, num_exp=3, budget={"iterations": 4, "batch_real": 16},
                      eval_budget={"epochs": 20, "max_test": 200}, resources={"cpu": 2, "gpu": 0})
    out = tmp_path / "runs" / "tiny"
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.run", str(path), "--output", str(tmp_path / "runs")],
                              cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)
    seen = []
    try:
        for line in driver.stdout:
            seen.append(line)
            if "MNIST-MLP-ipc1-S-mse: exp 2/3" in line:
                break
    finally:  # a crash: the driver, its local Ray and the running trial all die at once
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    assert any("MNIST-MLP-ipc1-S-ours: done" in line for line in seen), "".join(seen)
    assert not (out / "results.parquet").exists()
    finished_before = checkpoints(out / "tune")
    first = {k: v for k, v in finished_before.items() if k.startswith("MNIST-MLP-ipc1-S-ours/")}

    r = orchestrate(path, "--output", tmp_path / "runs", "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    assert progress_lines(r.stdout, "MNIST-MLP-ipc1-S-ours") == []  # the finished cell is not redone
    resumed = re.search(r"MNIST-MLP-ipc1-S-mse: resumed from its checkpoint at exp (\d) it (\d)", r.stdout)
    assert resumed and int(resumed[1]) >= 2, r.stdout  # the interrupted cell continues, not from zero
    never_started = progress_lines(r.stdout, "MNIST-MLP-ipc1-S-cos")
    assert never_started and "exp 1/3  it 0 " in never_started[0]  # the cell not reached starts afresh
    assert {k: v for k, v in checkpoints(out / "tune").items() if k in first} == first
    df = results.read(out / "results.parquet")
    assert (df.status == "ok").all() and df.groupby("cell_id").size().to_dict() == {
        "MNIST-MLP-ipc1-S-ours": 6, "MNIST-MLP-ipc1-S-mse": 6, "MNIST-MLP-ipc1-S-cos": 6}
    before_kill = torch.load(out / "tune" / max(first) / trainable.STATE_FILE, weights_only=True)["records"]
    again = df[df.cell_id == "MNIST-MLP-ipc1-S-ours"]
    assert again.condense_seconds.tolist() == [r["condense_seconds"] for r in before_kill]
    # the resumed cell's curve has each (run, iteration) once: its 0, 2 and 4 of 3 runs, for each cell
    c = curves.read(out / "curves.parquet")
    assert not c.duplicated(curves.KEY).any() and c.groupby("cell_id").size().to_dict() == {
        "MNIST-MLP-ipc1-S-ours": 9, "MNIST-MLP-ipc1-S-mse": 9, "MNIST-MLP-ipc1-S-cos": 9}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A real Ray head with token authentication, as `ray start --head` on a cluster's first node.

    Its own --temp-dir keeps it from becoming this machine's default cluster for anyone else's
    ray.init(); --block ties its processes to this one, so terminating it stops exactly this head
    (`ray stop` would stop every Ray on the machine, other people's test runs included).
    """
    token, port = secrets.token_hex(32), free_port()
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    head_env = env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    log = open(tmp_path / "head.log", "w+")
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", temp, "--block"],
                            env=head_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in (tmp_path / "head.log").read_text():
            assert head.poll() is None and time.time() < deadline, (tmp_path / "head.log").read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", head_env
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_sweep_on_a_ray_start_head_and_resume_of_a_finished_sweep(tmp_path, ray_head):
    address, head_env = ray_head
    baselines = {"table1": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"],
                            "methods": ["random", "whole"]}}
    path = sweep_file(tmp_path, {**MLP_METRICS, **baselines}, reference_budget={"epochs": 1, "max_train": 500})
    runs = tmp_path / "runs"

    wrong = orchestrate(path, "--output", runs, "--address", address, environ={**head_env, "RAY_AUTH_TOKEN": "0" * 64})
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    lines = wrong.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "RAY_AUTH_TOKEN" in lines[0], wrong.stderr

    r = orchestrate(path, "--output", runs, "--address", address, environ=head_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"on {address}" in r.stdout and "4 cells: 4 ok" in r.stdout
    out = runs / "tiny"
    df = results.read(out / "results.parquet")
    # 2 networks for each of 3 sets, 1 network trained on the whole (500-image) training set
    assert list(df.columns) == results.COLUMNS and len(df) == 3 * 2 + 1 and (df.status == "ok").all()
    whole = df[df.method == "whole"]
    assert whole.cell_id.tolist() == ["MNIST-MLP-all-S-ours-whole"] and whole.ipc.isna().all()
    assert whole[["epochs", "train_images"]].values.tolist() == [[1, 500]] and whole.iterations.isna().all()
    assert results.metadata(out / "results.parquet")["budgets"]["num_eval"] == 2
    assert sorted(p.name for p in (out / "tables").iterdir()) == ["metric.md", "metric.tex", "table1.md", "table1.tex"]
    assert "| MLP | " in (out / "tables" / "metric.md").read_text()
    table1 = (out / "tables" / "table1.md").read_text()
    assert "| dataset | ipc \\ method | Random | whole dataset |" in table1 and "| MNIST | 1 | " in table1
    ids = sorted(df.cell_id.unique())
    assert sorted(p.stem for p in (out / "figures").iterdir()) == ids  # the whole cell's: a training sample
    assert sorted(p.name for p in (out / "synthetic").iterdir()) == [f"{i}-exp0.pt" for i in ids if "whole" not in i]
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        f"{n}.{s}" for n in ("metric", "table1", "curves") for s in ("png", "pdf"))
    assert f"report: {out / 'report.html'}" in r.stdout

    parquet, before = (out / "results.parquet").read_bytes(), checkpoints(out / "tune")
    again = orchestrate(path, "--output", runs, "--address", address, "--resume", environ=head_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(progress_lines(again.stdout, i) == [] for i in ids), again.stdout  # nothing recomputed
    assert checkpoints(out / "tune") == before
    assert (out / "results.parquet").read_bytes() == parquet

    refused = orchestrate(path, "--output", runs, "--address", address, environ=head_env)  # no --resume
    assert refused.returncode == 2 and "--resume" in refused.stderr
