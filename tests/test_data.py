"""condense.data: registry, root resolution, npz + torchvision layouts, errors."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from condense import data
from condense.errors import ConfigError, DataNotFoundError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DC_DATA", str(REPO.parent / "shared" / "data")))


# ----------------------------------------------------------------------------- helpers


def _random_split(n: int, h: int, w: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.int64)
    rng.shuffle(labels)
    return images, labels


def _roundtrip(s: data.ImageSet) -> np.ndarray:
    """Normalised float images -> uint8 N x H x W x C."""
    x = data.denormalise(s.images, s.info) * 255
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _assert_same(s: data.ImageSet, images: np.ndarray, labels: np.ndarray) -> None:
    n, h, w, c = images.shape
    assert s.images.dtype == torch.float32 and s.labels.dtype == torch.int64
    assert tuple(s.images.shape) == (n, c, h, w)
    assert len(s) == n
    np.testing.assert_array_equal(s.labels.numpy(), labels)
    np.testing.assert_array_equal(_roundtrip(s), images)


def _write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = images.shape
    with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x00000803, n, h, w))
        f.write(images[..., 0].astype(np.uint8).tobytes())
    with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x00000801, n))
        f.write(labels.astype(np.uint8).tobytes())


def _write_npz(d: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    d.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(d / f"{split}.npz", images=images, labels=labels)


# ----------------------------------------------------------------------------- registry


def test_registry_constants():
    assert data.dataset_names() == ["MNIST", "FashionMNIST", "SVHN", "CIFAR10", "CIFAR100", "TinyImageNet"]
    m = data.info("MNIST")
    assert (m.channels, m.image_size, m.num_classes) == (1, (28, 28), 10)
    assert m.mean == (0.1307,) and m.std == (0.3081,)
    assert data.info("FashionMNIST").mean == (0.2861,) and data.info("FashionMNIST").std == (0.3530,)
    assert data.info("FashionMNIST").class_names[0] == "T-shirt/top"
    assert data.info("SVHN").mean == (0.4377, 0.4438, 0.4728)
    assert data.info("SVHN").std == (0.1980, 0.2010, 0.1970)
    c = data.info("CIFAR10")
    assert (c.channels, c.image_size) == (3, (32, 32))
    assert c.mean == (0.4914, 0.4822, 0.4465) and c.std == (0.2023, 0.1994, 0.2010)
    assert c.class_names[0] == "airplane" and c.class_names[-1] == "truck"
    for d in data.DATASETS.values():
        assert len(d.mean) == len(d.std) == d.channels
        assert len(d.class_names) == d.num_classes == {"CIFAR100": 100, "TinyImageNet": 200}.get(d.name, 10)
    with pytest.raises(Exception):
        m.channels = 3  # frozen


def test_unknown_dataset_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="ImageNet") as exc:
        data.load("ImageNet", tmp_path)
    assert not isinstance(exc.value, DataNotFoundError)
    assert "MNIST" in str(exc.value)  # lists the allowed names
    with pytest.raises(ConfigError, match="nope"):
        data.info("nope")


# ----------------------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def mnist():
    if not (SHARED / "MNIST" / "train.npz").is_file():
        pytest.fail(f"real MNIST not at {SHARED}: set DC_DATA to the shared data folder")
    return data.load("MNIST", SHARED)


def test_real_mnist(mnist):
    train, test = mnist
    assert len(train) == 60000 and len(test) == 10000
    assert tuple(train.images.shape) == (60000, 1, 28, 28)
    assert tuple(test.images.shape) == (10000, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert abs(train.images.mean().item()) < 0.01
    assert abs(train.images.std().item() - 1.0) < 0.01
    counts = [len(i) for i in train.indices_per_class()]
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    raw01 = data.denormalise(train.images[:1000], train.info)
    assert raw01.min() >= 0 and raw01.max() <= 1


def test_load_returns_fresh_tensors(mnist):
    train, _ = mnist
    again, _ = data.load("MNIST", SHARED)
    assert again.images.data_ptr() != train.images.data_ptr()
    again.images[0].fill_(123.0)
    again.labels[0] = 9
    third, _ = data.load("MNIST", SHARED)
    assert third.labels[0].item() == 5
    assert torch.equal(third.images[0], train.images[0])


# ----------------------------------------------------------------------------- ImageSet


def test_imageset_helpers():
    inf = data.info("MNIST")
    labels = torch.tensor([3, 1, 3, 0, 9], dtype=torch.int64)
    s = data.ImageSet(torch.zeros(5, 1, 28, 28), labels, inf)
    assert len(s) == 5
    idx = s.indices_per_class()
    assert len(idx) == 10
    assert idx[3].tolist() == [0, 2] and idx[2].tolist() == [] and idx[9].tolist() == [4]
    assert all(i.dtype == torch.int64 and i.device == labels.device for i in idx)
    moved = s.to("cpu")
    assert isinstance(moved, data.ImageSet) and moved is not s and moved.info is inf
    # denormalise undoes normalisation on a single image too
    x = torch.rand(1, 28, 28)
    z = (x - inf.mean[0]) / inf.std[0]
    assert torch.allclose(data.denormalise(z, inf), x, atol=1e-6)


# ----------------------------------------------------------------------------- torchvision layouts


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_idx_layout(tmp_path, name):
    tr = _random_split(20, 28, 28, 1, seed=1)
    te = _random_split(12, 28, 28, 1, seed=2)
    raw = tmp_path / name / "raw"
    _write_idx(raw, "train", *tr)
    _write_idx(raw, "t10k", *te)
    train, test = data.load(name, tmp_path)
    assert train.info.name == name
    _assert_same(train, *tr)
    _assert_same(test, *te)


@pytest.mark.parametrize("subdir", ["SVHN", ""])
def test_svhn_layout(tmp_path, subdir):
    import scipy.io as scipy_io
    d = tmp_path / subdir if subdir else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n, seed in (("train", 20, 3), ("test", 11, 4)):
        images, labels = _random_split(n, 32, 32, 3, seed)
        stored = np.where(labels == 0, 10, labels).astype(np.uint8)  # SVHN: digit 0 is "10"
        X = np.ascontiguousarray(images.transpose(1, 2, 3, 0))  # 32 x 32 x 3 x N
        scipy_io.savemat(str(d / f"{split}_32x32.mat"), {"X": X, "y": stored.reshape(-1, 1)})
        splits[split] = (images, labels)
    train, test = data.load("SVHN", tmp_path)
    _assert_same(train, *splits["train"])
    _assert_same(test, *splits["test"])
    assert 0 in train.labels.tolist() and 10 not in train.labels.tolist()


def test_cifar10_layout(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    parts = []
    for i in range(1, 6):
        images, labels = _random_split(10, 32, 32, 3, seed=10 + i)
        entry = {
            "batch_label": f"training batch {i} of 5",
            "labels": labels.tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),  # N x 3072, CHW rows
            "filenames": [f"img{j}.png" for j in range(len(images))],
        }
        with open(d / f"data_batch_{i}", "wb") as f:  # every protocol a Python 3 writer may use
            pickle.dump(entry, f, protocol=[2, 3, 4, 5, pickle.DEFAULT_PROTOCOL][i - 1])
        parts.append((images, labels))
    te_images, te_labels = _random_split(12, 32, 32, 3, seed=99)
    with open(d / "test_batch", "wb") as f:
        pickle.dump(  # a Python 3 pickle (protocol 2: bytes through _codecs.encode), bytes keys
            {b"labels": te_labels.tolist(), b"data": te_images.transpose(0, 3, 1, 2).reshape(12, -1)}, f,
            protocol=2,
        )
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(data.info("CIFAR10").class_names)}, f)
    train, test = data.load("CIFAR10", tmp_path)
    _assert_same(
        train, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    _assert_same(test, te_images, te_labels)


# ----------------------------------------------------------------------------- npz


def test_npz_preferred_over_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    idx_tr, idx_te = _random_split(10, 28, 28, 1, 5), _random_split(10, 28, 28, 1, 6)
    _write_idx(raw, "train", *idx_tr)
    _write_idx(raw, "t10k", *idx_te)
    train, _ = data.load("MNIST", tmp_path)
    _assert_same(train, *idx_tr)

    npz_tr, npz_te = _random_split(11, 28, 28, 1, 7), _random_split(15, 28, 28, 1, 8)
    _write_npz(tmp_path / "MNIST", "train", *npz_tr)
    _write_npz(tmp_path / "MNIST", "test", *npz_te)
    train, test = data.load("MNIST", tmp_path)
    _assert_same(train, *npz_tr)
    _assert_same(test, *npz_te)


def test_npz_rewritten_file_is_reread(tmp_path):
    a = _random_split(10, 28, 28, 1, 20)
    _write_npz(tmp_path / "MNIST", "train", *a)
    _write_npz(tmp_path / "MNIST", "test", *a)
    _assert_same(data.load("MNIST", tmp_path)[0], *a)
    b = _random_split(13, 28, 28, 1, 21)
    _write_npz(tmp_path / "MNIST", "train", *b)
    _assert_same(data.load("MNIST", tmp_path)[0], *b)


def test_a_training_set_missing_a_class_names_the_file_and_the_class(tmp_path):
    images, labels = _random_split(20, 28, 28, 1, 31)
    _write_npz(tmp_path / "MNIST", "train", images, np.where(labels == 7, 3, labels))
    _write_npz(tmp_path / "MNIST", "test", images, labels)
    with pytest.raises(ConfigError, match=r"MNIST/train.npz: no training image of class 7;"):
        data.load("MNIST", tmp_path)


def test_npz_wrong_shape_is_clear_error(tmp_path):
    bad = _random_split(5, 32, 32, 3, 30)  # CIFAR-shaped images under MNIST
    _write_npz(tmp_path / "MNIST", "train", *bad)
    _write_npz(tmp_path / "MNIST", "test", *bad)
    with pytest.raises(ConfigError) as exc:
        data.load("MNIST", tmp_path)
    msg = str(exc.value)
    assert "train.npz" in msg and "[5, 32, 32, 3]" in msg and "28, 28, 1" in msg
    assert "\n" not in msg


def test_npz_bad_labels_is_clear_error(tmp_path):
    images, labels = _random_split(5, 28, 28, 1, 31)
    _write_npz(tmp_path / "MNIST", "train", images, labels[:4])
    _write_npz(tmp_path / "MNIST", "test", images, labels)
    with pytest.raises(ConfigError, match="labels"):
        data.load("MNIST", tmp_path)
    _write_npz(tmp_path / "MNIST", "train", images, labels + 10)
    with pytest.raises(ConfigError, match="labels range"):
        data.load("MNIST", tmp_path)


# ----------------------------------------------------------------------------- root + errors


def test_resolve_root_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DC_DATA", raising=False)
    assert data.resolve_root(None) == (tmp_path / "data").resolve()
    monkeypatch.setenv("DC_DATA", str(tmp_path / "env"))
    assert data.resolve_root(None) == (tmp_path / "env").resolve()
    assert data.resolve_root(str(tmp_path / "explicit")) == (tmp_path / "explicit").resolve()
    assert data.resolve_root(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert data.resolve_root("rel").is_absolute()


def test_load_uses_env_root(tmp_path, monkeypatch):
    split = _random_split(10, 28, 28, 1, 40)
    _write_npz(tmp_path / "env" / "MNIST", "train", *split)
    _write_npz(tmp_path / "env" / "MNIST", "test", *split)
    monkeypatch.setenv("DC_DATA", str(tmp_path / "env"))
    _assert_same(data.load("MNIST")[0], *split)
    with pytest.raises(DataNotFoundError):
        data.load("MNIST", tmp_path / "explicit")  # explicit beats DC_DATA


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "SVHN", "CIFAR10"])
def test_missing_dataset_message(tmp_path, name):
    root = tmp_path / "nothing here"
    with pytest.raises(DataNotFoundError) as exc:
        data.load(name, root, offers_download=True)  # the seed CLI's: it has --download
    msg = str(exc.value)
    assert "\n" not in msg
    assert name in msg
    assert str(root / name) in msg  # the npz place
    expected = {
        "MNIST": str(root / "MNIST" / "raw"),
        "FashionMNIST": str(root / "FashionMNIST" / "raw"),
        "SVHN": "_32x32.mat",
        "CIFAR10": str(root / "cifar-10-batches-py"),
    }[name]
    assert expected in msg
    assert "DC_DATA" in msg and "--data_path" in msg and "--download" in msg


def test_the_missing_data_message_names_only_what_its_caller_has(tmp_path):
    with pytest.raises(DataNotFoundError) as exc:
        data.load("MNIST", tmp_path)  # a caller with --data_path, no --download
    assert "point --data_path / DC_DATA at" in str(exc.value) and "--download" not in str(exc.value)
    with pytest.raises(DataNotFoundError) as exc:
        data.load("MNIST", tmp_path, root_from="the sweep's data_root / DC_DATA")  # a sweep's trial
    assert "point the sweep's data_root / DC_DATA at" in str(exc.value) and "--" not in str(exc.value)


def test_partial_npz_is_not_found(tmp_path):
    split = _random_split(4, 28, 28, 1, 50)
    _write_npz(tmp_path / "MNIST", "train", *split)  # no test.npz
    with pytest.raises(DataNotFoundError, match=r"incomplete, missing test\.npz"):
        data.load("MNIST", tmp_path)


# ----------------------------------------------------------------------------- corrupt data


def _mnist_npz(root: Path, train=None, test=None) -> None:
    _write_npz(root / "MNIST", "train", *(train or _random_split(20, 28, 28, 1, 60)))
    _write_npz(root / "MNIST", "test", *(test or _random_split(10, 28, 28, 1, 61)))


def _one_line_error(name: str, root: Path, match: str, **kw) -> str:
    with pytest.raises(ConfigError, match=match) as exc:
        data.check(name, root, **kw)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_a_truncated_npz_is_one_line_naming_the_file(tmp_path):
    _mnist_npz(tmp_path)
    path = tmp_path / "MNIST" / "train.npz"
    path.write_bytes(path.read_bytes()[:200])
    assert str(path) in _one_line_error("MNIST", tmp_path, "cannot read MNIST train data")


def test_an_empty_test_split_or_a_class_missing_from_it_is_refused(tmp_path):
    images, labels = _random_split(10, 28, 28, 1, 62)
    _mnist_npz(tmp_path, test=(images[:0], labels[:0]))
    _one_line_error("MNIST", tmp_path, r"MNIST/test.npz: the test split is empty")
    _mnist_npz(tmp_path, test=(images, np.where(labels == 4, 5, labels)))
    _one_line_error("MNIST", tmp_path, r"MNIST/test.npz: no test image of class 4;")


@pytest.mark.parametrize("damage, match", [
    (lambda b: struct.pack(">I", 0x12345678) + b[4:], r"not an IDX images file \(magic number 0x12345678"),
    (lambda b: b[:-7], r"holds 7833: truncated"),
    (lambda b: b[:2], "only 2 bytes"),
])
def test_a_bad_idx_header_or_size_is_one_line_naming_the_file(tmp_path, damage, match):
    raw = tmp_path / "MNIST" / "raw"
    _write_idx(raw, "train", *_random_split(10, 28, 28, 1, 63))
    _write_idx(raw, "t10k", *_random_split(10, 28, 28, 1, 64))
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    assert str(path) in _one_line_error("MNIST", tmp_path, match)


def test_check_counts_the_training_images_per_class(tmp_path):
    images, labels = _random_split(40, 28, 28, 1, 65)  # 4 per class
    _mnist_npz(tmp_path, train=(images, labels))
    data.check("MNIST", tmp_path, per_class=4)
    _one_line_error("MNIST", tmp_path, r"MNIST/train.npz: class 0 has 4 training images, fewer than the 5 "
                    r"per class that ipc 5 needs", per_class=5, why="per class that ipc 5 needs")
    with pytest.raises(DataNotFoundError) as exc:
        data.check("MNIST", tmp_path / "none")
    assert "--download" not in str(exc.value)  # only a caller that has the flag (offers_download) names it


def test_a_tampered_cifar_batch_is_refused_without_running_code(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    witness = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {witness}",))

    for i, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        images, labels = _random_split(10, 32, 32, 3, seed=70 + i)
        entry = {"labels": labels.tolist(), "data": images.transpose(0, 3, 1, 2).reshape(10, -1)}
        if name == "data_batch_3":
            entry["data"] = Evil()
        with open(d / name, "wb") as f:
            pickle.dump(entry, f)
    message = _one_line_error("CIFAR10", tmp_path, r"data_batch_3: refused: it asks for (posix|os|nt)\.system")
    assert not witness.exists(), message


def test_a_cifar_batch_of_the_wrong_shape_is_refused(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        images, labels = _random_split(10, 32, 32, 3, seed=80 + i)
        entry = {"labels": labels.tolist(), "data": images.reshape(10, -1)[:, :100]}
        with open(d / name, "wb") as f:
            pickle.dump(entry, f)
    _one_line_error("CIFAR10", tmp_path, r"data_batch_1: not a CIFAR-10 batch: 'data' is \[10, 100\] uint8")
