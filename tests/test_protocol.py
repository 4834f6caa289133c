import pytest
import torch

from condense import networks
from condense.errors import ConfigError
from condense.condensation import DMBudget
from condense.networks import build_network
from condense.synthetic import SyntheticSet, seeded_generator
from evaluation.pools import EVAL_MODES, POOLS, eval_iterations, eval_models, self_eval_model
from evaluation import train as trainer
from evaluation.protocol import evaluate
from evaluation.train import EvalBudget, schedule

ONE_EPOCH = EvalBudget(epochs=1, max_test=64)


def real_subset(train, ipc):
    """ipc real images per class: a set that networks can learn from."""
    idx = torch.cat([torch.nonzero(train.labels == c).flatten()[:ipc] for c in range(10)])
    return SyntheticSet(train.images[idx], train.labels[idx], "MNIST")


def test_paper_defaults():
    b = EvalBudget()
    assert (b.lr, b.momentum, b.weight_decay, b.batch_train) == (0.01, 0.9, 5e-4, 256)
    assert b.epochs_for("none") == 300 and b.epochs_for("crop_scale_rotate") == 1000
    assert b.max_test is None


def test_smoke_epochs_shrink_for_big_sets_only():
    """--smoke stays short beyond ipc 1 and on big images: a set holding more values than MNIST ipc 1
    trains proportionally fewer epochs; MNIST ipc 1 keeps its 100. Explicit epochs
    (--epoch_eval_train) are kept."""
    from condense.data import DATASETS
    from orchestrator.sweep.config import Sweep
    from orchestrator.cli.seed import parse_args, sweep_for

    smoke = EvalBudget.smoke()
    values = lambda name, ipc: ipc * DATASETS[name].num_classes * DATASETS[name].image_values  # noqa: E731
    epochs = {(name, ipc): smoke.epochs_for("none", values(name, ipc))
              for name, ipc in (("MNIST", 1), ("MNIST", 10), ("MNIST", 50), ("CIFAR10", 1), ("CIFAR100", 1),
                                ("TinyImageNet", 1))}
    assert epochs == {("MNIST", 1): 100, ("MNIST", 10): 10, ("MNIST", 50): 2, ("CIFAR10", 1): 25,
                      ("CIFAR100", 1): 2, ("TinyImageNet", 1): 1}
    assert EvalBudget().epochs_for("none", values("TinyImageNet", 50)) == 300  # the paper's budget: no cap
    asked = sweep_for(parse_args(["--dataset", "TinyImageNet", "--smoke", "--epoch_eval_train", "7"])).eval_budget
    assert asked.epochs_for("none", values("TinyImageNet", 1)) == 7
    assert "max_train_values" not in Sweep("s").comparable()["eval_budget"]  # older runs' records still match


def test_pools_and_modes():
    assert POOLS["M"] == ("MLP", "ConvNet", "LeNet", "AlexNet", "VGG11", "ResNet18")
    assert eval_models("N", "ConvNet") == ["ConvNetNN", "ConvNetBN", "ConvNetLN", "ConvNetIN", "ConvNetGN"]
    assert self_eval_model("ConvNetBN") == "ConvNet"
    assert self_eval_model("VGG11BN") == "VGG11"
    assert self_eval_model("ResNet18BN_AP") == "ResNet18"
    assert eval_models("S", "LeNet") == ["LeNet"]
    assert eval_iterations("S", 1000) == [0, 500, 1000]
    assert eval_iterations("M", 1000) == [1000]
    # DM as main_DM.py: every 2000 iterations; the last one too when it is not a multiple
    dm = DMBudget()
    assert eval_iterations("S", dm.iterations, dm.eval_every) == list(range(0, 20001, 2000))
    assert eval_iterations("S", 4500, dm.eval_every) == [0, 2000, 4000, 4500]
    assert eval_iterations("M", dm.iterations, dm.eval_every) == [20000]
    assert eval_iterations("S", 50, DMBudget.smoke().eval_every) == [0, 25, 50]
    with pytest.raises(ConfigError, match="Q"):
        eval_models("Q", "ConvNet")


@pytest.mark.parametrize("model", sorted({m for pool in POOLS.values() for m in pool} | {"ConvNetASwishBN"}))
def test_every_pool_member_trains_and_tests(mnist_small, model):
    assert networks.is_model(model)
    train, test = mnist_small
    accs = evaluate(real_subset(train, 1), test, model, seeds=[0], budget=ONE_EPOCH)
    assert len(accs) == 1 and 0 <= accs[0] <= 100


@pytest.mark.slow  # over 2 s on 2 cores
def test_evaluate_is_seeded_and_learns(mnist_small):
    train, test = mnist_small
    syn = real_subset(train, 10)
    budget = EvalBudget(epochs=30, max_test=500)
    a = evaluate(syn, test, "ConvNetW32", seeds=[0, 1], budget=budget, strategy="none")
    b = evaluate(syn, test, "ConvNetW32", seeds=[0, 1], budget=budget, strategy="none")
    assert a == b
    assert a[0] != a[1]
    assert min(a) > 50  # 100 real images train a ConvNet well beyond chance (10 %)


def originals_lrs(epochs, lr=0.01):
    """Per epoch, the rate the original's evaluate_synset trains with (its loop, restated)."""
    out = []
    for ep in range(epochs + 1):
        out.append(lr)
        if ep == epochs // 2 + 1:
            lr *= 0.1
    return out


@pytest.mark.parametrize("epochs", [0, 1, 2, 5, 6, 1000])
def test_schedule_is_the_originals(epochs):
    total, decay = schedule(epochs)
    ours = [0.01 if ep < decay else 0.01 * 0.1 for ep in range(total)]
    assert ours == pytest.approx(originals_lrs(epochs))
    assert schedule(1000) == (1001, 502)  # 1001 epochs, decay after epoch 501


@pytest.mark.parametrize("vectorised", [False, True])
def test_both_trainers_follow_the_schedule(mnist_small, monkeypatch, vectorised):
    """10 images are one batch: each epoch is one optimiser step, so steps per rate are epochs per rate."""
    train, _ = mnist_small
    syn = real_subset(train, 1)
    optimisers = []  # [lr, steps taken]
    make = trainer.sgd

    def spy(params, lr, budget):
        opt, record = make(params, lr, budget), [lr, 0]
        optimisers.append(record)
        opt.register_step_post_hook(lambda *_: record.__setitem__(1, record[1] + 1))
        return opt

    monkeypatch.setattr(trainer, "sgd", spy)
    gens = [seeded_generator(s) for s in (0, 1)]
    nets = [build_network("ConvNetW32", train, g, "cpu") for g in gens]
    if vectorised:
        trainer.train_networks(nets, syn.images, syn.labels, EvalBudget(), 6, "none", gens)
    else:
        trainer.train_network(nets[0], syn.images, syn.labels, EvalBudget(), 6, "none", gens[0])
    assert [lr for lr, _ in optimisers] == pytest.approx([0.01, 0.001])
    assert [steps for _, steps in optimisers] == [5, 2]  # epochs 0-4, then 5-6: 7 epochs in all
