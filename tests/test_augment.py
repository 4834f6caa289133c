import pytest
import torch
import torch.nn.functional as F

from condense.augment import _crop, _rotate, _scale, apply, augment, draw, strategy_for
from condense.errors import ConfigError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def scale_reference(image, h, w):
    """The paper's per-image scalefun for given resized sizes (h, w)."""
    c, H, W = image.shape
    tmp = F.interpolate(image[None], [h, w])[0]
    mhw = max(h, w, H, W)
    canvas = torch.zeros(c, mhw, mhw)
    r, q = (mhw - h) // 2, (mhw - w) // 2
    canvas[:, r:r + h, q:q + w] = tmp
    r, q = (mhw - H) // 2, (mhw - W) // 2
    return canvas[:, r:r + H, q:q + W]


def crop_reference(image, mean, crop, r, q):
    c, H, W = image.shape
    canvas = mean.view(c, 1, 1).expand(c, H + 2 * crop, W + 2 * crop).clone()
    canvas[:, crop:crop + H, crop:crop + W] = image
    return canvas[:, r:r + H, q:q + W]


def test_batched_scale_matches_the_per_image_code():
    images = torch.randn(16, 2, 28, 28)
    unit = torch.rand((2, 16), generator=gen(1))
    out = _scale(images, 0.2, unit)
    factors = unit * 0.4 + 0.8
    sizes = (factors * 28).long()
    for i in range(16):
        ref = scale_reference(images[i], int(sizes[0, i]), int(sizes[1, i]))
        assert torch.equal(out[i], ref), i


def test_batched_crop_matches_the_per_image_code():
    images = torch.randn(8, 3, 32, 32)
    mean = images.mean(dim=(0, 2, 3))
    off = torch.randint(8, (2, 8, 1), generator=gen(2))
    out = _crop(images, mean, 4, off)
    for i in range(8):
        ref = crop_reference(images[i], mean, 4, int(off[0, i]), int(off[1, i]))
        assert torch.equal(out[i], ref), i


def test_drawing_ahead_is_augmenting():
    """draw + apply is augment: same output, and the generator left where augment leaves it."""
    images = torch.randn(12, 1, 28, 28)
    g, h = gen(5), gen(5)
    drawn = draw(images.shape, "crop_scale_rotate", g, device=images.device)
    assert torch.equal(apply(images, "crop_scale_rotate", drawn), augment(images, "crop_scale_rotate", h))
    assert torch.equal(g.get_state(), h.get_state())


def test_one_op_per_image_and_reproducible():
    images = torch.randn(64, 1, 28, 28)
    a = augment(images, "crop_scale_rotate", gen(3))
    b = augment(images, "crop_scale_rotate", gen(3))
    assert torch.equal(a, b)
    assert a.shape == images.shape
    assert not torch.equal(a, images)
    noisy = augment(images, "crop_noise", gen(4))
    diff = (noisy - images).abs().flatten(1).max(1).values
    # noise changes an image by ~1e-3; a crop moves pixels by whole steps
    small = diff < 0.01
    assert 0 < small.sum() < 64


def test_rotate_known_angles_and_fill():
    images = torch.randn(3, 2, 8, 8)
    out = _rotate(images, torch.tensor(7.0), torch.tensor([0, 90, 45]))
    assert torch.allclose(out[0], images[0], atol=1e-5)
    assert any(torch.allclose(out[1], torch.rot90(images[1], k, dims=(1, 2)), atol=1e-4) for k in (1, -1))
    # at 45 degrees the corners fall outside the source and take the fill value
    assert torch.allclose(out[2, :, 0, 0], torch.full((2,), 7.0), atol=1e-4)


def test_none_returns_input_and_unknown_strategy_errors():
    images = torch.randn(4, 1, 28, 28)
    assert augment(images, "none", gen()) is images
    with pytest.raises(ConfigError, match="flip"):
        augment(images, "flip", gen())


def test_paper_strategy_choice():
    assert strategy_for("MNIST", "ConvNet") == "crop_scale_rotate"
    assert strategy_for("CIFAR10", "ConvNetBN") == "crop_noise"
    assert strategy_for("MNIST", "ConvNetBN") == "crop_noise"
    assert strategy_for("CIFAR10", "ConvNet") == "none"
