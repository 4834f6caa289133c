"""Gradient matching (docs/protocol.md, "Condensation by gradient matching (DC)"): the distances
between the gradients of the synthetic and the real loss, and the per-class matching loss DC and DSA
minimise (the paper's loop, and the batched one tested against it)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

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


def class_gradients_loss(net: nn.Module, real: Tensor, syn: Tensor, metric: str) -> Tensor:
    """Sum over classes of distance(grad of synthetic loss, grad of real loss): the paper's loop,
    kept as the reference that ``class_gradients_loss_fast`` is tested against.

    real: (classes, batch, C, H, W); syn: (classes, ipc, C, H, W).
    """
    params = [p for p in net.parameters() if p.requires_grad]
    loss = syn.new_zeros(())
    for c in range(real.shape[0]):
        target_real = torch.full((real.shape[1],), c, device=real.device)
        g_real = torch.autograd.grad(F.cross_entropy(net(real[c]), target_real), params)
        g_real = [g.detach() for g in g_real]
        target_syn = torch.full((syn.shape[1],), c, device=syn.device)
        g_syn = torch.autograd.grad(F.cross_entropy(net(syn[c]), target_syn), params, create_graph=True)
        loss = loss + distance(g_syn, g_real, metric)
    return loss


# Input values in one forward of real images where the classes' batches are taken together (DM's
# embedding, DC's batched real gradients), whole classes at a time. MNIST's and CIFAR-10's paper
# batches (2,560 images) stay one pass; CIFAR-100's and Tiny ImageNet's (25,600 and 51,200 images,
# whose first ConvNet layer alone would output 13 and 107 GB) go in passes of about 3 GB of it.
REAL_PASS_VALUES = 2**24


def class_passes(real: Tensor) -> tuple[Tensor, ...]:
    """``real`` (classes, batch, C, H, W) split along the classes into passes of at most
    ``REAL_PASS_VALUES`` input values (one class at least)."""
    return real.split(max(1, REAL_PASS_VALUES // max(1, real[0].numel())))


def real_gradients_batched(net: nn.Module, real: Tensor, params: list[Tensor]) -> list[Tensor]:
    """Every class's real-loss gradient from one forward of the classes' batches and one batched
    backward (``is_grads_batched``: the per-class losses' gradients, vmapped over the backward), in
    ``class_passes`` for a dataset with many classes. Returns per parameter (classes, *shape). For a
    GPU, where the per-class passes are launch-bound; valid when no layer mixes images of different
    classes (no BatchNorm in train mode)."""
    grads, first = [], 0
    for part in class_passes(real):
        c, b = part.shape[:2]
        logits = net(part.flatten(0, 1))
        targets = torch.arange(first, first + c, device=real.device).repeat_interleave(b)
        per_class = F.cross_entropy(logits, targets, reduction="none").view(c, b).mean(1)
        eye = torch.eye(c, device=real.device, dtype=per_class.dtype)
        grads.append(torch.autograd.grad(per_class, params, grad_outputs=eye, is_grads_batched=True))
        first += c
    return [torch.cat(per_param) for per_param in zip(*grads)]


def class_gradients_loss_fast(net: nn.Module, real: Tensor, syn: Tensor, metric: str,
                              batched_real: bool = False) -> Tensor:
    """The same loss as ``class_gradients_loss``, with the many small launches batched.

    The synthetic side (a handful of images per class, a gradient kept differentiable, a double
    backward) is launch-bound: one ``vmap`` over the classes does it in one pass, and another vmaps
    the distances. The real side stays one plain fwd+bwd per class: a class batch (256 images) is
    already big enough to fill the device, and vmapping it measured slower on CPU (per-class weight
    gradients become grouped convolutions) while holding every class's activations at once.
    ``batched_real`` computes it with ``real_gradients_batched`` instead (DC's default on
    CUDA only, where the per-class passes are launch-bound; not yet measured there).

    Valid when a class's gradient depends only on that class's images, i.e. no BatchNorm in train
    mode (batch statistics would mix the classes, and running-stat updates cannot be vmapped); such
    a network is sent to the reference loop. DC freezes BN before matching, so it never is.
    """
    if any(m.training for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        return class_gradients_loss(net, real, syn, metric)
    params = {k: p for k, p in net.named_parameters() if p.requires_grad}
    buffers = dict(net.named_buffers())
    if batched_real:
        g_real = real_gradients_batched(net, real, list(params.values()))
    else:
        g_real = []
        for c in range(real.shape[0]):
            target = torch.full((real.shape[1],), c, device=real.device)
            g_real.append(torch.autograd.grad(F.cross_entropy(net(real[c]), target), list(params.values())))
        g_real = [torch.stack(per_class) for per_class in zip(*g_real)]  # per parameter: (classes, *shape)

    def class_loss(p: dict, images: Tensor, label: Tensor) -> Tensor:
        logits = functional_call(net, (p, buffers), (images,))
        return F.cross_entropy(logits, label.expand(images.shape[0]))

    labels = torch.arange(syn.shape[0], device=syn.device)
    # differentiable w.r.t. syn: torch.func.grad composes with the outer autograd
    g_syn = vmap(grad(class_loss), in_dims=(None, 0, 0))(params, syn, labels)
    per_class_distance = vmap(lambda s, r: distance(s, r, metric))
    return per_class_distance([g_syn[k] for k in params], g_real).sum()
