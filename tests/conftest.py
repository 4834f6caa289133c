import os
from pathlib import Path

import pytest

from condense.runtime import keep_freed_memory, wait_passively

wait_passively()  # before the tests import torch
keep_freed_memory()

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("DC_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def restore_environment():
    """A driver run in-process sets its local Ray's settings in os.environ (``local_environment``):
    a token, and Ray's single-machine switch, which would make a Ray node that a later test starts
    refuse to join a cluster. Each test starts from the environment as it was."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def device():
    """Where the equivalence tests compute: the CPU, or DC_TEST_DEVICE (e.g. cuda on a GPU machine)."""
    import torch

    return torch.device(os.environ.get("DC_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (train, test) on the CPU; the tests need it, CI provides it."""
    from condense.data import load

    root = data_root()
    if not (root / "MNIST").exists():
        pytest.fail(f"real MNIST not found under {root}: set DC_DATA to the shared data folder")
    return load("MNIST", root)


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """A class-balanced 1000-image slice of the MNIST training set: enough for real batches."""
    from condense.data import ImageSet

    train, test = mnist
    idx = train.labels[:1000].argsort()
    return ImageSet(train.images[idx].clone(), train.labels[idx].clone(), train.info), test


def step_twice_second_without_sync(run, device) -> None:
    """Two outer steps of ``run``; on CUDA the second under sync debug mode "error" (the first may
    synchronise once for lazy initialisations), so a host sync in the step fails the test."""
    import torch

    run.step()
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        run.step()
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
