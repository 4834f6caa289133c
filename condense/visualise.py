"""Image grids of synthetic sets, as the paper's Figures 2-3: one row per class."""
from __future__ import annotations

from pathlib import Path

from torchvision.utils import save_image

from .data import denormalise, info
from .files import replacing
from .synthetic import SyntheticSet


def save_grid(synthetic: SyntheticSet, path: str | Path) -> None:
    images = denormalise(synthetic.images.detach().cpu(), info(synthetic.dataset))
    order = synthetic.labels.cpu().argsort(stable=True)  # class blocks, one row each
    per_class = max(1, len(synthetic) // max(1, int(synthetic.labels.max()) + 1))
    with replacing(path) as tmp:
        save_image(images[order], tmp, format=Path(path).suffix[1:] or "png", nrow=per_class, padding=2)
