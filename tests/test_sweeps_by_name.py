"""Shipped sweeps by name (orchestrator/sweep/shipped.py): ``python -m orchestrator.run table2`` from
any folder, ``--list-sweeps``, and the package list in pyproject.toml that installs them."""
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO
from orchestrator.sweep import shipped


def test_a_bare_name_finds_the_shipped_sweep_and_a_path_that_exists_wins(tmp_path, monkeypatch):
    assert shipped.resolve("table2") == REPO / "sweeps" / "table2.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "table2").write_text("tables: {}\n")
    assert shipped.resolve("table2") == tmp_path.joinpath("table2").relative_to(tmp_path)
    assert str(shipped.resolve("elsewhere/table2.yaml")) == "elsewhere/table2.yaml"  # a path: spec.load says


def test_a_bare_name_that_is_neither_is_one_line_naming_list_sweeps(tmp_path, monkeypatch):
    from condense.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"sweep 'tabel2': no such file here and no shipped sweep of that "
                                          r"name; shipped: .*table2.*--list-sweeps"):
        shipped.resolve("tabel2")


def test_the_purpose_is_the_first_sentence_of_the_opening_comment(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("# Mine: a grid of\n# two lines. More words.\n# Still more.\ntables: {}\n# later\n")
    assert shipped.purpose(path) == "Mine: a grid of two lines."
    path.write_text("tables: {}\n")
    assert shipped.purpose(path) == ""


def test_list_sweeps_names_each_with_its_cells_and_purpose(capsys):
    from orchestrator.driver.run import main

    assert main(["--list-sweeps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(list((REPO / "sweeps").glob("*.yaml")))
    smoke = next(line for line in lines if line.startswith("smoke "))
    assert " 9 cells  A few MNIST cells with tiny budgets" in smoke


def test_the_package_list_is_every_package_folder_and_the_sweeps():
    """pyproject.toml names the packages (find cannot map sweeps/ into orchestrator): a new package
    folder must be added there, or a non-editable install would lack it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(REPO).parts) for top in ("condense", "evaluation", "orchestrator")
             for p in (REPO / top).rglob("__init__.py")}
    assert set(conf["packages"]) == found | {"orchestrator.sweeps"}
    assert conf["package-dir"] == {"orchestrator.sweeps": "sweeps"}


@pytest.mark.slow
def test_the_wheel_holds_the_sweeps_and_the_console_scripts(tmp_path):
    source = tmp_path / "source"  # a copy: a build writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "condense", "evaluation", "orchestrator", "sweeps"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                             if (REPO / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=600)
    wheel = zipfile.ZipFile(next(tmp_path.glob("*.whl")))
    names = wheel.namelist()
    assert {f"orchestrator/sweeps/{p.name}" for p in (REPO / "sweeps").glob("*.yaml")} <= set(names)
    entry = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for script in ("dc-sweep", "dc-cell", "dc-evaluate", "dc-tables", "dc-plots", "dc-report"):
        assert f"{script} = " in entry
