"""DSA's strategy names, without torch: the ops a strategy may join, main.py's default, and ``auto``
(the seed README's choice per dataset). The results tools ask them too (a published DSA number
holds only for the strategy it was made with), so they import no torch; ``diffaug`` applies them.
"""
from __future__ import annotations

from .errors import ConfigError

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"  # main.py's and main_DM.py's default
# The seed README's DSA table: "flip augmentation is not good for digit datasets (MNIST and SVHN)".
# ``auto`` picks it per dataset, the setting behind the published DSA numbers.
AUTO = "auto"
NO_FLIP_DATASETS = ("MNIST", "SVHN")
NO_FLIP_STRATEGY = "color_crop_cutout_scale_rotate"


def check_strategy(strategy: str) -> str:
    """``strategy`` if every op in it is known (or it is ``none``); else a ConfigError."""
    if strategy == "none":
        return strategy
    ops = strategy.split("_")
    bad = [o for o in ops if o not in OPS]
    if bad or len(set(ops)) != len(ops):
        what = f"unknown op {bad[0]!r}" if bad else "an op listed twice"
        raise ConfigError(f"DSA strategy {strategy!r}: {what}; give ops from {', '.join(OPS)} joined by '_' "
                          f"(e.g. {DEFAULT_STRATEGY}), none, or {AUTO} (no flip for {'/'.join(NO_FLIP_DATASETS)})")
    return strategy


# What a strategy may be, for error messages.
STRATEGY_FORMS = (f"ops from {', '.join(OPS)} joined by '_'", "none", AUTO)


def is_strategy(strategy) -> bool:
    """Whether ``strategy`` is one ``resolve`` takes (``auto``, ``none`` or known ops)."""
    if not isinstance(strategy, str):
        return False
    try:
        resolve(strategy, "")
    except ConfigError:
        return False
    return True


def resolve(strategy: str, dataset: str) -> str:
    """A strategy for ``dataset``: ``auto`` is the README's choice (no flip for digits), else as given."""
    if strategy != AUTO:
        return check_strategy(strategy)
    return NO_FLIP_STRATEGY if dataset in NO_FLIP_DATASETS else DEFAULT_STRATEGY
