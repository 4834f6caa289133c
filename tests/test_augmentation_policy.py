"""The one augmentation policy: which augmentation (and so how many epochs) a set gets in evaluation."""
import pytest

from condense import diffaug
from evaluation.augmentation import eval_augmentation, for_set
from evaluation.train import EvalBudget

NO_FLIP = diffaug.EVAL_PREFIX + diffaug.NO_FLIP_STRATEGY


@pytest.mark.parametrize("method, dataset, model, strategy, want", [
    ("DC", "MNIST", "ConvNet", None, "crop_scale_rotate"),  # DC's rule: MNIST is augmented
    ("DC", "CIFAR10", "ConvNet", None, "none"),
    ("DC", "CIFAR10", "ConvNetBN", None, "crop_noise"),  # BN on a handful of images needs noise
    ("herding", "MNIST", "ConvNet", None, "crop_scale_rotate"),
    ("whole", "CIFAR10", "ConvNet", None, "none"),
    ("DSA", "MNIST", "ConvNet", "auto", NO_FLIP),  # the seed README's: no flip for digits
    ("DM", "CIFAR10", "ConvNet", "auto", diffaug.EVAL_PREFIX + diffaug.DEFAULT_STRATEGY),
    ("DM", "MNIST", "ConvNet", "crop_flip", diffaug.EVAL_PREFIX + "crop_flip"),
    ("DSA", "CIFAR10", "ConvNet", None, diffaug.EVAL_PREFIX + diffaug.DEFAULT_STRATEGY),  # main.py's default
    ("DSA", "CIFAR10", "ConvNet", "none", "none"),  # no DSA ops: DC's rule
    ("someone-elses", "MNIST", "ConvNet", "crop", "crop_scale_rotate"),  # unknown method: DC's rule
])
def test_every_method_dataset_and_model(method, dataset, model, strategy, want):
    assert eval_augmentation(method, dataset, model, strategy) == want


def test_a_set_carries_the_facts_and_the_policy_derives_the_epochs():
    dm = {"method": "DM", "dsa_strategy": diffaug.NO_FLIP_STRATEGY}
    assert for_set(dm, "MNIST", "ConvNet") == NO_FLIP
    assert for_set({}, "MNIST", "ConvNet") == "crop_scale_rotate"  # a set that says nothing: DC's
    assert EvalBudget().epochs_for(for_set(dm, "MNIST", "ConvNet")) == 1000
    assert EvalBudget().epochs_for(for_set({"method": "DC"}, "CIFAR10", "ConvNet")) == 300
