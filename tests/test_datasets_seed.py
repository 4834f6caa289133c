"""CIFAR-100 and Tiny ImageNet from small synthetic files in each layout; every network at 64x64;
a broken Tiny ImageNet folder is one line naming the file."""
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from condense import networks
from condense.data import DATASETS, load
from condense.errors import ConfigError

WNIDS = [f"n{i:08d}" for i in range(200)]


def cifar100(root, keys=bytes, per_class=(2, 1)):
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, k in zip(("train", "test"), per_class):
        y = np.repeat(np.arange(100), k)
        entry = {"data": rng.integers(0, 256, (len(y), 3072), dtype=np.uint8), "fine_labels": y.tolist(),
                 "coarse_labels": (y // 5).tolist()}
        with open(d / split, "wb") as f:
            pickle.dump({keys(k, "latin1") if keys is bytes else k: v for k, v in entry.items()}, f)
    return root


def tiny_folder(root):
    t = root / "tiny-imagenet-200"
    (t / "val" / "images").mkdir(parents=True)
    (t / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    lines = []
    for i, w in enumerate(WNIDS):
        (t / "train" / w / "images").mkdir(parents=True)
        Image.fromarray(pixels).save(t / "train" / w / "images" / f"{w}_0.JPEG")
        Image.fromarray(pixels).save(t / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n")
    (t / "val" / "val_annotations.txt").write_text("".join(lines))
    return t


def test_cifar100_is_the_originals_entry():
    c = DATASETS["CIFAR100"]
    assert (c.channels, c.image_size, c.num_classes) == (3, (32, 32), 100)
    assert (c.mean, c.std) == ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))
    assert len(set(c.class_names)) == 100 and c.class_names[:3] == ("apple", "aquarium_fish", "baby")
    t = DATASETS["TinyImageNet"]
    assert (t.channels, t.image_size, t.num_classes) == (3, (64, 64), 200)


@pytest.mark.parametrize("keys", [bytes, str])
def test_cifar100_python_layout_fine_labels(tmp_path, keys):
    train, test = load("CIFAR100", cifar100(tmp_path, keys))
    assert train.images.shape == (200, 3, 32, 32) and len(test) == 100
    assert train.labels.tolist() == np.repeat(np.arange(100), 2).tolist()  # fine, not coarse


def test_cifar100_npz_layout(tmp_path):
    d = tmp_path / "CIFAR100"
    d.mkdir()
    for split in ("train", "test"):
        np.savez(d / f"{split}.npz", images=np.zeros((100, 32, 32, 3), np.uint8), labels=np.arange(100))
    train, _ = load("CIFAR100", tmp_path)
    assert train.images.shape == (100, 3, 32, 32)


def test_a_cifar_pickle_that_would_run_code_is_refused(tmp_path):
    cifar100(tmp_path)
    with open(tmp_path / "cifar-100-python" / "train", "wb") as f:
        pickle.dump({"data": os.system, "fine_labels": []}, f)  # a global: unpickling would call into it
    with pytest.raises(ConfigError, match="refuses posix.system|refuses os.system|refuses nt.system"):
        load("CIFAR100", tmp_path)


def test_tiny_imagenet_folder_layout(tmp_path):
    tiny_folder(tmp_path)
    train, test = load("TinyImageNet", tmp_path)
    assert train.images.shape == (200, 3, 64, 64) and test.labels.tolist() == list(range(200))


def test_a_broken_tiny_imagenet_folder_names_the_file(tmp_path):
    t = tiny_folder(tmp_path / "a")
    (t / "val" / "images" / "val_5.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match="val_5.JPEG: not a readable image") as err:
        load("TinyImageNet", tmp_path / "a")
    assert "\n" not in str(err.value)
    t = tiny_folder(tmp_path / "b")
    for f in (t / "train" / WNIDS[7] / "images").iterdir():
        f.unlink()
    (t / "train" / WNIDS[7] / "images").rmdir()
    with pytest.raises(ConfigError, match=f"{WNIDS[7]}/images: no training images of class {WNIDS[7]}"):
        load("TinyImageNet", tmp_path / "b")


def test_tiny_imagenet_original_pt(tmp_path):
    data = {"classes": WNIDS, "images_train": torch.randint(0, 256, (400, 3, 64, 64), dtype=torch.uint8),
            "labels_train": torch.arange(200).repeat(2), "images_val": torch.zeros(200, 3, 64, 64, dtype=torch.uint8),
            "labels_val": torch.arange(200)}
    torch.save(data, tmp_path / "tinyimagenet.pt")
    train, test = load("TinyImageNet", tmp_path)
    assert train.images.shape == (400, 3, 64, 64) and len(test) == 200
    expected = (data["images_train"][0, 0, 0, 0] / 255.0 - 0.485) / 0.229
    assert torch.isclose(train.batch(slice(0, 1))[0, 0, 0, 0], expected, atol=1e-5)  # channel-first kept as it is
    torch.save({**data, "images_train": data["images_train"].float()}, tmp_path / "tinyimagenet.pt")
    with pytest.raises(ConfigError, match="images_train is .* torch.float32; the original's file holds uint8"):
        load("TinyImageNet", tmp_path)


FAST_AT_64 = ("ConvNet", "ConvNetD4", "MLP", "LeNet")  # the rest run in the slow tier (seconds each on a CPU)


@pytest.mark.parametrize("model", [m if m in FAST_AT_64 else pytest.param(m, marks=pytest.mark.slow)
                                   for m in networks.list_models()])
def test_every_network_takes_64x64(model):
    """ConvNet as the original: its feature size follows the image (8x8x128 at depth 3); the others,
    whose original code fixes 32x32 features, work their feature sizes out from the image too."""
    torch.manual_seed(0)
    net = networks.build(model, 3, 200, (64, 64))
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 200)
    if model == "ConvNet":
        assert net.classifier.in_features == 128 * 8 * 8
