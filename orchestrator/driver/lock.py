"""One driver per run folder: a lock file created with O_EXCL, holding the driver's host and pid.

``flock`` does not hold across the nodes of an NFS mount; creating a file exclusively does (NFSv3+),
so a driver on another node sees the lock too. The record is written whole under a temporary name
and linked to the lock's name (``link`` fails if it exists, as ``O_EXCL`` does), so a lock is never
seen empty or half-written while its driver lives. A lock is stale when its driver is gone: on this
host its pid no longer runs; from another host its heartbeat (the file's mtime, touched every
``HEARTBEAT_S``) is older than ``STALE_S``; an empty or unreadable lock (a driver stopped by a full
disk) at once. A stale lock is taken over, with a message.

On object storage (``StoreLock``) the lock is an object created only if absent (S3's conditional
``If-None-Match: *``), its heartbeat a rewrite, its age the server's ``LastModified``.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from condense.errors import ConfigError
from condense.files import temporary, write_error

LOCK_FILE = "driver.lock"
HEARTBEAT_S = 30.0
STALE_S = 600.0  # generous: node clocks differ, and NFS attribute caches lag


class RunLock:
    """``with RunLock(folder):`` holds the folder's lock; a live driver's lock raises ConfigError."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self.where, self.label = str(Path(folder)), str(self.path)  # for messages
        self.record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        for _ in range(3):  # another driver may take over a stale lock between our steps
            if self._create():
                break
            held = self._read()
            if held is None:
                continue  # released just now: try again
            why = stale(held, self._age())
            if why is None:
                raise ConfigError(f"{self.where} is in use by a driver running on {held.get('host')} "
                                  f"(pid {held.get('pid')}, since {_when(held)}); wait for it to finish or stop it "
                                  f"(its lock: {self.label})")
            if self._take_over(held):
                print(f"taking over the lock of a driver that is gone ({why}): {self.label}", file=sys.stderr)
                break
        else:
            raise ConfigError(f"{self.where}: could not take the lock {self.label}; another driver is "
                              "starting on this folder")
        self._beat = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._beat.start()

    def release(self) -> None:
        """Removes the lock if it is still ours (never another driver's that took it over)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        self._remove_if_ours()

    def _remove_if_ours(self) -> None:
        try:
            if self.path.read_text() == self.record:
                self.path.unlink()
        except OSError:
            pass

    def _create(self) -> bool:
        tmp = temporary(self.path)
        try:
            tmp.write_text(self.record)
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        except OSError as err:
            raise write_error(self.path, err) from None
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _read(self) -> dict | None:
        try:
            return _parse(self.path)
        except FileNotFoundError:
            return None

    def _age(self) -> float | None:
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None

    def _take_over(self, held: dict) -> bool:
        """Moves the stale lock aside and creates ours; False if another driver was quicker."""
        aside = self.path.with_name(f"{LOCK_FILE}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = _parse(aside)
        except OSError:
            moved = {}
        if moved != held and moved:  # we moved a newer driver's fresh lock: put it back, and yield
            try:
                os.link(aside, self.path)
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return self._create()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._touch()
            except OSError:
                pass

    def _touch(self) -> None:
        os.utime(self.path)


class StoreLock(RunLock):
    """The run lock on object storage (``storage.Remote``): the object ``driver.lock`` under the run's
    prefix. Taking over a stale lock deletes it and creates ours conditionally: of two drivers that
    do so at once, one wins the create and the other, finding a fresh lock, yields."""

    def __init__(self, remote):
        super().__init__(Path("."))
        self.remote = remote
        self.where, self.label = str(remote), f"{remote}/{LOCK_FILE}"
        self._seen_age: float | None = None

    def _create(self) -> bool:
        return self.remote.create_if_absent(LOCK_FILE, self.record.encode())

    def _read(self) -> dict | None:
        got = self.remote.read(LOCK_FILE)
        if got is None:
            return None
        body, self._seen_age = got
        try:
            held = json.loads(body)
        except ValueError:
            return {}
        return held if isinstance(held, dict) else {}

    def _age(self) -> float | None:
        return self._seen_age

    def _take_over(self, held: dict) -> bool:
        if self._read() != held:
            return False  # another driver was quicker
        self.remote.delete(LOCK_FILE)
        return self._create()

    def _touch(self) -> None:
        if self._read_record() == self.record:  # never rewrite a lock another driver took over
            self.remote.write(LOCK_FILE, self.record.encode())

    def _read_record(self) -> str | None:
        got = self.remote.read(LOCK_FILE)
        return None if got is None else got[0].decode(errors="replace")

    def _remove_if_ours(self) -> None:
        try:
            if self._read_record() == self.record:
                self.remote.delete(LOCK_FILE)
        except OSError:
            pass


def _parse(path: Path) -> dict:
    """The lock's record; {} when empty or unreadable (never a live driver's: see the module's
    docstring). Raises FileNotFoundError when there is no lock."""
    try:
        held = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError):
        return {}
    return held if isinstance(held, dict) else {}


def stale(held: dict, age: float | None) -> str | None:
    """Why the lock ``held`` (``age`` seconds since its last heartbeat, None if it was just released)
    belongs to a driver that is gone, or None if it may live."""
    host, pid = held.get("host"), held.get("pid")
    if not held:
        return "its lock file is empty or unreadable"
    if host == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"pid {pid} no longer runs on {host}"
        except PermissionError:
            return None  # alive, another user's
        return None
    if age is None:
        return "released"
    if age > STALE_S:
        return f"no heartbeat from {host or 'its host'} for {age / 60:.0f} minutes"
    return None


def _when(held: dict) -> str:
    started = held.get("started")
    if not isinstance(started, (int, float)):
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
