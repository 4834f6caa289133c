"""DSA's differentiable augmentation: each op against a direct per-image computation, the draws'
ranges, the siamese property, and the evaluation-time (per-image) mode."""
import math

import pytest
import torch

from condense import augment as dc_augment
from condense import diffaug
from evaluation.augmentation import eval_augmentation
from condense.errors import ConfigError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_color_matches_a_direct_computation():
    x = torch.randn(3, 3, 5, 4)
    b, s, c = torch.rand(3), torch.rand(3), torch.rand(3)
    out = diffaug.color(x, b, s, c, diffaug.DSAParams())
    for i in range(3):
        y = x[i] + (b[i] - 0.5) * 1.0
        pixel_mean = sum(y[ch] for ch in range(3)) / 3
        y = (y - pixel_mean) * (s[i] * 2.0) + pixel_mean
        image_mean = y.sum() / y.numel()
        y = (y - image_mean) * (c[i] + 0.5) + image_mean
        torch.testing.assert_close(out[i], y)


def test_translate_matches_padding_and_clamped_indices():
    x = torch.randn(4, 2, 6, 5)
    shift = torch.tensor([[0, 0], [2, -1], [-3, 3], [6, 0]])
    out = diffaug.translate(x, shift)
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])
    for n in range(4):
        for i in range(6):
            for j in range(5):
                r = min(max(i + int(shift[n, 0]) + 1, 0), 7)
                q = min(max(j + int(shift[n, 1]) + 1, 0), 6)
                assert torch.equal(out[n, :, i, j], padded[n, :, r, q]), (n, i, j)


