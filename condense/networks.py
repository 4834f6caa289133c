"""The paper's networks, built by the names users type (``build("ConvNetW64", 1, 10, (28, 28))``).

Architectures follow the paper (docs/protocol.md) and the original DC code (VICO-UoE/DatasetCondensation). Every model
is a plain CPU ``nn.Module`` with no device placement and no seeding, and no lazy modules: feature
sizes are worked out from ``image_size`` on paper, so a freshly built model can go straight into
``torch.func.stack_module_state`` / ``functional_call`` / ``vmap``.

Every model has ``embed(x)`` (the flattened input of the final linear layer) and ``classifier``, and
``forward(x) == classifier(embed(x))``.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
from dataclasses import astuple, dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from .errors import ConfigError, unknown

if TYPE_CHECKING:
    from .data import ImageSet

Builder = Callable[[int, int, "tuple[int, int]"], nn.Module]
_REGISTRY: dict[str, Builder] = {}

# Shown in errors next to the registered names: any ConvNet variant the grammar accepts is valid.
CONVNET_GRAMMAR = "ConvNet[W<int>][D<int>][AS|AR|AL|ASwish][NN|BN|LN|IN|GN][NP|MP|AP]"


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``fn(channels, num_classes, image_size) -> nn.Module`` buildable as ``name``."""

    def add(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return add


def list_models() -> list[str]:
    """The paper's model names, in registration order (stable)."""
    return list(_REGISTRY)


def _unknown_model(name) -> ConfigError:
    return unknown("model", name, [*list_models(), CONVNET_GRAMMAR])


def _builder(name: str) -> Builder:
    if name in _REGISTRY:
        return _REGISTRY[name]
    # Not a paper name, but possibly a ConvNet variant such as ConvNetW64D2; raises for the rest.
    return partial(ConvNet, config=parse_convnet(name))


def build(name: str, channels: int, num_classes: int, image_size: int | tuple[int, int]) -> nn.Module:
    """A freshly initialised model (uses torch's global RNG: seed outside if you need to)."""
    builder, (h, w) = _builder(name), _pair(image_size)
    try:
        return builder(channels, num_classes, (h, w))
    except ConfigError as err:  # e.g. too deep for the image: say which model and size
        raise ConfigError(f"{name} on {channels}x{h}x{w} images: {err}") from None


def build_network(name: str, train: ImageSet, generator: torch.Generator, device) -> nn.Module:
    """A freshly initialised network for ``train``'s images, whose weights come from ``generator``,
    not the global RNG."""
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    info = train.info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build(name, info.channels, info.num_classes, info.image_size)
    # pageable host memory is staged at once: the copy does not wait for the device's queue
    return net.to(device, non_blocking=True)


def is_model(name: str) -> bool:
    try:
        _builder(name)
    except ConfigError:
        return False
    return True


def has_batchnorm(module: nn.Module) -> bool:
    """True if any layer keeps batch statistics (such models need care with tiny or per-class batches)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


# ---------------------------------------------------------------------------------------------
# Shared pieces

def _pair(x) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


def _output_hw(layers, hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after a stack of layers; only convs and pools change it."""
    h, w = hw
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            (kh, kw), (sh, sw), (ph, pw) = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
            h, w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if h < 1 or w < 1:
        raise ConfigError(f"the image is too small for this network: its feature maps shrink to {h}x{w}")
    return h, w


# Norm layers by name, as the DC code builds them; factories take (channels, (h, w)).
_NORMS: dict[str, Callable[[int, tuple[int, int]], nn.Module] | None] = {
    "instancenorm": lambda c, hw: nn.GroupNorm(c, c, affine=True),  # one group per channel
    "groupnorm": lambda c, hw: nn.GroupNorm(4, c, affine=True),
    "layernorm": lambda c, hw: nn.LayerNorm([c, *hw], elementwise_affine=True),
    "batchnorm": lambda c, hw: nn.BatchNorm2d(c),
    "none": None,
}
# Not in-place (unlike DC): identical maths, and nothing to trip over under torch.func transforms.
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "leakyrelu": partial(nn.LeakyReLU, negative_slope=0.01),
    "swish": nn.SiLU,  # SiLU is exactly x * sigmoid(x)
}
_POOLINGS: dict[str, Callable[[], nn.Module] | None] = {
    "avgpooling": partial(nn.AvgPool2d, kernel_size=2, stride=2),
    "maxpooling": partial(nn.MaxPool2d, kernel_size=2, stride=2),
    "none": None,
}


