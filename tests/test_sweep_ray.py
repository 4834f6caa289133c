"""Sweeps end to end through Ray Tune, with tiny budgets: a failing cell, a crash and --resume, a
trial retried after its worker died, and a real `ray start` head (token auth on) joined with --address."""
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
from orchestrator.results import curves, parquet
from orchestrator.trial import trainable

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
    """cell id -> when its last checkpoint was written"""
    return {p.parent.name: (p / trainable.STATE_FILE).stat().st_mtime for p in tune_dir.glob("*/checkpoint_*")}


def test_corrupt_data_is_refused_before_ray_and_a_failing_cell_is_kept_as_error(tmp_path):
    root = tmp_path / "data"  # a data root whose FashionMNIST files are there but corrupt
    root.mkdir()
    (root / "MNIST").symlink_to(data_root() / "MNIST")
    (root / "FashionMNIST").mkdir()
    for split in ("train", "test"):
        (root / "FashionMNIST" / f"{split}.npz").write_bytes(b"not an npz file")
    grid = {"table1": {"datasets": ["MNIST", "FashionMNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"]}}
    r = orchestrate(sweep_file(tmp_path, grid, data_root=str(root)), "--output", tmp_path / "runs")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stdout + r.stderr  # one line, before Ray
    assert "FashionMNIST" in r.stderr and str(root) in r.stderr and not (tmp_path / "runs").exists()

    # a cell that fails while it runs (its matching loss diverges) is an error row; the others finish
    grid = {"table1": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"],
                       "methods": ["random", "DC"]}}
    r = orchestrate(sweep_file(tmp_path, grid, budget={"iterations": 2, "batch_real": 16, "lr_img": 1e30}),
                    "--output", tmp_path / "runs")
    assert r.returncode == 1, r.stdout + r.stderr
    out = tmp_path / "runs" / "tiny"
    df = parquet.read(out / "results.parquet")
    failed, ok = df[df.method == "DC"], df[df.method == "random"]
    assert len(ok) == 2 and (ok.status == "ok").all() and ok.accuracy.between(0, 100).all()
    assert len(failed) == 1 and failed.status.tolist() == ["error"] and failed.accuracy.isna().all()
    assert "NonFiniteLossError" in failed.error.iloc[0]
    assert "MNIST-MLP-ipc1-S-ours: crashed" not in r.stdout  # a diverged run diverges again: no retry
    line = next(x for x in r.stdout.splitlines() if "MNIST-MLP-ipc1-S-ours: FAILED" in x)
    assert "NonFiniteLossError" in line, line
    assert r.stdout.strip().splitlines()[-1].startswith("2 cells: 1 ok, 1 failed: MNIST-MLP-ipc1-S-ours (")
    assert "| MNIST | 1 | " in (out / "tables" / "table1.md").read_text()
    assert "failed" in (out / "tables" / "table1.md").read_text()
    assert [p.name for p in (out / "figures").iterdir()] == ["MNIST-MLP-ipc1-S-ours-random.png"]


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
    # results as they come: the cell that finished before the kill is already in the Parquet
    assert parquet.read(out / "results.parquet").cell_id.unique().tolist() == ["MNIST-MLP-ipc1-S-ours"]
    [first] = (out / "tune" / "MNIST-MLP-ipc1-S-ours").glob("checkpoint_*")
    before_kill = torch.load(first / trainable.STATE_FILE, weights_only=True)["records"]
    written = (first / trainable.STATE_FILE).stat().st_mtime

    r = orchestrate(path, "--output", tmp_path / "runs", "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    assert progress_lines(r.stdout, "MNIST-MLP-ipc1-S-ours") == []  # the finished cell is not redone
    resumed = re.search(r"MNIST-MLP-ipc1-S-mse: resumed from its checkpoint at exp (\d) it (\d)", r.stdout)
    assert resumed and int(resumed[1]) >= 2, r.stdout  # the interrupted cell continues, not from zero
    never_started = progress_lines(r.stdout, "MNIST-MLP-ipc1-S-cos")
    assert never_started and "exp 1/3  it 0 " in never_started[0]  # the cell not reached starts afresh
    # the finished cell's last checkpoint was moved out of tune/ (resume.py), never rewritten
    assert (out / "checkpoints" / "MNIST-MLP-ipc1-S-ours" / trainable.STATE_FILE).stat().st_mtime == written
    df = parquet.read(out / "results.parquet")
    assert (df.status == "ok").all() and df.groupby("cell_id").size().to_dict() == {
        "MNIST-MLP-ipc1-S-ours": 6, "MNIST-MLP-ipc1-S-mse": 6, "MNIST-MLP-ipc1-S-cos": 6}
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
    df = parquet.read(out / "results.parquet")
    # 2 networks for each of 3 sets, 1 network trained on the whole (500-image) training set
    assert list(df.columns) == parquet.COLUMNS and len(df) == 3 * 2 + 1 and (df.status == "ok").all()
    whole = df[df.method == "whole"]
    assert whole.cell_id.tolist() == ["MNIST-MLP-all-S-ours-whole"] and whole.ipc.isna().all()
    assert whole[["epochs", "train_images"]].values.tolist() == [[1, 500]] and whole.iterations.isna().all()
    assert parquet.metadata(out / "results.parquet")["budgets"]["num_eval"] == 2
    assert sorted(p.name for p in (out / "tables").iterdir()) == ["metric.md", "metric.tex", "table1.md", "table1.tex"]
    assert "| MLP | " in (out / "tables" / "metric.md").read_text()
    table1 = (out / "tables" / "table1.md").read_text()
    assert "| dataset | ipc \\ method | Random | whole dataset |" in table1 and "| MNIST | 1 | " in table1
    ids = sorted(df.cell_id.unique())
    assert sorted(p.stem for p in (out / "figures").iterdir()) == ids  # the whole cell's: a training sample
    assert sorted(p.name for p in (out / "synthetic").iterdir()) == [f"{i}-exp0.pt" for i in ids if "whole" not in i]
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        f"{n}.{s}" for n in ("metric", "table1", "curves", "sets_ipc1") for s in ("png", "pdf"))
    assert f"report: {out / 'report.html'}" in r.stdout

    kept, before = (out / "results.parquet").read_bytes(), checkpoints(out / "tune")
    again = orchestrate(path, "--output", runs, "--address", address, "--resume", environ=head_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(progress_lines(again.stdout, i) == [] for i in ids), again.stdout  # nothing recomputed
    assert "resuming: 4 of 4 cells finished before" in again.stdout and f"on {address}" not in again.stdout
    assert {p.name: (p / trainable.STATE_FILE).stat().st_mtime for p in (out / "checkpoints").iterdir()} == before
    assert (out / "results.parquet").read_bytes() == kept

    refused = orchestrate(path, "--output", runs, "--address", address, environ=head_env)  # no --resume
    assert refused.returncode == 2 and "--resume" in refused.stderr


@pytest.mark.parametrize("signum, group", [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True)],
                         ids=["SIGTERM-to-the-driver", "SIGTERM-to-its-group", "SIGINT-to-its-group"])
