"""The trainable's checkpoints: a trial that crashes mid-condensation and restarts from its last
checkpoint ends with exactly the accuracies and sets of a trial that never crashed.

Ray is not started: ``tune`` inside the trainable is replaced by a recorder of its reports, which is
all a Tune session gives a function trainable (report, get_checkpoint, the trial's resources).
"""
import dataclasses
import math
import shutil
import types
from pathlib import Path

import pytest

import torch
from ray import tune

from conftest import data_root
from condense.data import load
from evaluation.reference import ReferenceBudget
from condense.condensation import Budget
from condense.synthetic import SyntheticSet
from evaluation.train import EvalBudget
from orchestrator.trial import trainable
from orchestrator.sweep.cells import Cell
from orchestrator.sweep.config import Sweep

CELL = Cell("MNIST", "MLP", 1, "S", "ours", "DC", ("metric",))


class Crash(Exception):
    pass


class FakeTune:
    Checkpoint = tune.Checkpoint

    def __init__(self, folder: Path, restore_from=None, crash_at=None):
        self.folder, self.restore_from, self.crash_at = folder, restore_from, crash_at
        self.reports, self.checkpoints = [], []

    def get_context(self):
        resources = types.SimpleNamespace(required_resources={"CPU": 1})
        return types.SimpleNamespace(get_trial_resources=lambda: resources)

    def get_checkpoint(self):
        return self.restore_from

    def report(self, metrics, checkpoint=None):
        self.reports.append(metrics)
        if checkpoint is not None:  # Tune copies it to storage before report returns
            kept = self.folder / f"checkpoint_{len(self.checkpoints):06d}"
            shutil.copytree(checkpoint.path, kept)
            self.checkpoints.append(tune.Checkpoint.from_directory(kept))
            if len(self.checkpoints) == self.crash_at:
                raise Crash


@pytest.fixture
def settings(tmp_path):
    return Sweep("t", budget=Budget(iterations=4, batch_real=16), eval_budget=EvalBudget(epochs=3, max_test=200),
                 reference_budget=ReferenceBudget(epochs=1, max_train=300), num_exp=2, num_eval=2, seed=0,
                    data_root=str(data_root()), checkpoint_every=1, code_version="test",
                    cache_dir=str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def no_ray_session(monkeypatch):
    context = types.SimpleNamespace(get_node_id=lambda: "node-a")
    monkeypatch.setattr(trainable, "ray", types.SimpleNamespace(get_gpu_ids=lambda: [],
                                                                get_runtime_context=lambda: context))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the trainable sets the trial's threads: give the others theirs back


def run(monkeypatch, folder, settings, cell=CELL, starts=None, **kw) -> FakeTune:
    folder.mkdir()
    fake = FakeTune(folder, **kw)
    monkeypatch.setattr(trainable, "tune", fake)
    trainable.train_cell({"cell": cell.to_config()}, settings, starts)
    return fake


def final_state(fake: FakeTune):
    with fake.checkpoints[-1].as_directory() as d:
        state = torch.load(Path(d) / trainable.STATE_FILE, weights_only=True)
        sets = [SyntheticSet.load(Path(d) / trainable.set_file(e)) for e in range(state["exp"])]
    return state, sets


def test_restart_from_a_mid_condensation_checkpoint_matches_an_uninterrupted_trial(tmp_path, monkeypatch, settings):
    whole = run(monkeypatch, tmp_path / "whole", settings)
    state, sets = final_state(whole)
    assert state["exp"] == 2 and len(state["records"]) == 2 * 2  # 2 runs x 2 networks of the one S model
    assert whole.reports[-1]["done"] is True

    # checkpoints: its 1, 2, 3 and the end of exp 0 (4 of them), then exp 1's its 1 and 2: crash there
    with pytest.raises(Crash):
        run(monkeypatch, tmp_path / "crashed", settings, crash_at=6)
    last = tune.Checkpoint.from_directory(tmp_path / "crashed" / "checkpoint_000005")
    resumed = run(monkeypatch, tmp_path / "resumed", settings, restore_from=last)
    assert resumed.reports[0]["resumed_from"] == {"exp": 1, "iteration": 2}  # not from zero
    assert [r["iteration"] for r in resumed.reports if r.get("exp") == 1 and "loss" in r] == [3]

    state2, sets2 = final_state(resumed)
    key = lambda r: (r["exp"], r["eval_model"], r["eval_seed"], r["accuracy"], r["iterations"])  # noqa: E731
    assert [key(r) for r in state2["records"]] == [key(r) for r in state["records"]]
    for a, b in zip(sets, sets2):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)

    # the learning curve (mode S: its 0, 2 and 4 of each run) is kept once, as if it never crashed
    curve = lambda st: [(p["exp"], p["iteration"], p["model"], p["accs"]) for p in st["by_iteration"]]  # noqa: E731
    assert [c[:3] for c in curve(state)] == [(e, i, "MLP") for e in (0, 1) for i in (0, 2, 4)]
    assert curve(state2) == curve(state)
    losses, losses2 = ([p["loss"] for p in st["by_iteration"]] for st in (state, state2))
    assert math.isnan(losses[0]) and math.isnan(losses[3])  # before any step
    assert all(math.isfinite(x) and x > 0 for i, x in enumerate(losses) if i % 3)
    assert losses2[1:3] == pytest.approx(losses[1:3]) and losses2[4:] == pytest.approx(losses[4:])
    r = state2["records"][-1]
    assert r["device_name"] and r["started_at"] <= r["finished_at"]
    with last.as_directory() as d:  # the resumed run's experiment started when the crashed one's did
        assert r["started_at"] == torch.load(Path(d) / trainable.STATE_FILE, weights_only=True)["started_at"]

    # --resume hands the trial the same checkpoint as its starting point (a fresh Tune trial has none)
    started = run(monkeypatch, tmp_path / "started", settings, starts={CELL.cell_id: last})
    assert started.reports[0]["resumed_from"] == {"exp": 1, "iteration": 2}
    state3, _ = final_state(started)
    assert [key(r) for r in state3["records"]] == [key(r) for r in state["records"]]
    assert curve(state3) == curve(state)


