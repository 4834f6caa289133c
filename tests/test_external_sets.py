"""External sets: a sweep's set:<name> method (spec, cells, experiment) and `python -m evaluation`,
which evaluates the same files with the same seeds a sweep's cell does."""
import subprocess
import sys

import numpy as np
import pytest
import yaml

from condense import methods
from condense.errors import ConfigError
from conftest import REPO, data_root
from orchestrator.trial import experiment
from orchestrator.sweep import spec
from orchestrator.sweep.cells import Cell, describe, expand

GRID = {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1], "eval_modes": ["S"],
        "methods": ["random", "set:mine"]}


def write_set(path, ipc=1, seed=0):
    g = np.random.default_rng(seed)
    np.savez(path, images=g.integers(0, 256, (10 * ipc, 28, 28, 1), dtype=np.uint8),
             labels=np.repeat(np.arange(10), ipc))
    return path


def sweep_file(tmp_path, sets, tables=None, **settings):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"tables": tables or {"mine_vs_random": GRID}, "sets": sets, "num_exp": 2,
                                    **settings}))
    return path


def test_set_methods_are_external_records_not_table_entries():
    m = methods.get("set:mine")
    assert (m.kind, m.budget, m.make) == (methods.EXTERNAL, None, None) and "set:mine" not in methods.METHODS
    with pytest.raises(ConfigError, match="letters, digits"):
        methods.get("set:a/b")


def test_a_sweep_reads_its_sets_globs_sorted_and_relative_to_its_file(tmp_path):
    (tmp_path / "sets").mkdir()
    for i in (1, 0):
        write_set(tmp_path / "sets" / f"mine-{i}.npz", seed=i)
    sweep = spec.load(sweep_file(tmp_path, {"mine": {"MNIST-ipc1": ["sets/mine-*.npz"]}}))
    assert sweep.set_files("set:mine", "MNIST", 1) == tuple(str(tmp_path / "sets" / f"mine-{i}.npz") for i in (0, 1))
    cells = expand(sweep)
    external = cells[1]
    assert external.cell_id == "MNIST-ConvNet-ipc1-S-ours-set-mine" and external.record.from_files  # no colon in file names
    assert "sets read from" in describe(external, sweep)
    sets = experiment.external_sets(external, sweep)
    assert [s.meta["source"] for s in sets] == list(sweep.set_files("set:mine", "MNIST", 1))
    experiment.check_external(cells, sweep)
    assert sweep.comparable()["sets"] == {"mine": {"MNIST-ipc1": list(sweep.set_files("set:mine", "MNIST", 1))}}


def test_external_sets_at_one_position_share_their_networks_whatever_their_name():
    a = Cell("MNIST", "ConvNet", 1, "S", "ours", "set:a", ())
    b = Cell("MNIST", "ConvNet", 1, "S", "ours", "set:b", ())
    dc = Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ())
    assert a.exp_seed(0, 0) == b.exp_seed(0, 0) != dc.exp_seed(0, 0)
    assert a.exp_seed(0, 0) != a.exp_seed(0, 1)


@pytest.mark.parametrize("sets, words", [
    ({}, "set:mine: no files for MNIST-ipc1 (no sets entry of that name)"),
    ({"mine": {"MNIST-ipc10": ["x.npz"]}}, "no files for MNIST-ipc1 (sets.mine has MNIST-ipc10)"),
    ({"mine": {"MNIST-1": ["x.npz"]}}, "expected <dataset>-ipc<k>"),
    ({"mine": {"MNIST-ipc1": []}}, "empty"),
    ({"mine": {"MNIST-ipc1": [3]}}, "expected str"),
    ({"a/b": {"MNIST-ipc1": ["x.npz"]}}, "sets.a/b"),
])
def test_a_bad_sets_entry_is_refused_when_the_sweep_is_read(tmp_path, sets, words):
    with pytest.raises(ConfigError) as err:
        spec.load(sweep_file(tmp_path, sets))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_missing_too_few_or_wrong_sized_files_are_refused_before_the_run(tmp_path):
    write_set(tmp_path / "one.npz")
    write_set(tmp_path / "ten.npz", ipc=10)
    for files, words in ((["one.npz", "gone.npz"], f"no such file: {tmp_path / 'gone.npz'}"),
                         (["none-*.npz"], "none-*.npz"),
                         (["one.npz"], "hold 1 set(s), but num_exp is 2"),
                         (["one.npz", "ten.npz"], "100 images, but set:mine is listed under MNIST-ipc1")):
        sweep = spec.load(sweep_file(tmp_path, {"mine": {"MNIST-ipc1": files}}))
        with pytest.raises(ConfigError) as err:
            experiment.check_external(expand(sweep), sweep)
        assert words in str(err.value), str(err.value)


def test_the_seed_cli_sends_external_sets_to_python_m_evaluation():
    from orchestrator.cli.seed import parse_args, validate

    with pytest.raises(ConfigError, match="python -m evaluation"):
        validate(parse_args(["--method", "set:mine", "--dataset", "MNIST"]))


