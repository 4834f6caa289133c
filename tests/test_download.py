"""The downloader (condense/download.py) without the internet: a loopback HTTP server stands in for
the datasets' hosts through DC_DATA_MIRROR and serves tiny datasets made here, in torchvision's
formats. Their MD5 sums are computed here and put in place of torchvision's for the files that must
pass; a file that must fail meets torchvision's own sums. Every failure is one line, and leaves
nothing in the data root."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd

from condense import data
from condense.download import MIRROR_ENV, DownloadError, fetch, mirror_url

PROXIES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
SPLITS = {"train": 3, "test": 1}  # images per class


def _labels(per_class: int) -> np.ndarray:
    return np.repeat(np.arange(10), per_class)


def _idx(array: np.ndarray) -> bytes:
    """IDX bytes (MNIST's format): magic 0x08 <ndim>, big-endian sizes, then the uint8 values."""
    head = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return head + array.astype(np.uint8).tobytes()


def tiny_mnist(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        labels = _labels(SPLITS[split])
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(_idx(images), mtime=0)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(_idx(labels), mtime=0)
    return files


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def tiny_cifar10(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)

    def batch(per_class):
        labels = _labels(per_class)
        return pickle.dumps({"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
                             "labels": [int(v) for v in labels]}, protocol=4)

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(1) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(1)
    return {tvd.CIFAR10.filename: _tar(members)}


def tiny_svhn(seed: int = 0) -> dict[str, bytes]:
    import scipy.io as sio

    rng = np.random.default_rng(seed)
    files = {}
    for split in ("train", "test"):
        labels = _labels(SPLITS[split])
        buffer = io.BytesIO()
        sio.savemat(buffer, {"X": rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8),
                             "y": np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)})
        files[f"{split}_32x32.mat"] = buffer.getvalue()
    return files


TINY = {"MNIST": tiny_mnist, "CIFAR10": tiny_cifar10, "SVHN": tiny_svhn}


def trust(monkeypatch, dataset: str, files: dict[str, bytes]) -> None:
    """Put the tiny files' MD5 sums where torchvision keeps the real ones (for this test only)."""
    md5 = {name: hashlib.md5(payload).hexdigest() for name, payload in files.items()}
    if dataset in ("MNIST", "FashionMNIST"):
        cls = getattr(tvd, dataset)
        monkeypatch.setattr(cls, "resources", [(name, md5[name]) for name, _ in cls.resources])
    elif dataset == "SVHN":
        monkeypatch.setattr(tvd.SVHN, "split_list", {s: [url, name, md5.get(name, sum_)] for s, (url, name, sum_)
                                                     in tvd.SVHN.split_list.items()})
    else:
        monkeypatch.setattr(getattr(tvd, dataset), "tgz_md5", md5[getattr(tvd, dataset).filename])


class Mirror:
    """A loopback HTTP server over ``folder``: ``folder/<dataset>/<file>``; files named in ``cut`` are
    announced whole and closed after half."""

    def __init__(self, folder: Path):
        self.folder, self.cut = folder, set()
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                if name not in mirror.cut:
                    return super().do_GET()
                payload = (folder / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def put(self, dataset: str, files: dict[str, bytes]) -> None:
        (self.folder / dataset).mkdir(parents=True, exist_ok=True)
        for name, payload in files.items():
            (self.folder / dataset / name).write_bytes(payload)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    for name in PROXIES:  # the loopback server is reached directly, whatever proxy the machine sets
        monkeypatch.delenv(name, raising=False)
    m = Mirror(tmp_path / "served")
    monkeypatch.setenv(MIRROR_ENV, m.url)
    yield m
    m.close()


@pytest.fixture
def closed_port(monkeypatch):
    """A mirror URL on a loopback port nothing listens on: connection refused, as offline."""
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}")
    return port