def test_cutout_matches_the_clamped_square():
    x = torch.randn(4, 2, 8, 8)
    size = (4, 3)
    centre = torch.tensor([[0, 0], [8, 8], [3, 5], [7, 1]])
    out = diffaug.cutout(x, centre, size)
    for n in range(4):
        ref = x[n].clone()
        for a in range(size[0]):
            for b in range(size[1]):
                r = min(max(int(centre[n, 0]) + a - size[0] // 2, 0), 7)
                q = min(max(int(centre[n, 1]) + b - size[1] // 2, 0), 7)
                ref[:, r, q] = 0
        assert torch.equal(out[n], ref), n


def bilinear_reference(image, theta):
    """grid_sample(affine_grid(theta)) with align_corners=False and zero padding, pixel by pixel."""
    c, h, w = image.shape
    out = torch.zeros_like(image)
    for i in range(h):
        for j in range(w):
            xn, yn = (2 * j + 1) / w - 1, (2 * i + 1) / h - 1
            xs = float(theta[0, 0]) * xn + float(theta[0, 1]) * yn + float(theta[0, 2])
            ys = float(theta[1, 0]) * xn + float(theta[1, 1]) * yn + float(theta[1, 2])
            px, py = ((xs + 1) * w - 1) / 2, ((ys + 1) * h - 1) / 2
            x0, y0 = math.floor(px), math.floor(py)
            for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                    if 0 <= yy < h and 0 <= xx < w:
                        out[:, i, j] += wy * wx * image[:, yy, xx]
    return out


def test_scale_and_rotate_match_a_direct_bilinear_sampler():
    x = torch.randn(4, 2, 7, 7)
    scale = torch.tensor([[1 / 1.2, 1.2], [1.1, 0.9], [1.0, 1.0], [1.2, 1 / 1.2]])
    angle = torch.tensor([-15.0, -3.0, 7.5, 15.0]) * math.pi / 180
    for theta in (diffaug.scale_matrix(scale), diffaug.rotation_matrix(angle)):
        out = diffaug.warp(x, theta)
        for n in range(4):
            torch.testing.assert_close(out[n], bilinear_reference(x[n], theta[n]), atol=1e-5, rtol=1e-5)
    assert torch.allclose(diffaug.rotation_matrix(angle)[1, :, :2],
                          torch.tensor([[math.cos(angle[1]), math.sin(3 * math.pi / 180)],
                                        [-math.sin(3 * math.pi / 180), math.cos(angle[1])]]))


def test_draw_ranges_are_the_originals():
    d = diffaug.draw(diffaug.DEFAULT_STRATEGY, 20000, gen(1), (28, 28))
    assert d["shift"].min() == -4 and d["shift"].max() == 4  # round(0.125 * 28)
    assert d["cutout"].min() == 0 and d["cutout"].max() == 28  # an even (14 px) square: centre in [0, 28]
    assert d["scale"].min() >= 1 / 1.2 and d["scale"].max() < 1.2
    assert d["angle"].abs().max() <= 15 * math.pi / 180 + 1e-6
    assert 0.45 < d["flip"].float().mean() < 0.55
    assert (d["op"] == d["op"][0]).all()  # one op per call
    odd = diffaug.draw("cutout", 20000, gen(2), (27, 27))  # 14 px square again: int(13.5 + 0.5)
    assert odd["cutout"].max() == 27
    d32 = diffaug.draw("crop_cutout", 20000, gen(3), (32, 32))
    assert d32["shift"].abs().max() == 4 and d32["cutout"].max() == 32


@pytest.mark.parametrize("op", diffaug.OPS)
def test_apply_gives_each_image_its_drawn_op(op):
    x = torch.randn(6, 3, 8, 8)
    d = diffaug.draw(diffaug.DEFAULT_STRATEGY, 6, gen(4), (8, 8))
    d["op"] = torch.full((6,), diffaug.OPS.index(op))
    d["flip"] = torch.tensor([True, False, True, True, False, True])
    expected = {
        "color": lambda: diffaug.color(x, d["brightness"], d["saturation"], d["contrast"], diffaug.DSAParams()),
        "crop": lambda: diffaug.translate(x, d["shift"]),
        "cutout": lambda: diffaug.cutout(x, d["cutout"], (4, 4)),
        "flip": lambda: torch.where(d["flip"].view(-1, 1, 1, 1), x.flip(3), x),
        "scale": lambda: diffaug.warp(x, diffaug.scale_matrix(d["scale"])),
        "rotate": lambda: diffaug.warp(x, diffaug.rotation_matrix(d["angle"])),
    }[op]()
    torch.testing.assert_close(diffaug.apply(x, d, diffaug.DEFAULT_STRATEGY), expected)


def test_siamese_gives_a_class_one_draw_for_its_real_and_synthetic_images():
    k, batch, ipc = 10, 6, 2
    syn = torch.randn(k, ipc, 1, 12, 12, requires_grad=True)
    # every real image of class c is a copy of synthetic image 0 of class c
    real = syn.detach()[:, :1].expand(k, batch, 1, 12, 12).clone()
    out_real, out_syn = diffaug.siamese(real, syn, diffaug.DEFAULT_STRATEGY, gen(5))
    for c in range(k):
        for j in range(batch):
            assert torch.equal(out_real[c, j], out_syn[c, 0].detach()), (c, j)
    changed = [not torch.equal(out_real[c, 0], real[c, 0]) for c in range(k)]
    assert sum(changed) >= k // 2  # the draws do something (flip may leave an image as it is)
    out_syn.sum().backward()
    assert syn.grad is not None and torch.isfinite(syn.grad).all() and syn.grad.abs().sum() > 0


def test_siamese_classes_draw_independently():
    real = torch.randn(1, 1, 1, 32, 32).expand(40, 3, 1, 32, 32).clone()  # shifts in [-4, 4]^2
    out, _ = diffaug.siamese(real, real[:, :1].clone(), "crop", gen(6))
    distinct = {tuple(out[c, 0].flatten().tolist()) for c in range(40)}
    assert len(distinct) > 10


def test_training_augmentation_draws_per_image():
    x = torch.randn(1, 1, 32, 32).expand(64, 1, 32, 32).clone()
    out = diffaug.augment(x, "crop", gen(7))
    assert len({tuple(o.flatten().tolist()) for o in out}) > 20


def test_generator_groups_augment_as_if_alone():
    x = torch.randn(12, 3, 8, 8)
    together = diffaug.augment(x, diffaug.DEFAULT_STRATEGY, [gen(10), gen(11), gen(12)])
    alone = torch.cat([diffaug.augment(x[4 * i:4 * i + 4], diffaug.DEFAULT_STRATEGY, gen(10 + i)) for i in range(3)])
    assert torch.equal(together, alone)


def test_evaluation_strategy_dispatches_from_dc_augment():
    x = torch.randn(8, 1, 28, 28)
    name = eval_augmentation("DSA", "CIFAR10", "ConvNet", diffaug.DEFAULT_STRATEGY)
    assert torch.equal(dc_augment.augment(x, name, gen(8)), diffaug.augment(x, diffaug.DEFAULT_STRATEGY, gen(8)))
    assert eval_augmentation("DSA", "CIFAR10", "ConvNet", "none") == "none"  # DC's rule for CIFAR10


@pytest.mark.parametrize("bad", ["color_blur", "crop_crop", "", "Color"])
def test_bad_strategies_are_config_errors(bad):
    with pytest.raises(ConfigError, match="DSA strategy"):
        diffaug.check_strategy(bad)


def test_auto_strategy_is_the_readme_choice_per_dataset():
    # the seed README's DSA table: no flip for the digit datasets
    assert diffaug.resolve("auto", "MNIST") == diffaug.resolve("auto", "SVHN") == "color_crop_cutout_scale_rotate"
    assert diffaug.resolve("auto", "CIFAR10") == diffaug.resolve("auto", "FashionMNIST") == diffaug.DEFAULT_STRATEGY
    assert diffaug.resolve("crop_flip", "MNIST") == "crop_flip"
    with pytest.raises(ConfigError, match="'auto_crop'.*unknown op 'auto'"):
        diffaug.resolve("auto_crop", "MNIST")