class _Net(nn.Module):
    """``features`` (ends in the penultimate representation) followed by one linear ``classifier``."""

    def __init__(self, features: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


# ---------------------------------------------------------------------------------------------
# ConvNet: one class, variants decoded from the name

@dataclass(frozen=True)
class ConvNetConfig:
    width: int = 128
    depth: int = 3
    activation: str = "relu"
    norm: str = "instancenorm"
    pooling: str = "avgpooling"

    def __post_init__(self):
        for kind, value, allowed in (("activation", self.activation, _ACTIVATIONS),
                                     ("norm", self.norm, _NORMS),
                                     ("pooling", self.pooling, _POOLINGS)):
            if value not in allowed:
                raise unknown(kind, value, list(allowed))
        if self.width < 1 or self.depth < 1:
            raise ConfigError(f"ConvNet width and depth must be >= 1, got {self.width} and {self.depth}")

    @property
    def name(self) -> str:
        """Canonical name: only the fields that differ from the defaults are spelled out."""
        default = ConvNetConfig()
        parts = ["ConvNet"]
        if self.width != default.width:
            parts.append(f"W{self.width}")
        if self.depth != default.depth:
            parts.append(f"D{self.depth}")
        for codes, value, default_value in ((_ACT_CODES, self.activation, default.activation),
                                            (_NORM_CODES, self.norm, default.norm),
                                            (_POOL_CODES, self.pooling, default.pooling)):
            if value != default_value:
                parts.append(next(code for code, v in codes.items() if v == value))
        return "".join(parts)


_ACT_CODES = {"AS": "sigmoid", "AR": "relu", "AL": "leakyrelu", "ASwish": "swish"}
_NORM_CODES = {"NN": "none", "BN": "batchnorm", "LN": "layernorm", "IN": "instancenorm", "GN": "groupnorm"}
_POOL_CODES = {"NP": "none", "MP": "maxpooling", "AP": "avgpooling"}


def _alternatives(codes) -> str:
    return "|".join(sorted(codes, key=len, reverse=True))  # longest first: ASwish before AS


# Fields appear in a fixed order, each at most once; "AP" is pooling (no activation code is "AP").
_CONVNET_RE = re.compile(
    r"ConvNet(?:W(?P<width>[1-9]\d*))?(?:D(?P<depth>[1-9]\d*))?"
    rf"(?P<act>{_alternatives(_ACT_CODES)})?(?P<norm>{_alternatives(_NORM_CODES)})?"
    rf"(?P<pool>{_alternatives(_POOL_CODES)})?"
)


def parse_convnet(name: str) -> ConvNetConfig:
    """``ConvNetW64D2`` -> ``ConvNetConfig(width=64, depth=2)``; ``parse_convnet(cfg.name) == cfg``."""
    match = _CONVNET_RE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise _unknown_model(name)
    fields = {}
    if match["width"]:
        fields["width"] = int(match["width"])
    if match["depth"]:
        fields["depth"] = int(match["depth"])
    for key, group, codes in (("activation", "act", _ACT_CODES), ("norm", "norm", _NORM_CODES),
                              ("pooling", "pool", _POOL_CODES)):
        if match[group]:
            fields[key] = codes[match[group]]
    return ConvNetConfig(**fields)


# The architecture search's space (docs/nas.md; FTD, CVPR 2023, Section 4, after the DC paper): the ablation
# axes' values, 4 x 4 x 3 x 5 x 3 = 720 ConvNets.
SEARCH_AXES: dict[str, tuple] = {
    "depth": (1, 2, 3, 4),
    "width": (32, 64, 128, 256),
    "activation": ("sigmoid", "relu", "leakyrelu"),
    "norm": ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm"),
    "pooling": ("none", "maxpooling", "avgpooling"),
}


def search_space() -> list[str]:
    """The 720 ConvNets of the architecture search, by canonical name, in a fixed order (the axes'
    product, depth slowest)."""
    keys = list(SEARCH_AXES)
    return [ConvNetConfig(**dict(zip(keys, values))).name for values in itertools.product(*SEARCH_AXES.values())]


def multiply_adds(name: str, channels: int = 3, image_size: int | tuple[int, int] = 32) -> int | None:
    """Multiply-adds of one image's forward pass through ConvNet variant ``name`` (None for the other
    models): what its training and test cost scale with."""
    return _multiply_adds(name, channels, _pair(image_size))


@functools.lru_cache(maxsize=None)
def _multiply_adds(name: str, channels: int, image_size: tuple[int, int]) -> int | None:
    with torch.device("meta"):  # shapes only: no weights are drawn
        return getattr(build(name, channels, 10, image_size), "multiply_adds", None)


def sample_search_space(n: int, seed: int, max_mmacs: float | None = None) -> list[str]:
    """``n`` architectures of the search space, the same for the same seed, spanning every axis value
    (so ``n`` >= 5, the norm axis's size); with ``max_mmacs``, only those of at most that many million
    multiply-adds per 3x32x32 image (a sample cheap enough for a test run). Greedy and balanced: each
    pick is the architecture whose values have been picked least so far (ties in a seeded random
    order), so the first picks cover every value and each value then appears about equally often."""
    space = search_space()
    if max_mmacs is not None:
        space = [name for name in space if multiply_adds(name) <= max_mmacs * 1e6]
    least = max(map(len, SEARCH_AXES.values()))
    if not least <= n <= len(space):
        cap = "" if max_mmacs is None else f" of at most {max_mmacs:g} million multiply-adds"
        raise ConfigError(f"a sample of the search space spanning every axis value needs {least} to "
                          f"{len(space)} architectures{cap}, got {n}")
    order = random.Random(seed).sample(space, len(space))
    configs = {name: astuple(parse_convnet(name)) for name in order}  # (width, depth, activation, norm, pooling)
    counts: dict[tuple[int, object], int] = {}
    picked: list[str] = []
    for _ in range(n):
        name = min(order, key=lambda c: sum(counts.get((i, v), 0) for i, v in enumerate(configs[c])))
        order.remove(name)
        picked.append(name)
        for key in enumerate(configs[name]):
            counts[key] = counts.get(key, 0) + 1
    for i, (axis, values) in enumerate(SEARCH_AXES.items()):
        field = ("width", "depth", "activation", "norm", "pooling").index(axis)  # astuple's order
        missing = [v for v in values if (field, v) not in counts]
        if missing:  # only under a cost cap that leaves a value out
            raise ConfigError(f"no architecture with {axis} {missing[0]} costs at most {max_mmacs:g} million "
                              "multiply-adds: raise max_mmacs")
    return picked


class ConvNet(_Net):
    """``depth`` x [conv3x3 -> norm -> activation -> pool2x2], then one linear layer."""

    def __init__(self, channels: int, num_classes: int, image_size, config: ConvNetConfig = ConvNetConfig()):
        hw = _pair(image_size)
        layers: list[nn.Module] = []
        in_channels = channels
        macs = 0
        for d in range(config.depth):
            # DC pads 1-channel 28x28 digits by 3 so the maps are 32x32, as for the colour datasets.
            pad = 3 if channels == 1 and d == 0 else 1
            conv = nn.Conv2d(in_channels, config.width, kernel_size=3, padding=pad)
            hw = _output_hw([conv], hw)
            macs += in_channels * config.width * 9 * hw[0] * hw[1]
            layers.append(conv)
            if _NORMS[config.norm] is not None:
                layers.append(_NORMS[config.norm](config.width, hw))  # layernorm needs the map size
            layers.append(_ACTIVATIONS[config.activation]())
            if _POOLINGS[config.pooling] is not None:
                layers.append(_POOLINGS[config.pooling]())
                hw = _output_hw(layers[-1:], hw)
            in_channels = config.width
        super().__init__(nn.Sequential(*layers), nn.Linear(config.width * hw[0] * hw[1], num_classes))
        self.config = config
        # one image's forward pass through the convolutions and the classifier (norms, activations
        # and pools add little): what training and testing this network cost scale with
        self.multiply_adds = macs + self.classifier.in_features * num_classes


# ---------------------------------------------------------------------------------------------
# The other architectures of the cross-architecture experiments

class MLP(_Net):
    def __init__(self, channels: int, num_classes: int, image_size):
        h, w = _pair(image_size)
        features = nn.Sequential(nn.Flatten(), nn.Linear(channels * h * w, 128), nn.ReLU(),
                                 nn.Linear(128, 128), nn.ReLU())
        super().__init__(features, nn.Linear(128, num_classes))


class LeNet(_Net):
    def __init__(self, channels: int, num_classes: int, image_size):
        convs = [nn.Conv2d(channels, 6, kernel_size=5, padding=2 if channels == 1 else 0), nn.ReLU(),
                 nn.MaxPool2d(2, 2),
                 nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2, 2)]
        h, w = _output_hw(convs, _pair(image_size))  # 5x5 for both 28x28 (padded) and 32x32
        features = nn.Sequential(*convs, nn.Flatten(), nn.Linear(16 * h * w, 120), nn.ReLU(),
                                 nn.Linear(120, 84), nn.ReLU())
        super().__init__(features, nn.Linear(84, num_classes))


