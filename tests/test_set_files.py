"""Sets made elsewhere: every format reads to the same normalised set, every bad set is one line
naming its file (evaluation/set_files.py), and --augment's choice (evaluation/augmentation.py)."""
import numpy as np
import pytest
import torch

from condense.data import info, normalise
from condense.errors import ConfigError
from condense.synthetic import SyntheticSet
from evaluation import set_files
from evaluation.augmentation import for_choice

MNIST = info("MNIST")


def pixels(ipc=1, seed=0):
    """uint8 N x H x W x C MNIST-shaped pixels and labels 0..9, ipc per class."""
    g = np.random.default_rng(seed)
    return g.integers(0, 256, (10 * ipc, 28, 28, 1), dtype=np.uint8), np.repeat(np.arange(10), ipc)


def normalised(raw):
    return normalise(torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous(), MNIST)


def test_every_format_reads_to_the_same_normalised_set(tmp_path):
    raw, labels = pixels()
    want = normalised(raw)
    np.savez(tmp_path / "nhwc.npz", images=raw, labels=labels)
    np.savez(tmp_path / "nchw.npz", images=raw.transpose(0, 3, 1, 2), labels=labels)
    np.savez(tmp_path / "nhw.npz", images=raw[..., 0], labels=labels)
    torch.save({"images": want, "labels": torch.tensor(labels)}, tmp_path / "float.pt")
    SyntheticSet(want, torch.tensor(labels), "MNIST", {"method": "DSA", "dsa_strategy": "crop"}).save(tmp_path / "ours.pt")
    torch.save({"data": [[want, torch.tensor(labels)], [want + 1, torch.tensor(labels)]]},
               tmp_path / "res_DM_MNIST_ConvNet_1ipc.pt")
    for name in ("nhwc.npz", "nchw.npz", "nhw.npz", "float.pt", "ours.pt"):
        (s,) = set_files.read(tmp_path / name, "MNIST")
        assert torch.equal(s.images, want) and s.labels.tolist() == labels.tolist(), name
        assert s.images.dtype == torch.float32 and s.labels.dtype == torch.int64
    assert set_files.read(tmp_path / "ours.pt", "MNIST")[0].meta["method"] == "DSA"  # what made it travels
    original = set_files.read(tmp_path / "res_DM_MNIST_ConvNet_1ipc.pt", "MNIST")
    assert len(original) == 2 and torch.equal(original[1].images, want + 1)  # one set per experiment
    assert original[0].meta["method"] == "DM" and original[1].meta["index"] == 1


def bad(tmp_path, name, **arrays):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **arrays)
    else:
        torch.save(arrays.get("content", arrays), path)
    return path


