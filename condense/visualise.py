"""Image grids of synthetic sets, as the paper's Figures 2-3: a column per class, headed by its name.

Images are denormalised and clipped to [0, 1] as the original saves them, and each pixel is
repeated (nearest, no smoothing) so that a 28-pixel digit is readable at print size.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .data import denormalise, info
from .files import replacing
from .synthetic import SyntheticSet

PAD = 2  # white pixels between images
MIN_SIDE = 96  # an image is upscaled by the smallest integer that makes it at least this many pixels


def class_grid(synthetic: SyntheticSet) -> tuple[np.ndarray, list[float]]:
    """The set as one (H, W) or (H, W, 3) array in [0, 1] on white: a column per class of its
    dataset, the class's images top to bottom; and the x centre of each column."""
    ds = info(synthetic.dataset)
    images = denormalise(synthetic.images.detach().cpu().float(), ds)
    labels = synthetic.labels.cpu()
    per_class = [images[labels == c] for c in range(ds.num_classes)]
    channels, h, w = images.shape[1:]
    scale = max(1, math.ceil(MIN_SIDE / max(h, w)))
    side_h, side_w = h * scale, w * scale
    rows = max(1, max(len(p) for p in per_class))
    grid = torch.ones(channels, rows * (side_h + PAD) + PAD, ds.num_classes * (side_w + PAD) + PAD)
    for j, block in enumerate(per_class):
        x = PAD + j * (side_w + PAD)
        for i, image in enumerate(block):
            y = PAD + i * (side_h + PAD)
            grid[:, y:y + side_h, x:x + side_w] = image.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    centres = [PAD + j * (side_w + PAD) + side_w / 2 for j in range(ds.num_classes)]
    array = grid.permute(1, 2, 0).numpy()
    return (array[..., 0] if channels == 1 else array), centres


def draw_grid(ax, synthetic: SyntheticSet, title: str | None = None) -> None:
    """The set's ``class_grid`` on a matplotlib axis, pixel-exact, each column labelled with its class."""
    grid, centres = class_grid(synthetic)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    names = info(synthetic.dataset).class_names
    ax.set_xticks(centres, names, rotation=90 if max(map(len, names)) > 3 else 0, fontsize=7)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8, loc="left")


def save_grid(synthetic: SyntheticSet, path: str | Path, title: str | None = None, dpi: int = 100) -> None:
    """``draw_grid`` as a figure of its own, one figure pixel per grid pixel (a labelled grid, a
    column per class)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window
    import matplotlib.pyplot as plt

    grid, _ = class_grid(synthetic)
    height, width = grid.shape[:2]
    fig = plt.figure(figsize=(width / dpi, height / dpi + 0.8))
    ax = fig.add_axes((0, 0, 1, height / (height + 0.8 * dpi)))
    draw_grid(ax, synthetic, title)
    try:
        with replacing(path) as tmp:  # a figure is whole or not there
            fig.savefig(tmp, format=Path(path).suffix[1:] or "png", dpi=dpi, bbox_inches="tight",
                        metadata={"Software": None})
    finally:
        plt.close(fig)