class AlexNet(_Net):
    """DC's small CIFAR-style AlexNet; ``batchnorm`` adds BatchNorm2d after every conv (AlexNetBN)."""

    def __init__(self, channels: int, num_classes: int, image_size, batchnorm: bool = False):
        def conv(cin, cout, k, pad):
            return [nn.Conv2d(cin, cout, kernel_size=k, padding=pad),
                    *([nn.BatchNorm2d(cout)] if batchnorm else []), nn.ReLU()]

        layers = [*conv(channels, 128, 5, 4 if channels == 1 else 2), nn.MaxPool2d(2, 2),
                  *conv(128, 192, 5, 2), nn.MaxPool2d(2, 2),
                  *conv(192, 256, 3, 1), *conv(256, 192, 3, 1), *conv(192, 192, 3, 1), nn.MaxPool2d(2, 2)]
        h, w = _output_hw(layers, _pair(image_size))  # 4x4 for 28x28 and 32x32
        super().__init__(nn.Sequential(*layers), nn.Linear(192 * h * w, num_classes))


_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG11(_Net):
    def __init__(self, channels: int, num_classes: int, image_size, norm: str = "instancenorm"):
        layers: list[nn.Module] = []
        in_channels = channels
        for i, item in enumerate(_VGG11):
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            pad = 3 if channels == 1 and i == 0 else 1  # 28x28 -> 32x32, as in ConvNet
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=pad),
                       _NORMS[norm](item, None), nn.ReLU()]
            in_channels = item
        h, w = _output_hw(layers, _pair(image_size))  # 1x1 for 28x28 and 32x32
        super().__init__(nn.Sequential(*layers), nn.Linear(512 * h * w, num_classes))


