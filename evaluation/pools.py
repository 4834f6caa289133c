"""Evaluation pools (docs/protocol.md, "Networks and evaluation pools"): which networks a synthetic set is tested on."""
from __future__ import annotations

from condense.errors import unknown

POOLS = {
    "M": ("MLP", "ConvNet", "LeNet", "AlexNet", "VGG11", "ResNet18"),
    # DSA's and DM's cross-architecture pool, BatchNorm kept (the seed README's --eval_mode B)
    "B": ("ConvNetBN", "ConvNetASwishBN", "AlexNetBN", "VGG11BN", "ResNet18BN"),
    "W": ("ConvNetW32", "ConvNetW64", "ConvNetW128", "ConvNetW256"),
    "D": ("ConvNetD1", "ConvNetD2", "ConvNetD3", "ConvNetD4"),
    "A": ("ConvNetAS", "ConvNetAR", "ConvNetAL", "ConvNetASwish"),
    "P": ("ConvNetNP", "ConvNetMP", "ConvNetAP"),
    "N": ("ConvNetNN", "ConvNetBN", "ConvNetLN", "ConvNetIN", "ConvNetGN"),
}
# The modes that evaluate the training model itself: S in its non-BN form, SS as it is (BN kept).
SELF_MODES = ("S", "SS")
EVAL_MODES = (*SELF_MODES, *POOLS)


def self_eval_model(model: str) -> str:
    """Mode S: the training model itself, but a BN model is evaluated in its non-BN form.

    As the paper's code, everything from "BN" on is dropped: VGG11BN -> VGG11,
    ConvNetBN -> ConvNet, ResNet18BN_AP -> ResNet18 (the _AP suffix goes too).
    """
    return model[: model.index("BN")] if "BN" in model else model


def eval_models(eval_mode: str, model: str) -> list[str]:
    if eval_mode == "S":
        return [self_eval_model(model)]
    if eval_mode == "SS":
        return [model]
    if eval_mode not in POOLS:
        raise unknown("eval_mode", eval_mode, EVAL_MODES)
    return list(POOLS[eval_mode])


def eval_iterations(eval_mode: str, iterations: int, every: int | None = None) -> list[int]:
    """Modes S and SS evaluate at iterations 0, half and last (DC's 0/500/1000 at the paper's budget),
    or, given ``every``, at each multiple of it and the last (main_DM.py: every 2000); the pools only
    at the end."""
    if eval_mode not in SELF_MODES:
        return [iterations]
    if every is None:
        return sorted({0, iterations // 2, iterations})
    return sorted({*range(0, iterations + 1, every), iterations})
