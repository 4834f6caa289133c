"""Same pixels, same numbers: MNIST's pixels stored in other layouts (no channel axis, Fortran order,
big-endian labels, torchvision's IDX files) load as the same tensors, strides included, and give
bit-identical condensed sets and accuracies."""
import numpy as np
import pytest
import torch

from conftest import data_root
from condense import data

N_TRAIN, N_TEST = 200, 100  # images of MNIST's test split: every class is in each part


@pytest.fixture(scope="module")
def pixels():
    with np.load(data_root() / "MNIST" / "test.npz") as f:
        images, labels = f["images"][:N_TRAIN + N_TEST], f["labels"][:N_TRAIN + N_TEST]
    return {"train": (images[:N_TRAIN], labels[:N_TRAIN]), "test": (images[N_TRAIN:], labels[N_TRAIN:])}


def _idx(folder, split, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape[:3]
    (folder / f"{split}-images-idx3-ubyte").write_bytes(
        (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, h, w)) + images.tobytes())
    (folder / f"{split}-labels-idx1-ubyte").write_bytes(
        (0x0801).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


LAYOUTS = {
    "N x 28 x 28 x 1": lambda im, lb: (im, lb),
    "N x 28 x 28": lambda im, lb: (im[..., 0], lb),
    "Fortran order": lambda im, lb: (np.asfortranarray(im), np.asfortranarray(lb)),
    "big-endian labels, no channel axis": lambda im, lb: (im[..., 0].astype(">u1"), lb.astype(">i8")),
    "a strided view": lambda im, lb: (np.concatenate([im, im], axis=3)[..., ::2], lb[::-1][::-1]),
}


def loaded(tmp_path, pixels, layout):
    """MNIST's slice written in ``layout`` (a LAYOUTS key, or "IDX") under a root of its own, loaded."""
    root = tmp_path / layout.replace(" ", "_").replace(",", "")
    for split, name in (("train", "train"), ("test", "t10k")):
        images, labels = pixels[split]
        if layout == "IDX":
            _idx(root / "MNIST" / "raw", name, images[..., 0], labels)
            continue
        (root / "MNIST").mkdir(parents=True, exist_ok=True)
        images, labels = LAYOUTS[layout](images, labels)
        np.savez(root / "MNIST" / f"{split}.npz", images=images, labels=labels)
    return data.load("MNIST", root)


def test_every_layout_loads_the_same_tensors_with_the_same_strides(tmp_path, pixels):
    want_train, want_test = loaded(tmp_path, pixels, "N x 28 x 28 x 1")
    for layout in [*LAYOUTS, "IDX"]:
        train, test = loaded(tmp_path, pixels, layout)
        for got, want in ((train, want_train), (test, want_test)):
            assert torch.equal(got.images, want.images) and torch.equal(got.labels, want.labels), layout
            assert got.images.stride() == want.images.stride() and got.labels.dtype == torch.int64, layout
            batch, want_batch = got.batch(torch.arange(16)), want.batch(torch.arange(16))
            assert batch.stride() == want_batch.stride() and torch.equal(batch, want_batch), layout


def test_the_shared_mnist_loads_as_before(mnist, pixels):
    """The project's own MNIST files are already in the one layout: its tensors are made as before
    (an N x H x W x C array's channels moved second), strides included."""
    _, test = mnist
    images, labels = pixels["train"]
    want = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    assert test.images.stride()[1:] == want.stride()[1:] and torch.equal(test.labels[:N_TRAIN], torch.from_numpy(labels))
    assert torch.equal(test.images[:N_TRAIN], data.normalise(want, test.info))


@pytest.mark.slow
def test_the_same_pixels_in_other_layouts_give_bit_identical_sets_and_accuracies(tmp_path, pixels):
    from condense.condensation import Budget, DCCondensation, run_condensation
    from evaluation.protocol import evaluate
    from evaluation.train import EvalBudget

    outcomes = {}
    for layout in ["N x 28 x 28 x 1", "N x 28 x 28", "Fortran order", "big-endian labels, no channel axis", "IDX"]:
        train, test = loaded(tmp_path, pixels, layout)
        run = DCCondensation(train, "ConvNet", 1, budget=Budget(iterations=2, batch_real=8, outer_loop=2,
                                                                inner_loop=1), seed=0, init="real")
        synthetic = run_condensation(run)
        accs = evaluate(synthetic, test, "ConvNet", [0, 1], EvalBudget(epochs=3))
        outcomes[layout] = (synthetic.images, accs)
    images, accs = outcomes.pop("N x 28 x 28 x 1")
    for layout, (other_images, other_accs) in outcomes.items():
        assert torch.equal(other_images, images) and other_accs == accs, layout
