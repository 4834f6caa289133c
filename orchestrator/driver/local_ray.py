"""The driver's local Ray, in a session of its own.

``ray.init()`` would start Ray's GCS and raylet in the driver's process group, so a stop sent to the
whole group (``timeout``, SLURM's ``scancel``, a container stop, Ctrl-C in a terminal) kills them
with the driver, which then waits on a dead GCS and ends without its summary. Instead the driver
starts ``ray start --head --block`` in a new session: a group signal reaches the driver alone, which
stops its trials, writes what finished, and then ends this Ray itself by terminating that one
process (``--block`` takes its servers and workers with it; never ``ray stop``, which would end
every Ray on the machine); a driver killed outright takes it along too (see ``_RAY``). The head
listens on 127.0.0.1 only, on free ports, with token authentication and a temporary folder of its
own.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from condense.errors import ConfigError

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
_STARTED = "Ray runtime started"
# Ray's CLI, run with this interpreter (no `ray` script on PATH needed). On Linux it first asks for
# SIGTERM when the driver dies (PR_SET_PDEATHSIG), so a driver killed outright (SIGKILL) still takes
# its Ray with it; argv[1] is the driver's pid, in case it died before the request.
_RAY = [sys.executable, "-c", """import ctypes, os, signal, sys
prctl = getattr(ctypes.CDLL(None), "prctl", None)
if prctl is not None:
    prctl(1, signal.SIGTERM)
if os.getppid() != int(sys.argv[1]):
    sys.exit("the driver is gone")
sys.argv = ["ray", *sys.argv[2:]]
from ray.scripts.scripts import main
main()"""]
_PORTS = ("--port", "--ray-client-server-port", "--node-manager-port", "--object-manager-port",
          "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
          "--runtime-env-agent-port", "--dashboard-port")


def local_environment() -> None:
    """The settings of this run's local Ray, in the environment of the driver and of what it starts;
    called before Ray is imported, which reads (and keeps) them from there: a token of its own, and
    Ray's switch for a single-machine Ray (every node address 127.0.0.1, the driver's too)."""
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@contextmanager
def local_ray() -> Iterator[str]:
    """``with local_ray() as address:`` a Ray head of our own for ``ray.init(address=address)``,
    with ``local_environment`` set."""
    ports = dict(zip(_PORTS, _free_ports(len(_PORTS))))
    temp = tempfile.mkdtemp(prefix="dc-ray-", dir="/tmp")  # short: Ray's socket paths fit in 107 bytes
    root = str(Path(__file__).resolve().parents[2])  # the workers import this checkout, as the driver does
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    log = Path(temp) / "head.log"
    args = [a for flag, port in ports.items() for a in (flag, str(port))]
    with open(log, "w") as f:
        head = subprocess.Popen([*_RAY, str(os.getpid()), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                                 "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp, *args],
                                env={**os.environ, "PYTHONPATH": path}, stdin=subprocess.DEVNULL,
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_started(head, log)
        yield f"127.0.0.1:{ports['--port']}"
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_started(head: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while _STARTED not in log.read_text(errors="replace"):
        if head.poll() is not None or time.monotonic() > deadline:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            why = lines[-1].strip() if lines else f"exit {head.returncode}"
            raise ConfigError(f"could not start a local Ray: {why[:300]}")
        time.sleep(0.2)


def _stop(head: subprocess.Popen) -> None:
    """Terminate our `ray start --block` (it ends its servers and workers); if it does not end in
    time, kill its session's process group (not yet reaped, so only processes it started)."""
    if head.poll() is not None:
        return
    head.terminate()
    try:
        head.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
