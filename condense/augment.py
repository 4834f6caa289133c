"""DC's evaluation-time augmentation, batched on the images' device.

Each image gets ONE op drawn at random from the strategy (``crop_scale_rotate`` for MNIST,
``crop_noise`` for a ConvNetBN evaluation model, ``none`` otherwise), as in the paper's code:
- crop: pad ``crop`` px with the batch's channel mean, take a random H x W window (offset 0..2*crop-1);
- scale: nearest-resize each side by a factor in [1-scale, 1+scale), centre crop/zero pad back;
- rotate: integer angle in [-rotate, rotate) about the centre, filled with the mean of channel means;
- noise: add ``noise`` * N(0, 1).
Crop and scale are exact index arithmetic (the same pixels the per-image code picks); rotate uses
bilinear sampling where the paper's code used scipy's cubic spline (sub-pixel difference only).
All randomness comes from the explicit generator, so a draw is reproducible.

Several independent trainings (the seeds of one evaluation) augment together: pass one generator per
group of images and each group gets exactly the draws and the fill it would get on its own, while the
pixel work runs once for the whole batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import diffaug
from .errors import unknown

STRATEGIES = ("none", "crop_scale_rotate", "crop_noise")
_OPS = ("crop", "scale", "rotate", "noise")

# One generator, or one per equal, consecutive group of images along the batch axis.
Generators = torch.Generator | Sequence[torch.Generator]


@dataclass(frozen=True)
class AugParams:
    crop: int = 4
    scale: float = 0.2
    rotate: int = 45
    noise: float = 0.001


def strategy_for(dataset: str, eval_model: str) -> str:
    """The paper's choice of augmentation when training an evaluation network."""
    if eval_model == "ConvNetBN":  # BN training on a handful of images needs it (DC's comment)
        return "crop_noise"
    if dataset == "MNIST":
        return "crop_scale_rotate"
    return "none"


def augment(images: Tensor, strategy: str, generator: Generators,
            params: AugParams = AugParams(), fill: Tensor | None = None) -> Tensor:
    """Return an augmented copy of ``images`` (N, C, H, W); ``fill`` (C,) overrides the batch mean.

    With a sequence of K generators, ``images`` is K equal consecutive groups and group k comes out
    exactly as ``augment(group_k, strategy, generator[k])`` would: its own draws and its own mean fill.
    """
    if diffaug.is_eval_strategy(strategy):  # a DSA/DM set is trained with DSA's augmentation
        return diffaug.augment(images, strategy[len(diffaug.EVAL_PREFIX):], generator)
    if strategy not in STRATEGIES:
        raise unknown("augmentation strategy", strategy, STRATEGIES)
    if strategy == "none" or images.shape[0] == 0:
        return images
    groups = 1 if isinstance(generator, torch.Generator) else len(generator)
    if images.shape[0] % groups:
        raise ValueError(f"{images.shape[0]} images do not split into {groups} equal groups")
    drawn = draw(images.shape, strategy, generator, params, images.device)
    return apply(images, strategy, drawn, groups, params, fill)


def draw(shape: tuple[int, ...], strategy: str, generator: Generators, params: AugParams = AugParams(),
         device=None) -> dict[str, Tensor]:
    """The random parameters ``augment`` draws for images of ``shape``, in the order it draws them
    (so drawing ahead leaves every generator where augmenting would): ``choice`` (N,) op index,
    then as the strategy needs ``offsets`` (2, N, 1), ``factors`` (2, N), ``angles`` (N,), ``noise``."""
    n, c, h, w = shape
    ops = [_OPS.index(o) for o in strategy.split("_")]
    which = _draw(torch.randint, generator, n, lambda m: (len(ops), (m,)), dim=0, device=device)
    # op index of each draw, mapped on the device: a lookup tensor copied from the host would be a
    # host sync per call on CUDA
    out = {"choice": sum((op * (which == j) for j, op in enumerate(ops)), torch.zeros_like(which))}
    if 0 in ops:
        out["offsets"] = _draw(torch.randint, generator, n, lambda m: (2 * params.crop, (2, m, 1)), 1, device)
    if 1 in ops:
        out["factors"] = _draw(torch.rand, generator, n, lambda m: ((2, m),), 1, device)
    if 2 in ops:
        out["angles"] = _draw(torch.randint, generator, n, lambda m: (-params.rotate, params.rotate, (m,)), 0, device)
    if 3 in ops:
        out["noise"] = _draw(torch.randn, generator, n, lambda m: ((m, c, h, w),), 0, device)
    return out