@pytest.mark.parametrize("make, words", [
    (lambda p: bad(p, "soft.npz", images=pixels()[0], labels=np.eye(10, dtype=np.float32)), "soft labels"),
    (lambda p: bad(p, "range.npz", images=pixels()[0], labels=np.arange(10) + 5), "labels range 5..14"),
    (lambda p: bad(p, "class.npz", images=pixels()[0], labels=np.zeros(10, dtype=np.int64)), "no image of class 1"),
    (lambda p: bad(p, "shape.npz", images=np.zeros((10, 3, 32, 32), np.float32), labels=np.arange(10)),
     "MNIST needs float N x 1 x 28 x 28"),
    (lambda p: bad(p, "count.npz", images=pixels()[0], labels=np.arange(9)), "10 images but 9 labels"),
    (lambda p: bad(p, "nolabels.npz", images=pixels()[0]), "no array labels"),
    (lambda p: bad(p, "frac.pt", images=torch.zeros(10, 1, 28, 28), labels=torch.arange(10) + 0.5), "non-integer"),
    (lambda p: bad(p, "res_DC_CIFAR10_ConvNet_1ipc.pt", content={"data": [[torch.zeros(10, 1, 28, 28), torch.arange(10)]]}),
     "says CIFAR10"),
    (lambda p: bad(p, "pairs.pt", content={"data": [torch.zeros(3)]}), "not a list of [images, labels] pairs"),
    (lambda p: (p / "text.pt").write_text("not torch") and p / "text.pt", "cannot read as a torch file"),
    (lambda p: p / "absent.npz", "no such file"),
    (lambda p: (p / "set.png").write_bytes(b"x") and p / "set.png", "expected .pt, .pth, .npz"),
])
def test_a_bad_set_is_one_line_naming_its_file(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as err:
        set_files.read(path, "MNIST")
    message = str(err.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message, message


def test_non_finite_values_are_refused_in_the_experiment_that_has_them(tmp_path):
    good = normalised(pixels()[0])
    worse = good.clone()
    worse[3, 0, 0, 0] = float("inf")
    path = tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt"
    torch.save({"data": [[good, torch.arange(10)], [worse, torch.arange(10)]]}, path)
    with pytest.raises(ConfigError, match=r"\(set 1 of 2\): 1 image value\(s\) are nan or infinite"):
        set_files.read(path, "MNIST")


def test_the_original_codes_file_with_its_numpy_accuracies_is_read(tmp_path):
    """main.py saves {'data': ..., 'accs_all_exps': {model: [np.float64, ...]}}: numpy scalars."""
    good = normalised(pixels()[0])
    path = tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt"
    torch.save({"data": [[good, torch.arange(10)]], "accs_all_exps": {"ConvNet": [np.float64(0.7055)]}}, path)
    (s,) = set_files.read(path, "MNIST")
    assert torch.equal(s.images, good) and s.meta["method"] == "DC"


def test_a_file_holding_objects_is_refused_without_running_them(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"images": torch.zeros(10, 1, 28, 28), "labels": torch.arange(10), "x": Exploit()}, path)
    with pytest.raises(ConfigError, match="cannot read as a torch file of tensors"):
        set_files.read(path, "MNIST")
    assert not Exploit.ran
    np.savez(tmp_path / "evil.npz", images=np.array([Exploit()], dtype=object), labels=np.arange(10))
    with pytest.raises(ConfigError, match="cannot read as .npz"):
        set_files.read(tmp_path / "evil.npz", "MNIST")
    assert not Exploit.ran


class Exploit:
    ran = False

    def __reduce__(self):
        return (Exploit.mark, ())

    @staticmethod
    def mark():
        Exploit.ran = True


def test_augment_auto_follows_the_sets_method_and_none_and_dsa_are_what_they_say():
    from condense.augment import strategy_for

    assert for_choice("auto", {}, "MNIST", "ConvNet") == strategy_for("MNIST", "ConvNet")  # DC's rule
    assert for_choice("auto", {"method": "DC"}, "MNIST", "ConvNet") == strategy_for("MNIST", "ConvNet")
    assert for_choice("auto", {"method": "DSA"}, "MNIST", "ConvNet").startswith("dsa:")
    assert for_choice("none", {"method": "DSA"}, "MNIST", "ConvNet") == "none"
    assert for_choice("dsa", {}, "CIFAR10", "ConvNet") == "dsa:color_crop_cutout_flip_scale_rotate"
    assert for_choice("dsa", {"dsa_strategy": "crop"}, "CIFAR10", "ConvNet") == "dsa:crop"


def test_float_images_in_0_1_are_read_with_a_warning_that_they_may_not_be_normalised(tmp_path, caplog):
    raw, labels = pixels()
    torch.save({"images": torch.from_numpy(raw).permute(0, 3, 1, 2) / 255.0, "labels": torch.tensor(labels)},
               tmp_path / "unit.pt")
    (s,) = set_files.read(tmp_path / "unit.pt", "MNIST")
    assert float(s.images.max()) <= 1 and "all lie in [0, 1]" in caplog.text
    caplog.clear()
    set_files.read(write_normalised(tmp_path, raw, labels), "MNIST")
    assert caplog.text == ""
    torch.save({"images": torch.from_numpy(raw).permute(0, 3, 1, 2) / 255.0, "labels": torch.tensor(labels) + 1},
               tmp_path / "refused.pt")
    with pytest.raises(ConfigError, match="labels range 1..10"):
        set_files.read(tmp_path / "refused.pt", "MNIST")
    assert caplog.text == ""  # a refused set says one line, no warning before it


def write_normalised(tmp_path, raw, labels):
    torch.save({"images": normalised(raw), "labels": torch.tensor(labels)}, tmp_path / "normalised.pt")
    return tmp_path / "normalised.pt"
