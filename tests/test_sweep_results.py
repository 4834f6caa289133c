"""The results Parquet: exactly the schema, failed cells kept, written atomically, self-describing;
files of the first schema still read."""
import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.results import parquet
from orchestrator.sweep.cells import Cell

SCHEMA = ("sweep cell_id table dataset model ipc eval_mode dis_metric method exp eval_model eval_seed accuracy "
          "condense_seconds eval_seconds iterations epochs train_images code_version torch_version device device_name "
          "started_at finished_at status error dsa_strategy architecture proxy steps step classes_seen").split()
CELL = Cell("MNIST", "ConvNet", 1, "M", "ours", "DC", ("table2",))


def record(exp, model, seed, acc):
    return {"exp": exp, "eval_model": model, "eval_seed": seed, "accuracy": acc, "condense_seconds": 1.5,
            "eval_seconds": 0.5, "iterations": 10, "train_images": 60000, "code_version": "abc", "torch_version": "2.x", "device": "cpu"}


def test_round_trip_has_exactly_the_schema(tmp_path):
    rows = parquet.ok_rows("s", CELL, [record(0, "MLP", 7, 91.5), record(0, "LeNet", 8, 80.0)])
    rows += parquet.error_rows("s", Cell("SVHN", "ConvNet", 1, "M", "ours", "DC", ("table2",)), "boom\n  twice")
    path = tmp_path / "results.parquet"
    parquet.write(rows, path)
    df = parquet.read(path)
    assert list(df.columns) == SCHEMA == parquet.COLUMNS
    assert pq.read_schema(path).equals(parquet.SCHEMA)
    ok, err = df[df.status == "ok"], df[df.status == "error"]
    assert ok.accuracy.tolist() == [91.5, 80.0] and ok.eval_seed.tolist() == [7, 8]
    assert ok.table.map(list).tolist() == [["table2"]] * 2 and ok.dis_metric.unique().tolist() == ["ours"]
    assert pq.read_schema(path).field("table").type == pa.list_(pa.string())
    # one error row per evaluation model of the pool, the message on one line, no accuracy
    assert err.eval_model.tolist() == CELL.eval_models() and err.accuracy.isna().all()
    assert err.error.unique().tolist() == ["boom twice"]
    assert err.cell_id.unique().tolist() == ["SVHN-ConvNet-ipc1-M-ours"]


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "results.parquet"
    parquet.write(parquet.ok_rows("s", CELL, [record(0, "MLP", 1, 50.0)]), path)
    before = path.read_bytes()

    def crash(table, where):
        with open(where, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(parquet.pq, "write_table", crash)
    with pytest.raises(OSError):
        parquet.write(parquet.ok_rows("s", CELL, [record(0, "MLP", 1, 60.0)]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.parquet"]  # no temp file left behind


def test_same_rows_give_identical_bytes(tmp_path):
    rows = parquet.ok_rows("s", CELL, [record(e, "MLP", e, 50.0 + e) for e in range(3)])
    parquet.write(rows, tmp_path / "a.parquet")
    parquet.write(rows, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_what_does_not_apply_is_null_and_provenance_is_kept(tmp_path):
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    rec = {**record(0, "ConvNet", 1, 99.0), "iterations": 50, "device_name": "NVIDIA H100",  # as the trainable's
           "started_at": start.timestamp(), "finished_at": start.timestamp() + 90}
    whole = Cell("MNIST", "ConvNet", 0, "S", "ours", "whole", ("table1",))
    herding = Cell("MNIST", "ConvNet", 10, "S", "ours", "herding", ("table1",))
    dc = Cell("MNIST", "ConvNet", 10, "S", "ours", "DC", ("table1", "metric"))
    rows = [*parquet.ok_rows("s", whole, [rec]), *parquet.ok_rows("s", herding, [{**rec, "iterations": 0}]),
            *parquet.ok_rows("s", dc, [{**rec, "iterations": 1000}])]
    parquet.write(rows, tmp_path / "r.parquet")
    df = parquet.read(tmp_path / "r.parquet").set_index("method")
    assert pd.isna(df.loc["whole", "ipc"]) and pd.isna(df.loc["whole", "iterations"])
    assert df.loc["whole", "epochs"] == 50
    assert pd.isna(df.loc["herding", "dis_metric"]) and pd.isna(df.loc["herding", "iterations"])
    assert df.loc["herding", "ipc"] == 10 and pd.isna(df.loc["herding", "epochs"])
    assert (df.loc["DC", "ipc"], df.loc["DC", "iterations"], df.loc["DC", "dis_metric"]) == (10, 1000, "ours")
    assert list(df.loc["DC", "table"]) == ["table1", "metric"]
    assert df.loc["DC", "device_name"] == "NVIDIA H100" and df.loc["DC", "started_at"] == pd.Timestamp(start)
    assert (df.loc["DC", "finished_at"] - df.loc["DC", "started_at"]).total_seconds() == 90


def test_budgets_sweep_and_versions_travel_as_key_value_metadata(tmp_path):
    meta = {"budgets": {"num_exp": 5, "budget": {"iterations": 1000}}, "sweep": {"name": "s"},
            "versions": {"torch": "2.x"}}
    parquet.write(parquet.ok_rows("s", CELL, [record(0, "MLP", 1, 50.0)]), tmp_path / "r.parquet", meta)
    assert parquet.metadata(tmp_path / "r.parquet") == meta
    assert b"budgets" in pq.read_schema(tmp_path / "r.parquet").metadata


def first_schema_file(path):
    """A results file as written before the schema change: comma-joined tables, ipc 0 and the
    epochs in iterations for a whole cell, a coreset with dis_metric ours and iterations 0."""
    old = pa.schema([(n, pa.string() if n in ("table",) else t) for n, t in zip(
        parquet.SCHEMA.names, parquet.SCHEMA.types) if n not in ("epochs", "device_name", "started_at", "finished_at")])
    base = {"sweep": "old", "eval_mode": "S", "exp": 0, "eval_model": "ConvNet", "eval_seed": 0,
            "condense_seconds": 1.0, "eval_seconds": 1.0, "train_images": 60000, "code_version": "v",
            "torch_version": "t", "device": "cpu", "status": "ok", "error": None, "dataset": "MNIST",
            "model": "ConvNet"}
    rows = [{**base, "cell_id": "MNIST-ConvNet-all-S-ours-whole", "table": "table1", "ipc": 0, "dis_metric": "ours",
             "method": "whole", "accuracy": 99.0, "iterations": 40},
            {**base, "cell_id": "MNIST-ConvNet-ipc1-S-ours-random", "table": "table1", "ipc": 1, "dis_metric": "ours",
             "method": "random", "accuracy": 60.0, "iterations": 0},
            {**base, "cell_id": "MNIST-ConvNet-ipc1-S-ours", "table": "table1,metric", "ipc": 1, "dis_metric": "ours",
             "method": "DC", "accuracy": 90.0, "iterations": 1000}]
    pq.write_table(pa.Table.from_pylist(rows, schema=old), path)


def test_a_file_of_the_first_schema_reads_in_the_current_shape(tmp_path):
    first_schema_file(tmp_path / "old.parquet")
    df = parquet.read(tmp_path / "old.parquet")
    assert set(parquet.COLUMNS) <= set(df.columns)
    df = df.set_index("method")
    assert pd.isna(df.loc["whole", "ipc"]) and pd.isna(df.loc["whole", "iterations"])
    assert df.loc["whole", "epochs"] == 40
    assert pd.isna(df.loc["random", "dis_metric"]) and pd.isna(df.loc["random", "iterations"])
    assert (df.loc["DC", "iterations"], df.loc["DC", "dis_metric"], list(df.loc["DC", "table"])) == (
        1000, "ours", ["table1", "metric"])
    assert df.device_name.isna().all() and df.started_at.isna().all()
    assert parquet.metadata(tmp_path / "old.parquet") == {}
