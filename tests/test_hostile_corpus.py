"""The hostile corpus (tests/hostile_corpus.py), case by case, in-process: each bad input is exactly
one line on stderr and exit 2 (a harmless one exit 0), never a traceback or a warning, and nothing
is written outside the folder the user named."""
import os
import warnings
from pathlib import Path

import pytest

import hostile_corpus

CASES = hostile_corpus.cases()


def main_of(tool: str):
    if tool == "evaluation":
        from orchestrator.cli.evaluate import main
    elif tool == "run":
        from orchestrator.driver.run import main
    else:
        from importlib import import_module
        main = import_module(f"orchestrator.results.{tool}").main
    return main


def snapshot(folder: Path, out: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` but those in ``out``: its kind, size and content's time."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            if path == out or out in path.parents:
                continue
            st = os.lstat(path)
            found[str(path)] = (st.st_mode, st.st_size if not os.path.isdir(path) else 0, st.st_mtime_ns)
    return found


@pytest.mark.timeout(60)  # a FIFO opened for reading would block: fail instead
@pytest.mark.parametrize("key", list(CASES))
def test_a_hostile_input_is_one_line_and_writes_nothing_outside_its_output(key, tmp_path, capsys, monkeypatch):
    sandbox = tmp_path / "sandbox"
    monkeypatch.chdir(tmp_path)  # a relative path anyone writes lands in the sandbox's parent: seen below
    for case in CASES[key](sandbox):  # each tool that reads it, in turn
        for name, value in case.env.items():
            monkeypatch.setenv(name, value)
        out, what = Path(case.out), f"{key} ({case.tool})"
        before = snapshot(tmp_path, out)
        capsys.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = main_of(case.tool)(case.argv)
            except SystemExit as exit_:  # argparse's way out
                code = exit_.code
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == case.code, (what, err)
        assert "Traceback" not in err and not [str(w.message) for w in caught], (what, err)
        if case.code == 2:
            assert len(lines) == 1 and lines[0].startswith("error: ") and case.words in lines[0], (what, lines)
        else:
            assert lines == [], (what, lines)
        assert snapshot(tmp_path, out) == before, what
    assert not (tmp_path / "pwned").exists() and not (sandbox / "pwned").exists()
    outside = sandbox / "outside.txt"
    assert not outside.exists() or outside.read_bytes() == b"keep me\n"


def test_the_corpus_covers_every_kind():
    kinds = {key.split("/")[0] for key in CASES}
    assert kinds == {"results", "curves", "output", "set file", "sweep"} and len(CASES) >= 90
