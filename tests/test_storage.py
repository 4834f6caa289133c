"""Object storage, without a server: ``--output`` parsing, the driver's working copy (what is pushed,
synced and downloaded) and the run lock on a bucket, against moto's in-process S3 (the same
semantics as its server, conditional writes included)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from condense.errors import ConfigError
from orchestrator.driver import storage
from orchestrator.driver.lock import LOCK_FILE, StoreLock

moto = pytest.importorskip("moto")


@pytest.fixture
def bucket(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(storage, "_clients", {})
    with moto.mock_aws():
        remote = storage.parse("s3://my-bucket/runs/sweep")
        remote.client().create_bucket(Bucket="my-bucket")
        yield remote


@pytest.mark.parametrize("output, message", [
    ("gs://b/x", "gs:// is not supported; use s3://"),
    ("file://relative/x", "needs an absolute path"),
    ("s3://Bad_Bucket/x", "'Bad_Bucket' is not a valid bucket name"),
    ("s3://bucket/a/../b", "'.' and '..' are not allowed"),
])
def test_outputs_that_cannot_be_written_are_refused_in_one_line(output, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")) as err:
        storage.parse(output)
    assert "\n" not in str(err.value) and output in str(err.value)


def test_outputs_are_folders_or_buckets():
    assert storage.parse("runs") == Path("runs")
    assert storage.parse("file:///data/runs") == Path("/data/runs")
    remote = storage.parse("s3://my-bucket/a//b/")
    assert (remote.bucket, remote.prefix, str(remote)) == ("my-bucket", "a/b", "s3://my-bucket/a/b")
    assert str(remote.child("smoke")) == "s3://my-bucket/a/b/smoke" and remote.child("smoke").key("x/") == "a/b/smoke/x/"


def test_the_working_copy_pushes_what_changed_and_syncs_deletions(bucket, tmp_path):
    local = tmp_path / "run"
    mirror = storage.Mirror(bucket, local)
    (local / "tables").mkdir(parents=True)
    (local / "tune" / "cell").mkdir(parents=True)
    (local / "results.parquet").write_bytes(b"one")
    (local / "tables" / "t.md").write_text("| a |")
    (local / "tune" / "cell" / "result.json").write_text("{}")  # Tune's own: it writes to the storage itself
    (local / ".results.parquet.123.tmp").write_bytes(b"half")  # a temporary: never uploaded
    assert mirror.push() == 2 and sorted(bucket.listing()) == ["results.parquet", "tables/t.md"]
    assert mirror.push() == 0  # nothing changed
    (local / "results.parquet").write_bytes(b"two!")
    assert mirror.push() == 1 and bucket.read("results.parquet")[0] == b"two!"

    bucket.write("tune/old/checkpoint_000001/progress.pt", b"x")  # an earlier Tune run's, moved away by a resume
    (local / "tables" / "t.md").unlink()
    mirror.sync()
    assert sorted(bucket.listing()) == ["results.parquet"]


def test_a_resume_downloads_the_run_and_follows_no_name_out_of_its_folder(bucket, tmp_path):
    bucket.write("results.parquet", b"rows")
    bucket.write("checkpoints/cell/progress.pt", b"state")
    bucket.write("tune/", b"")  # a folder marker, as pyarrow writes them
    bucket.client().put_object(Bucket="my-bucket", Key="runs/sweep/../../evil", Body=b"x")
    bucket.write(".hidden", b"x")
    local = tmp_path / "run"
    local.mkdir()
    assert storage.Mirror(bucket, local).download() == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "run/checkpoints/cell/progress.pt", "run/results.parquet"]


def test_the_storage_is_checked_before_anything_starts(bucket):
    bucket.check()  # writes, reads back and deletes a probe
    assert bucket.listing() == {}
    with pytest.raises(ConfigError, match=r"s3://no-such-bucket/x: the bucket does not exist"):
        storage.parse("s3://no-such-bucket/x").check()


def test_the_lock_on_a_bucket_is_held_once_and_a_stale_one_taken_over(bucket, capsys):
    with StoreLock(bucket):
        held = json.loads(bucket.read(LOCK_FILE)[0])
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        # a second driver on another host, while ours beats: refused in one line
        other = StoreLock(bucket)
        other.record = json.dumps({"host": "elsewhere", "pid": 1, "started": 0})
        with pytest.raises(ConfigError, match=r"s3://my-bucket/runs/sweep is in use by a driver running on") as err:
            other.acquire()
        assert "\n" not in str(err.value)
    assert bucket.read(LOCK_FILE) is None  # released

    # a driver of this host that is gone (its pid is free), then an empty lock: both stale
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for record in (json.dumps({"host": socket.gethostname(), "pid": int(gone.stdout), "started": 0}), ""):
        bucket.write(LOCK_FILE, record.encode())
        with StoreLock(bucket) as lock:
            assert bucket.read(LOCK_FILE)[0].decode() == lock.record
        assert "taking over the lock of a driver that is gone" in capsys.readouterr().err


def test_a_lock_taken_over_by_another_driver_is_left_to_it(bucket):
    lock = StoreLock(bucket)
    lock.acquire()
    newer = json.dumps({"host": "elsewhere", "pid": 7, "started": 1}).encode()
    bucket.write(LOCK_FILE, newer)  # e.g. ours looked stale to it
    lock.release()
    assert bucket.read(LOCK_FILE)[0] == newer
