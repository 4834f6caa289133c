"""The precision option: off by default, refused when unknown, a no-op on the CPU, real on CUDA."""
import pytest
import torch

from orchestrator.cli.seed import parse_args, validate
from condense.errors import ConfigError
from condense.precision import precision
from condense.condensation import Budget, DCCondensation
from condense.synthetic import SyntheticSet
from evaluation.protocol import evaluate
from evaluation.train import EvalBudget


def test_off_by_default_and_unknown_values_refused():
    assert Budget().precision == EvalBudget().precision == "default"
    for make in (Budget, EvalBudget):
        with pytest.raises(ConfigError, match="unknown precision 'fp16'; allowed: default, fp32, tf32, bf16"):
            make(precision="fp16")
    with pytest.raises(ConfigError, match="fp16"):
        validate(parse_args(["--dataset", "MNIST", "--precision", "fp16"]))


@pytest.mark.slow
def test_on_the_cpu_every_precision_computes_what_default_does(mnist_small):
    train, test = mnist_small
    syn = SyntheticSet(train.images[:10], train.labels[:10], "MNIST")
    images, accs = [], []
    for name in ("default", "fp32", "tf32", "bf16"):
        run = DCCondensation(train, "ConvNetW32", 1, budget=Budget(iterations=1, batch_real=8, precision=name), seed=3)
        run.step()
        images.append(run.images.detach())
        accs.append(evaluate(syn, test, "ConvNetW32", [0], EvalBudget(epochs=1, max_test=100, precision=name)))
    assert all(torch.equal(images[0], other) for other in images[1:])
    assert accs[1:] == accs[:1] * 3


def test_on_cuda_tf32_is_set_inside_and_restored_and_bf16_autocasts(device):
    if device.type != "cuda":
        pytest.skip("TF32 and autocast exist on CUDA only (DC_TEST_DEVICE=cuda)")
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with precision("tf32", device):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with precision("fp32", device):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    conv = torch.nn.Conv2d(1, 4, 3).to(device)
    with precision("bf16", device):
        assert conv(torch.randn(2, 1, 8, 8, device=device)).dtype == torch.bfloat16
    assert conv(torch.randn(2, 1, 8, 8, device=device)).dtype == torch.float32


def test_a_sweep_file_sets_precision_or_names_the_bad_value(tmp_path):
    import yaml

    from orchestrator.sweep import spec

    grid = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1], "eval_modes": ["S"]}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"tables": {"table1": grid}, "budget": {"precision": "tf32"},
                                    "eval_budget": {"precision": "bf16"}}))
    sweep = spec.load(path)
    assert (sweep.budget.precision, sweep.eval_budget.precision) == ("tf32", "bf16")
    path.write_text(yaml.safe_dump({"tables": {"table1": grid}, "budget": {"precision": "fp16"}}))
    with pytest.raises(ConfigError, match=r"p\.yaml.*budget.*unknown precision 'fp16'"):
        spec.load(path)