def evaluation(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "evaluation", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"DC_DATA": str(data_root()), "PATH": "/usr/bin:/bin",
                                                       "PYTHONPATH": str(REPO)})


def test_python_m_evaluation_refuses_bad_input_in_one_line_before_training(tmp_path, capsys):
    from orchestrator.cli.evaluate import main

    np.savez(tmp_path / "soft.npz", images=np.zeros((10, 1, 28, 28), np.float32), labels=np.eye(10, dtype=np.float32))
    write_set(tmp_path / "good.npz")
    for args, words in (((tmp_path / "soft.npz", "--dataset", "MNIST"), "soft labels"),
                        ((tmp_path / "good.npz", "--dataset", "MNST"), "unknown dataset 'MNST'"),
                        ((tmp_path / "good.npz", "--dataset", "MNIST", "--augment", "flip"), "unknown augment"),
                        ((tmp_path / "good.npz", "--dataset", "MNIST", "--num_eval", "0"), "--num_eval"),
                        ((tmp_path / "good.npz", "--dataset", "MNIST", "--name", "a/b"), "--name 'a/b'"),
                        ((tmp_path / "good.npz",), "--dataset")):
        try:
            code = main([*map(str, args), "--output", str(tmp_path / "out")])
        except SystemExit as exit_:  # argparse's own refusals
            code = exit_.code
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and words in lines[0], lines
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
def test_python_m_evaluation_gives_the_numbers_a_sweeps_cell_gives_the_same_files(tmp_path, mnist):
    """Its cell is a sweep's set:<name> cell: the same seeds, pool and budget give the same accuracies,
    written with the sweep's results columns."""
    from evaluation import set_files
    from evaluation.train import EvalBudget
    from orchestrator.results import parquet
    from orchestrator.sweep.config import Sweep

    test = mnist[1]
    files = [write_set(tmp_path / f"s{i}.npz", seed=i) for i in range(2)]
    r = evaluation(*files, "--dataset", "MNIST", "--num_eval", "2", "--epochs", "2", "--name", "mine",
                   "--output", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    df = parquet.read(tmp_path / "out" / "mine.parquet")
    assert list(df.columns[:len(parquet.COLUMNS)]) == parquet.COLUMNS and (df.status == "ok").all()
    assert set(df.method) == {"set:mine"} and df.dis_metric.isna().all() and df.ipc.tolist() == [1] * 4
    cell = Cell("MNIST", "ConvNet", 1, "S", "ours", "set:other-name", ("t",))
    sweep = Sweep("s", num_exp=2, num_eval=2, eval_budget=EvalBudget(epochs=2))
    for exp, f in enumerate(files):
        (s,) = set_files.read(f, "MNIST")
        seeds, accs = experiment.evaluate_set(s, test, sweep, cell.exp_seed(0, exp), "ConvNet", 0)
        mine = df[df.exp == exp]
        assert mine.eval_seed.tolist() == seeds and mine.accuracy.tolist() == pytest.approx(accs)
    assert "Summary MNIST-ConvNet-ipc1-S-ours-set-mine, evaluated ConvNet: 2 set(s) x 2 nets" in r.stdout
    again = evaluation(files[0], "--dataset", "MNIST", "--num_eval", "1", "--epochs", "1", "--name", "mine",
                       "--output", tmp_path / "out")
    assert again.returncode == 0 and (tmp_path / "out" / "mine-2.parquet").is_file()  # nothing overwritten


def test_a_sets_path_is_literal_first_and_a_glob_only_where_no_file_has_its_name(tmp_path):
    """`set[1].npz` is that file even when `set1.npz` (what the glob would match) is there too; a glob
    is a glob where no file has its exact name; the cell reads the literal file."""
    literal = write_set(tmp_path / "set[1].npz", seed=1)
    write_set(tmp_path / "set1.npz", seed=2)
    write_set(tmp_path / "set2.npz", seed=3)
    sweep = spec.load(sweep_file(tmp_path, {"mine": {"MNIST-ipc1": ["set[1].npz", "set[2].npz"]}}))
    assert sweep.set_files("set:mine", "MNIST", 1) == (str(literal), str(tmp_path / "set2.npz"))
    cell = next(c for c in expand(sweep) if c.method == "set:mine")
    first = experiment.external_sets(cell, sweep)[0]
    assert first.meta["source"] == str(literal)


def test_a_sets_path_of_an_unknown_user_a_folder_or_a_fifo_is_one_line(tmp_path):
    import os

    (tmp_path / "afolder.npz").mkdir()
    os.mkfifo(tmp_path / "fifo.npz")
    for entry, words in (("~nosuchuser-dc/x.npz", "cannot expand '~nosuchuser-dc/x.npz'"),
                         ("afolder.npz", "a folder, not a regular file"), ("fifo.npz", "a FIFO, not a regular file"),
                         ("fifo*.npz", "a FIFO, not a regular file")):
        with pytest.raises(ConfigError) as err:
            spec.load(sweep_file(tmp_path, {"mine": {"MNIST-ipc1": [entry]}}))
        assert words in str(err.value) and "sets.mine.MNIST-ipc1[0]" in str(err.value), str(err.value)
