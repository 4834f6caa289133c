"""Tables rendered from a hand-made Parquet: known means and stds, published numbers and
differences, failed cells as failed, missing ones as missing."""
import pytest

from orchestrator import results, tables
from orchestrator.cells import Cell


def cell(model, mode, metric="ours", tables_=("table2",), dataset="MNIST", ipc=1):
    return Cell(dataset, model, ipc, mode, metric, "DC", tables_)


def accs(c, by_model):
    records = [{"exp": i // 2, "eval_model": m, "eval_seed": i, "accuracy": a, "condense_seconds": 1.0,
                "eval_seconds": 1.0, "iterations": 10, "code_version": "v", "torch_version": "t", "device": "cpu"}
               for m, values in by_model.items() for i, a in enumerate(values)]
    return results.ok_rows("hand", c, records)


@pytest.fixture
def parquet(tmp_path):
    rows = accs(cell("MLP", "M"), {"MLP": [60.0]})
    rows += accs(cell("ConvNet", "M"), {"MLP": [70.0, 71.0, 72.0], "ConvNet": [90.0, 92.0]})
    rows += results.error_rows("hand", cell("AlexNet", "M"), "dataset MNIST not found")
    rows += results.error_rows("hand", cell("LeNet", "M"), "unfinished", status="missing")  # an interrupted run's
    shared = cell("ConvNet", "S", tables_=("table1", "metric"))
    rows += accs(shared, {"ConvNet": [91.0, 92.0]})
    rows += accs(cell("MLP", "S", metric="mse", tables_=("metric",)), {"MLP": [10.0, 20.0]})
    path = tmp_path / "results.parquet"
    results.write(rows, path)
    return path


def md_rows(md: str) -> dict[str, list[str]]:
    """First label of each body row -> its cells."""
    body = [line for line in md.splitlines() if line.startswith("| ")][1:]  # after the header
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in body)}


def test_cross_architecture_table(parquet):
    df = results.read(parquet)
    md = tables.markdown(df, "table2")
    header = [line for line in md.splitlines() if line.startswith("| ")][0]
    assert header == "| model \\ eval_model | MLP | ConvNet | LeNet | AlexNet | VGG11 | ResNet18 |"
    rows = md_rows(md)
    assert list(rows) == ["MLP", "ConvNet", "AlexNet", "LeNet"]
    # mean ± population std over all accuracies; the paper's number and ours - paper
    assert rows["ConvNet"][:2] == ["71.00 ± 0.82 [69.6 ± 1.6; Δ +1.40]", "91.00 ± 1.00 [91.7 ± 0.5; Δ -0.70]"]
    assert rows["ConvNet"][2:] == ["missing"] * 4
    assert rows["MLP"] == ["60.00 ± 0.00 [70.5 ± 1.2; Δ -10.50]"] + ["missing"] * 5
    assert rows["AlexNet"] == ["failed"] * 6
    assert rows["LeNet"] == ["missing"] * 6


def test_table1_and_a_shared_cell_in_both_its_tables(parquet):
    df = results.read(parquet)
    assert tables.table_names(df) == ["table2", "table1", "metric"]
    t1 = [line for line in tables.markdown(df, "table1").splitlines() if line.startswith("| ")]
    assert t1[0] == "| dataset | ipc \\ method | DC |"
    assert t1[1] == "| MNIST | 1 | 91.50 ± 0.50 [91.7 ± 0.5; Δ -0.20] |"
    metric = md_rows(tables.markdown(df, "metric"))
    assert metric == {"ConvNet": ["91.50 ± 0.50 [91.7 ± 0.5; Δ -0.20]", "missing"],
                      "MLP": ["missing", "15.00 ± 5.00"]}  # no published number for MLP with mse


def test_latex_escapes_and_uses_math_symbols(parquet):
    df = results.read(parquet)
    tex = tables.latex(df, "table2")
    assert "\\begin{tabular}{lcccccc}" in tex
    assert "ConvNet & 71.00 $\\pm$ 0.82 [69.6 $\\pm$ 1.6; $\\Delta$+1.40]" in tex
    assert "model \\textbackslash{} eval\\_model" in tex


def test_cli_writes_md_and_tex_and_rejects_bad_input(parquet, tmp_path, capsys):
    assert tables.main([str(parquet)]) == 0
    written = sorted(p.name for p in (parquet.parent / "tables").iterdir())
    assert written == ["metric.md", "metric.tex", "table1.md", "table1.tex", "table2.md", "table2.tex"]
    assert "91.00 ± 1.00" in capsys.readouterr().out
    assert tables.main([str(tmp_path / "nope.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.parquet" in err[0]
