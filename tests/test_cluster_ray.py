"""The cluster path on real Ray nodes started here: `ray job submit --working-dir .` to a head with
token auth, and a sweep spread over two nodes on one machine (a second node with a custom resource).

Every node gets its own ports and the head its own --temp-dir, and --block ties a node's processes to
the one `ray start` this test terminates (never `ray stop`, which would end every Ray on the machine).
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from conftest import REPO, data_root
from orchestrator.results import parquet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RAY = str(Path(sys.executable).parent / "ray")
TINY = {"num_exp": 1, "num_eval": 2, "seed": 0, "budget": {"iterations": 2, "batch_real": 16},
        "eval_budget": {"epochs": 5, "max_test": 200}, "reference_budget": {"epochs": 1, "max_train": 300},
        "checkpoint_every": 1, "max_failures": 0}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def base_env(**extra) -> dict:
    return {**os.environ, "DC_DATA": str(data_root()), "PYTHONWARNINGS": "ignore", **extra}


@contextmanager
def ray_node(log: Path, env: dict, *args: str, wrap: tuple[str, ...] = ()):
    """One `ray start --block` node on 127.0.0.1 with ports of its own; ended by terminating it.
    ``wrap``: a command that execs the rest (e.g. into a private mount namespace)."""
    agent, grpc, metrics, runtime_env, objects, manager = map(str, free_ports(6))
    proc = subprocess.Popen([*wrap, RAY, "start", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block",
                             "--dashboard-agent-listen-port", agent, "--dashboard-agent-grpc-port", grpc,
                             "--metrics-export-port", metrics, "--runtime-env-agent-port", runtime_env,
                             "--object-manager-port", objects, "--node-manager-port", manager, *args],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@contextmanager
def ray_head(tmp_path: Path, *args: str):
    """A head with token auth and its own temp dir; yields (GCS address, environment with the token)."""
    env = base_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    port, client = free_ports(2)
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    try:
        with ray_node(tmp_path / "head.log", env, "--head", "--port", str(port), "--ray-client-server-port",
                      str(client), "--temp-dir", temp, *args):
            yield f"127.0.0.1:{port}", env
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def sweep_file(tmp_path: Path, tables: dict, **settings) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"tables": tables, **TINY, **settings}))
    return path


def test_job_submit_runs_a_sweep_from_the_working_dir(tmp_path):
    """`ray job submit --working-dir .` as the README says, with the code version recorded at submit
    time (the uploaded working dir has no .git: .rayignore)."""
    [dashboard] = free_ports(1)
    path = sweep_file(tmp_path, {"metric": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1],
                                            "eval_modes": ["S"], "metrics": ["ours", "mse"]}})
    version = "submitted-" + secrets.token_hex(4)
    with ray_head(tmp_path, "--num-cpus", "2", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                  "--dashboard-port", str(dashboard)) as (_, env):
        runtime_env = {"env_vars": {"DC_DATA": str(data_root()), "DC_CODE_VERSION": version,
                                    "PYTHONWARNINGS": "ignore"}}
        submit = subprocess.run(
            [RAY, "job", "submit", "--address", f"http://127.0.0.1:{dashboard}", "--working-dir", ".",
             "--submission-id", "dc-test", "--runtime-env-json", json.dumps(runtime_env), "--",
             sys.executable, "-m", "orchestrator.run", str(path), "--output", str(tmp_path / "runs")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        status = subprocess.run([RAY, "job", "status", "--address", f"http://127.0.0.1:{dashboard}", "dc-test"],
                                env=env, capture_output=True, text=True, timeout=120)
    # the job's status, asked afterwards: SUCCEEDED (the CLI says it as "succeeded")
    assert "Job 'dc-test' succeeded" in status.stdout, submit.stdout[-3000:] + submit.stderr[-3000:] + status.stdout
    assert "2 cells: 2 ok" in submit.stdout
    df = parquet.read(tmp_path / "runs" / "tiny" / "results.parquet")
    assert (df.status == "ok").all() and len(df) == 2 * 2 and df.accuracy.between(0, 100).all()
    assert set(df.code_version) == {version}


def test_multi_node_cells_run_on_the_node_that_has_their_resource(tmp_path):
    """A head and a second node with a custom resource ``far``; cells (and the reference-network
    stage) that ask for ``far`` run on the second node, and their results are collected."""
    tables = {"metric": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"],
                         "metrics": ["ours", "mse"]},
              "table1": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"],
                         "methods": ["herding"]}}
    path = sweep_file(tmp_path, tables, resources={"cpu": 1, "gpu": 0, "custom": {"far": 1}})
    with ExitStack() as stack:
        address, env = stack.enter_context(ray_head(tmp_path, "--num-cpus", "1", "--include-dashboard", "false"))
        stack.enter_context(ray_node(tmp_path / "far.log", env, "--address", address, "--num-cpus", "2",
                                     "--resources", json.dumps({"far": 2})))
        r = subprocess.run([sys.executable, "-m", "orchestrator.run", str(path), "--output", str(tmp_path / "runs"),
                            "--address", address], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        far = subprocess.run([sys.executable, "-c", FAR_NODE, address], env=env, capture_output=True, text=True,
                             timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "reference MNIST-MLP-seed0: ready" in r.stdout and "3 cells: 3 ok" in r.stdout
    far_id = far.stdout.strip().splitlines()[-1]
    out = tmp_path / "runs" / "tiny"
    # each trial's last result names the node that ran it
    ran_on = {f.parent.name: json.loads(f.read_text().strip().splitlines()[-1])["node_id"]
              for f in (out / "tune").glob("*/result.json")}
    assert ran_on == dict.fromkeys(("MNIST-MLP-ipc1-S-ours", "MNIST-MLP-ipc1-S-mse", "MNIST-MLP-ipc1-S-ours-herding"),
                                   far_id), (far_id, ran_on)
    df = parquet.read(out / "results.parquet")
    assert (df.status == "ok").all() and df.cell_id.nunique() == 3


# The id of the node that has the custom resource, as Ray's own node table says.
FAR_NODE = """
import sys, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
print(next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("far")))
ray.shutdown()
"""
