"""One driver per run folder: a live driver's lock refuses a second one; a dead driver's is taken over."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from condense.errors import ConfigError
from orchestrator.driver import lock
from orchestrator.driver.lock import LOCK_FILE, RunLock


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has it (until the kernel reuses it, long after this test)


def test_a_second_driver_is_refused_while_the_first_holds_the_folder(tmp_path):
    with RunLock(tmp_path):
        held = json.loads((tmp_path / LOCK_FILE).read_text())
        assert held["host"] == socket.gethostname() and held["pid"] == os.getpid()
        other = subprocess.run([sys.executable, "-c", "import sys; from orchestrator.driver.lock import RunLock; "
                                "RunLock(sys.argv[1]).acquire()", str(tmp_path)],
                               capture_output=True, text=True, timeout=60,
                               env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert other.returncode != 0 and "is in use by a driver running on" in other.stderr
        assert f"pid {os.getpid()}" in other.stderr
    assert not (tmp_path / LOCK_FILE).exists()  # released on exit
    with RunLock(tmp_path):  # and free again
        pass


def test_an_exception_releases_the_lock(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunLock(tmp_path):
            raise KeyboardInterrupt
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_dead_drivers_lock_on_this_host_is_taken_over_with_a_message(tmp_path, capsys):
    pid = dead_pid()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started": 0}))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert "taking over the lock of a driver that is gone" in err and f"pid {pid} no longer runs" in err


def test_another_hosts_lock_is_stale_only_without_a_heartbeat(tmp_path, capsys):
    path = tmp_path / LOCK_FILE
    path.write_text(json.dumps({"host": "node-7", "pid": 1, "started": time.time()}))
    with pytest.raises(ConfigError, match="node-7 .pid 1"):  # fresh: it may be running over there
        RunLock(tmp_path).acquire()
    old = time.time() - lock.STALE_S - 60
    os.utime(path, (old, old))
    with RunLock(tmp_path):
        pass
    assert "no heartbeat from node-7" in capsys.readouterr().err


def test_the_heartbeat_keeps_a_long_run_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.05)
    with RunLock(tmp_path):
        old = time.time() - 3600
        os.utime(tmp_path / LOCK_FILE, (old, old))
        time.sleep(0.5)
        assert time.time() - (tmp_path / LOCK_FILE).stat().st_mtime < 60


def test_release_never_removes_a_lock_another_driver_took_over(tmp_path):
    mine = RunLock(tmp_path)
    mine.acquire()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 2, "started": 0}))
    mine.release()
    assert (tmp_path / LOCK_FILE).exists()


@pytest.mark.parametrize("content", [b"", b"\x00\xff{garbage", b"[1, 2]"])
def test_an_empty_or_unreadable_lock_is_stale_at_once(tmp_path, capsys, content):
    """A driver stopped by a full disk may leave an empty lock: it is no live driver's (ours is written
    whole before it gets the lock's name), so it never blocks the folder for STALE_S."""
    (tmp_path / LOCK_FILE).write_bytes(content)
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "its lock file is empty or unreadable" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary of ours left either


def test_a_full_disk_when_taking_the_lock_is_one_line(tmp_path, monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_text", no_space)
    with pytest.raises(ConfigError, match=f"cannot write {tmp_path / LOCK_FILE}: No space left on device"):
        RunLock(tmp_path).acquire()
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
