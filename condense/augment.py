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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import unknown

STRATEGIES = ("none", "crop_scale_rotate", "crop_noise")
_OPS = ("crop", "scale", "rotate", "noise")


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


def augment(images: Tensor, strategy: str, generator: torch.Generator,
            params: AugParams = AugParams(), fill: Tensor | None = None) -> Tensor:
    """Return an augmented copy of ``images`` (N, C, H, W); ``fill`` (C,) overrides the batch mean."""
    if strategy not in STRATEGIES:
        raise unknown("augmentation strategy", strategy, STRATEGIES)
    if strategy == "none" or images.shape[0] == 0:
        return images
    n, c, h, w = images.shape
    dev = images.device
    ops = [_OPS.index(o) for o in strategy.split("_")]
    choice = torch.tensor(ops, device=dev)[torch.randint(len(ops), (n,), device=dev, generator=generator)]
    mean = images.mean(dim=(0, 2, 3)) if fill is None else fill
    out = images
    if 0 in ops:
        out = torch.where(_is(choice, 0), _crop(images, mean, params.crop, generator), out)
    if 1 in ops:
        out = torch.where(_is(choice, 1), _scale(images, params.scale, generator), out)
    if 2 in ops:
        angles = torch.randint(-params.rotate, params.rotate, (n,), device=dev, generator=generator)
        out = torch.where(_is(choice, 2), _rotate(images, mean.mean(), angles), out)
    if 3 in ops:
        noisy = images + params.noise * torch.randn(images.shape, device=dev, generator=generator)
        out = torch.where(_is(choice, 3), noisy, out)
    return out


def _is(choice: Tensor, op: int) -> Tensor:
    return (choice == op).view(-1, 1, 1, 1)


def _gather(images: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """out[n, :, i, j] = images[n, :, rows[n, i], cols[n, j]]."""
    n = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1)
    return images[n, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _crop(images: Tensor, mean: Tensor, crop: int, g: torch.Generator) -> Tensor:
    n, c, h, w = images.shape
    dev = images.device
    padded = mean.view(1, c, 1, 1).expand(n, c, h + 2 * crop, w + 2 * crop).clone()
    padded[:, :, crop:crop + h, crop:crop + w] = images
    off = torch.randint(2 * crop, (2, n, 1), device=dev, generator=g)
    rows = torch.arange(h, device=dev) + off[0]
    cols = torch.arange(w, device=dev) + off[1]
    return _gather(padded, rows, cols)


def _scale(images: Tensor, scale: float, g: torch.Generator) -> Tensor:
    n, c, h, w = images.shape
    dev = images.device
    factors = torch.rand((2, n), device=dev, generator=g) * (2 * scale) + (1 - scale)
    # The paper's code scales both sides relative to H (square images in every dataset here).
    new = (factors * h).long()  # (2, n): resized height, width
    canvas = torch.maximum(new.max(0).values, torch.tensor(max(h, w), device=dev))
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
    """Rotate image i by degrees[i] about its centre; uncovered pixels get ``fill``."""
    angle = degrees.to(images.dtype) * (math.pi / 180)
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample pads with 0: shift so that 0 means "fill"
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
