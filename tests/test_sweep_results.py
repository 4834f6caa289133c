"""The results Parquet: exactly the schema, failed cells kept, written atomically."""
import pyarrow.parquet as pq
import pytest

from orchestrator import results
from orchestrator.cells import Cell

SCHEMA = ("sweep cell_id table dataset model ipc eval_mode dis_metric method exp eval_model eval_seed accuracy "
          "condense_seconds eval_seconds iterations train_images code_version torch_version device status error").split()
CELL = Cell("MNIST", "ConvNet", 1, "M", "ours", "DC", ("table2",))


def record(exp, model, seed, acc):
    return {"exp": exp, "eval_model": model, "eval_seed": seed, "accuracy": acc, "condense_seconds": 1.5,
            "eval_seconds": 0.5, "iterations": 10, "train_images": 60000, "code_version": "abc", "torch_version": "2.x", "device": "cpu"}


def test_round_trip_has_exactly_the_schema(tmp_path):
    rows = results.ok_rows("s", CELL, [record(0, "MLP", 7, 91.5), record(0, "LeNet", 8, 80.0)])
    rows += results.error_rows("s", Cell("SVHN", "ConvNet", 1, "M", "ours", "DC", ("table2",)), "boom\n  twice")
    path = tmp_path / "results.parquet"
    results.write(rows, path)
    df = results.read(path)
    assert list(df.columns) == SCHEMA == results.COLUMNS
    assert pq.read_schema(path).equals(results.SCHEMA)
    ok, err = df[df.status == "ok"], df[df.status == "error"]
    assert ok.accuracy.tolist() == [91.5, 80.0] and ok.eval_seed.tolist() == [7, 8]
    assert ok.table.unique().tolist() == ["table2"] and ok.dis_metric.unique().tolist() == ["ours"]
    # one error row per evaluation model of the pool, the message on one line, no accuracy
    assert err.eval_model.tolist() == CELL.eval_models() and err.accuracy.isna().all()
    assert err.error.unique().tolist() == ["boom twice"]
    assert err.cell_id.unique().tolist() == ["SVHN-ConvNet-ipc1-M-ours"]


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "results.parquet"
    results.write(results.ok_rows("s", CELL, [record(0, "MLP", 1, 50.0)]), path)
    before = path.read_bytes()

    def crash(table, where):
        with open(where, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(results.pq, "write_table", crash)
    with pytest.raises(OSError):
        results.write(results.ok_rows("s", CELL, [record(0, "MLP", 1, 60.0)]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]  # no temp file left behind


def test_same_rows_give_identical_bytes(tmp_path):
    rows = results.ok_rows("s", CELL, [record(e, "MLP", e, 50.0 + e) for e in range(3)])
    results.write(rows, tmp_path / "a.parquet")
    results.write(rows, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