def test_a_finished_trial_restored_recomputes_nothing(tmp_path, monkeypatch, settings):
    whole = run(monkeypatch, tmp_path / "whole", settings)
    again = run(monkeypatch, tmp_path / "again", settings, restore_from=whole.checkpoints[-1])
    assert again.reports == [{"done": True, "node_id": "node-a", "exp": 2, "num_exp": 2,
                              "resumed_from": {"exp": 2, "iteration": 0}}]
    assert again.checkpoints == []


@pytest.mark.slow  # over 2 s on 2 cores
def test_a_coreset_cell_selects_from_the_pool_with_a_reference_per_experiment(tmp_path, monkeypatch, settings):
    cell = Cell("MNIST", "ConvNet", 2, "S", "ours", "herding", ("table1",))
    fake = run(monkeypatch, tmp_path / "herding", settings, cell=cell)
    state, sets = final_state(fake)
    assert [(r["exp"], r["iterations"], r["train_images"]) for r in state["records"]] == [(0, 0, 300)] * 2 + [(1, 0, 300)] * 2
    assert all(0 <= r["accuracy"] <= 100 for r in state["records"])
    train = load("MNIST", data_root())[0]
    for e, s in enumerate(sets):  # real training images, of the pool drawn with the experiment's reference seed
        pool = settings.reference_budget.pool(train, settings.reference_seed(e)).batch(slice(None))
        assert s.labels.tolist() == [c for c in range(10) for _ in range(2)]
        assert all((pool == image).flatten(1).all(1).any() for image in s.images)
    # each run its own reference network (seeds 0 and 1), so herding's deterministic picks differ
    assert [s.meta["reference_seed"] for s in sets] == [0, 1] and not torch.equal(sets[0].images, sets[1].images)
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 2
    kcenter = run(monkeypatch, tmp_path / "kcenter", settings, cell=dataclasses.replace(cell, method="kcenter"))
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 2 and kcenter.reports[-1]["done"]  # reused
    # whole: run e's network is run e's coreset reference (same seed), so the bound reuses both
    run(monkeypatch, tmp_path / "whole", settings, cell=dataclasses.replace(cell, ipc=0, method="whole"))
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 2


