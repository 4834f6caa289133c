"""Process settings of the entry points: waiting passively changes how OpenMP's threads idle, never
what they compute."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

# Trains a small network for a few steps on 2 threads and prints a digest of its weights.
TRAIN = """
import hashlib
from condense.runtime import wait_passively
print(wait_passively())
import os, torch
torch.set_num_threads(2)
print(os.environ["OMP_WAIT_POLICY"])
from condense.data import DATASETS, ImageSet
from condense.networks import build_network
from condense.synthetic import seeded_generator
from evaluation.train import EvalBudget, train_network
g = seeded_generator(0)
x, y = torch.randn(40, 1, 28, 28, generator=g), torch.arange(10).repeat(4)
net = build_network("ConvNetW16BN", ImageSet(x, y, DATASETS["MNIST"]), g, "cpu")
train_network(net, x, y, EvalBudget(batch_train=8), 2, "crop_scale_rotate", g)
print(hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in net.state_dict().values())).hexdigest())
"""


def run(policy):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", TRAIN], cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=300, check=True)
    return out.stdout.split()


@pytest.mark.slow
def test_passive_waiting_is_set_before_torch_and_computes_the_same_weights():
    passive = run(None)
    assert passive[:2] == ["True", "PASSIVE"]
    active = run("ACTIVE")  # a policy the environment sets is kept
    assert active[:2] == ["True", "ACTIVE"]
    assert passive[2] == active[2]
