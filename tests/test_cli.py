import json
import os
import subprocess
import sys
import types

import pytest

from conftest import REPO, data_root


def cli(*args, data=None, timeout=600):
    env = {**os.environ, "DC_DATA": str(data or data_root()), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "condense", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def seed_cli(capsys, monkeypatch, tmp_path):
    """``python -m condense ARGS`` in this process (no interpreter and torch import per call):
    returns (exit status, stdout, stderr)."""
    from orchestrator.cli.seed import main

    monkeypatch.setenv("DC_DATA", str(data_root()))
    monkeypatch.chdir(tmp_path)  # the default --save_path is ./result

    def call(*args):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse: --help, a malformed flag
            code = exit_.code
        out, err = capsys.readouterr()
        return types.SimpleNamespace(returncode=code, stdout=out, stderr=err)
    return call


def test_help_lists_every_seed_flag(seed_cli):
    out = seed_cli("--help").stdout
    for flag in ("--method", "--dataset", "--model", "--ipc", "--eval_mode", "--num_exp", "--num_eval",
                 "--epoch_eval_train", "--Iteration", "--lr_img", "--lr_net", "--batch_real",
                 "--batch_train", "--init", "--dis_metric", "--data_path", "--save_path", "--device",
                 "--seed", "--smoke", "--list-models", "--download"):
        assert flag in out, flag


def test_help_lists_every_method_and_the_baseline_flags(seed_cli):
    out = " ".join(seed_cli("--help").stdout.split())
    for word in ("DC", "DSA", "DM", "random", "herding", "kcenter", "forgetting", "whole", "--epoch_reference",
                 "--max_train", "--max_train_subset", "--cache_dir", "--dsa_strategy", "color_crop_cutout_flip_scale_rotate"):
        assert word in out, word


def test_list_models_prints_registry(seed_cli):
    from condense.networks import list_models

    assert seed_cli("--list-models").stdout.split() == list_models()


def test_list_methods_prints_the_method_table(seed_cli):
    from condense.methods import METHODS

    lines = seed_cli("--list-methods").stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == list(METHODS)
    for line in lines[1:]:
        name, kind, budget = line.split()[:3]
        assert (kind, budget) == (METHODS[name].kind, METHODS[name].budget)


def test_the_cli_makes_the_set_a_sweep_trial_makes_for_the_same_cell(seed_cli, mnist, tmp_path):
    from orchestrator.trial import experiment
    from orchestrator.sweep.cells import Cell
    from orchestrator.cli.seed import parse_args, sweep_for

    flags = ["--method", "random", "--dataset", "MNIST", "--ipc", "1", "--smoke", "--num_exp", "2", "--num_eval", "1",
             "--epoch_eval_train", "1", "--seed", "7", "--save_path", str(tmp_path)]
    assert seed_cli(*flags).returncode == 0
    chosen = json.loads((tmp_path / "acc_random_MNIST_ConvNet_1ipc.json").read_text())["indices"]
    cell = Cell("MNIST", "ConvNet", 1, "S", "ours", "random", ("table1",))
    sweep = sweep_for(parse_args(flags))
    assert chosen == [experiment.select(cell, mnist[0], sweep, e).meta["indices"] for e in range(2)]
    assert chosen[0] != chosen[1]


@pytest.mark.parametrize("args, bad", [
    (["--dataset", "FOO"], "FOO"),
    (["--model", "NoSuchNet"], "NoSuchNet"),
    (["--dis_metric", "l3"], "l3"),
    (["--eval_mode", "Q"], "Q"),
    (["--init", "zeros"], "zeros"),
    (["--ipc", "0"], "0"),
    (["--ipc", "7"], "7"),
    (["--ipc", "one"], "one"),
    (["--method", "magic"], "magic"),
    (["--method", "herding", "--epoch_reference", "0"], "0"),
    (["--method", "random", "--max_train", "0"], "0"),
    (["--method", "random", "--ipc", "100", "--max_train", "500"], "fewer"),
    (["--method", "random", "--max_train", "500", "--max_train_subset", "top"],
     "unknown --max_train_subset 'top'; allowed: stratified, first"),
    (["--max_train_subset", "first"], "--max_train_subset applies to the coreset methods"),
    (["--max_train", "500"], "--max_train"),
    (["--method", "DSA", "--dsa_strategy", "color_blur"], "blur"),
    (["--dsa_strategy", "crop"], "--dsa_strategy"),
])
def test_bad_input_is_one_line_exit_2(seed_cli, args, bad):
    base = {"--dataset": "MNIST", "--model": "ConvNet", "--ipc": "1"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = seed_cli(*[x for kv in base.items() for x in kv], "--smoke")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and bad in lines[0], r.stderr


def test_dsa_strategy_auto_is_accepted_for_dsa_and_dm():
    import orchestrator.cli.seed as cli

    for method in ("DSA", "DM"):
        cli.validate(cli.parse_args(["--method", method, "--dataset", "MNIST", "--dsa_strategy", "auto", "--smoke"]))


@pytest.mark.parametrize("args, bad", [
    (["--lr_img", "nan"], "--lr_img must be a finite number, got nan"),
    (["--lr_net", "inf"], "--lr_net must be a finite number, got inf"),
    (["--lr_img", "-1"], "--lr_img must be > 0"),
    (["--num_exp", "9" * 30], "--num_exp must be below 2**63"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--device", "foo"], "--device 'foo': not a torch device"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--save_path", "/proc/nonexistent/x"], "--save_path /proc/nonexistent/x: cannot write there"),
    (["--save_path", "README"], "names an existing file"),
    (["--ipc", "7"], "--ipc 7: no paper loop setting"),
    (["--max_train", "5"], "--max_train applies to the coreset methods"),
    (["--save_path", "x" * 300], "cannot write there (File name too long)"),
    (["--method", "herding", "--cache_dir", "README"], "--cache_dir README: names an existing file"),
    (["--method", "whole", "--cache_dir", "README/sub"], "--cache_dir"),
])
def test_bad_numbers_device_and_save_path_are_refused_before_data_loads(seed_cli, monkeypatch, tmp_path, args, bad):
    import orchestrator.cli.seed as cli

    def no_load(*a, **k):
        raise AssertionError("data loaded before the flags were checked")

    monkeypatch.setattr(cli, "load", no_load)
    (tmp_path / "README").write_text("a file, not a folder")
    r = seed_cli("--dataset", "MNIST", "--smoke", *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and bad in lines[0], r.stderr
    assert "outer_loop" not in lines[0]  # the seed CLI has no such flags to point at


def test_missing_data_is_one_line_exit_2(seed_cli, tmp_path):
    r = seed_cli("--dataset", "CIFAR10", "--model", "ConvNet", "--ipc", "1", "--smoke", "--data_path", str(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "CIFAR10" in lines[0] and str(tmp_path) in lines[0], r.stderr


@pytest.mark.parametrize("broken, named", [
    ("class", "train/n00000007/images"),  # a class of wnids.txt without its folder
    ("train", "train/n00000007/images/n00000007_0.JPEG"),  # an unreadable training JPEG
    ("val", "val/images/val_5.JPEG"),  # an unreadable validation JPEG
])
def test_a_broken_tiny_imagenet_folder_is_one_line_naming_it(seed_cli, tmp_path, broken, named):
    import shutil

    from test_datasets_seed import tiny_folder

    t = tiny_folder(tmp_path / "data")
    if broken == "class":
        shutil.rmtree(t / "train" / "n00000007")
    else:
        (t / named).write_bytes(b"not a jpeg")
    r = seed_cli("--dataset", "TinyImageNet", "--ipc", "1", "--smoke", "--Iteration", "1",
                 "--data_path", str(tmp_path / "data"), "--save_path", str(tmp_path / "out"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and str(t / named) in lines[0], r.stderr


@pytest.mark.parametrize("flag", ["--lr_img", "--lr_net"])
def test_a_learning_rate_beyond_float32_is_the_one_line_divergence_error(seed_cli, tmp_path, flag):
    r = seed_cli("--dataset", "MNIST", "--smoke", "--num_eval", "1", flag, "1e308", "--save_path", str(tmp_path))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "beyond the range of float32" in lines[0], r.stderr


def test_a_class_short_of_ipc_real_images_names_the_file(seed_cli, tmp_path):
    import numpy as np

    src = np.load(data_root() / "MNIST" / "train.npz")
    keep = np.concatenate([np.flatnonzero(src["labels"] == c)[:1 if c == 3 else 20] for c in range(10)])
    (tmp_path / "MNIST").mkdir()
    np.savez(tmp_path / "MNIST" / "train.npz", images=src["images"][keep], labels=src["labels"][keep])
    np.savez(tmp_path / "MNIST" / "test.npz", images=src["images"][:200], labels=src["labels"][:200])
    for args in (["--init", "real"], ["--method", "DSA"], ["--method", "random"]):
        r = seed_cli("--dataset", "MNIST", "--smoke", "--ipc", "10", *args, "--data_path", str(tmp_path),
                     "--save_path", str(tmp_path / "out"))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert f"{tmp_path}/MNIST/train.npz: class 3 has 1 training images, fewer than the 10 per class" in lines[0]


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end: over the 300 s default on a busy machine
def test_smoke_run_on_real_mnist_end_to_end(tmp_path):
    r = cli("--dataset", "MNIST", "--model", "ConvNet", "--ipc", "1", "--smoke", "--device", "cpu",
            "--save_path", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    tag = "DC_MNIST_ConvNet_1ipc"
    assert (tmp_path / f"syn_{tag}_exp0.pt").exists()
    assert (tmp_path / f"vis_{tag}_exp0.png").stat().st_size > 0
    results = json.loads((tmp_path / f"acc_{tag}.json").read_text())
    accs = results["accuracies"]["ConvNet"]
    assert len(accs) == 2 and all(0 <= a <= 100 for a in accs)
    assert "±" in r.stdout.strip().splitlines()[-1]
    # mode S evaluates at iterations 0, half and last
    assert sorted({e["iteration"] for e in results["by_iteration"]}) == [0, 10, 20]
    # and a loss line every tenth of the run in between
    progress = [line.split()[3] for line in r.stdout.splitlines() if line.startswith("exp 0 iter") and " eval " not in line]
    assert progress == [str(i) for i in range(2, 20, 2) if i != 10], r.stdout