def left_in(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def one_line_failure(name: str, root: Path) -> str:
    with pytest.raises(DownloadError) as exc:
        fetch(name, root)
    text = str(exc.value)
    assert "\n" not in text and name in text
    assert left_in(root) == [], "a failed download left files behind"
    return text


@pytest.mark.parametrize("name", list(TINY))
def test_download_fetches_verifies_and_loads(name, mirror, monkeypatch, tmp_path, capsys):
    files = TINY[name]()
    mirror.put(name, files)
    trust(monkeypatch, name, files)
    root = tmp_path / "data"
    fetch(name, root)
    train, test = data.load(name, root)
    assert len(train) == 10 * SPLITS["train"] if name != "CIFAR10" else len(train) == 50
    assert sorted(set(test.labels.tolist())) == list(range(10))
    assert not [p for p in left_in(root) if ".download-" in p]  # the staging folder is gone
    out = capsys.readouterr().out
    assert f"{mirror_url(mirror.url, name, next(iter(files)))}" in out and f"{name}: downloaded into {root}" in out


def test_download_of_a_truncated_file_is_refused(mirror, monkeypatch, tmp_path):
    files = tiny_mnist()
    trust(monkeypatch, "MNIST", files)
    first = next(iter(files))
    mirror.put("MNIST", {**files, first: files[first][:-100]})  # served as it is: honest length, cut short
    text = one_line_failure("MNIST", tmp_path / "data")
    assert mirror_url(mirror.url, "MNIST", first) in text and "MD5" in text


def test_download_with_a_wrong_checksum_is_refused(mirror, tmp_path):
    mirror.put("MNIST", tiny_mnist())  # whole files, but not the ones torchvision's sums name
    text = one_line_failure("MNIST", tmp_path / "data")
    real = dict(tvd.MNIST.resources)["train-images-idx3-ubyte.gz"]
    assert f"is not torchvision's {real}" in text


def test_download_from_a_server_that_closes_mid_file(mirror, monkeypatch, tmp_path):
    files = tiny_mnist()
    trust(monkeypatch, "MNIST", files)
    mirror.put("MNIST", files)
    mirror.cut.add("train-images-idx3-ubyte.gz")
    size = len(files["train-images-idx3-ubyte.gz"])
    text = one_line_failure("MNIST", tmp_path / "data")
    assert f"closed the connection after {size // 2} of {size} bytes" in text


def test_download_offline(closed_port, tmp_path):
    text = one_line_failure("CIFAR10", tmp_path / "data")
    assert f"127.0.0.1:{closed_port}/CIFAR10/cifar-10-python.tar.gz (connection refused)" in text
    assert "cifar-10-batches-py" in text and str(tmp_path / "data") in text  # where to put them by hand


def test_download_keeps_nothing_of_a_verified_file_that_does_not_unpack(mirror, monkeypatch, tmp_path):
    files = {**tiny_mnist(), "t10k-labels-idx1-ubyte.gz": b"not gzip at all"}  # the last file: the others unpacked
    trust(monkeypatch, "MNIST", files)
    mirror.put("MNIST", files)
    assert "does not unpack" in one_line_failure("MNIST", tmp_path / "data")


def test_download_refuses_an_archive_member_outside_its_folder(mirror, monkeypatch, tmp_path):
    files = {tvd.CIFAR10.filename: _tar({"cifar-10-batches-py/data_batch_1": b"x", "../escape": b"x"})}
    trust(monkeypatch, "CIFAR10", files)
    mirror.put("CIFAR10", files)
    assert "unexpected member '../escape'" in one_line_failure("CIFAR10", tmp_path / "data")
    assert not (tmp_path / "escape").exists()


def test_download_of_a_dataset_torchvision_does_not_publish(tmp_path):
    assert "cannot be downloaded" in one_line_failure("TinyImageNet", tmp_path / "data")


# ------------------------------------------------------------------------------------------------
# The command lines: the driver (before Ray), the seed CLI and python -m evaluation
# ------------------------------------------------------------------------------------------------

SWEEP = """tables:
  mine: {datasets: [MNIST], models: [ConvNet], ipcs: [1], eval_modes: [S]}
num_exp: 1
"""


def call(main, *args, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def driver(*args, capsys):
    from orchestrator.driver.run import main

    return call(main, *args, capsys=capsys)


def sweep_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(SWEEP + extra)
    return path


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_download_missing_data_without_the_flag_names_it(tmp_path, monkeypatch, capsys):
    from orchestrator.cli.seed import main as seed

    monkeypatch.setenv("DC_DATA", str(tmp_path / "empty"))
    code, _, err = driver(sweep_file(tmp_path), "--output", tmp_path / "runs", capsys=capsys)
    assert_one_line(code, err, "dataset MNIST not found", "--download")
    code, _, err = call(seed, "--dataset", "MNIST", "--smoke", "--save_path", tmp_path / "res", capsys=capsys)
    assert_one_line(code, err, "dataset MNIST not found", "--download")
    assert left_in(tmp_path / "empty") == []


@pytest.mark.parametrize("asked", ["--download", "download: true"])
def test_download_by_the_driver_offline_is_one_line(asked, closed_port, tmp_path, monkeypatch, capsys):
    root = tmp_path / "empty"
    monkeypatch.setenv("DC_DATA", str(root))
    path = sweep_file(tmp_path, "download: true\n" if asked == "download: true" else "")
    flag = ["--download"] if asked == "--download" else []
    code, _, err = driver(path, "--output", tmp_path / "runs", *flag, capsys=capsys)
    assert_one_line(code, err, "error: dataset MNIST: download failed", f"127.0.0.1:{closed_port}/MNIST/",
                    "connection refused", f"put MNIST/raw/ (the four files unpacked: *-ubyte) under {root}")
    assert left_in(root) == [] and not (tmp_path / "runs").exists()


def test_download_by_the_driver_comes_before_ray(mirror, tmp_path, monkeypatch, capsys):
    """The driver fetches, checks the data, and only then looks for Ray (here: a cluster that is not
    there, so the run stops at that, with the data in place)."""
    files = tiny_mnist()
    mirror.put("MNIST", files)
    trust(monkeypatch, "MNIST", files)
    root = tmp_path / "data"
    monkeypatch.setenv("DC_DATA", str(root))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = driver(sweep_file(tmp_path), "--download", "--output", tmp_path / "runs",
                            "--address", f"127.0.0.1:{port}", capsys=capsys)
    assert_one_line(code, err, f"cannot reach a Ray cluster at 127.0.0.1:{port}")
    assert f"MNIST: downloaded into {root}" in out
    assert len(data.load("MNIST", root)[0]) == 10 * SPLITS["train"]


def test_download_by_the_seed_cli_offline_is_one_line(closed_port, tmp_path, capsys):
    from orchestrator.cli.seed import main as seed

    root = tmp_path / "data"
    code, _, err = call(seed, "--dataset", "FashionMNIST", "--smoke", "--data_path", root, "--download",
                        "--save_path", tmp_path / "res", capsys=capsys)
    assert_one_line(code, err, "dataset FashionMNIST: download failed", f"127.0.0.1:{closed_port}/FashionMNIST/")
    assert left_in(root) == []


def test_download_by_evaluation_offline_is_one_line(closed_port, tmp_path, capsys):
    from orchestrator.cli.evaluate import main as evaluate

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "set.npz", images=rng.integers(0, 256, (10, 28, 28, 1), dtype=np.uint8),
             labels=np.arange(10))
    code, _, err = call(evaluate, tmp_path / "set.npz", "--dataset", "MNIST", "--data_path", root,
                        "--output", tmp_path / "res", capsys=capsys)
    assert_one_line(code, err, "dataset MNIST not found", "--download")
    code, _, err = call(evaluate, tmp_path / "set.npz", "--dataset", "MNIST", "--data_path", root, "--download",
                        "--output", tmp_path / "res", capsys=capsys)
    assert_one_line(code, err, "dataset MNIST: download failed", f"127.0.0.1:{closed_port}/MNIST/")
    assert left_in(root) == []


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_download_on_a_terminal_draws_a_bar_in_place(mirror, monkeypatch, tmp_path):
    files = tiny_mnist()
    mirror.put("MNIST", files)
    trust(monkeypatch, "MNIST", files)
    out = _Terminal()
    fetch("MNIST", tmp_path / "data", out=out)
    text = out.getvalue()
    assert "\r\x1b[K" in text and "downloading" not in text  # drawn over, no plain start lines
    lines = text.replace("\r\x1b[K", "\n").split("\n")
    assert [line for line in lines if line.endswith(" s")][0].startswith("MNIST train-images-idx3-ubyte.gz: ")
    assert lines[-2] == f"MNIST: downloaded into {tmp_path / 'data'}"
