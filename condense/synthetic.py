"""A synthetic set (condensed, selected or read from files) and the seeding every method and
evaluation draws from: generators seeded per run, and seeds derived from a run's names."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .files import write_torch


@dataclass
class SyntheticSet:
    """A small labelled image set (condensed or selected), normalised like its dataset."""
    images: Tensor
    labels: Tensor
    dataset: str
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "SyntheticSet":
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def save(self, path: str | Path) -> None:
        write_torch(path, {"images": self.images.detach().cpu(), "labels": self.labels.cpu(),
                           "dataset": self.dataset, "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path) -> "SyntheticSet":
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(d["images"], d["labels"], d["dataset"], d["meta"])


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (e.g. a cell id and an experiment index)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
