"""Method plugins: a package registers a method through the entry point group condense.methods.
The example package (docs/extending.md's) is installed into a temporary folder as a path entry with its
dist-info, no network: --list-methods shows it, the seed CLI and a smoke sweep run it by name, and a
broken plugin is left out in one warning line while the built-in methods work."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, data_root

# The example of docs/extending.md, verbatim: the record (read when condense.methods is imported) ...
RECORD = '''\
from condense.methods import Method

METHOD = Method("meanmatch", "condensation", "images pulled towards the mean of real batches", "budget",
                default_init="noise", make="meanmatch.run:MeanMatch")
'''
# ... and the maker (imported when a set is made).
MAKER = '''\
from condense.condensation import Condensation


class MeanMatch(Condensation):
    method = "meanmatch"

    def step(self):
        """One iteration: each synthetic image moves towards the mean of a real batch of its class."""
        k = self.train.info.num_classes
        real = self.train.images[self.sampler.sample(self.budget.batch_real, self.generator)]
        syn = self.images.view(k, self.ipc, *self.images.shape[1:])
        loss = ((syn - real.mean(1, keepdim=True)) ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.record_loss(loss)
        self.iteration += 1
'''


def install(root: Path, name: str, entry_points: str, files: dict[str, str]) -> Path:
    """A package as pip leaves it: its modules and a dist-info with METADATA and entry_points.txt."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[condense.methods]\n{entry_points}\n")
    return root


def example(tmp_path: Path) -> Path:
    return install(tmp_path / "site", "meanmatch", "meanmatch = meanmatch:METHOD",
                   {"meanmatch/__init__.py": RECORD, "meanmatch/run.py": MAKER})


LIST = "from condense import methods; print(methods.table())"


def python(site: Path, *args, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)]), "DC_DATA": str(data_root()),
           "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_example_is_under_30_lines_and_listed_by_name(tmp_path):
    assert len((RECORD + MAKER).splitlines()) < 30
    site = example(tmp_path)
    r = python(site, "-c", LIST)  # what --list-methods prints, without the CLI's torch import (fast tier)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("meanmatch "))
    assert line.split()[:3] == ["meanmatch", "condensation", "budget"] and "meanmatch" in line.split()[7]


def test_a_broken_plugin_is_one_warning_line_and_the_rest_work(tmp_path):
    site = install(tmp_path / "site", "broken", "oops = broken:METHOD\ntwice = broken:NAMED",
                   {"broken/__init__.py": "raise ImportError('no such thing')\n"})
    install(site, "clash", "DC = clash:METHOD", {"clash/__init__.py": RECORD.replace('"meanmatch", "cond', '"DC", "cond')})
    r = python(site, "-c", LIST)
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("DC ")
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 3, r.stderr
    assert any("oops (broken) not loaded: ImportError: no such thing" in w for w in warnings)
    assert any("DC (clash) left out: name 'DC' is a built-in method's" in w for w in warnings)


def test_a_plugin_record_is_checked():
    from condense.methods import METHODS, Method, plugin_problem

    good = Method("mine", "coreset", "x", "reference_budget", make="mine:select")
    assert plugin_problem(good, "mine") is None
    assert "not a condense.methods.Method" in plugin_problem(object(), "mine")
    assert "kind 'bound'" in plugin_problem(Method("mine", "bound", "x", "reference_budget", make="m:f"), "mine")
    assert "budget 'eval_budget'" in plugin_problem(Method("mine", "coreset", "x", "eval_budget", make="m:f"), "mine")
    assert "not starting with 'set'" in plugin_problem(Method("setx", "coreset", "x", "budget", make="m:f"), "setx")
    assert "entry point 'other'" in plugin_problem(good, "other")
    assert "'module:attribute'" in plugin_problem(Method("mine", "coreset", "x", "budget"), "mine")
    assert all(m.source == "built-in" for m in METHODS.values())  # no plugin installed in this environment


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_seed_cli_and_a_smoke_sweep_run_the_plugin_by_name(tmp_path):
    site = example(tmp_path)
    listed = python(site, "-m", "condense", "--list-methods")
    assert listed.returncode == 0 and "\nmeanmatch " in listed.stdout
    r = python(site, "-m", "condense", "--method", "meanmatch", "--dataset", "MNIST", "--smoke", "--num_eval", "1",
               "--epoch_eval_train", "2", "--Iteration", "4", "--save_path", tmp_path / "cli", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Summary meanmatch_MNIST_ConvNet_1ipc trained ConvNet, evaluated ConvNet: 1 nets" in r.stdout
    sweep = tmp_path / "plug.yaml"
    sweep.write_text(yaml.safe_dump({
        "tables": {"plugged": {"datasets": ["MNIST"], "models": ["ConvNet"], "ipcs": [1], "eval_modes": ["S"],
                               "methods": ["meanmatch", "random"]}},
        "num_exp": 1, "num_eval": 1, "budget": {"iterations": 4, "batch_real": 16},
        "eval_budget": {"epochs": 2, "max_test": 500}, "resources": {"cpu": 1, "gpu": 0}, "max_failures": 0}))
    r = python(site, "-m", "orchestrator.run", sweep, "--smoke", "--output", tmp_path / "runs", timeout=800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    table = (tmp_path / "runs" / "plug-smoke" / "tables" / "plugged.md").read_text()
    assert "| dataset \\ method | meanmatch | random |" in table and "failed" not in table, table
