"""SLURM: the pre-flight's node-count check (fast), and cluster/slurm/sweep.sbatch submitted to a
real SLURM started here (slow, `-k slurm`).

The slow test starts its own munged, slurmctld and slurmd (root, Debian's slurm-wlm and munge) on
private ports, sockets and state folders under a temp dir, with a one-node slurm.conf made from
`slurmd -C`, and stops exactly those processes at the end. Where the binaries are missing or the
daemons cannot start it skips, saying why.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from condense.errors import ConfigError
from conftest import REPO, data_root
from orchestrator.driver import preflight

SBATCH = REPO / "cluster" / "slurm" / "sweep.sbatch"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol")


def node(host: str, alive: bool = True) -> dict:
    return {"Alive": alive, "NodeManagerHostname": host, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 8}}


def test_outside_slurm_the_node_count_is_not_checked():
    preflight.check_slurm([node("a"), node("b")], env={})


def test_the_nodes_ray_sees_must_match_the_allocation():
    preflight.check_slurm([node("a"), node("b"), node("c", alive=False)], env={"SLURM_JOB_NUM_NODES": "2"})
    preflight.check_slurm([node("a")], env={"SLURM_NNODES": "1"})  # the older variable
    with pytest.raises(ConfigError) as err:
        preflight.check_slurm([node("gpu01")], env={"SLURM_JOB_NUM_NODES": "2", "SLURM_NNODES": "2"})
    message = str(err.value)
    assert "\n" not in message and "Ray sees 1 node(s) (gpu01)" in message
    assert "SLURM allocation has 2 (SLURM_JOB_NUM_NODES)" in message
    with pytest.raises(ConfigError, match=r"Ray sees 3 node\(s\) \(a, b, c\) but the SLURM allocation has 1 \(SLURM_NNODES\)"):
        preflight.check_slurm([node("c"), node("a"), node("b")], env={"SLURM_NNODES": "1"})


def test_a_node_count_that_is_not_a_number_is_named():
    with pytest.raises(ConfigError, match=r"SLURM_JOB_NUM_NODES='two' is not a node count"):
        preflight.check_slurm([node("a")], env={"SLURM_JOB_NUM_NODES": "two"})


def test_the_run_refuses_a_cluster_that_is_not_the_allocation(monkeypatch, capsys, tmp_path):
    """Through the driver: inside an allocation of 3 nodes, a 1-node Ray is one line, exit 2, before
    any node is probed or cell started (Ray's calls stand in: the refusal needs only its node table)."""
    import ray

    from orchestrator.driver import run

    down, probed = [], []
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "3")
    monkeypatch.setattr(run, "check_reachable", lambda address: None)
    monkeypatch.setattr(run, "_init_ray", lambda ray, address, joined: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(ray, "nodes", lambda: [node("vm")])
    monkeypatch.setattr(ray, "shutdown", lambda: down.append(True))
    monkeypatch.setattr(preflight, "check_nodes", lambda *a: probed.append(a))
    code = run.main([str(REPO / "sweeps" / "smoke.yaml"), "--address", "10.0.0.1:6379", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and down and not probed
    assert err.count("\n") == 1 and "Ray sees 1 node(s) (vm) but the SLURM allocation has 3" in err, err
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "1")  # the same run where they match goes on to the probes

    def probe(*args):  # stops the run here: what follows the pre-flight is not this test's
        probed.append(args)
        raise ConfigError("probed")

    monkeypatch.setattr(preflight, "check_nodes", probe)
    assert run.main([str(REPO / "sweeps" / "smoke.yaml"), "--address", "10.0.0.1:6379", "--output",
                     str(tmp_path), "--resume"]) == 2 and probed


# ---- a real SLURM on this machine ----------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def slurm_conf(tmp: Path, munge_socket: Path) -> str:
    """One node, this machine: its real CPUs and memory as `slurmd -C` reports them."""
    probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=60)
    node_line = probe.stdout.splitlines()[0] if probe.returncode == 0 and probe.stdout else ""
    if not node_line.startswith("NodeName="):
        pytest.skip(f"slurmd -C cannot describe this machine: {(probe.stderr or probe.stdout).strip()[:200]}")
    host = node_line.split()[0].split("=", 1)[1]
    ctld_port, d_port = free_ports(2)
    return f"""ClusterName=dctest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={tmp}/state
SlurmdSpoolDir={tmp}/spool
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=30
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=dc Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm():
    """munged, slurmctld and slurmd of our own; yields the environment that points SLURM's
    commands at them (SLURM_CONF). The finalizer cancels our jobs and stops the three daemons."""
    missing = [b for b in DAEMONS if not shutil.which(b)]
    if missing:
        pytest.skip(f"SLURM is not installed here (no {', '.join(missing)}): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("slurmd runs jobs as root here (SlurmUser=root): the SLURM test needs root")
    tmp = Path(tempfile.mkdtemp(prefix="dc-slurm-", dir="/tmp"))
    for sub in ("state", "spool"):
        (tmp / sub).mkdir()
    key = tmp / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o600)
    munge_socket = tmp / "munge.sock"
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "SLURM_CONF": str(tmp / "slurm.conf")}
    try:
        procs.append(subprocess.Popen(
            ["munged", "--foreground", "--force", f"--socket={munge_socket}", f"--key-file={key}",
             f"--pid-file={tmp}/munged.pid", f"--log-file={tmp}/munged.log", f"--seed-file={tmp}/munged.seed"],
            stdout=subprocess.DEVNULL, stderr=(tmp / "munged.out").open("w")))
        wait_for(lambda: munge_socket.exists(), procs, [tmp / "munged.out", tmp / "munged.log"], "munged")
        (tmp / "slurm.conf").write_text(slurm_conf(tmp, munge_socket))
        procs.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(tmp / "slurm.conf")], env=env,
                                      stdout=subprocess.DEVNULL, stderr=(tmp / "slurmctld.out").open("w")))
        procs.append(subprocess.Popen(["slurmd", "-D", "-f", str(tmp / "slurm.conf")], env=env,
                                      stdout=subprocess.DEVNULL, stderr=(tmp / "slurmd.out").open("w")))

        def idle() -> bool:
            r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=30)
            return r.stdout.strip() == "idle"

        wait_for(idle, procs, [tmp / f"{d}.{x}" for d in ("slurmctld", "slurmd") for x in ("out", "log")],
                 "slurmctld/slurmd")
        yield env, tmp
    finally:
        if len(procs) == 3 and procs[1].poll() is None:
            subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True, timeout=60)
            deadline = time.time() + 60
            while time.time() < deadline and subprocess.run(["squeue", "-h"], env=env, capture_output=True,
                                                            text=True, timeout=30).stdout.strip():
                time.sleep(1)
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def wait_for(ready, procs: list[subprocess.Popen], logs: list[Path], what: str, timeout: float = 60) -> None:
    """Until ``ready()``; a daemon that exits or does not come up skips the test, with the last line
    of each of its logs."""
    deadline = time.time() + timeout
    while not ready():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.time() > deadline:
            tail = " | ".join(f"{log.name}: {text.splitlines()[-1]}" for log in logs
                              if log.exists() and (text := log.read_text(errors="replace").strip()))
            why = f"exited with status {dead[0].returncode}" if dead else f"not ready within {timeout:.0f} s"
            pytest.skip(f"{what} cannot start here ({why}): {tail[:300]}")
        time.sleep(0.5)


def job_processes(job_id: str) -> list[str]:
    """Live processes (not zombies) that carry this job's SLURM_JOB_ID: what the job started."""
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"SLURM_JOB_ID={job_id}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            left.append(f"{proc.name}: {cmdline[:120]}")
        except OSError:  # ended meanwhile
            continue
    return left


def no_job_processes(job_id: str, timeout: float = 30) -> list[str]:
    deadline = time.time() + timeout
    while (left := job_processes(job_id)) and time.time() < deadline:
        time.sleep(1)
    return left


# Four cells of seconds each (the smoke sweep's nine would make this test minutes longer): enough
# that cells are still running or waiting when the test cancels after the first has ended.
TINY = """tables:
  metric: {datasets: [MNIST], models: [ConvNet, MLP], ipcs: [1], eval_modes: [S], metrics: [ours, mse]}
num_exp: 1
num_eval: 1
budget: {iterations: 40, batch_real: 32}
eval_budget: {epochs: 10, max_test: 500}
checkpoint_every: 5
"""


def submit(env: dict, out: Path, log: Path, *args: str, wait: bool) -> subprocess.CompletedProcess:
    # two cells at a time whatever the machine, so that cells are still running when the test cancels
    cpus = str(min(2, os.cpu_count() or 1))
    cmd = ["sbatch", "--parsable", "--nodes=1", f"--cpus-per-task={cpus}", "--time=30", f"--output={log}",
           *(["--wait"] if wait else []), str(SBATCH), str(out.parent / "tiny.yaml"), "--output", str(out), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def job_env(env: dict) -> dict:
    # The project's own interpreter and checkout on the node (what the README's venv line gives a user).
    return {**env, "DC_DATA": str(data_root()), "DC_PYTHON": sys.executable, "PYTHONPATH": str(REPO),
            "PYTHONWARNINGS": "ignore"}


@pytest.mark.slow
@pytest.mark.timeout(1100)
def test_slurm_sweep_scancel_writes_what_finished_and_resubmit_resumes(slurm, tmp_path):
    """A four-cell sweep through sweep.sbatch: scancel after a cell has ended (the driver writes
    them and marks the rest missing, Ray stops, nothing of the job is left), then a resubmission
    with --resume, `sbatch --wait`, finishes the other cells; the Parquet has every cell ok."""
    env, _ = slurm
    env = job_env(env)
    out, first, second = tmp_path / "runs", tmp_path / "first.out", tmp_path / "second.out"
    (tmp_path / "tiny.yaml").write_text(TINY)
    r = submit(env, out, first, wait=False)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split(";")[0]
    deadline = time.time() + 600
    while "done (1/4 cells)" not in (first.read_text() if first.exists() else ""):
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True, text=True,
                               timeout=30).stdout.strip()
        assert state and time.time() < deadline, f"job {job} ({state or 'ended'}):\n{first.read_text()[-3000:]}"
        time.sleep(1)
    subprocess.run(["scancel", job], env=env, check=True, timeout=60)
    while subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True,
                         timeout=30).stdout.strip():
        time.sleep(1)
    text = first.read_text()
    assert "driver exited with status 1" in text and "rerun with --resume" in text, text[-3000:]
    run_dir = out / "tiny"
    assert not (run_dir / "driver.lock").exists()  # the driver ended itself, not SIGKILL
    df = pd.read_parquet(run_dir / "results.parquet")
    ok = set(df.cell_id[df.status == "ok"])
    assert len(ok) >= 1 and set(df.status) == {"ok", "missing"} and df.cell_id.nunique() == 4, df
    assert not no_job_processes(job), job_processes(job)
    assert not list(Path("/tmp").glob(f"ray-{job}-*"))  # each node's Ray files removed

    r = submit(env, out, second, "--resume", wait=True)
    text = second.read_text()
    assert r.returncode == 0, r.stderr + text[-3000:]
    job = r.stdout.strip().split(";")[0]
    assert "Ray: 1 of 1 node(s) joined" in text and "4 cells: 4 ok" in text, text[-3000:]
    assert not any(f"{cell}: done" in text for cell in ok)  # finished cells are not recomputed
    df = pd.read_parquet(run_dir / "results.parquet")
    assert (df.status == "ok").all() and df.cell_id.nunique() == 4 and df.accuracy.between(0, 100).all()
    assert not no_job_processes(job), job_processes(job)
    assert not list(Path("/tmp").glob(f"ray-{job}-*"))  # each node's Ray files removed
