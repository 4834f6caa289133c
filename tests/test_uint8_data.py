"""A dataset held as uint8 pixels (Tiny ImageNet) and normalised batch by batch computes exactly what
the same dataset held normalised does: the batches, every method's steps (real batches, BatchNorm
freezing, init from real images), coreset selection, the reference network and test accuracy."""
import dataclasses

import pytest
import torch

from condense import baselines, methods
from condense.condensation import Budget, DMBudget
from condense.data import DATASETS, ImageSet, load, normalise
from condense.networks import build_network
from condense.synthetic import seeded_generator
from conftest import step_twice_second_without_sync
from evaluation.protocol import evaluate
from evaluation.reference import ReferenceBudget, for_selection, train_reference
from evaluation.train import EvalBudget, test_accuracy as accuracy  # not collected as a test

# Tiny ImageNet's entry (64x64, its mean/std, uint8) cut to 4 classes: the steps stay cheap
TINY4 = dataclasses.replace(DATASETS["TinyImageNet"], num_classes=4, class_names=("a", "b", "c", "d"))
SMALL = "ConvNetW16D1"


def pair(n_per_class=6, seed=0):
    """The same fake Tiny-ImageNet-like set twice: held as uint8 and held normalised."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (4 * n_per_class, 3, 64, 64), dtype=torch.uint8, generator=g)
    labels = torch.arange(4).repeat(n_per_class)
    return ImageSet(pixels, labels, TINY4), ImageSet(normalise(pixels, TINY4), labels.clone(), TINY4)


def test_tiny_imagenet_is_held_as_uint8_and_the_others_as_float(tmp_path):
    assert [n for n, d in DATASETS.items() if d.uint8] == ["TinyImageNet"]
    data = {"images_train": torch.randint(0, 256, (400, 3, 64, 64), dtype=torch.uint8),
            "labels_train": torch.arange(200).repeat(2),
            "images_val": torch.randint(0, 256, (200, 3, 64, 64), dtype=torch.uint8), "labels_val": torch.arange(200)}
    torch.save(data, tmp_path / "tinyimagenet.pt")
    train, test = load("TinyImageNet", tmp_path)
    assert train.images.dtype == test.images.dtype == torch.uint8
    assert torch.equal(train.images, data["images_train"])
    everything = normalise(data["images_train"], train.info)  # what the up-front conversion held
    idx = torch.tensor([5, 0, 399, 5])
    assert train.batch(idx).dtype == torch.float32 and torch.equal(train.batch(idx), everything[idx])
    assert torch.equal(train.batch(slice(10, 300)), everything[10:300])
    assert torch.equal(test.batch(slice(None)), normalise(data["images_val"], test.info))


def test_batches_are_bit_identical_on_the_device(device):
    u8, fl = pair()
    u8, fl = u8.to(device), fl.to(device)
    assert u8.images.dtype == torch.uint8  # moved, not converted
    idx = torch.randperm(len(u8), device=device)
    assert torch.equal(u8.batch(idx), fl.batch(idx))
    assert torch.equal(u8.batch(slice(3, 17)), fl.batch(slice(3, 17)))


@pytest.mark.parametrize("method, model, budget, init", [
    ("DC", "ConvNetW16D1BN", Budget(iterations=2, batch_real=4, outer_loop=2, inner_loop=1), "noise"),  # BN frozen on real images
    ("DSA", SMALL, Budget(iterations=2, batch_real=4, outer_loop=2, inner_loop=1), "real"),
    ("DM", SMALL, DMBudget(iterations=2, batch_real=4), "real"),
])
def test_condensation_steps_are_the_same(method, model, budget, init):
    runs = [methods.start(method, data, model, 2, budget, seed=3, init=init) for data in pair()]
    assert torch.equal(runs[0].images, runs[1].images)  # the start, from real images or noise
    for run in runs:
        run.step()
        run.step()
    assert torch.equal(runs[0].images, runs[1].images)


def test_a_step_on_uint8_never_waits_for_the_device(device):
    """On CUDA (DC_TEST_DEVICE=cuda), normalising the real batch adds no host sync to a step."""
    u8, _ = pair()
    run = methods.start("DM", u8.to(device), SMALL, 2, DMBudget(iterations=2, batch_real=4), seed=0)
    step_twice_second_without_sync(run, device)


def test_reference_network_is_the_same():
    budget = ReferenceBudget(epochs=2, batch_train=8)
    refs = [train_reference(data, SMALL, budget, seed=1) for data in pair()]
    assert all(torch.equal(refs[0].state[k], refs[1].state[k]) for k in refs[0].state)
    assert torch.equal(refs[0].forgetting, refs[1].forgetting)


def test_coreset_selection_is_the_same(tmp_path):
    sets = []
    for data in pair():
        ref = for_selection(data, SMALL, ReferenceBudget(epochs=1, batch_train=8), 0, tmp_path)  # cached per data
        sets.append(baselines.select("herding", data, 2, 0, ref))
    assert sets[0].images.dtype == torch.float32
    assert torch.equal(sets[0].images, sets[1].images) and sets[0].meta["indices"] == sets[1].meta["indices"]


def test_test_accuracy_and_evaluation_are_the_same():
    u8, fl = pair(n_per_class=40)
    net = build_network(SMALL, u8, seeded_generator(0), "cpu")
    budget = EvalBudget(epochs=1, batch_test=24, max_test=150)  # batches that end mid-set
    assert accuracy(net, u8, budget) == accuracy(net, fl, budget)
    syn = baselines.select("random", fl, 2, 0)
    assert evaluate(syn, u8, SMALL, [0, 1], budget) == evaluate(syn, fl, SMALL, [0, 1], budget)
