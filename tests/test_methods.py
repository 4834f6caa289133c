"""DSA and DM as runs of the Condensation machinery: DM's loss by hand and against the original's
per-class loop, DSA's siamese matching step, resume, non-finite stops, and DSA evaluation."""
import copy
import dataclasses

import pytest
import torch

from condense import diffaug, matching, methods
from condense.condensation import Budget, DMBudget, DMCondensation, DSACondensation, distribution_matching_loss
from condense.errors import NonFiniteLossError
from condense.matching import class_gradients_loss
from condense.networks import build_network
from condense.synthetic import seeded_generator
from evaluation.augmentation import for_set
from conftest import step_twice_second_without_sync

TINY_DM = DMBudget(iterations=3, batch_real=8)
TINY_DSA = Budget(iterations=2, batch_real=8, outer_loop=2, inner_loop=1)
SMALL = "ConvNetW16D1"  # the wiring, not the network, is under test: keep the steps cheap


def test_dm_defaults_are_main_dm_py():
    b = DMBudget()
    assert (b.iterations, b.batch_real, b.lr_img, b.momentum_img) == (20000, 256, 1.0, 0.5)
    assert b.loops(50) == (1, 0) and b.image_lr("MLP") == 1.0


def test_dm_loss_by_hand():
    real = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [2.0, 2.0]]])  # (2 classes, 2 images, 2)
    syn = torch.tensor([[[0.0, 1.0]], [[1.0, 3.0]]], requires_grad=True)
    # class 0: mean (2, 3) - (0, 1) -> 4 + 4; class 1: mean (1, 1) - (1, 3) -> 0 + 4
    loss = distribution_matching_loss(lambda x: x, real, syn)
    assert loss.item() == 12.0
    loss.backward()
    assert syn.grad.tolist() == [[[-4.0, -4.0]], [[0.0, 4.0]]]  # 2 (mean_syn - mean_real)


def test_dm_loss_matches_the_per_class_loop_without_batchnorm(mnist_small):
    train, _ = mnist_small
    net = build_network(SMALL, train, seeded_generator(0), "cpu")  # instance norm, as ConvNet
    net.requires_grad_(False)
    real = train.images[:40].view(10, 4, 1, 28, 28)
    syn = torch.randn(10, 2, 1, 28, 28, requires_grad=True)
    batched = distribution_matching_loss(net.embed, real, syn)
    loop = sum(((net.embed(real[c]).mean(0) - net.embed(syn[c]).mean(0)) ** 2).sum() for c in range(10))
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-4)
    g_batched, = torch.autograd.grad(batched, syn)
    g_loop, = torch.autograd.grad(loop, syn)
    torch.testing.assert_close(g_batched, g_loop, rtol=1e-4, atol=1e-6)


def test_dm_embeds_many_classes_a_few_at_a_time(mnist_small, monkeypatch):
    """CIFAR-100's and Tiny ImageNet's real batches are embedded in passes of a few classes: the
    same loss and image gradient as one pass (float rounding apart)."""
    train, _ = mnist_small
    net = build_network(SMALL, train, seeded_generator(0), "cpu").requires_grad_(False)
    real = train.images[:40].view(10, 4, 1, 28, 28)
    syn = torch.randn(10, 2, 1, 28, 28, requires_grad=True)
    whole = distribution_matching_loss(net.embed, real, syn)
    monkeypatch.setattr(matching, "REAL_PASS_VALUES", 4 * real[0].numel())
    assert [len(p) for p in matching.class_passes(real)] == [4, 4, 2]
    passes = distribution_matching_loss(net.embed, real, syn)
    torch.testing.assert_close(passes, whole)
    torch.testing.assert_close(torch.autograd.grad(passes, syn)[0], torch.autograd.grad(whole, syn)[0])


def test_dm_embeds_batchnorm_models_over_all_classes_at_once(mnist_small, monkeypatch):
    """The original's BN branch: batch statistics over the real images of every class."""
    train, _ = mnist_small
    net = build_network("ConvNetBN", train, seeded_generator(0), "cpu").train().requires_grad_(False)
    real = train.images[:40].view(10, 4, 1, 28, 28)
    syn = torch.randn(10, 1, 1, 28, 28)
    expected = ((net.embed(real.flatten(0, 1)).view(10, 4, -1).mean(1)
                 - net.embed(syn.flatten(0, 1)).view(10, 1, -1).mean(1)) ** 2).sum()
    torch.testing.assert_close(distribution_matching_loss(net.embed, real, syn, one_pass=True), expected)
    stepped = []
    for elements in (matching.REAL_PASS_VALUES, 1):  # a BN network's step is one pass whatever the limit
        monkeypatch.setattr(matching, "REAL_PASS_VALUES", elements)
        run = methods.start("DM", train, "ConvNetW16BN", 1, TINY_DM, seed=0)
        run.step()
        stepped.append(run.images.detach())
    assert torch.equal(*stepped)


