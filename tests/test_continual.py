"""Class-incremental learning with condensed memories (condense.continual, evaluation.continual):
CL_DM.py's class orders and steps, each step's set made from its classes alone, the memory as the
union of the steps so far, and its evaluation on the seen classes."""
import numpy as np
import pytest
import torch

from condense.baselines import select
from condense.continual import ClassSteps, class_order, memory, seen_test, step_images, to_global
from condense.errors import ConfigError
from evaluation import continual
from evaluation.train import EvalBudget


@pytest.mark.parametrize("num_classes", [10, 100])
def test_continual_class_order_is_cl_dm_s_and_leaves_numpy_s_global_state(num_classes):
    np.random.seed(1234)
    before = np.random.get_state()
    ours = [class_order(k, num_classes) for k in range(5)]
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    for k in range(5):
        np.random.seed(k)  # CL_DM.py's own form
        assert ours[k] == np.random.permutation(num_classes).tolist()
    assert ours == [class_order(k, num_classes) for k in range(5)]  # reproducible from the seed
    assert len({tuple(o) for o in ours}) == 5


def test_continual_steps_split_the_order_and_refuse_unequal_steps():
    steps = ClassSteps(100, 10, seed=3)
    order = class_order(3, 100)
    assert [c for t in range(1, 11) for c in steps.classes(t)] == order
    assert steps.seen(4) == order[:40] and steps.classes(4) == order[30:40]
    with pytest.raises(ConfigError, match="steps 3"):
        ClassSteps(100, 3, seed=0)
    with pytest.raises(ValueError, match="1..10"):
        steps.classes(0)


def test_continual_step_images_are_that_step_s_classes_relabelled(mnist_small):
    train, _ = mnist_small
    classes = [7, 2]
    part = step_images(train, classes)
    assert part.info.num_classes == 2 and part.info.class_names == ("7", "2") and part.info.name == "MNIST"
    for i, c in enumerate(classes):
        assert torch.equal(part.images[part.labels == i], train.images[train.labels == c])
    assert len(part) == int(((train.labels == 7) | (train.labels == 2)).sum())


def test_continual_memory_at_step_t_holds_the_classes_of_steps_1_to_t_ipc_each(mnist_small):
    train, _ = mnist_small
    steps, ipc = ClassSteps(10, 5, seed=1), 3
    sets = [to_global(select("random", step_images(train, steps.classes(t)), ipc, seed=t), steps.classes(t))
            for t in range(1, 6)]
    for t in range(1, 6):
        mem = memory(sets[:t])
        counts = torch.bincount(mem.labels, minlength=10)
        assert sorted(torch.nonzero(counts).flatten().tolist()) == sorted(steps.seen(t))
        assert counts[steps.seen(t)].tolist() == [ipc] * len(steps.seen(t))
        for image, label in zip(mem.images, mem.labels):  # each image is a training image of its label
            assert (train.images[train.labels == label] == image).flatten(1).all(1).any()


def test_continual_seen_test_holds_the_seen_classes_only_under_the_dataset_s_classes(mnist):
    _, test = mnist
    seen = [3, 8, 0, 5]
    part = seen_test(test, seen)
    assert part.info.num_classes == 10  # the head covers every class
    assert sorted(part.labels.unique().tolist()) == sorted(seen)
    assert len(part) == int(torch.isin(test.labels, torch.tensor(seen)).sum())


def test_continual_memory_is_trained_with_cl_dm_s_augmentation_and_tested_on_the_seen_classes(monkeypatch, mnist):
    _, test = mnist
    given = {}
    monkeypatch.setattr(continual, "evaluate", lambda synthetic, tested, model, seeds, budget, strategy:
                        given.update(tested=tested, strategy=strategy) or [0.0] * len(seeds))
    mem = memory([to_global(select("random", step_images(test, [4, 9]), 1, seed=0), [4, 9])])
    continual.evaluate_memory(mem, test, [4, 9], "ConvNet", [0])
    assert given["strategy"] == "dsa:color_crop_cutout_flip_scale_rotate"
    assert given["tested"].info.num_classes == 10 and set(given["tested"].labels.tolist()) == {4, 9}
    assert continual.memory_augmentation("MNIST", "auto") == "dsa:color_crop_cutout_scale_rotate"


@pytest.mark.slow
def test_continual_memory_evaluation_on_mnist_is_above_chance_at_first_and_last_step(mnist):
    train, test = mnist
    steps = ClassSteps(10, 5, seed=0)
    budget = EvalBudget(epochs=10, max_test=500)
    sets = []
    for t in range(1, 6):
        sets.append(to_global(select("random", step_images(train, steps.classes(t)), 10, seed=t), steps.classes(t)))
        if t in (1, 5):
            (acc,) = continual.evaluate_memory(memory(sets), test, steps.seen(t), "ConvNet", [t], budget, "auto")
            chance = 100.0 / len(steps.seen(t))
            assert acc > chance + 20, (t, acc)
