"""Distances between the gradients of the synthetic and the real loss (docs/protocol.md, "Condensation by gradient matching (DC)")."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .errors import unknown

METRICS = ("ours", "mse", "cos")
_EPS = 1e-6  # added to the cosine denominator, as in the paper's code


def layer_distance(g_syn: Tensor, g_real: Tensor) -> Tensor:
    """The paper's layer-wise distance: sum over output nodes of 1 - cosine similarity.

    Weights are reshaped to (out, rest): conv out x in*h*w, layer norm C x H*W, linear as is.
    1-D tensors (biases, norm scales) carry no per-node structure and contribute 0.
    """
    if g_real.dim() == 1:
        return g_real.new_zeros(())
    g_syn = g_syn.reshape(g_syn.shape[0], -1)
    g_real = g_real.reshape(g_real.shape[0], -1)
    cos = (g_syn * g_real).sum(-1) / (g_syn.norm(dim=-1) * g_real.norm(dim=-1) + _EPS)
    return (1 - cos).sum()


def distance(g_syn: Sequence[Tensor], g_real: Sequence[Tensor], metric: str = "ours") -> Tensor:
    """Distance between two lists of per-parameter gradients (same order, same shapes)."""
    if metric == "ours":
        return sum((layer_distance(s, r) for s, r in zip(g_syn, g_real)), g_real[0].new_zeros(()))
    if metric not in METRICS:
        raise unknown("dis_metric", metric, METRICS)
    s = torch.cat([g.reshape(-1) for g in g_syn])
    r = torch.cat([g.reshape(-1) for g in g_real])
    if metric == "mse":
        return ((s - r) ** 2).sum()
    return 1 - (s * r).sum() / (s.norm() * r.norm() + _EPS)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise unknown("dis_metric", metric, METRICS)
    return metric
