"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021), batched on the images' device.

A strategy joins ops with ``_`` (default ``color_crop_cutout_flip_scale_rotate``). Each call applies
ONE op of the strategy, drawn at random, as the original's single-op mode does. The ops and their
ranges are the original's (its ``ParamDiffAug``), all differentiable in the images:
- color: brightness ``x + (u - 0.5)``, then saturation ``(x - m_c) * 2u + m_c`` (m_c: the mean over
  channels at each pixel), then contrast ``(x - m) * (u + 0.5) + m`` (m: the image's mean); 3 draws;
- crop: translate by integers in ``[-s, s]`` per axis, ``s = round(0.125 * side)``, zero fill;
- cutout: zero a square of side ``round(0.5 * side)`` centred at an integer position in ``[0, side]``
  (``[0, side - 1]`` for an odd square), clipped at the border;
- flip: mirror left-right with probability 0.5;
- scale: sampling grid scaled by ``(sx, sy)``, each uniform in ``[1/1.2, 1.2]``;
- rotate: uniform angle in ``[-15, 15]`` degrees;
scale and rotate resample bilinearly with zero padding (``affine_grid``/``grid_sample``,
``align_corners=False``, as the original's defaults). Zero is the dataset mean: images are normalised.

Two ways to draw, as the original's ``Siamese`` switch:
- ``siamese(real, syn, ...)`` (a matching step): per class, one op and ONE parameter set, shared by
  every image of the class's real batch and of its synthetic images (the original draws per image
  and then copies the first image's parameters over the batch);
- ``augment(images, ...)`` (training a network on synthetic images): one op per call, parameters
  drawn per image.
Every draw comes from an explicit ``torch.Generator``; nothing touches the global RNG.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# The strategy names live torch-free in .strategies; callers ask them here too, beside the ops.
from .strategies import (AUTO, DEFAULT_STRATEGY, NO_FLIP_DATASETS, NO_FLIP_STRATEGY, OPS,  # noqa: F401
                         STRATEGY_FORMS, check_strategy, is_strategy, resolve)

# How an evaluation strategy names DSA (DC's strategies have ops called crop and scale too).
EVAL_PREFIX = "dsa:"


@dataclass(frozen=True)
class DSAParams:
    """The original's ParamDiffAug."""
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


def is_eval_strategy(name: str) -> bool:
    return name.startswith(EVAL_PREFIX)


def _sizes(side: int, params: DSAParams) -> tuple[int, int]:
    """(crop shift, cutout side) for an image side, rounded half up as the original."""
    return int(side * params.ratio_crop_pad + 0.5), int(side * params.ratio_cutout + 0.5)


@functools.lru_cache(maxsize=None)
def _op_indices(strategy: str, device: torch.device) -> Tensor:
    """The strategy's ops as indices into OPS, on the device once (a copy per step would wait for it)."""
    return torch.tensor([OPS.index(o) for o in strategy.split("_")], device=device)


def draw(strategy: str, n: int, generator: torch.Generator, image_size: tuple[int, int],
         groups: int = 1, params: DSAParams = DSAParams()) -> dict[str, Tensor]:
    """Random parameters for ``n`` images in ``groups`` equal consecutive groups: one op per group
    (``op``, an index into OPS), every op's parameters per image. On the generator's device."""
    ops = strategy.split("_")
    dev = generator.device
    h, w = image_size
    (shift_h, cut_h), (shift_w, cut_w) = _sizes(h, params), _sizes(w, params)

    def rand(*shape):
        return torch.rand(shape, device=dev, generator=generator)

    def randint(low, high, *shape):
        return torch.randint(low, high, shape, device=dev, generator=generator)

    choice = randint(0, len(ops), groups)
    op = _op_indices(strategy, dev)[choice].repeat_interleave(n // groups)
    r = params.ratio_scale
    return {
        "op": op,
        "brightness": rand(n), "saturation": rand(n), "contrast": rand(n),
        "shift": torch.stack([randint(-shift_h, shift_h + 1, n), randint(-shift_w, shift_w + 1, n)], 1),
        "cutout": torch.stack([randint(0, h + 1 - cut_h % 2, n), randint(0, w + 1 - cut_w % 2, n)], 1),
        "flip": rand(n) < params.prob_flip,
        "scale": rand(n, 2) * (r - 1.0 / r) + 1.0 / r,
        "angle": (rand(n) - 0.5) * (2 * params.ratio_rotate * math.pi / 180),
    }


def repeat(d: dict[str, Tensor], times: int) -> dict[str, Tensor]:
    """Each drawn row repeated ``times`` times along the image axis (one row per class -> its batch)."""
    return {k: v.repeat_interleave(times, 0) for k, v in d.items()}


def apply(images: Tensor, d: dict[str, Tensor], strategy: str, params: DSAParams = DSAParams()) -> Tensor:
    """Image i gets op ``d['op'][i]`` with its parameters. Only the strategy's ops are computed."""
    ops = strategy.split("_")
    out = images
    chosen = d["op"].view(-1, 1, 1, 1)
    if "color" in ops:
        out = torch.where(chosen == OPS.index("color"), color(images, d["brightness"], d["saturation"],
                                                              d["contrast"], params), out)
    if "crop" in ops:
        out = torch.where(chosen == OPS.index("crop"), translate(images, d["shift"]), out)
    if "cutout" in ops:
        _, cut = _sizes(images.shape[2], params)
        _, cut_w = _sizes(images.shape[3], params)
        out = torch.where(chosen == OPS.index("cutout"), cutout(images, d["cutout"], (cut, cut_w)), out)
    if "flip" in ops:
        out = torch.where((chosen == OPS.index("flip")) & d["flip"].view(-1, 1, 1, 1), images.flip(3), out)
    if "scale" in ops or "rotate" in ops:
        # one resampling for both: each image's own matrix (identity for the other ops, not used)
        is_scale = (d["op"] == OPS.index("scale")).view(-1, 1, 1)
        theta = torch.where(is_scale, scale_matrix(d["scale"]), rotation_matrix(d["angle"])).to(images.dtype)
        warped = warp(images, theta)
        geometric = (d["op"] == OPS.index("scale")) | (d["op"] == OPS.index("rotate"))
        out = torch.where(geometric.view(-1, 1, 1, 1), warped, out)
    return out


def color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor, params: DSAParams) -> Tensor:
    x = x + (brightness.view(-1, 1, 1, 1) - 0.5) * params.brightness
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (saturation.view(-1, 1, 1, 1) * params.saturation) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (contrast.view(-1, 1, 1, 1) + params.contrast) + m


def translate(x: Tensor, shift: Tensor) -> Tensor:
    """out[n, :, i, j] = x[n, :, i + shift[n, 0], j + shift[n, 1]], zero outside the image."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device) + shift[:, :1]  # (n, h)
    cols = torch.arange(w, device=x.device) + shift[:, 1:]
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    idx = torch.arange(n, device=x.device).view(-1, 1, 1)
    picked = x[idx, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]].permute(0, 3, 1, 2)
    return picked * inside[:, None].to(x.dtype)


def cutout(x: Tensor, centre: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero rows [c0 - size//2, c0 - size//2 + size) x the same for columns, clipped to the image."""
    _, _, h, w = x.shape
    top = centre[:, :1] - size[0] // 2
    left = centre[:, 1:] - size[1] // 2
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    in_rows = (r >= top) & (r < top + size[0])  # (n, h)
    in_cols = (c >= left) & (c < left + size[1])
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return x * (~hole)[:, None].to(x.dtype)


def scale_matrix(scale: Tensor) -> Tensor:
    """(n, 2, 3) affine matrices [[sx, 0, 0], [0, sy, 0]]."""
    theta = torch.zeros(scale.shape[0], 2, 3, device=scale.device, dtype=scale.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0], scale[:, 1]
    return theta


def rotation_matrix(angle: Tensor) -> Tensor:
    """(n, 2, 3) affine matrices [[cos, -sin, 0], [sin, cos, 0]]."""
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    return torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)


def warp(x: Tensor, theta: Tensor) -> Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def siamese(real: Tensor, syn: Tensor, strategy: str, generator: torch.Generator,
            params: DSAParams = DSAParams()) -> tuple[Tensor, Tensor]:
    """Augment a matching step's batches: real (classes, batch, C, H, W) and syn (classes, ipc, C, H, W).
    Class c's real and synthetic images all get the same op with the same parameters."""
    if strategy == "none":
        return real, syn
    k = real.shape[0]
    per_class = draw(strategy, k, generator, tuple(real.shape[-2:]), groups=k, params=params)

    def on(batch: Tensor) -> Tensor:
        flat = batch.flatten(0, 1)
        return apply(flat, repeat(per_class, batch.shape[1]), strategy, params).view(batch.shape)

    return on(real), on(syn)


def augment(images: Tensor, strategy: str, generator: torch.Generator | Sequence[torch.Generator],
            params: DSAParams = DSAParams()) -> Tensor:
    """Augment a training batch: one op per call, parameters per image. With K generators, the
    images are K equal consecutive groups (K networks trained together), each drawn from its own
    generator exactly as it would be alone."""
    if strategy == "none" or images.shape[0] == 0:
        return images
    size = tuple(images.shape[-2:])
    if isinstance(generator, torch.Generator):
        d = draw(strategy, images.shape[0], generator, size, params=params)
    else:
        if images.shape[0] % len(generator):
            raise ValueError(f"{images.shape[0]} images do not split into {len(generator)} equal groups")
        m = images.shape[0] // len(generator)
        parts = [draw(strategy, m, g, size, params=params) for g in generator]
        d = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return apply(images, d, strategy, params)
