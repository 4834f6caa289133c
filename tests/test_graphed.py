"""The static (CUDA-graph) evaluation step is the serial reference: same draws, losses and weights.

On the CPU its maths runs eagerly (``capture=False``); with DC_TEST_DEVICE=cuda the same test replays
it as a captured CUDA graph (benchmarks/gpu_checks.sh)."""
import pytest
import torch

from condense.networks import build_network
from condense.synthetic import SyntheticSet, seeded_generator
from evaluation import graphed, protocol
from evaluation.protocol import evaluate
from evaluation.train import EvalBudget, train_network

SEEDS = (3, 7, 11)


def real_subset(train, ipc):
    idx = torch.cat([torch.nonzero(train.labels == c).flatten()[:ipc] for c in range(10)])
    return SyntheticSet(train.images[idx], train.labels[idx], "MNIST")


def nets_for(model, train, device):
    gens = [seeded_generator(s, device) for s in SEEDS]
    return [build_network(model, train, g, device) for g in gens], gens


@pytest.mark.slow
@pytest.mark.parametrize("model,strategy", [("ConvNetW32", "crop_scale_rotate"), ("MLP", "none"),
                                            ("ConvNetW32BN", "none")])  # BN: each seed's running statistics too
def test_static_step_matches_serial_trainings(mnist_small, device, model, strategy):
    train, _ = mnist_small
    syn = real_subset(train, 1).to(device)
    epochs = 6  # 7 epochs of one step: the eager warm-up, the lr cut (epoch 5) and, on CUDA, replays
    budget = EvalBudget(epochs=epochs)
    serial, serial_gens = nets_for(model, train, device)
    static, static_gens = nets_for(model, train, device)
    serial_losses = torch.stack([train_network(net, syn.images, syn.labels, budget, epochs, strategy, g)
                                 for net, g in zip(serial, serial_gens)])
    static_losses = graphed.train_networks_static(static, syn.images, syn.labels, budget, epochs, strategy,
                                                  static_gens, capture=device.type == "cuda")
    assert static_losses.shape == (3, 7)
    assert torch.allclose(static_losses, serial_losses, rtol=1e-4, atol=1e-5)
    # BN over 10 images amplifies float32 rounding (the vmapped trainer matches to 1e-9 in float64:
    # test_speed_eval); the static step's hand-written SGD adds its own rounding
    tol = {"rtol": 1e-3, "atol": 1e-3} if "BN" in model else {"rtol": 1e-4, "atol": 1e-5}
    for a, b in zip(serial, static):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.allclose(p, q, **tol), name
        for (name, p), q in zip(a.named_buffers(), b.buffers()):
            assert torch.allclose(p.float(), q.float(), **tol), name  # running statistics written back
    for g, h in zip(serial_gens, static_gens):
        assert torch.equal(g.get_state(), h.get_state())  # every seed drew what it draws alone
    assert not torch.allclose(static_losses[0], static_losses[1])


def test_only_static_shapes_are_supported(mnist_small):
    train, _ = mnist_small
    assert graphed.supported(10, EvalBudget(), "crop_scale_rotate")
    assert not graphed.supported(500, EvalBudget(), "crop_scale_rotate")  # ipc 50: two batch sizes
    assert not graphed.supported(10, EvalBudget(), "crop_noise")  # noise: drawn per pixel
    syn = real_subset(train, 1)
    nets, gens = nets_for("MLP", train, "cpu")
    with pytest.raises(ValueError, match="crop_noise"):
        graphed.train_networks_static(nets, syn.images, syn.labels, EvalBudget(epochs=1), 1, "crop_noise", gens)
    with pytest.raises(ValueError, match="CUDA"):
        graphed.train_networks_static(nets, syn.images, syn.labels, EvalBudget(epochs=1), 1, "none", gens,
                                      capture=True)


def test_evaluate_replays_graphs_on_cuda_only(mnist_small, monkeypatch, device):
    """The CPU path is unchanged: vectorised seeds there still train with train_networks."""
    train, test = mnist_small
    calls = []
    # the fakes return a finite (K, steps) loss history, as the real trainers do
    monkeypatch.setattr(graphed, "train_networks_graphed",
                        lambda nets, *a, **k: calls.append("static") or torch.zeros(len(nets), 1))
    monkeypatch.setattr(protocol, "train_networks", lambda nets, *a: calls.append("vmap") or torch.zeros(len(nets), 1))
    evaluate(real_subset(train, 1), test.to(device), "ConvNetW32", [0, 1], EvalBudget(epochs=1, max_test=10),
             vectorised=True)
    assert calls == (["vmap"] if device.type == "cpu" else ["static"])
