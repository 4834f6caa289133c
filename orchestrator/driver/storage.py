"""Object storage as the run's home: ``--output s3://bucket/prefix`` (S3 or any S3-compatible server).

A cloud Ray cluster shares object storage, not a filesystem, so nothing a node does may depend on a
folder another node wrote. The driver keeps a local working copy of the run folder (``staging``,
under the cache) and writes every file there first, as for a local ``--output``; ``push`` then
uploads what changed (a PUT replaces an object whole, so nothing is seen half-written). Ray Tune
writes its checkpoints to the same storage from every node (``tune_storage``); the reference
networks reach the cells through Ray's object store (``stages.py``). A ``--resume`` first
``download``s the run, then continues from its own records (``resume.py``) and ``sync``s back.
The run lock is a conditional create (``If-None-Match: *``), which S3 makes atomic (lock.py).

Credentials come only from the standard places (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``~/.aws``, an instance role) and the endpoint from ``AWS_ENDPOINT_URL``; none of them is written to
an output or a log. ``file:///path`` is the folder ``/path``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from condense.errors import ConfigError
from condense.files import WriteError, write_bytes

SCHEMES = {"s3": "S3 or an S3-compatible server (endpoint: AWS_ENDPOINT_URL)", "file": "a folder"}
TUNE = "tune"  # Tune's own folder: written by Tune straight to the storage, never pushed
CHECK_TIMEOUT_S = 5  # per connection attempt; with two attempts a bad endpoint is refused within 30 s
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_clients: dict = {}


def parse(output: str) -> Path | Remote:
    """``--output`` as a local folder or a Remote; a scheme we cannot write is a ConfigError."""
    if "://" not in output:
        return Path(output)
    scheme, rest = output.split("://", 1)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ConfigError(f"--output {output}: a file:// URI needs an absolute path (file:///path)")
        return Path(rest)
    if scheme not in SCHEMES:
        allowed = ", ".join(f"{s}:// ({what})" for s, what in SCHEMES.items())
        raise ConfigError(f"--output {output}: {scheme}:// is not supported; use {allowed} or a folder")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise ConfigError(f"--output {output}: {bucket!r} is not a valid bucket name (3-63 characters: a-z, 0-9, "
                          "'.', '-')")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError(f"--output {output}: '.' and '..' are not allowed in the prefix")
    return Remote(bucket, "/".join(parts))


@dataclass(frozen=True)
class Remote:
    """A folder in a bucket: ``s3://bucket/prefix``. Picklable (a preflight probe runs it on each node)."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def child(self, name: str) -> Remote:
        return Remote(self.bucket, f"{self.prefix}/{name}".strip("/"))

    def key(self, rel: str = "") -> str:
        """The object key of ``rel`` (a folder marker keeps its trailing slash)."""
        return f"{self.prefix}/{rel}".lstrip("/") if rel else self.prefix

    # -- the driver's side: boto3 (conditional writes, bounded timeouts, clear errors) --------------

    def client(self):
        endpoint = _endpoint()
        if endpoint not in _clients:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ConfigError(f"--output {self}: object storage needs boto3 "
                                  "(pip install 'dataset-condensation[s3]')") from None
            config = Config(connect_timeout=CHECK_TIMEOUT_S, read_timeout=4 * CHECK_TIMEOUT_S,
                            retries={"max_attempts": 2, "mode": "standard"})
            _clients[endpoint] = boto3.client("s3", endpoint_url=endpoint, config=config)
        return _clients[endpoint]

    def check(self) -> None:
        """The bucket exists and we can write, read and delete there: else one line, before any cell."""
        probe = self.key(f".preflight-{os.getpid()}")
        try:
            import boto3

            if boto3.Session().get_credentials() is None:
                raise ConfigError(f"--output {self}: no credentials for object storage (set AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
            client = self.client()
            client.head_bucket(Bucket=self.bucket)
            client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
            if client.get_object(Bucket=self.bucket, Key=probe)["Body"].read() != b"ok":
                raise ConfigError(f"--output {self}: what was written did not read back")
            client.delete_object(Bucket=self.bucket, Key=probe)
        except ImportError:
            self.client()  # says how to install it
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - botocore's errors have no common type worth naming
            raise ConfigError(f"--output {self}: {describe(err)}") from None

    def create_if_absent(self, rel: str, body: bytes) -> bool:
        """Writes ``rel`` only if no object is there (atomic on S3); False if one was."""
        try:
            self.client().put_object(Bucket=self.bucket, Key=self.key(rel), Body=body, IfNoneMatch="*")
            return True
        except Exception as err:  # noqa: BLE001
            if _code(err) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise self.error(rel, err) from None

    def read(self, rel: str) -> tuple[bytes, float] | None:
        """The object's bytes and its age in seconds (by the server's clock), or None if absent."""
        try:
            got = self.client().get_object(Bucket=self.bucket, Key=self.key(rel))
            body = got["Body"].read()
            return body, time.time() - got["LastModified"].timestamp()
        except Exception as err:  # noqa: BLE001
            if _code(err) in ("NoSuchKey", "404"):
                return None
            raise self.error(rel, err) from None

    def write(self, rel: str, body: bytes) -> None:
        try:
            self.client().put_object(Bucket=self.bucket, Key=self.key(rel), Body=body)
        except Exception as err:  # noqa: BLE001
            raise self.error(rel, err) from None

    def delete(self, rel: str) -> None:
        try:
            self.client().delete_object(Bucket=self.bucket, Key=self.key(rel))
        except Exception as err:  # noqa: BLE001
            raise self.error(rel, err) from None

    def listing(self, rel: str = "") -> dict[str, int]:
        """Every object under ``rel``: its path relative to this folder -> its size."""
        found, base = {}, self.key(rel)
        try:
            pages = self.client().get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{base.rstrip('/')}/" if base else "")
            for page in pages:
                for obj in page.get("Contents", []):
                    found[obj["Key"][len(self.prefix):].lstrip("/")] = obj["Size"]
        except Exception as err:  # noqa: BLE001
            raise self.error(rel, err) from None
        return found

    def error(self, rel: str, err: Exception) -> WriteError:
        return WriteError(f"object storage {self}/{rel}: {describe(err)}")

    # -- what every node uses: pyarrow's filesystem, as Ray Tune does -------------------------------

    def filesystem(self):
        """Ray Tune's storage filesystem: pyarrow's S3 client, credentials resolved on each node."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(endpoint_override=_endpoint(), connect_timeout=CHECK_TIMEOUT_S,
                                 request_timeout=4 * CHECK_TIMEOUT_S)

    def tune_storage(self) -> tuple[str, object]:
        """``storage_path`` and ``storage_filesystem`` for Tune's RunConfig."""
        return f"{self.bucket}/{self.prefix}".rstrip("/"), self.filesystem()

    def checkpoint_path(self, rel: str) -> str:
        return f"{self.bucket}/{self.key(rel)}"

    def probe(self, tag: str) -> str | None:
        """Runs on a node: why it cannot write, read and delete here with Tune's client, or None."""
        fs, path = self.filesystem(), self.checkpoint_path(f".preflight-{tag}")
        try:
            with fs.open_output_stream(path) as f:
                f.write(b"ok")
            with fs.open_input_stream(path) as f:
                if f.read() != b"ok":
                    return "what was written did not read back"
            fs.delete_file(path)
        except OSError as err:
            return " ".join(str(err).split())[:300]
        return None


class Mirror:
    """The driver's local working copy of a Remote run folder, and what has been uploaded from it."""

    def __init__(self, remote: Remote, local: Path):
        self.remote, self.local = remote, local
        self._pushed: dict[str, tuple[int, int]] = {}  # rel -> (size, mtime_ns) last uploaded

    def download(self) -> int:
        """Every object of the run into the working copy (a resume starts from it); returns how many."""
        count = 0
        for rel in self.remote.listing():
            path = _local(self.local, rel)
            if path is None:
                continue  # a folder marker, or not a name we write: never followed out of the folder
            got = self.remote.read(rel)
            if got is not None:
                write_bytes(path, got[0])
                self._pushed[rel] = _stamp(path)
                count += 1
        return count

    def push(self) -> int:
        """Uploads the files that changed since the last push (Tune's folder and temporaries aside)."""
        count = 0
        for path in sorted(self._files()):
            rel, stamp = path.relative_to(self.local).as_posix(), _stamp(path)
            if self._pushed.get(rel) != stamp:
                self.remote.write(rel, path.read_bytes())
                self._pushed[rel] = stamp
                count += 1
        return count

    def sync(self) -> None:
        """Push, then delete the objects the working copy no longer has (Tune's folder included: a
        resume moved the checkpoints it continues from out of it). Only before Tune starts."""
        self.push()
        have = {p.relative_to(self.local).as_posix() for p in self._files()}
        for rel in self.remote.listing():
            if rel and rel not in have and not rel.startswith(".preflight-"):
                self.remote.delete(rel)
                self._pushed.pop(rel, None)

    def has_run(self) -> bool:
        """Whether the storage already holds a run here (Tune's folder or checkpoints)."""
        return any(rel.split("/", 1)[0] in (TUNE, "checkpoints") for rel in self.remote.listing())

    def _files(self):
        for top, dirs, names in os.walk(self.local):
            if Path(top) == self.local:
                dirs[:] = [d for d in dirs if d != TUNE]
            for name in names:
                if not name.startswith("."):  # temporaries and lock files
                    yield Path(top) / name


def staging(remote: Remote) -> Path:
    """The driver's working copy of a remote run: under the cache, one folder per URI, emptied at the
    start (after the lock is taken) and at the end of each run."""
    from evaluation.reference import resolve_cache_dir

    digest = hashlib.sha256(str(remote).encode()).hexdigest()[:16]
    return resolve_cache_dir() / "staging" / digest / PurePosixPath(remote.prefix).name


def empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def describe(err: Exception) -> str:
    """botocore's and pyarrow's errors in a few words, the way a user can act on them."""
    code = _code(err)
    if code in ("404", "NoSuchBucket"):
        return "the bucket does not exist"
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access denied ({code}): check the credentials"
    name = type(err).__name__
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        return f"cannot reach the endpoint ({' '.join(str(err).split())[:200]})"
    if name == "NoCredentialsError":
        return "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    return f"{name}: {' '.join(str(err).split())[:300]}"


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _local(folder: Path, rel: str) -> Path | None:
    parts = PurePosixPath(rel).parts
    if rel.endswith("/") or not parts or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return folder.joinpath(*parts)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns
