"""A sweep whose ``--output`` is object storage: a real S3-compatible server (moto's standalone server)
on 127.0.0.1, a Ray head with token auth that runs no cells, and a second node started in a private
mount namespace with an empty folder bound over the driver's working copy, so that nothing a cell
needs can come from the driver's disk. Then a kill -9 of the driver part-way and a ``--resume`` that
recomputes none of the finished cells. Refusals (bad bucket, no endpoint, no credentials) are one line.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_cluster_ray import TINY, free_ports, ray_head, ray_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MOTO = Path(sys.executable).parent / "moto_server"
SECRET = "secret-key-that-must-not-leak"
BUCKET = "condense-runs"


@contextmanager
def s3_server():
    """moto's S3 server on a free port; yields the environment that points boto3 and pyarrow at it."""
    if not MOTO.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    [port] = free_ports(1)
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    env = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="test-key",
                              aws_secret_access_key=SECRET, region_name="us-east-1")
        deadline = time.time() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert proc.poll() is None and time.time() < deadline, "moto_server did not start"
                time.sleep(0.3)
        yield env, client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def keys(client, prefix: str) -> list[str]:
    return [o["Key"][len(prefix):] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def objects(client, prefix: str) -> dict[str, bytes]:
    return {k: client.get_object(Bucket=BUCKET, Key=prefix + k)["Body"].read() for k in keys(client, prefix)}


def read_results(client, prefix: str):
    import io

    import pandas as pd

    body = client.get_object(Bucket=BUCKET, Key=f"{prefix}results.parquet")["Body"].read()
    return pd.read_parquet(io.BytesIO(body))


def test_object_storage_run_on_a_node_that_cannot_see_the_driver_then_kill_and_resume(tmp_path, monkeypatch):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a private mount namespace needs root and unshare")
    tables = {"t": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"],
                    "metrics": ["ours"]},
              "table1": {"datasets": ["MNIST"], "models": ["MLP"], "ipcs": [1], "eval_modes": ["S"],
                         "methods": ["random", "herding", "whole"]}}
    sweep = tmp_path / "tiny.yaml"
    # the DC cell is slow on purpose (many iterations, checkpointed): the driver is killed while it runs
    sweep.write_text(yaml.safe_dump({"tables": tables, **TINY, "budget": {"iterations": 400, "batch_real": 16},
                                     "checkpoint_every": 20}))
    driver_cache, node_cache, blank = tmp_path / "driver-cache", tmp_path / "node-cache", tmp_path / "blank"
    for d in (driver_cache, node_cache, blank):
        d.mkdir()
    with ExitStack() as stack:
        env, client = stack.enter_context(s3_server())
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        address, ray_env = stack.enter_context(ray_head(tmp_path, "--num-cpus", "0", "--include-dashboard", "false"))
        # the only node with CPUs: the driver's working copy (under its cache) is an empty folder there
        stack.enter_context(ray_node(
            tmp_path / "node.log", {**ray_env, "DC_CACHE": str(node_cache)}, "--address", address, "--num-cpus", "2",
            wrap=["unshare", "-m", "sh", "-c", f'mount --bind "{blank}" "{driver_cache}" && exec "$0" "$@"']))
        driver_env = {**ray_env, "DC_CACHE": str(driver_cache)}
        cmd = [sys.executable, "-m", "orchestrator.run", str(sweep), "--output", f"s3://{BUCKET}/exp",
               "--address", address]
        prefix = "exp/tiny/"

        # first run: killed (-9) once the quick cells are in the storage and the DC cell has a checkpoint
        log = (tmp_path / "first.log").open("w")
        driver = subprocess.Popen(cmd, cwd=REPO, env=driver_env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while True:
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            stored = keys(client, prefix)  # Tune replaces checkpoints meanwhile: names only
            done = set(read_results(client, prefix).cell_id) if "results.parquet" in stored else set()
            if len(done) == 3 and any(k.startswith("tune/MNIST-MLP-ipc1-S-ours/checkpoint_") for k in stored):
                break
            time.sleep(1)
        before = read_results(client, prefix)
        driver.kill()
        driver.wait(timeout=60)

        # resume: the three finished cells are not run again; the DC cell continues from its checkpoint
        r = subprocess.run([*cmd, "--resume"], cwd=REPO, env=driver_env, capture_output=True, text=True, timeout=600)
        after, stored = read_results(client, prefix), objects(client, prefix)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resuming: 3 of 4 cells finished before, 1 continue from their checkpoints" in r.stdout, r.stdout[-3000:]
    assert "4 cells: 4 ok" in r.stdout
    assert (after.status == "ok").all() and after.cell_id.nunique() == 4
    key = ["cell_id", "exp", "eval_model", "eval_seed"]
    kept = after.merge(before, on=key, suffixes=("", "_before"))
    assert len(kept) == len(before) == 3 * 2 - 1  # random, herding: 2 nets each; whole: 1 network
    assert (kept.accuracy == kept.accuracy_before).all() and (kept.finished_at == kept.finished_at_before).all()
    for name in ("results.parquet", "curves.parquet", "report.html", "tables/t.md", "sweep.json",
                 "figures/MNIST-MLP-ipc1-S-ours.png"):
        assert name in stored, sorted(stored)
    assert "driver.lock" not in stored and not any(k.startswith(".") for k in stored)
    # the cells ran on the node that cannot see the driver's folder: its own cache got the reference network
    assert list((node_cache / "reference").glob("MNIST-MLP-seed*.pt"))
    assert not any(SECRET.encode() in body for body in stored.values())  # credentials never reach the outputs
    assert not any((driver_cache / "staging").rglob("*.parquet"))  # the working copy is gone after the run


@pytest.mark.parametrize("case", ["no bucket", "no endpoint", "no credentials"])
def test_object_storage_refusals_are_one_line_before_anything_starts(tmp_path, case):
    with s3_server() as (env, _):
        if case == "no endpoint":
            env = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_ports(1)[0]}"}
        if case == "no credentials":
            env = {k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
        bucket = "no-such-bucket" if case == "no bucket" else BUCKET
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        run_env.update(env, DC_CACHE=str(tmp_path / "cache"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                       AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
        start = time.time()
        r = subprocess.run([sys.executable, "-m", "orchestrator.run", "sweeps/smoke.yaml", "--output",
                            f"s3://{bucket}/x"], cwd=REPO, env=run_env, capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and f"s3://{bucket}/x" in lines[0], r.stderr
    want = {"no bucket": "the bucket does not exist", "no endpoint": "cannot reach the endpoint",
            "no credentials": "no credentials"}[case]
    assert want in lines[0] and time.time() - start < 30
    assert not (tmp_path / "cache" / "staging").exists()  # nothing written before the refusal
