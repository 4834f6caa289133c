"""Figures and the report, drawn from a hand-made run folder: a file per table (PNG and PDF), the
curves, a report page that parses and points only at files that exist."""
import random
from html.parser import HTMLParser

import pytest

from orchestrator.results import curves, plots, report, parquet
from orchestrator.sweep.cells import Cell


def run_folder(folder, table1=True, table2=True, metric=True, ablation=True):
    """A results and a curves Parquet as a sweep writes them, with made-up accuracies."""
    rng = random.Random(0)
    rows, points = [], []

    def add(cell, by_model, curve=False):
        records = [{"exp": e, "eval_model": m, "eval_seed": i, "accuracy": a + rng.gauss(0, 1.5),
                    "condense_seconds": 1.0, "eval_seconds": 1.0, "iterations": 0 if cell.method != "DC" else 20,
                    "train_images": 60000, "code_version": "v", "torch_version": "t", "device": "cpu"}
                   for m, a in by_model.items() for e in range(2) for i in range(3)]
        rows.extend(parquet.ok_rows("hand", cell, records))
        if curve:
            by_iteration = [{"exp": e, "iteration": it, "model": m, "accs": [a * (0.3 + 0.7 * it / 20) + rng.gauss(0, 1)
                                                                                for _ in range(3)],
                             "loss": float("nan") if it == 0 else (1.0 if cell.metric == "ours" else 40.0) / (1 + it)}
                            for m, a in by_model.items() for e in range(2) for it in (0, 10, 20)]
            points.extend(curves.rows("hand", cell, by_iteration))

    if table1:
        for dataset, base in (("MNIST", 90.0), ("FashionMNIST", 70.0)):
            for ipc in (1, 10, 50):
                for k, method in enumerate(("random", "herding", "kcenter", "forgetting", "DC")):
                    acc = base - 25 / ipc - 5 * (4 - k) + 5 * (method == "DC")
                    add(Cell(dataset, "ConvNet", ipc, "S", "ours", method, ("table1",)), {"ConvNet": acc},
                        curve=method == "DC")
            add(Cell(dataset, "ConvNet", 0, "S", "ours", "whole", ("table1",)), {"ConvNet": base + 8})
    if table2:
        pool = ("MLP", "ConvNet", "LeNet", "AlexNet", "VGG11", "ResNet18")
        for i, model in enumerate(("MLP", "ConvNet", "LeNet", "AlexNet", "VGG11BN", "ResNet18BN_AP")):
            cell = Cell("MNIST", model, 1, "M", "ours", "DC", ("table2",))
            if model == "AlexNet":
                rows.extend(parquet.error_rows("hand", cell, "boom"))
                continue
            add(cell, {m: 60 + 4 * i + 3 * j for j, m in enumerate(pool)}, curve=True)
    if metric:
        for model, acc in (("ConvNet", 90.0), ("MLP", 60.0)):
            for dis, delta in (("ours", 0), ("mse", -15)):
                add(Cell("MNIST", model, 1, "S", dis, "DC", ("metric",)), {model: acc + delta}, curve=not table1)
    if ablation:
        widths = ("ConvNetW32", "ConvNetW64", "ConvNetW128", "ConvNetW256")
        for i, model in enumerate(widths):
            add(Cell("MNIST", model, 1, "W", "ours", "DC", ("ablation_width",)),
                {m: 80 + 2 * i + j for j, m in enumerate(widths)})
    folder.mkdir(parents=True, exist_ok=True)
    parquet.write(rows, folder / "results.parquet", {"budgets": {"num_exp": 2}, "versions": {"torch": "t"}})
    curves.write(points, folder / "curves.parquet")
    return folder / "results.parquet"


@pytest.mark.slow
def test_every_table_and_the_curves_get_a_png_and_a_pdf(tmp_path):
    path = run_folder(tmp_path / "run")
    written = plots.write_plots(path)
    names = ["table1", "table2", "metric", "ablation_width", "curves"]
    assert sorted(p.name for p in written) == sorted(f"{n}.{s}" for n in names for s in ("png", "pdf"))
    for p in written:
        assert p.parent == tmp_path / "run" / "plots" and p.stat().st_size > 5000
        assert p.read_bytes()[:4] == (b"\x89PNG" if p.suffix == ".png" else b"%PDF")


def test_cli_draws_into_output_and_rejects_a_missing_file(tmp_path, capsys):
    path = run_folder(tmp_path / "run", table1=False, table2=False, ablation=False)
    assert plots.main([str(path), "--output", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "curves.pdf", "curves.png", "metric.pdf", "metric.png"]
    capsys.readouterr()
    assert plots.main([str(tmp_path / "nope.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.parquet" in err[0]


class Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("href", "src")]


def test_report_parses_and_references_only_files_that_exist(tmp_path):
    from orchestrator.results import tables
    path = run_folder(tmp_path / "run", table1=False, table2=False, ablation=False)
    run = path.parent
    tables.write_tables(parquet.read(path), run / "tables")
    (run / "plots").mkdir()
    (run / "plots" / "metric.png").write_bytes(b"\x89PNG stand-in")  # drawn by plots in the sweep
    page = report.write_report(run).read_text()
    parser = Refs()
    parser.feed(page)
    parser.close()
    assert "script" not in parser.tags and "link" not in parser.tags
    assert "plots/metric.png" in parser.refs and "tables/metric.tex" in parser.refs
    assert all("://" not in r and (run / r).is_file() for r in parser.refs), parser.refs
    assert "plots/curves.png" not in parser.refs  # not drawn here: not referenced
    assert "Ablation: gradient distance" in page and "<td>ConvNet</td>" in page and "num_exp" in page


@pytest.mark.slow
def test_tables_of_failed_cells_or_whole_cells_alone_still_draw(tmp_path):
    whole = Cell("MNIST", "ConvNet", 0, "S", "ours", "whole", ("table1",))
    record = {"exp": 0, "eval_model": "ConvNet", "eval_seed": 0, "accuracy": 98.0, "condense_seconds": 0.0,
              "eval_seconds": 1.0, "iterations": 3, "train_images": 2000, "code_version": "v", "torch_version": "t",
              "device": "cpu"}
    rows = parquet.ok_rows("s", whole, [record])
    rows += parquet.error_rows("s", Cell("MNIST", "ConvNet", 1, "M", "ours", "DC", ("table2",)), "boom")
    rows += parquet.error_rows("s", Cell("MNIST", "MLP", 1, "S", "mse", "DC", ("metric",)), "boom")
    (tmp_path / "run").mkdir()
    parquet.write(rows, tmp_path / "run" / "results.parquet")
    curves.write([], tmp_path / "run" / "curves.parquet")  # no condensed cell finished: no curves figure
    written = plots.write_plots(tmp_path / "run" / "results.parquet")
    assert sorted(p.stem for p in written) == sorted(["table1", "table2", "metric"] * 2)