def test_a_stop_ends_like_ctrl_c_and_a_second_driver_is_refused_meanwhile(tmp_path, signum, group):
    """A stop sent to the driver, or to its whole process group (timeout, scancel, a container stop),
    ends the sweep as Ctrl-C does: the local Ray runs in a session of its own, so it outlives the
    signal long enough for the driver to write what finished."""
    grid = {"metric": {**MLP_METRICS["metric"], "metrics": ["ours", "mse", "cos"]}}
    # one cell at a time (2 CPUs each): when the first is done the others are still to come (cells of
    # seconds, so that the stop, sent within half a second of the first's end, finds the second running)
    path = sweep_file(tmp_path, grid, num_exp=2, budget={"iterations": 40, "batch_real": 16},
                      eval_budget={"epochs": 20, "max_test": 200}, resources={"cpu": 2, "gpu": 0})
    out = tmp_path / "runs" / "tiny"
    log = open(tmp_path / "driver.log", "w+")
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.run", str(path), "--output", str(tmp_path / "runs")],
                              cwd=REPO, env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600
        while "MNIST-MLP-ipc1-S-ours: exp 1/2" not in (tmp_path / "driver.log").read_text():
            assert driver.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()
            time.sleep(0.5)
        second = orchestrate(path, "--output", tmp_path / "runs", "--resume", timeout=120)
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
        assert f"is in use by a driver running on {socket.gethostname()} (pid {driver.pid}" in second.stderr
        while "MNIST-MLP-ipc1-S-ours: done" not in (tmp_path / "driver.log").read_text():
            assert driver.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()
            time.sleep(0.5)
        sent = time.time()
        if group:
            os.killpg(driver.pid, signum)
        else:
            driver.send_signal(signum)
        code = driver.wait(timeout=120)
        took = time.time() - sent
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
        log.close()
    text = (tmp_path / "driver.log").read_text()
    assert code == 1, text
    assert "SIGTERM received" not in text and "Traceback" not in text, text
    assert "Failed to connect to GCS" not in text and took < 60, (took, text)  # Ray outlived the signal
    assert "unfinished" in text.strip().splitlines()[-1] and "rerun with --resume" in text, text
    df = parquet.read(out / "results.parquet")  # the partial Parquet: finished rows ok, the rest missing
    assert set(df[df.cell_id == "MNIST-MLP-ipc1-S-ours"].status) == {"ok"}
    assert set(df[df.cell_id != "MNIST-MLP-ipc1-S-ours"].status) == {"missing"}
    assert not (out / "driver.lock").exists()  # released on the way out


