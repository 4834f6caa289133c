"""Tables rendered from a hand-made Parquet: known means and stds, published numbers and
differences, failed cells as failed, missing ones as missing."""
import pytest

from orchestrator.results import parquet, tables
from orchestrator.sweep.cells import Cell


def cell(model, mode, metric="ours", tables_=("table2",), dataset="MNIST", ipc=1, method="DC"):
    return Cell(dataset, model, ipc, mode, metric, method, tables_)


def accs(c, by_model, iterations=10, train_images=60000):
    records = [{"exp": i // 2, "eval_model": m, "eval_seed": i, "accuracy": a, "condense_seconds": 1.0,
                "eval_seconds": 1.0, "iterations": iterations, "train_images": train_images, "code_version": "v",
                "torch_version": "t", "device": "cpu"}
               for m, values in by_model.items() for i, a in enumerate(values)]
    return parquet.ok_rows("hand", c, records)


@pytest.fixture
def results_file(tmp_path):
    rows = accs(cell("MLP", "M"), {"MLP": [60.0]})
    rows += accs(cell("ConvNet", "M"), {"MLP": [70.0, 71.0, 72.0], "ConvNet": [90.0, 92.0]})
    rows += parquet.error_rows("hand", cell("AlexNet", "M"), "dataset MNIST not found")
    rows += parquet.error_rows("hand", cell("LeNet", "M"), "unfinished", status="missing")  # an interrupted run's
    shared = cell("ConvNet", "S", tables_=("table1", "metric"))
    rows += accs(shared, {"ConvNet": [91.0, 92.0]})
    rows += accs(cell("MLP", "S", metric="mse", tables_=("metric",)), {"MLP": [10.0, 20.0]})
    path = tmp_path / "results.parquet"
    parquet.write(rows, path)
    return path


def md_rows(md: str) -> dict[str, list[str]]:
    """First label of each body row -> its cells."""
    body = [line for line in md.splitlines() if line.startswith("| ")][1:]  # after the header
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in body)}


def test_cross_architecture_table(results_file):
    df = parquet.read(results_file)
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


def test_table1_and_a_shared_cell_in_both_its_tables(results_file):
    df = parquet.read(results_file)
    assert tables.table_names(df) == ["table2", "table1", "metric"]
    t1 = [line for line in tables.markdown(df, "table1").splitlines() if line.startswith("| ")]
    assert t1[0] == "| dataset | ipc \\ method | DC |"
    assert t1[1] == "| MNIST | 1 | 91.50 ± 0.50 [91.7 ± 0.5; Δ -0.20] |"
    metric = md_rows(tables.markdown(df, "metric"))
    assert metric == {"ConvNet": ["91.50 ± 0.50 [91.7 ± 0.5; Δ -0.20]", "missing"],
                      "MLP": ["missing", "15.00 ± 5.00"]}  # no published number for MLP with mse


def test_table1_has_the_papers_six_columns_and_the_whole_bound_once_per_dataset(tmp_path):
    t1 = ("table1",)
    rows = []  # written in an order unlike the paper's: the columns still come out in its order
    for ipc in (1, 10):
        rows += accs(cell("ConvNet", "S", tables_=t1, ipc=ipc), {"ConvNet": [90.0 + ipc / 10]})
    for method, acc in (("forgetting", 30.0), ("kcenter", 80.0), ("herding", 85.0), ("random", 60.0)):
        for ipc in (1, 10):
            rows += accs(cell("ConvNet", "S", tables_=t1, ipc=ipc, method=method), {"ConvNet": [acc + ipc]}, 0)
    rows += accs(cell("ConvNet", "S", tables_=t1, ipc=0, method="whole"), {"ConvNet": [99.0, 99.5]}, 50, 60000)
    rows += accs(cell("ConvNet", "S", tables_=t1, dataset="SVHN", ipc=1, method="random"), {"ConvNet": [15.0]}, 0)
    parquet.write(rows, tmp_path / "r.parquet")
    df = parquet.read(tmp_path / "r.parquet")
    md = tables.markdown(df, "table1")
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0] == ("| dataset | ipc \\ method | Random | Herding | K-Center | Forgetting | DC | whole dataset |")
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]
    assert [b[:2] for b in body] == [["MNIST", "1"], ["MNIST", "10"], ["SVHN", "1"]]  # no ipc-0 row
    assert body[0][2:] == ["61.00 ± 0.00 [64.9 ± 3.5; Δ -3.90]", "86.00 ± 0.00 [89.2 ± 1.6; Δ -3.20]",
                           "81.00 ± 0.00 [89.3 ± 1.5; Δ -8.30]", "31.00 ± 0.00 [35.5 ± 5.6; Δ -4.50]",
                           "90.10 ± 0.00 [91.7 ± 0.5; Δ -1.60]", "99.25 ± 0.25 [99.6 ± 0.0; Δ -0.35]"]
    assert body[1][-1] == ""  # the bound is shown once per dataset, in its first row
    assert body[1][2] == "70.00 ± 0.00 [95.1 ± 0.9; Δ -25.10]"
    assert body[2][2:] == ["15.00 ± 0.00 [14.6 ± 1.6; Δ +0.40]", *["missing"] * 4, "missing"]
    assert "Whole dataset: networks trained on 60000 training images for 50 epochs" in md
    tex = tables.latex(df, "table1")
    assert "K-Center & Forgetting & DC & whole dataset" in tex and "for 50 epochs" in tex