class BasicBlock(nn.Module):
    """ResNet basic block. With ``avgpool`` (the _AP variants) a stride-2 block keeps its convs at
    stride 1 and halves the map with 2x2 average pooling instead, in the shortcut too."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str, avgpool: bool):
        super().__init__()
        conv_stride = 1 if avgpool else stride
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=conv_stride, padding=1, bias=False)
        self.bn1 = _NORMS[norm](planes, None)
        self.pool = nn.AvgPool2d(2, 2) if avgpool and stride != 1 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = _NORMS[norm](planes, None)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=conv_stride, bias=False),
                *([nn.AvgPool2d(2, 2)] if avgpool else []),
                _NORMS[norm](planes, None),
            )

    def output_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return _output_hw([self.conv1, self.pool, self.conv2], hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(torch.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet18 as in DC: 3x3 stride-1 stem, BasicBlock [2,2,2,2] at 64-128-256-512, bias-free convs.

    Plain: the last 4x4 map is average-pooled by 4 (DC's ``F.avg_pool2d(out, 4)``).
    ``avgpool=True`` (ResNet18_AP): downsampling by 2x2 average pooling and no final pooling, so the
    classifier sees 512x3x3 for 28x28 inputs and 512x4x4 for 32x32.
    """

    def __init__(self, channels: int, num_classes: int, image_size, norm: str = "instancenorm",
                 avgpool: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = _NORMS[norm](64, None)
        hw = _output_hw([self.conv1], _pair(image_size))
        blocks, in_planes = [], 64
        for planes, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
            blocks.append(BasicBlock(in_planes, planes, stride, norm, avgpool))
            hw = blocks[-1].output_hw(hw)
            in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.final_pool = nn.Identity() if avgpool else nn.AvgPool2d(4)
        h, w = _output_hw([self.final_pool], hw)
        self.classifier = nn.Linear(512 * h * w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.final_pool(out).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


# ---------------------------------------------------------------------------------------------
# The registry: every name of the paper, in the order list_models() reports them

register("MLP")(MLP)
register("LeNet")(LeNet)
for _name in ("ConvNet", "ConvNetW32", "ConvNetW64", "ConvNetW128", "ConvNetW256",
              "ConvNetD1", "ConvNetD2", "ConvNetD3", "ConvNetD4",
              "ConvNetAS", "ConvNetAR", "ConvNetAL", "ConvNetASwish",
              "ConvNetNP", "ConvNetMP", "ConvNetAP",
              "ConvNetNN", "ConvNetBN", "ConvNetLN", "ConvNetIN", "ConvNetGN", "ConvNetASwishBN"):
    register(_name)(partial(ConvNet, config=parse_convnet(_name)))
register("AlexNet")(AlexNet)
register("AlexNetBN")(partial(AlexNet, batchnorm=True))
register("VGG11")(VGG11)
register("VGG11BN")(partial(VGG11, norm="batchnorm"))
register("ResNet18")(ResNet18)
register("ResNet18BN")(partial(ResNet18, norm="batchnorm"))
register("ResNet18_AP")(partial(ResNet18, avgpool=True))
register("ResNet18BN_AP")(partial(ResNet18, norm="batchnorm", avgpool=True))