@pytest.mark.parametrize("method, budget", [("DM", TINY_DM),
                                            pytest.param("DSA", TINY_DSA, marks=pytest.mark.slow)])
def test_runs_are_deterministic_resumable_and_tagged(mnist_small, method, budget):
    train, _ = mnist_small
    a = methods.start(method, train, SMALL, 2, budget, seed=3)
    start = a.images.detach().clone()
    a.step()
    state = copy.deepcopy(a.state_dict())  # the live tensors move on with the run
    for _ in range(budget.iterations - 1):
        a.step()
    assert not torch.equal(a.images, start)
    resumed = methods.start(method, train, SMALL, 2, budget, seed=99)
    resumed.load_state_dict(state)
    for _ in range(budget.iterations - 1):
        resumed.step()
    assert torch.equal(a.images, resumed.images)
    other = methods.start(method, train, SMALL, 2, budget, seed=4)
    assert not torch.equal(other.images, start)  # init real: another seed, other images
    s = a.synthetic()
    assert s.meta["method"] == method and s.meta["dsa_strategy"] == diffaug.DEFAULT_STRATEGY
    assert for_set(s.meta, "MNIST", SMALL) == diffaug.EVAL_PREFIX + diffaug.DEFAULT_STRATEGY


def test_dsa_matching_step_augments_real_and_synthetic_with_one_draw(mnist_small):
    train, _ = mnist_small
    run = DSACondensation(train, SMALL, 1, budget=TINY_DSA, seed=0, fast=False)
    net = build_network(SMALL, train, seeded_generator(1), "cpu")
    real = train.images[:40].view(10, 4, 1, 28, 28)
    syn = run.images.view(10, 1, 1, 28, 28)
    twin = torch.Generator().set_state(run.generator.get_state())
    expected = class_gradients_loss(net, *diffaug.siamese(real, syn, run.dsa_strategy, twin), "ours")
    torch.testing.assert_close(run.matching_loss(net, real, syn, "ours"), expected)
    assert run.inner_augment is not None
    assert methods.start("DC", train, SMALL, 1, TINY_DSA).inner_augment is None


def test_the_table_says_which_sets_start_from_real_images():
    from condense.methods import METHODS

    assert [METHODS[m].real_images(10) for m in ("DC", "DSA", "DM", "random", "herding", "whole")] == \
        [0, 10, 10, 10, 10, 0]
    assert METHODS["DC"].real_images(10, "real") == 10 and METHODS["DSA"].real_images(10, "noise") == 0


def test_a_non_finite_loss_stops_the_run(mnist_small):
    train, _ = mnist_small
    run = DMCondensation(train, "ConvNet", 1, budget=TINY_DM, seed=0)
    with torch.no_grad():
        run.images.fill_(float("nan"))
    run.step()
    with pytest.raises(NonFiniteLossError, match="matching loss is nan at outer iteration 0"):
        run.check_finite()


def test_dsa_and_dm_sets_are_evaluated_with_dsa_augmentation(mnist_small, monkeypatch):
    from evaluation.protocol import evaluate
    from evaluation.train import EvalBudget

    train, test = mnist_small
    calls = []
    original = diffaug.augment
    monkeypatch.setattr(diffaug, "augment", lambda x, s, g, **kw: calls.append(s) or original(x, s, g, **kw))
    run = methods.start("DM", train, "ConvNet", 1, TINY_DM, seed=0)
    budget = EvalBudget(epochs=2, max_test=100)
    evaluate(run.synthetic(), test, "ConvNet", [0], budget)
    assert calls == [diffaug.DEFAULT_STRATEGY] * 3  # one batch per epoch, epochs + 1 epochs as the original
    calls.clear()
    dc = methods.start("DC", train, "ConvNet", 1, TINY_DSA, seed=0).synthetic()
    evaluate(dc, test, "ConvNet", [0], budget)
    assert calls == []
    assert budget.epochs_for("dsa:" + diffaug.DEFAULT_STRATEGY) == 2
    assert dataclasses.replace(budget, epochs=None).epochs_for("dsa:" + diffaug.DEFAULT_STRATEGY) == 1000


@pytest.mark.parametrize("method, budget", [("DM", TINY_DM),
                                            pytest.param("DSA", TINY_DSA, marks=pytest.mark.slow)])
def test_a_step_never_waits_for_the_device(mnist_small, device, method, budget):
    """On CUDA (DC_TEST_DEVICE=cuda) a whole DSA/DM step runs under sync debug mode "error":
    augmentation draws and op choices stay on the device."""
    train = mnist_small[0].to(device)
    run = methods.start(method, train, SMALL, 2, budget, seed=0)
    step_twice_second_without_sync(run, device)
    assert run.iteration == 2
