"""What a Tiny ImageNet cell keeps on its device, from the bytes of the tensors it holds.

    python benchmarks/tiny_memory.py [--ipc 1 10 50] [--model ConvNet]

Builds the cell's tensors at Tiny ImageNet's real shapes on the CPU (zero pixels stand in for the
images: only sizes count) through the code a cell runs: the training and test sets as ``load`` holds
them (uint8) beside their normalised float32 form (what was held before), a DC run's synthetic set
with its gradient and momentum, the class sampler, the matching network, and one evaluation
network with its gradients and momentum. Each figure is the sum of the tensors' storage bytes.
Per-step temporaries (a real batch, activations) come and go within a step and are not counted;
the real batch's size is printed beside the total. Needs about 7 GB of host memory.
"""
from __future__ import annotations

from _common import parser

import torch

from condense.data import DATASETS, ImageSet, normalise
from condense.condensation import Budget, DCCondensation
from condense.networks import build_network
from condense.synthetic import seeded_generator

TINY = DATASETS["TinyImageNet"]
TRAIN, TEST = 100_000, 10_000  # 500 training and 50 validation images per class


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.untyped_storage().nbytes() for t in tensors)


def network_bytes(net: torch.nn.Module) -> int:
    return nbytes(*net.parameters(), *net.buffers())


def gb(n: int) -> str:
    return f"{n / 1e9:.3f} GB"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--model", default="ConvNet")
    args = p.parse_args()
    labels = torch.arange(TINY.num_classes)
    train = ImageSet(torch.zeros((TRAIN, 3, 64, 64), dtype=torch.uint8), labels.repeat(TRAIN // 200), TINY)
    test = ImageSet(torch.zeros((TEST, 3, 64, 64), dtype=torch.uint8), labels.repeat(TEST // 200), TINY)
    data = nbytes(train.images, train.labels, test.images, test.labels)
    as_float = normalise(train.images, TINY)  # what the cell held before: measured, then dropped
    floats = nbytes(as_float, train.labels) + nbytes(test.images) * 4 + nbytes(test.labels)
    del as_float
    print(f"data: uint8 {gb(data)} (train {gb(nbytes(train.images))}, test {gb(nbytes(test.images))}, labels); "
          f"normalised float32 it was {gb(floats)}")
    net = build_network(args.model, train, seeded_generator(0), "cpu")
    matching = network_bytes(net) + nbytes(*net.parameters())  # weights and their gradients
    evaluating = network_bytes(net) + 2 * nbytes(*net.parameters())  # and SGD's momentum
    print(f"{args.model} at 64x64, 200 classes: {sum(p.numel() for p in net.parameters()):,} parameters; "
          f"matching network with gradients {gb(matching)}, evaluation network with gradients and "
          f"momentum {gb(evaluating)}")
    for ipc in args.ipc:
        run = DCCondensation(train, args.model, ipc, budget=Budget(outer_loop=1, inner_loop=1))
        run.images.grad = torch.zeros_like(run.images)
        run.optimizer.step()  # creates the momentum buffer, as the first update does
        momentum = [s["momentum_buffer"] for s in run.optimizer.state.values()]
        synthetic = nbytes(run.images, run.images.grad, *momentum, run.labels)
        sampler = nbytes(run.sampler.index, run.sampler.valid)
        total = data + synthetic + sampler + matching + evaluating
        real_batch = 200 * min(Budget().batch_real, 500) * 3 * 64 * 64 * 4
        print(f"ipc {ipc}: synthetic set with gradient and momentum {gb(synthetic)}, sampler {gb(sampler)}; "
              f"the cell holds {gb(total)} (with float32 data it was {gb(total - data + floats)}); "
              f"a DC/DM step's real batch (256 per class, float32) adds {gb(real_batch)} while it runs")


if __name__ == "__main__":
    main()