def test_latex_escapes_and_uses_math_symbols(results_file):
    df = parquet.read(results_file)
    tex = tables.latex(df, "table2")
    assert "\\begin{tabular}{lcccccc}" in tex
    assert "ConvNet & 71.00 $\\pm$ 0.82 [69.6 $\\pm$ 1.6; $\\Delta$+1.40]" in tex
    assert "model \\textbackslash{} eval\\_model" in tex


def test_cli_writes_md_and_tex_and_rejects_bad_input(results_file, tmp_path, capsys):
    assert tables.main([str(results_file)]) == 0
    written = sorted(p.name for p in (results_file.parent / "tables").iterdir())
    assert written == ["metric.md", "metric.tex", "table1.md", "table1.tex", "table2.md", "table2.tex"]
    assert "91.00 ± 1.00" in capsys.readouterr().out
    assert tables.main([str(tmp_path / "nope.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.parquet" in err[0]


@pytest.mark.parametrize("change, message", [
    ({"accuracy": float("nan")}, "1 ok row(s) with an accuracy that is not a percentage in 0..100 (first: cell "
                                 "MNIST-MLP-ipc1-M-ours: nan)"),
    ({"accuracy": None}, "not a percentage in 0..100"),
    ({"accuracy": float("inf")}, "not a percentage in 0..100"),
    ({"accuracy": -0.5}, "not a percentage in 0..100"),
    ({"accuracy": 100.5}, "not a percentage in 0..100"),
    ({"status": "done"}, "unknown status 'done' (cell MNIST-MLP-ipc1-M-ours); allowed: ok, error, missing"),
    ({"table": ["table9"]}, "unknown table 'table9'"),
    ({"method": "magic"}, "unknown method 'magic'"),
    ({"method": "set:../x"}, "unknown method 'set:../x'"),
    ({"dataset": "IMAGENET77"}, "unknown dataset 'IMAGENET77' (cell MNIST-MLP-ipc1-M-ours); allowed: MNIST, "),
    ({"dataset": None}, "column dataset: null"),
    (None, "no rows: nothing to render"),
])
def test_the_results_tools_refuse_what_they_cannot_render_in_one_line(tmp_path, capsys, change, message):
    from orchestrator.results import plots

    rows = accs(cell("MLP", "M"), {"MLP": [60.0]}) + accs(cell("ConvNet", "M"), {"MLP": [70.0]})
    rows = [{**rows[0], **change}, *rows[1:]] if change else []
    bad = tmp_path / "bad.parquet"
    parquet.write(rows, bad)
    for tool in (tables, plots):
        assert tool.main([str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {bad}: ") and message in err[0], err
    assert not (tmp_path / "tables").exists() and not (tmp_path / "plots").exists()


def test_the_results_tools_take_external_sets_own_tables_and_python_m_evaluations(tmp_path, capsys):
    from orchestrator.results import plots

    rows = accs(cell("ConvNet", "S", tables_=("evaluation",), method="set:mine"), {"ConvNet": [80.0, 82.0]})
    rows += accs(cell("ConvNet", "S", tables_=("mine",), ipc=10), {"ConvNet": [90.0]})
    layouts = {"mine": {"rows": ["dataset"], "column": "ipc"}}
    path = tmp_path / "results.parquet"
    parquet.write(rows, path, {"sweep": {"name": "own", "layouts": layouts}})
    assert tables.main([str(path)]) == 0 and plots.main([str(path)]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["evaluation.md", "evaluation.tex",
                                                                       "mine.md", "mine.tex"]
    parquet.write(rows, path)  # the own table's layout not recorded: not a table the file knows
    assert tables.main([str(path)]) == 2 and "unknown table 'mine'" in capsys.readouterr().err


def test_the_tables_out_naming_a_file_or_a_bad_flag_is_one_line(results_file, tmp_path, capsys):
    from orchestrator.results import plots

    (tmp_path / "afile").write_text("")
    assert tables.main([str(results_file), "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --out {tmp_path / 'afile'}: cannot write"), err
    for tool in (tables, plots):  # the same one-line parser as every entry point, not argparse's usage
        with pytest.raises(SystemExit) as exit_:
            tool.main([str(results_file), "--colour", "red"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and err == ["error: unrecognized arguments: --colour red"]


def test_latex_has_booktabs_rules_and_each_rows_best_in_bold(tmp_path):
    t1 = ("table1",)
    rows = accs(cell("ConvNet", "S", tables_=t1), {"ConvNet": [90.0]})
    rows += accs(cell("ConvNet", "S", tables_=t1, method="random"), {"ConvNet": [60.0]}, 0)
    rows += accs(cell("ConvNet", "S", tables_=t1, ipc=0, method="whole"), {"ConvNet": [99.0]}, 50)
    parquet.write(rows, tmp_path / "r.parquet")
    tex = tables.latex(parquet.read(tmp_path / "r.parquet"), "table1")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\hline" not in tex
    # DC beats random; the whole-dataset bound is higher but not a contender, as in the paper
    assert "\\textbf{90.00 $\\pm$ 0.00}" in tex and "\\textbf{99.00" not in tex and "\\textbf{60.00" not in tex


def test_cli_formats_table_choice_and_no_published(results_file, tmp_path, capsys):
    out = tmp_path / "t"
    assert tables.main([str(results_file), "--out", str(out), "--format", "csv", "--tables", "table2",
                        "--no-published"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["table2.csv"]
    import csv
    lines = list(csv.DictReader((out / "table2.csv").open()))
    assert list(lines[0]) == ["model", "eval_model", "state", "mean", "std", "n"]
    conv = {r["eval_model"]: r for r in lines if r["model"] == "ConvNet"}
    assert (conv["MLP"]["mean"], conv["MLP"]["std"], conv["MLP"]["n"]) == ("71.0000", "0.8165", "3")
    assert conv["LeNet"]["state"] == "missing"
    assert tables.main([str(results_file), "--out", str(out), "--format", "md", "--no-published"]) == 0
    md = (out / "table2.md").read_text()
    assert "71.00 ± 0.82 |" in md and "[" not in md
    capsys.readouterr()
    assert tables.main([str(results_file), "--format", "pdf"]) == 2
    assert tables.main([str(results_file), "--tables", "table9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "'pdf'" in err[0] and "md, tex, csv" in err[0] and "'table9'" in err[1]


def test_a_results_file_of_the_first_schema_still_renders(tmp_path):
    from test_sweep_results import first_schema_file
    first_schema_file(tmp_path / "old.parquet")
    assert tables.main([str(tmp_path / "old.parquet")]) == 0
    body = [line for line in (tmp_path / "tables" / "table1.md").read_text().splitlines() if line.startswith("| ")]
    assert body[0] == "| dataset | ipc \\ method | Random | DC | whole dataset |"
    assert body[1] == ("| MNIST | 1 | 60.00 ± 0.00 [64.9 ± 3.5; Δ -4.90] | 90.00 ± 0.00 [91.7 ± 0.5; Δ -1.70] "
                       "| 99.00 ± 0.00 [99.6 ± 0.0; Δ -0.60] |")
    assert "for 40 epochs" in (tmp_path / "tables" / "table1.md").read_text()


def test_methods_table_has_a_column_per_method_and_dsa_published_means(tmp_path):
    t = ("methods",)
    rows = []
    for method, acc in (("DM", 85.0), ("DSA", 88.0), ("DC", 91.0)):
        rows += accs(cell("ConvNet", "S", tables_=t, method=method), {"ConvNet": [acc, acc + 1]})
    parquet.write(rows, tmp_path / "r.parquet")
    md = tables.markdown(parquet.read(tmp_path / "r.parquet"), "methods")
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0] == "| dataset | ipc \\ method | DC | DSA | DM |"
    # DSA's README gives means only; no DM number is entered without a primary source
    assert lines[1] == ("| MNIST | 1 | 91.50 ± 0.50 [91.7 ± 0.5; Δ -0.20] | 88.50 ± 0.50 [88.7; Δ -0.20] | "
                        "85.50 ± 0.50 |")