# The driver, with a disk that fills up after its first results and curves: every later Parquet write
# leaves half a file and fails with ENOSPC, as a full filesystem does.
_DRIVER_ON_A_FILLING_DISK = """
import errno, sys
import pyarrow.parquet as pq
real, calls = pq.write_table, []
def filling(table, where, **kwargs):
    calls.append(where)
    if len(calls) <= 2:
        return real(table, where, **kwargs)
    open(where, "wb").write(b"PAR1")
    raise OSError(errno.ENOSPC, "No space left on device")
pq.write_table = filling
from orchestrator.driver import run
sys.exit(run.main(sys.argv[1:]))
"""


def test_a_write_that_fails_mid_run_stops_the_driver_in_one_line_and_resume_finishes(tmp_path):
    grid = {"metric": {**MLP_METRICS["metric"], "metrics": ["ours", "mse", "cos"]}}
    path = sweep_file(tmp_path, grid, resources={"cpu": 2, "gpu": 0})  # one cell at a time on 2 CPUs
    out = tmp_path / "runs" / "tiny"
    r = subprocess.run([sys.executable, "-c", _DRIVER_ON_A_FILLING_DISK, str(path), "--output", str(tmp_path / "runs")],
                       cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert lines[0].startswith(f"error: cannot write {out / 'results.parquet'}: No space left on device (")
    assert "free there" in lines[0] and "rerun with --resume" in lines[0]
    done = [line for line in r.stdout.splitlines() if ": done (" in line]
    assert len(done) == 2, r.stdout  # stopped when the second cell's results would not write
    df = parquet.read(out / "results.parquet")  # the first write's, whole
    assert df.cell_id.unique().tolist() == [done[0].split("] ")[1].split(":")[0]] and set(df.status) == {"ok"}
    assert [p for p in out.rglob("*.tmp") if "tune" not in p.parts] == []
    again = orchestrate(path, "--output", tmp_path / "runs", "--resume")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming: 2 of 3 cells finished before" in again.stdout and "3 cells: 3 ok" in again.stdout
    assert set(parquet.read(out / "results.parquet").status) == {"ok"}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_fails_in_one_line_and_a_resume_after_freeing_space_recomputes_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs on this machine")
    try:
        path = sweep_file(tmp_path, MLP_METRICS)
        first = orchestrate(path, "--output", disk)
        assert first.returncode == 0, first.stdout + first.stderr
        out = disk / "tiny"
        kept = (out / "results.parquet").read_bytes()
        with open(disk / "filler", "wb") as f:  # the disk fills up, but for about 100 KB
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
            f.truncate(max(0, f.tell() - 100 * 1024))
        full = orchestrate(path, "--output", disk, "--resume")
        lines = full.stderr.strip().splitlines()
        assert full.returncode == 0 or (len(lines) == 1 and "Traceback" not in full.stderr), full.stderr
        assert (out / "results.parquet").read_bytes() == kept  # kept whole
        (disk / "filler").unlink()
        again = orchestrate(path, "--output", disk, "--resume")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "resuming: 2 of 2 cells finished before" in again.stdout and "on a local Ray" not in again.stdout
        assert (out / "results.parquet").read_bytes() == kept
        assert list(out.rglob("*.tmp")) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)])


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("free_kb", [10, 100, 300])
def test_a_fresh_run_on_a_nearly_full_disk_ends_in_one_line_and_resumes_once_freed(tmp_path, free_kb):
    """Whenever the disk fills (Tune's first files, its files read back as the run ends, our results),
    a fresh run ends in one line saying what is kept, and --resume finishes it once there is room."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs on this machine")
    try:
        with open(disk / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
            f.truncate(max(0, f.tell() - free_kb * 1024))
        path = sweep_file(tmp_path, MLP_METRICS)
        first = orchestrate(path, "--output", disk)
        lines = first.stderr.strip().splitlines()
        if first.returncode != 0:
            assert first.returncode == 2 and len(lines) == 1 and "Traceback" not in first.stderr, first.stderr
            assert "No space left on device" in lines[0] and "rerun with --resume" in lines[0], lines
        (disk / "filler").unlink()
        again = orchestrate(path, "--output", disk, "--resume")
        assert again.returncode == 0 and "2 cells: 2 ok" in again.stdout, again.stdout + again.stderr
        assert set(parquet.read(disk / "tiny" / "results.parquet").status) == {"ok"}
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_a_driver_killed_outright_takes_its_local_ray_along(tmp_path):
    """The local Ray is in a session of its own (so a group stop reaches the driver first), yet a
    driver killed with SIGKILL leaves no Ray behind: its `ray start` ends with it (PR_SET_PDEATHSIG)."""
    path = sweep_file(tmp_path, MLP_METRICS)
    log = open(tmp_path / "driver.log", "w+")
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.run", str(path), "--output", str(tmp_path / "runs")],
                              cwd=REPO, env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while "sweep tiny: 2 cells on a local Ray" not in (tmp_path / "driver.log").read_text():
            assert driver.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()
            time.sleep(0.5)
        children = subprocess.run(["ps", "-o", "pid=,sid=", "--ppid", str(driver.pid)], capture_output=True,
                                  text=True).stdout.split()
        heads = {int(s) for p, s in zip(children[::2], children[1::2]) if int(s) == int(p)}  # session leaders
        assert len(heads) == 1 and heads != {driver.pid}, children
        driver.kill()
        driver.wait(timeout=60)
        [head] = heads
        deadline = time.time() + 60
        while subprocess.run(["pgrep", "-s", str(head)], capture_output=True).returncode == 0:
            assert time.time() < deadline, "the local Ray outlived its driver"
            time.sleep(0.5)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
        log.close()


def test_a_trial_whose_worker_dies_is_retried_from_its_checkpoint(tmp_path, ray_head):
    """Tune's retry (``max_failures``): the trial's worker process is killed part-way; Tune starts
    the trial again from its last checkpoint, not from zero, and the cell ends ok."""
    import psutil

    address, head_env = ray_head
    grid = {"metric": {**MLP_METRICS["metric"], "metrics": ["ours"]}}
    path = sweep_file(tmp_path, grid, budget={"iterations": 60, "batch_real": 16}, checkpoint_every=5,
                      max_failures=1, eval_budget={"epochs": 2, "max_test": 200})
    tune_dir = tmp_path / "runs" / "tiny" / "tune"
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.run", str(path), "--output", str(tmp_path / "runs"),
                               "--address", address], cwd=REPO, env=head_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    head = psutil.Process(next(p.pid for p in psutil.process_iter(["cmdline"])
                               if address.split(":")[1] in " ".join(p.info["cmdline"] or []) and "--head" in
                               (p.info["cmdline"] or [])))
    deadline = time.time() + 300
    while not list(tune_dir.glob("*/checkpoint_*")):  # the trial has saved once: kill its worker
        assert driver.poll() is None and time.time() < deadline, driver.stdout.read()
        time.sleep(0.2)
    workers = [p for p in head.children(recursive=True) if "ImplicitFunc" in " ".join(p.cmdline())]
    assert len(workers) == 1, [p.cmdline() for p in head.children(recursive=True)]
    workers[0].kill()
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out
    assert "MNIST-MLP-ipc1-S-ours: crashed" in out and "1 cells: 1 ok" in out, out
    resumed = re.search(r"MNIST-MLP-ipc1-S-ours: resumed from its checkpoint at exp 1 it (\d+)", out)
    assert resumed and int(resumed[1]) >= 5, out  # from the checkpoint, not from zero
    df = parquet.read(tmp_path / "runs" / "tiny" / "results.parquet")
    assert (df.status == "ok").all() and len(df) == 2
