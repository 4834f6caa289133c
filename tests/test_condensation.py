import dataclasses

import pytest
import torch

from condense.errors import ConfigError, NonFiniteLossError
from condense.condensation import Budget, DCCondensation, condense
from condense.matching import class_gradients_loss
from condense.networks import build_network
from condense.synthetic import SyntheticSet, seeded_generator

TINY = Budget(iterations=2, batch_real=8)


def test_paper_defaults():
    b = Budget()
    assert (b.iterations, b.batch_real, b.batch_train, b.lr_net, b.momentum_img) == (1000, 256, 256, 0.01, 0.5)
    assert b.image_lr("ConvNet") == 0.1 and b.image_lr("MLP") == 0.01
    assert [b.loops(i) for i in (1, 10, 20, 30, 40, 50)] == [(1, 1), (10, 50), (20, 25), (30, 20), (40, 15), (50, 10)]
    with pytest.raises(ConfigError, match="7"):
        b.loops(7)
    assert Budget(outer_loop=3, inner_loop=2).loops(7) == (3, 2)


def test_smoke_caps_the_loops_but_keeps_ipc_1():
    b = Budget.smoke()
    assert [b.loops(i) for i in (1, 10, 50)] == [(1, 1), (2, 1), (2, 1)]
    assert Budget(max_outer_loop=4).loops(10) == (4, 50) and Budget(max_inner_loop=3).loops(1) == (1, 1)
    assert Budget(outer_loop=30, inner_loop=20, max_outer_loop=2, max_inner_loop=5).loops(7) == (2, 5)


@pytest.mark.slow  # over 2 s on 2 cores
def test_deterministic_for_a_seed(mnist_small):
    train, _ = mnist_small
    a = condense(train, "ConvNet", 1, "ours", TINY, seed=5)
    b = condense(train, "ConvNet", 1, "ours", TINY, seed=5)
    c = condense(train, "ConvNet", 1, "ours", TINY, seed=6)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    assert a.labels.tolist() == list(range(10))


@pytest.mark.slow  # over 2 s on 2 cores
def test_resume_from_state_dict_is_bit_identical(mnist_small):
    train, _ = mnist_small
    budget = Budget(iterations=4, batch_real=8, outer_loop=2, inner_loop=1)
    straight = condense(train, "ConvNetW32", 2, "ours", budget, seed=1)
    first = DCCondensation(train, "ConvNetW32", 2, "ours", dataclasses.replace(budget, iterations=2), seed=1)
    first.step()
    first.step()
    state = first.state_dict()
    resumed = DCCondensation(train, "ConvNetW32", 2, "ours", budget, seed=999)
    resumed.load_state_dict(state)
    resumed.step()
    resumed.step()
    assert torch.equal(straight.images, resumed.synthetic().images)


def test_real_init_takes_images_of_the_right_class(mnist_small):
    train, _ = mnist_small
    run = DCCondensation(train, "MLP", 2, init="real", budget=Budget(outer_loop=1, inner_loop=1), seed=0)
    for img, label in zip(run.images.detach(), run.labels):
        match = (train.images == img).flatten(1).all(1).nonzero().flatten()
        assert len(match) >= 1 and train.labels[match[0]] == label


@pytest.mark.parametrize("model", ["ConvNetBN", "MLP"])
@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_step_with_inner_loop_runs_and_changes_images(mnist_small, model, metric):
    train, _ = mnist_small
    budget = Budget(iterations=1, batch_real=4, outer_loop=2, inner_loop=1, bn_real_per_class=4)
    run = DCCondensation(train, model, 2, metric, budget, seed=0)
    before = run.images.detach().clone()
    run.step()
    assert not torch.equal(before, run.images.detach())
    assert torch.isfinite(run.images).all() and run.mean_loss() > 0


@pytest.mark.slow  # over 2 s on 2 cores
def test_condensation_lowers_matching_loss_on_real_mnist(mnist_small):
    """The matching loss on held-out networks and fixed real batches drops after a few iterations."""
    train, _ = mnist_small
    budget = Budget(iterations=8, batch_real=16)
    run = DCCondensation(train, "ConvNet", 1, "ours", budget, seed=0)
    g = seeded_generator(123)
    judges = [build_network("ConvNet", train, g, "cpu") for _ in range(3)]
    real = train.images[run.sampler.sample(16, g)]

    def held_out_loss():
        syn = run.images.detach().view(10, 1, *run.images.shape[1:])
        return sum(float(class_gradients_loss(net, real, syn, "ours").detach()) for net in judges)

    before = held_out_loss()
    while run.iteration < budget.iterations:
        run.step()
    after = held_out_loss()
    assert after < 0.95 * before, (before, after)


def test_synthetic_set_save_load_roundtrip(tmp_path):
    s = SyntheticSet(torch.randn(20, 1, 28, 28), torch.arange(10).repeat_interleave(2), "MNIST", {"ipc": 2})
    s.save(tmp_path / "s.pt")
    t = SyntheticSet.load(tmp_path / "s.pt")
    assert torch.equal(s.images, t.images) and torch.equal(s.labels, t.labels)
    assert t.dataset == "MNIST" and t.meta == {"ipc": 2}


def test_bad_arguments_raise_config_errors(mnist_small):
    train, _ = mnist_small
    for kwargs, bad in [({"ipc": 0}, "0"), ({"metric": "l3"}, "l3"), ({"init": "zeros"}, "zeros"),
                        ({"model": "NoSuchNet"}, "NoSuchNet")]:
        args = {"train": train, "model": "ConvNet", "ipc": 1, **kwargs}
        with pytest.raises(ConfigError, match=bad):
            DCCondensation(**args)


def test_real_init_needs_ipc_images_of_every_class(mnist_small):
    train, _ = mnist_small
    keep = (train.labels != 3) | (torch.arange(len(train)) == int((train.labels == 3).nonzero()[0]))
    short = type(train)(train.images[keep], train.labels[keep], train.info)
    loops = Budget(outer_loop=1, inner_loop=1)
    DCCondensation(short, "ConvNet", 1, init="real", budget=loops)
    DCCondensation(short, "ConvNet", 2, init="noise", budget=loops)
    with pytest.raises(ConfigError, match="init real starts from 2 training images per class, but the smallest "
                                          "class of MNIST has 1"):
        DCCondensation(short, "ConvNet", 2, init="real", budget=loops)


@pytest.mark.parametrize("lr", [{"lr_img": 1e308}, {"lr_net": 1e39}])
def test_a_learning_rate_beyond_float32_is_the_divergence_error(mnist_small, lr):
    train, _ = mnist_small
    with pytest.raises(NonFiniteLossError, match=r"lr 1e\+(308|39) is beyond the range of float32.*diverges"):
        DCCondensation(train, "ConvNet", 1, budget=Budget(**lr))
