"""The vmapped matching loss is the per-class reference loop, batched: same loss, same image gradient.

The comparisons run in float64, where the two differ by rounding only (~1e-14). In float32 the image
gradient through instance norm is itself only good to a few percent of its largest entry (measured
against float64, for the reference and the fast path alike), so float32 could not tell a bug from noise.
"""
import dataclasses

import pytest
import torch

from condense import matching
from condense.condensation import Budget, DCCondensation
from condense.condensation.dc import freeze_batchnorm_on
from condense.matching import class_gradients_loss, class_gradients_loss_fast
from condense.networks import build_network
from condense.synthetic import seeded_generator
from conftest import step_twice_second_without_sync


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # networks are built in the default dtype
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def train64(mnist_small, float64, device):
    train, _ = mnist_small
    return dataclasses.replace(train, images=train.images.double()).to(device)


def batches(train, ipc, n_real, seed=0):
    g = seeded_generator(seed, train.images.device)
    run = DCCondensation(train, "MLP", ipc, budget=Budget(outer_loop=1, inner_loop=1), seed=seed)
    real = train.images[run.sampler.sample(n_real, g)]
    syn = torch.randn((10, ipc, *real.shape[2:]), generator=g, dtype=real.dtype, device=real.device).requires_grad_(True)
    return real, syn


def loss_and_grad(fn, net, real, syn, metric):
    loss = fn(net, real, syn, metric)
    return loss.detach(), torch.autograd.grad(loss, syn)[0]


@pytest.mark.parametrize("model", ["ConvNetW16", "ConvNetW16BN", "MLP"])
@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_fast_matching_loss_equals_the_reference_loop(train64, model, metric, device):
    train = train64
    real, syn = batches(train, 2, 8)
    net = build_network(model, train, seeded_generator(1, device), device)
    if model.endswith("BN"):  # as Condensation.step does: BN statistics from real images, then frozen
        freeze_batchnorm_on(net, real.flatten(0, 1))
    ref_loss, ref_grad = loss_and_grad(class_gradients_loss, net, real, syn, metric)
    fast_loss, fast_grad = loss_and_grad(class_gradients_loss_fast, net, real, syn, metric)
    assert ref_grad.abs().max() > 0
    assert torch.allclose(fast_loss, ref_loss, rtol=1e-10, atol=0), (fast_loss, ref_loss)
    assert torch.allclose(fast_grad, ref_grad, rtol=0, atol=1e-11 * ref_grad.abs().max())


def test_fast_matching_loss_in_float32(mnist_small, device):
    """The default dtype: the loss agrees closely; the gradient as well as float32 allows."""
    train = mnist_small[0].to(device)
    real, syn = batches(train, 1, 16)
    net = build_network("ConvNet", train, seeded_generator(2, device), device)
    ref_loss, ref_grad = loss_and_grad(class_gradients_loss, net, real, syn, "ours")
    fast_loss, fast_grad = loss_and_grad(class_gradients_loss_fast, net, real, syn, "ours")
    assert torch.allclose(fast_loss, ref_loss, rtol=1e-4)
    assert torch.allclose(fast_grad, ref_grad, rtol=0, atol=1e-2 * ref_grad.abs().max())


def test_batchnorm_in_train_mode_uses_the_reference_loop(mnist_small):
    """Per-class batch statistics cannot be vmapped as one model; the fast path must not pretend."""
    train, _ = mnist_small
    real, syn = batches(train, 1, 8)
    net = build_network("ConvNetBN", train, seeded_generator(1), "cpu").train()
    ref = class_gradients_loss(net, real, syn, "ours")
    assert torch.equal(class_gradients_loss_fast(net, real, syn, "ours"), ref)


@pytest.mark.parametrize("model", ["ConvNetW16", "ConvNetW16BN"])
def test_condensation_fast_and_reference_steps_agree(train64, model):
    train = train64
    budget = Budget(iterations=2, batch_real=8, outer_loop=2, inner_loop=1, bn_real_per_class=4)
    runs = [DCCondensation(train, model, 2, "ours", budget, seed=4, fast=fast) for fast in (True, False)]
    for run in runs:
        run.step()
        run.step()
    fast, ref = (r.images.detach() for r in runs)
    assert not torch.equal(fast, runs[0].images.new_zeros(fast.shape))
    assert torch.allclose(fast, ref, rtol=0, atol=1e-10), (fast - ref).abs().max()
    assert torch.equal(runs[0].generator.get_state(), runs[1].generator.get_state())


def test_an_outer_iteration_never_waits_for_the_device(mnist_small, device):
    """Network seeds are drawn on the host, so on CUDA a whole step runs under sync debug mode
    "error" (which raises at any host synchronisation); on the CPU the run keeps one generator."""
    train = mnist_small[0].to(device)
    run = DCCondensation(train, "ConvNetW16", 2, budget=Budget(batch_real=8, outer_loop=2, inner_loop=1), seed=0)
    assert run.net_generator.device.type == "cpu"
    assert (run.net_generator is run.generator) == (device.type == "cpu")
    step_twice_second_without_sync(run, device)
    assert run.iteration == 2


@pytest.mark.parametrize("model", ["ConvNetW16", "ConvNetW16BN", "MLP"])
@pytest.mark.parametrize("classes_per_pass", [None, 3])
def test_batched_real_gradients_equal_the_per_class_loop(train64, model, device, classes_per_pass, monkeypatch):
    """One forward of all classes' real batches and one batched backward: the per-class gradients;
    also in passes of a few classes (10 = 3 + 3 + 3 + 1), as a dataset of many classes goes."""
    train = train64
    real, syn = batches(train, 2, 8)
    if classes_per_pass:
        monkeypatch.setattr(matching, "REAL_PASS_VALUES", classes_per_pass * real[0].numel())
        assert [len(p) for p in matching.class_passes(real)] == [3, 3, 3, 1]
    net = build_network(model, train, seeded_generator(1, device), device)
    if model.endswith("BN"):
        freeze_batchnorm_on(net, real.flatten(0, 1))
    ref_loss, ref_grad = loss_and_grad(class_gradients_loss, net, real, syn, "ours")
    loss, grad = loss_and_grad(lambda *a: class_gradients_loss_fast(*a, batched_real=True), net, real, syn, "ours")
    assert torch.allclose(loss, ref_loss, rtol=1e-10, atol=0), (loss, ref_loss)
    assert torch.allclose(grad, ref_grad, rtol=0, atol=1e-11 * ref_grad.abs().max())


def test_batched_real_gradients_are_the_default_on_cuda_only(mnist_small, device):
    run = DCCondensation(mnist_small[0].to(device), "MLP", 1, budget=Budget(outer_loop=1, inner_loop=1))
    assert run.matching_loss.keywords["batched_real"] == (device.type == "cuda")
