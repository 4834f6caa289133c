"""The architecture search's space: 720 ConvNets, each built by the network table as its name says."""
import itertools

import pytest
import torch
from torch import nn

from condense.errors import ConfigError
from condense.networks import ConvNetConfig, build, parse_convnet, sample_search_space, search_space

# The paper's axes, written out here rather than read from the table under test.
DEPTHS, WIDTHS = (1, 2, 3, 4), (32, 64, 128, 256)
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "leakyrelu": nn.LeakyReLU}
NORMS = ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm")
POOLS = {"none": None, "maxpooling": nn.MaxPool2d, "avgpooling": nn.AvgPool2d}
POINTS = list(itertools.product(DEPTHS, WIDTHS, ACTIVATIONS, NORMS, POOLS))
SHAPES = [(1, 28, 28), (3, 32, 32)]


def _norm_layers(net: nn.Module, norm: str, width: int) -> list[nn.Module]:
    """The layers that the norm's name stands for, checked for their settings."""
    if norm == "batchnorm":
        return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    if norm == "layernorm":
        return [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    groups = width if norm == "instancenorm" else 4  # instance norm: a group per channel
    return [m for m in net.modules() if isinstance(m, nn.GroupNorm) and m.num_groups == groups]


def _check(name: str, point: tuple, shape: tuple[int, int, int]) -> None:
    depth, width, activation, norm, pooling = point
    with torch.device("meta"):  # layers and shapes only: no weights to initialise
        net = build(name, shape[0], 10, shape[1:])
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth, name
    assert [c.out_channels for c in convs] == [width] * depth, name
    assert [c.in_channels for c in convs] == [shape[0]] + [width] * (depth - 1), name
    acts = [m for m in net.modules() if isinstance(m, (nn.Sigmoid, nn.ReLU, nn.LeakyReLU, nn.SiLU))]
    assert len(acts) == depth and all(type(a) is ACTIVATIONS[activation] for a in acts), name
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm))]
    assert norms == ([] if norm == "none" else _norm_layers(net, norm, width)) and len(norms) in (0, depth), name
    assert (norm == "none") == (not norms), name
    pools = [m for m in net.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert [type(p) for p in pools] == ([] if POOLS[pooling] is None else [POOLS[pooling]] * depth), name
    side = 32 // 2 ** depth if pools else 32  # 28x28 digits are padded to 32x32 maps
    assert net.classifier.in_features == width * side * side, name


def test_nas_search_space_is_the_720_names_of_the_axes():
    space = search_space()
    names = [ConvNetConfig(width=w, depth=d, activation=a, norm=n, pooling=p).name for d, w, a, n, p in POINTS]
    assert len(space) == len(set(space)) == 720
    assert set(space) == set(names)
    assert all(parse_convnet(name).name == name for name in space)  # canonical: one name per network


@pytest.mark.slow  # 1440 builds: 3 to 6 s on two busy cores
def test_nas_every_architecture_builds_what_its_name_says():
    """All 720 names at 1x28x28 and 3x32x32."""
    for (d, w, a, n, p), shape in itertools.product(POINTS, SHAPES):
        _check(ConvNetConfig(width=w, depth=d, activation=a, norm=n, pooling=p).name, (d, w, a, n, p), shape)


def test_nas_sampled_architectures_build_what_their_names_say():
    """The fast tier's share of the test above: 48 architectures, every axis value among them."""
    points = {ConvNetConfig(width=w, depth=d, activation=a, norm=n, pooling=p).name: (d, w, a, n, p)
              for d, w, a, n, p in POINTS}
    for name, shape in itertools.product(sample_search_space(48, seed=11), SHAPES):
        _check(name, points[name], shape)


def test_nas_sampled_architectures_train_a_step():
    """A sample's real networks run forward and backward with finite gradients at both image sizes."""
    torch.manual_seed(0)
    for name, shape in itertools.product(sample_search_space(8, seed=3), SHAPES):
        net = build(name, shape[0], 10, shape[1:])
        net(torch.randn(2, *shape)).square().mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters()), name


def test_nas_sample_is_seeded_and_spans_every_axis_value():
    sample = sample_search_space(24, seed=0)
    assert sample == sample_search_space(24, seed=0) != sample_search_space(24, seed=1)
    assert len(set(sample)) == 24 and set(sample) <= set(search_space())
    configs = [parse_convnet(name) for name in sample]
    for field, values in (("depth", DEPTHS), ("width", WIDTHS), ("activation", ACTIVATIONS), ("norm", NORMS),
                          ("pooling", POOLS)):
        counts = [sum(getattr(c, field) == v for c in configs) for v in values]
        # balanced: every value, each about equally often
        assert min(counts) >= 1 and max(counts) - min(counts) <= 1, (field, counts)
    smallest = sample_search_space(5, seed=7)  # the norm axis has 5 values: 5 picks span them all
    for field in ("depth", "width", "activation", "norm", "pooling"):
        assert {getattr(parse_convnet(n), field) for n in smallest} == set(
            {"depth": DEPTHS, "width": WIDTHS, "activation": ACTIVATIONS, "norm": NORMS, "pooling": POOLS}[field])


@pytest.mark.parametrize("n", [0, 4, 721])
def test_nas_sample_size_out_of_range_is_a_config_error(n):
    with pytest.raises(ConfigError, match=f"got {n}"):
        sample_search_space(n, seed=0)
