"""--resume from the run folder's own records (orchestrator/driver/resume.py), without Ray: whatever state
tune/ is in (gone, cut off, tampered), finished cells are rebuilt from their last checkpoint or the
results, part-way cells continue from their most advanced checkpoint, and nothing is unpickled."""
import errno
import os
import pickle

import pyarrow.parquet as pq
import pytest
import torch

from conftest import data_root
from condense.synthetic import SyntheticSet
from orchestrator.driver import resume, run
from orchestrator.results import parquet
from orchestrator.sweep import spec
from orchestrator.trial import trainable
from orchestrator.sweep.cells import expand

SWEEP = """tables:
  table1: {datasets: [MNIST], models: [ConvNet], ipcs: [1], eval_modes: [S], metrics: [ours], methods: [random, DC]}
num_exp: 1
num_eval: 2
budget: {iterations: 4, batch_real: 16}
eval_budget: {epochs: 10, max_test: 2000}
checkpoint_every: 2
"""
DC, RANDOM = "MNIST-ConvNet-ipc1-S-ours", "MNIST-ConvNet-ipc1-S-ours-random"


class Evil:
    """A pickle that would leave a file behind if anything unpickled it."""

    def __init__(self, witness):
        self.witness = str(witness)

    def __reduce__(self):
        return (os.system, (f"touch {self.witness}",))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A sweep file, its sweep and cells as the driver makes them, and its run folder with sweep.json."""
    monkeypatch.setenv("DC_DATA", str(data_root()))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):  # a driver run here sets its local Ray's: restored after
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "tiny.yaml"
    path.write_text(SWEEP)
    sweep = spec.load(path).for_run(str(data_root()), "test")
    cells = expand(sweep)
    out = tmp_path / "runs" / "tiny"
    out.mkdir(parents=True)
    run.prepare_output(out, cells, sweep, resume=False)
    return path, sweep, cells, out


def checkpoint(folder, exp: int, iteration: int = 0, accuracy: float = 50.0):
    """A checkpoint as the trainable writes it: ``exp`` finished experiments, ``iteration`` into the next."""
    folder.mkdir(parents=True)
    records = [{"exp": e, "eval_model": "ConvNet", "eval_seed": s, "accuracy": accuracy + s, "condense_seconds": 1.0,
                "eval_seconds": 2.0, "iterations": 4, "train_images": 60000, "code_version": "test",
                "torch_version": str(torch.__version__), "device": "cpu", "device_name": "cpu", "started_at": 0.0,
                "finished_at": 1.0} for e in range(exp) for s in (0, 1)]
    torch.save({"exp": exp, "records": records, "condensation": {"iteration": iteration} if iteration else None,
                "condense_seconds": 0.0, "by_iteration": [], "window": None, "started_at": 0.0},
               folder / trainable.STATE_FILE)
    for e in range(exp):
        SyntheticSet(torch.zeros(10, 1, 28, 28), torch.arange(10), "MNIST", {}).save(folder / trainable.set_file(e))
    return folder


def tamper(tune_dir, witness):
    """tune/ as a full disk or a hostile user leaves it: a cut-off experiment state, a tuner.pkl that
    runs code when unpickled."""
    tune_dir.mkdir(parents=True, exist_ok=True)
    (tune_dir / "experiment_state-2026.json").write_text('{"trial_data": [["{\\"trial_id')
    (tune_dir / "tuner.pkl").write_bytes(pickle.dumps(Evil(witness)))


def test_finished_and_part_way_cells_come_from_the_best_checkpoint_whatever_tune_holds(folder, tmp_path):
    _, sweep, cells, out = folder
    tune_dir = out / "tune"
    tamper(tune_dir, tmp_path / "pwned")
    checkpoint(tune_dir / RANDOM / "checkpoint_000000", exp=1, accuracy=40.0)
    checkpoint(out / resume.CHECKPOINTS / DC, exp=0, iteration=2)  # kept by an earlier resume ...
    checkpoint(tune_dir / DC / "checkpoint_000003", exp=0, iteration=3)  # ... and Tune's newer one
    newest = tune_dir / DC / "checkpoint_000004"
    newest.mkdir()
    (newest / trainable.STATE_FILE).write_bytes(pickle.dumps(Evil(tmp_path / "pwned")))  # tampered: passed over

    known, starts = resume.prepare(out, tune_dir, cells, sweep, "tiny")
    assert not (tmp_path / "pwned").exists()  # nothing unpickled
    assert not tune_dir.exists()  # the new Tune experiment starts empty
    assert list(known) == [RANDOM] and known[RANDOM].ok == [RANDOM]
    assert [r["accuracy"] for r in known[RANDOM].rows] == [40.0, 41.0]
    assert (out / "synthetic" / f"{RANDOM}-exp0.pt").is_file() and (out / "figures" / f"{RANDOM}.png").is_file()
    assert starts == {DC: str(out / resume.CHECKPOINTS / DC)}
    assert resume.progress(out / resume.CHECKPOINTS / DC) == (0, 3)  # the most advanced one was moved there
    assert sorted(p.name for p in (out / resume.CHECKPOINTS).iterdir()) == sorted([DC, RANDOM])


def test_without_tune_or_checkpoints_the_results_ok_rows_are_kept_if_the_budgets_match(folder):
    _, sweep, cells, out = folder
    by_id = {c.cell_id: c for c in cells}
    rows = parquet.ok_rows("tiny", by_id[RANDOM], [{"exp": 0, "eval_model": "ConvNet", "eval_seed": 0,
                                                    "accuracy": 47.5}])
    rows += parquet.error_rows("tiny", by_id[DC], "crashed")
    meta = {"budgets": sweep.comparable()}
    parquet.write(rows, out / "results.parquet", meta)
    known, starts = resume.prepare(out, out / "tune", cells, sweep, "tiny")
    assert list(known) == [RANDOM] and starts == {}  # the failed cell runs again
    assert [r["accuracy"] for r in known[RANDOM].rows] == [47.5]

    parquet.write(rows, out / "results.parquet", {"budgets": {**meta["budgets"], "num_eval": 3}})
    assert resume.prepare(out, out / "tune", cells, sweep, "tiny") == ({}, {})  # another sweep's rows
    (out / "results.parquet").unlink()
    (out / "results.parquet").mkdir()  # not a file at all
    assert resume.prepare(out, out / "tune", cells, sweep, "tiny") == ({}, {})


@pytest.mark.slow  # three drivers in-process: several seconds on 2 busy cores
def test_resuming_a_finished_run_rewrites_its_outputs_without_ray_and_a_full_disk_is_one_line(
        folder, tmp_path, monkeypatch, capsys):
    path, sweep, cells, out = folder
    for cell in cells:
        checkpoint(out / "tune" / cell.cell_id / "checkpoint_000001", exp=1, accuracy=30.0)
    tamper(out / "tune", tmp_path / "pwned")
    (out / "driver.lock").write_text("")  # a driver stopped by a full disk
    (out / ".results.parquet.999.tmp").write_text("half")  # and a writer killed mid-write

    assert run.main([str(path), "--output", str(tmp_path / "runs"), "--resume"]) == 0
    printed = capsys.readouterr()
    assert "on a local Ray" not in printed.out and "2 cells: 2 ok" in printed.out  # no Ray started
    assert "resuming: 2 of 2 cells finished before" in printed.out
    assert not (tmp_path / "pwned").exists() and not (out / ".results.parquet.999.tmp").exists()
    df = parquet.read(out / "results.parquet")
    assert (df.status == "ok").all() and sorted(df.accuracy) == [30.0, 30.0, 31.0, 31.0]
    before = (out / "results.parquet").read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as full:
        full.setattr(pq, "write_table", no_space)
        assert run.main([str(path), "--output", str(tmp_path / "runs"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write {out / 'results.parquet'}: No space left on device" in err[0], err
    assert "free there" in err[0]
    assert (out / "results.parquet").read_bytes() == before
    assert [p for p in out.rglob("*.tmp")] == [] and not (out / "driver.lock").exists()
    # space freed: the same results again
    assert run.main([str(path), "--output", str(tmp_path / "runs"), "--resume"]) == 0
    assert (out / "results.parquet").read_bytes() == before
