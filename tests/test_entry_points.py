"""The command lines answer --help at once: the driver's argument parsing, the tables and the plots
import neither torch nor Ray nor matplotlib (they are imported when a sweep or a figure needs them)."""
import subprocess
import sys

from conftest import REPO

HEAVY = ("torch", "ray", "matplotlib")


def test_entry_point_modules_import_without_torch():
    code = ("import sys; import orchestrator.run, orchestrator.tables, orchestrator.plots, orchestrator.report; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_rendering_tables_imports_no_torch(tmp_path):
    from orchestrator.results import parquet
    from orchestrator.sweep.cells import Cell

    cell = Cell("MNIST", "ConvNet", 1, "S", "ours", "DC", ("table1",))
    parquet.write(parquet.error_rows("t", cell, "failed"), tmp_path / "results.parquet")
    code = ("import sys; from orchestrator import tables; "
            f"assert tables.main([{str(tmp_path / 'results.parquet')!r}]) == 0; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
