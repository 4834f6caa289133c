"""A loss that turns nan or infinite fails the run with a message naming where, never a result."""
import pytest
import torch

from condense import data
from condense.networks import build
from condense.errors import NonFiniteLossError
from evaluation.reference import ReferenceBudget, train_reference
from condense.condensation import Budget, DCCondensation, run_condensation
from condense.synthetic import SyntheticSet
from evaluation.protocol import evaluate
from evaluation.train import EvalBudget, check_finite

NAN = float("nan")


def fake_mnist(n: int = 40) -> data.ImageSet:
    g = torch.Generator().manual_seed(0)
    return data.ImageSet(torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 10, data.info("MNIST"))


def test_a_diverged_condensation_names_the_first_bad_iteration():
    run = DCCondensation(fake_mnist(), "MLP", 1, "ours", Budget(iterations=4, batch_real=4, lr_img=NAN), seed=0)
    with pytest.raises(NonFiniteLossError, match=r"matching loss is nan at outer iteration 1 of 4"):
        run_condensation(run)  # step 0 updates the images with a nan lr; step 1's loss is nan
    assert run.iteration == 4  # noticed at the end (no progress point asked for), not per step


def test_it_is_noticed_at_the_next_progress_point():
    run = DCCondensation(fake_mnist(), "MLP", 1, "ours", Budget(iterations=6, batch_real=4, lr_img=NAN), seed=0)
    seen = []
    with pytest.raises(NonFiniteLossError, match="matching loss is nan at outer iteration 1 of 6"):
        run_condensation(run, lambda it, state: seen.append(it), progress_at=[0, 3, 6])
    assert seen == [0] and run.iteration == 3  # never reported as progress
    run = DCCondensation(fake_mnist(), "MLP", 1, "ours", Budget(iterations=6, batch_real=4, lr_img=NAN), seed=0)
    with pytest.raises(NonFiniteLossError, match="synthetic images are not finite after outer iteration 0"):
        run_condensation(run, lambda it, state: seen.append(it), progress_at=[0, 1])


def test_a_finite_run_is_untouched():
    budget = Budget(iterations=2, batch_real=4)
    a = run_condensation(DCCondensation(fake_mnist(), "MLP", 1, "ours", budget, seed=0))
    assert torch.isfinite(a.images).all()


def test_a_diverged_evaluation_names_the_network_and_epoch():
    train = fake_mnist()
    synthetic = SyntheticSet(train.images[:10], train.labels[:10], "MNIST")
    with pytest.raises(NonFiniteLossError, match=r"evaluation loss of MLP \(seed 3\) is nan at epoch 2 of 3"):
        evaluate(synthetic, train, "MLP", [3], EvalBudget(epochs=3, lr=NAN), vectorised=False)
    # a last step that blows the weights up leaves a finite loss history: the weights tell
    net = build("MLP", 1, 10, (28, 28))
    with torch.no_grad():
        next(net.parameters())[0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"weights of MLP \(seed 3\) are not finite after 1 epochs"):
        check_finite(torch.zeros(1, 4), [net], [3], "MLP", 1, EvalBudget(epochs=1))
    with pytest.raises(NonFiniteLossError, match=r"MLP \(seed 3\) is nan at epoch 2"):  # the vectorised trainer too
        evaluate(synthetic, train, "MLP", [3, 4], EvalBudget(epochs=3, lr=NAN), vectorised=True)


def test_a_diverged_reference_network_is_an_error_not_a_cached_bound():
    with pytest.raises(NonFiniteLossError, match=r"reference MLP training loss is nan at epoch 1 of 2"):
        train_reference(fake_mnist(), "MLP", ReferenceBudget(epochs=2, batch_train=8, lr=NAN), seed=0)


def test_the_trainable_fails_the_cell_at_once_without_retries(tmp_path, monkeypatch):
    from orchestrator.sweep.config import Sweep
    from test_sweep_trainable import run

    monkeypatch.setattr("orchestrator.trial.trainable.ray", __import__("types").SimpleNamespace(get_gpu_ids=lambda: []))
    monkeypatch.setattr("orchestrator.trial.trainable.load", lambda name, root, **kw: (fake_mnist(), fake_mnist()))
    settings = Sweep("t", budget=Budget(iterations=3, batch_real=4, lr_img=NAN),
                     eval_budget=EvalBudget(epochs=1, max_test=20), reference_budget=ReferenceBudget(epochs=1), num_exp=1, num_eval=1, seed=0, data_root="unused",
                        checkpoint_every=5, code_version="test")
    threads = torch.get_num_threads()
    try:
        fake = run(monkeypatch, tmp_path / "trial", settings)
    finally:
        torch.set_num_threads(threads)
    last = fake.reports[-1]
    assert last["done"] and last["failed"].startswith("NonFiniteLossError: exp 0: ")
    # mode S evaluates at iteration 1 (of 3): the images step 0 made are nan, so that is where it stops
    assert "synthetic images are not finite after outer iteration 0 of 3" in last["failed"]
    assert not fake.checkpoints  # no set, no accuracy kept


def test_the_driver_keeps_such_a_cell_as_an_error_row(tmp_path):
    import types

    from orchestrator.driver import outputs
    from orchestrator.sweep.cells import Cell

    cell = Cell("MNIST", "MLP", 1, "S", "ours", "DC", ("metric",))
    message = "NonFiniteLossError: exp 0: matching loss is nan at outer iteration 1 of 3"
    result = types.SimpleNamespace(config={"cell": cell.to_config()}, error=None, checkpoint=None,
                                   metrics={"done": True, "failed": message})
    outcome = outputs.collect([result], [cell], "tiny", tmp_path)
    assert outcome.failed == {cell.cell_id: message} and not outcome.ok and not outcome.unfinished
    assert [(r["status"], r["error"], r["accuracy"]) for r in outcome.rows] == [("error", message, None)]


def test_the_seed_cli_prints_one_line_and_exits_1(monkeypatch, tmp_path, capsys):
    import orchestrator.cli.seed as cli

    monkeypatch.setattr(cli, "load", lambda *a, **k: (fake_mnist(), fake_mnist()))
    code = cli.main(["--dataset", "MNIST", "--model", "MLP", "--smoke", "--lr_img", "1e30", "--Iteration", "2",
                     "--num_eval", "1", "--epoch_eval_train", "1", "--save_path", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and "diverged" in err[0], err
    assert not list(tmp_path.glob("acc_*.json"))  # no accuracies written for a diverged run
