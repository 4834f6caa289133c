"""Files written whole or not at all: a write that fails (a full disk, an I/O error) keeps the old
file, leaves no temporary, and says so in one line naming the file and the free space."""
import errno
import json

import pyarrow.parquet as pq
import pytest
import torch

from condense import files
from condense.files import WriteError
from condense.synthetic import SyntheticSet
from orchestrator.results import parquet


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EIO, "Input/output error")])
def test_a_failed_write_keeps_the_old_file_and_says_where_in_one_line(tmp_path, monkeypatch, code, words):
    path = tmp_path / "sweep.json"
    files.write_text(path, "old")

    def fail(self, *args, **kwargs):
        raise OSError(code, words)

    monkeypatch.setattr(type(path), "write_text", fail)
    with pytest.raises(WriteError) as err:
        files.write_text(path, "new")
    line = str(err.value)
    assert "\n" not in line and str(path) in line and words in line and "free there" in line
    assert isinstance(err.value, OSError)  # callers that tolerate a failed write still catch it
    monkeypatch.undo()
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_results_and_sets_survive_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "results.parquet"
    parquet.write([], path, {"budgets": {"num_exp": 1}})
    before = path.read_bytes()
    monkeypatch.setattr(pq, "write_table", no_space)
    with pytest.raises(WriteError, match=f"cannot write {path}: No space left on device"):
        parquet.write([], path, {"budgets": {"num_exp": 2}})
    assert path.read_bytes() == before

    s = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), "MNIST", {"seed": 0})
    s.save(tmp_path / "set.pt")
    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(WriteError, match="set.pt"):
        SyntheticSet(torch.ones(2, 1, 4, 4), torch.tensor([0, 1]), "MNIST", {}).save(tmp_path / "set.pt")
    assert torch.equal(SyntheticSet.load(tmp_path / "set.pt").images, s.images)
    assert leftovers(tmp_path) == []


def test_a_set_or_network_on_a_full_disk_is_a_write_error_not_torchs_runtime_error(tmp_path, monkeypatch):
    # torch's own file writer says "unexpected pos" (a RuntimeError) on a full disk: the bytes are
    # made in memory and written as any file, whose failure is an OSError with its errno
    s = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), "MNIST", {})
    s.save(tmp_path / "set.pt")
    before = (tmp_path / "set.pt").read_bytes()
    real = type(tmp_path).write_bytes

    def half_then_full(self, data):
        real(self, bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_bytes", half_then_full)
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'set.pt'}: No space left on device"):
        SyntheticSet(torch.ones(2, 1, 4, 4), torch.tensor([0, 1]), "MNIST", {}).save(tmp_path / "set.pt")
    with pytest.raises(WriteError, match="net.pt"):
        files.write_torch(tmp_path / "net.pt", {"w": torch.ones(3)})
    monkeypatch.undo()
    assert (tmp_path / "set.pt").read_bytes() == before and not (tmp_path / "net.pt").exists()
    assert leftovers(tmp_path) == []


def test_temporaries_of_killed_writers_are_removed_except_under_skipped_folders(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tune").mkdir()
    for name in ("results.parquet", ".results.parquet.123.tmp", "tables/.t1.md.9.tmp", "tune/.x.1.tmp",
                 "notes.tmp", ".hidden"):
        (tmp_path / name).write_text(json.dumps(name))
    assert files.remove_temporaries(tmp_path, skip=("tune",)) == 2
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        ".hidden", "notes.tmp", "results.parquet", "tune/.x.1.tmp"]


def test_free_space_is_told_for_a_path_not_yet_made(tmp_path):
    assert files.free_space(tmp_path / "a" / "b.txt").split()[1] in ("bytes", "KB", "MB", "GB")