def apply(images: Tensor, strategy: str, drawn: dict[str, Tensor], groups: int = 1,
          params: AugParams = AugParams(), fill: Tensor | None = None) -> Tensor:
    """``augment`` with its random parameters given (``draw``): pure tensor work, no host sync and no
    random draw, so it can run inside a CUDA graph. ``groups``: equal groups, each filled with its mean."""
    if strategy == "none" or images.shape[0] == 0:
        return images
    n, c, h, w = images.shape
    ops = [_OPS.index(o) for o in strategy.split("_")]
    choice = drawn["choice"]
    if fill is None:  # each group's own channel means, per image: (N, C)
        fill = images.view(groups, n // groups, c, h * w).mean(dim=(1, 3)).repeat_interleave(n // groups, 0)
    out = images
    if 0 in ops:
        out = torch.where(_is(choice, 0), _crop(images, fill, params.crop, drawn["offsets"]), out)
    if 1 in ops:
        out = torch.where(_is(choice, 1), _scale(images, params.scale, drawn["factors"]), out)
    if 2 in ops:
        out = torch.where(_is(choice, 2), _rotate(images, fill.mean(-1), drawn["angles"]), out)
    if 3 in ops:
        out = torch.where(_is(choice, 3), images + params.noise * drawn["noise"], out)
    return out


def _draw(fn: Callable[..., Tensor], generator: Generators, n: int, args: Callable[[int], tuple],
          dim: int, device) -> Tensor:
    """``fn(*args(n))`` drawn from ``generator``; with K generators, K draws of n/K images each,
    concatenated along the image axis ``dim``, so each group consumes its generator as if alone."""
    if isinstance(generator, torch.Generator):
        return fn(*args(n), device=device, generator=generator)
    m = n // len(generator)
    return torch.cat([fn(*args(m), device=device, generator=g) for g in generator], dim)


def _is(choice: Tensor, op: int) -> Tensor:
    return (choice == op).view(-1, 1, 1, 1)


def _gather(images: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """out[n, :, i, j] = images[n, :, rows[n, i], cols[n, j]]."""
    n = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1)
    return images[n, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _crop(images: Tensor, mean: Tensor, crop: int, off: Tensor) -> Tensor:
    """Pad with ``mean`` ((C,) or per image (N, C)) and take the window at ``off`` (2, N, 1)."""
    n, c, h, w = images.shape
    dev = images.device
    padded = mean.reshape(-1, c, 1, 1).expand(n, c, h + 2 * crop, w + 2 * crop).clone()
    padded[:, :, crop:crop + h, crop:crop + w] = images
    rows = torch.arange(h, device=dev) + off[0]
    cols = torch.arange(w, device=dev) + off[1]
    return _gather(padded, rows, cols)


def _scale(images: Tensor, scale: float, unit: Tensor) -> Tensor:
    """Nearest-resize by factors ``1 - scale + 2 * scale * unit`` ((2, N) uniform draws)."""
    n, c, h, w = images.shape
    dev = images.device
    factors = unit * (2 * scale) + (1 - scale)
    # The paper's code scales both sides relative to H (square images in every dataset here).
    new = (factors * h).long()  # (2, n): resized height, width
    canvas = new.max(0).values.clamp(min=max(h, w))
    # offset of the output window inside the resized image, as the per-image code rounds it
    off_r = (canvas - h) // 2 - (canvas - new[0]) // 2
    off_c = (canvas - w) // 2 - (canvas - new[1]) // 2
    rr = torch.arange(h, device=dev) + off_r[:, None]  # row inside the resized image
    cc = torch.arange(w, device=dev) + off_c[:, None]
    valid = ((rr >= 0) & (rr < new[0, :, None]))[:, :, None] & ((cc >= 0) & (cc < new[1, :, None]))[:, None, :]
    # nearest interpolation: source = floor(dst * in / out)
    src_r = (rr.clamp(min=0) * h // new[0, :, None]).clamp(max=h - 1)
    src_c = (cc.clamp(min=0) * w // new[1, :, None]).clamp(max=w - 1)
    return _gather(images, src_r, src_c) * valid[:, None].to(images.dtype)


def _rotate(images: Tensor, fill: Tensor, degrees: Tensor) -> Tensor:
    """Rotate image i by degrees[i] about its centre; uncovered pixels get ``fill`` (scalar or (N,))."""
    angle = degrees.to(images.dtype) * (math.pi / 180)
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    fill = fill.reshape(-1, 1, 1, 1)
    # grid_sample pads with 0: shift so that 0 means "fill"
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