@pytest.mark.slow  # over 2 s on 2 cores
def test_shared_reference_keeps_one_network_for_every_experiment(tmp_path, monkeypatch, settings):
    cell = Cell("MNIST", "ConvNet", 2, "S", "ours", "herding", ("table1",))
    fake = run(monkeypatch, tmp_path / "herding", dataclasses.replace(settings, shared_reference=True), cell=cell)
    state, sets = final_state(fake)
    assert [s.meta["reference_seed"] for s in sets] == [0, 0] and torch.equal(sets[0].images, sets[1].images)
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 1


@pytest.mark.slow  # over 2 s on 2 cores
def test_a_whole_cell_tests_networks_trained_on_the_whole_pool(tmp_path, monkeypatch, settings):
    cell = Cell("MNIST", "ConvNet", 0, "S", "ours", "whole", ("table1",))
    fake = run(monkeypatch, tmp_path / "whole", settings, cell=cell)
    state, sets = final_state(fake)
    # one network per run, seeds 0 and 1 (run 0's is the coresets' reference), epochs in "iterations"
    assert [(r["exp"], r["eval_seed"], r["iterations"], r["train_images"]) for r in state["records"]] == [
        (0, 0, 1, 300), (1, 1, 1, 300)]
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 2
    assert [len(s) for s in sets] == [100, 100] and sets[0].meta["method"] == "whole"  # the figure's sample
    again = run(monkeypatch, tmp_path / "again", settings, cell=cell, restore_from=fake.checkpoints[-1])
    assert again.checkpoints == [] and again.reports[-1]["done"]


@pytest.mark.slow
def test_a_dm_cell_uses_its_own_budget_and_a_non_finite_loss_fails_it(tmp_path, monkeypatch, settings):
    from condense.condensation import DMBudget, dm

    settings = dataclasses.replace(settings, num_exp=1, dm_budget=DMBudget(iterations=2, batch_real=8))
    cell = Cell("MNIST", "MLP", 1, "S", "ours", "DM", ("methods",))
    state, sets = final_state(run(monkeypatch, tmp_path / "dm", settings, cell=cell))
    assert [(r["exp"], r["iterations"]) for r in state["records"]] == [(0, 2)] * 2  # DM's 2, not DC's 4
    # MNIST under dsa_strategy auto: the README's digit setting, no flip
    assert sets[0].meta["method"] == "DM" and sets[0].meta["dsa_strategy"] == "color_crop_cutout_scale_rotate"
    chosen = dataclasses.replace(settings, dsa_strategy="crop_flip")
    _, sets = final_state(run(monkeypatch, tmp_path / "chosen", chosen, cell=cell))
    assert sets[0].meta["dsa_strategy"] == "crop_flip"
    monkeypatch.setattr(dm, "distribution_matching_loss", lambda embed, real, syn, **kw: syn.sum() * float("nan"))
    failed = run(monkeypatch, tmp_path / "nan", settings, cell=cell).reports[-1]["failed"]
    assert failed.startswith("NonFiniteLossError: exp 0: ") and "matching loss is nan" in failed


def test_bad_data_fails_the_cell_at_once_without_tunes_retries(tmp_path, monkeypatch, settings):
    """An error no retry can fix (bad data, a bad setting) ends the trial as failed instead of raising,
    which Tune would retry max_failures times."""
    (tmp_path / "data" / "MNIST").mkdir(parents=True)
    (tmp_path / "data" / "MNIST" / "train.npz").write_bytes(b"PK\x03\x04 cut off")
    (tmp_path / "data" / "MNIST" / "test.npz").write_bytes(b"PK\x03\x04 cut off")
    bad = dataclasses.replace(settings, data_root=str(tmp_path / "data"))
    fake = run(monkeypatch, tmp_path / "bad", bad)
    failed = fake.reports[-1]["failed"]
    assert fake.reports[-1]["done"] and fake.checkpoints == []
    assert failed.startswith("ConfigError: exp 0: cannot read MNIST train data from ") and "\n" not in failed
