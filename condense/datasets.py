"""The dataset registry: each dataset's name, image shape, classes and normalisation (the original
code's mean/std). Plain data without torch, so the results tools can check names against it.
``condense.data`` loads the datasets it names.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import unknown


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    image_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    # held as uint8 pixels and normalised per batch (ImageSet.batch): for a dataset whose float32
    # copy would crowd a GPU shared by several cells (Tiny ImageNet's training set: 4.9 GB vs 1.2 GB)
    uint8: bool = False

    @property
    def image_values(self) -> int:
        """Values in one image, C x H x W."""
        return self.channels * self.image_size[0] * self.image_size[1]


_DIGITS = tuple(str(i) for i in range(10))
# CIFAR-100's fine label names, in label order (its meta file's fine_label_names)
_CIFAR100_CLASSES = tuple("""apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster
man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle
wardrobe whale willow_tree wolf woman worm""".split())

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("MNIST", 1, (28, 28), 10, (0.1307,), (0.3081,), _DIGITS),
        DatasetInfo(
            "FashionMNIST",
            1,
            (28, 28),
            10,
            (0.2861,),
            (0.3530,),
            (
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
        ),
        DatasetInfo(
            "SVHN", 3, (32, 32), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), _DIGITS
        ),
        DatasetInfo(
            "CIFAR10",
            3,
            (32, 32),
            10,
            (0.4914, 0.4822, 0.4465),
            (0.2023, 0.1994, 0.2010),
            (
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ),
        ),
        # the original's get_dataset: fine labels, its mean/std
        DatasetInfo("CIFAR100", 3, (32, 32), 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762),
                    _CIFAR100_CLASSES),
        # 200 classes, 64x64; classes in the order of wnids.txt (or the .pt's ``classes``), shown by index
        DatasetInfo("TinyImageNet", 3, (64, 64), 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                    tuple(str(i) for i in range(200)), uint8=True),
    )
}


def dataset_names() -> list[str]:
    """The dataset names users may type, in registry order."""
    return list(DATASETS)


def info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` (exact, else case-insensitive match)."""
    if name in DATASETS:
        return DATASETS[name]
    if isinstance(name, str):
        for key, value in DATASETS.items():
            if key.lower() == name.lower():
                return value
    raise unknown("dataset", name, dataset_names())
