"""Part files: a writer rolls to a new file every ROLL_GROUPS row groups (a ParquetWriter holds
every row group's metadata until it closes), and the parts still read back in task order, in
one run, across appended runs and across parallel jobs, and export walks them in that order.
"""
from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest
from helpers import read_tables

from stream import convert, export
from stream.errors import AnnostreamError
from stream.tables import TABLES
from stream.writer import ROLL_GROUPS

TASKS = ROLL_GROUPS * 2 + 7  # three files per table at one task per row group


def write_export(path, first_id: int, n: int = TASKS) -> list[dict]:
    tasks = [{"id": first_id + i, "data": {"text": f"t{i} " + "x" * (i % 50)},
              "annotations": [{"id": 10 * (first_id + i), "result": [
                  {"id": f"r{i}", "from_name": "label", "to_name": "text", "type": "choices",
                   "value": {"choices": [f"c{i % 3}"]}}]}]}
             for i in range(n)]
    path.write_text(json.dumps(tasks))
    return tasks


def task_ids_by_part(out, table: str = "tasks") -> list[list[str]]:
    """The task ids of every part file of a table, the files in name order."""
    return [pq.read_table(p, columns=["task_id"])["task_id"].to_pylist()
            for p in sorted((out / table).glob("*.parquet"))]


def test_many_small_batches_roll_into_part_files_that_read_back_in_order(tmp_path):
    tasks = write_export(tmp_path / "export.json", 1)
    out = tmp_path / "out"
    convert([tmp_path / "export.json"], out, batch_rows=1, workers=1)
    parts = task_ids_by_part(out)
    assert len(parts) == math.ceil(len(tasks) / ROLL_GROUPS)
    assert all(pq.ParquetFile(p).metadata.num_row_groups <= ROLL_GROUPS
               for p in (out / "tasks").glob("*.parquet"))
    assert [i for part in parts for i in part] == [str(t["id"]) for t in tasks]
    results = [i for part in task_ids_by_part(out, "results") for i in part]
    assert results == [str(t["id"]) for t in tasks for a in t["annotations"] for _ in a["result"]]
    export(out, tmp_path / "rebuilt.json")
    assert json.loads((tmp_path / "rebuilt.json").read_text()) == tasks


def test_an_empty_table_still_has_one_part_file(tmp_path):
    write_export(tmp_path / "export.json", 1, n=3)
    convert([tmp_path / "export.json"], tmp_path / "out", batch_rows=1, workers=1)
    parts = list((tmp_path / "out" / "keyframes").glob("*.parquet"))
    assert len(parts) == 1 and pq.read_table(parts[0]).num_rows == 0


def test_appended_runs_sort_after_the_rolled_parts_of_earlier_runs(tmp_path):
    first = write_export(tmp_path / "a.json", 1)
    second = write_export(tmp_path / "b.json", 10_000)
    out = tmp_path / "out"
    convert([tmp_path / "a.json"], out, batch_rows=1, workers=1)
    convert([tmp_path / "b.json"], out, mode="append", batch_rows=1, workers=1)
    parts = task_ids_by_part(out)
    assert len(parts) == 2 * math.ceil(TASKS / ROLL_GROUPS)
    assert [i for part in parts for i in part] == [str(t["id"]) for t in first + second]


def test_parallel_jobs_roll_and_keep_task_order(tmp_path):
    """Two big-enough inputs on two workers: each job rolls its own parts, and the names of
    all jobs' parts sort in input order."""
    inputs = [tmp_path / "a.json", tmp_path / "b.json"]
    tasks = write_export(inputs[0], 1) + write_export(inputs[1], 10_000)
    out = tmp_path / "out"
    range_bytes = min(p.stat().st_size for p in inputs) // 2
    convert(inputs, out, batch_rows=1, workers=2, range_bytes=range_bytes)
    parts = task_ids_by_part(out)
    assert len(parts) > 2 * math.ceil(TASKS / ROLL_GROUPS)  # several jobs, each rolled
    assert [i for part in parts for i in part] == [str(t["id"]) for t in tasks]


def test_stale_table_folders_without_a_manifest_are_refused_in_every_mode(tmp_path):
    """Parts left without a manifest (a deleted manifest, a crash mid-commit) must never be
    read together with a new run's parts: every mode refuses the folder."""
    src = tmp_path / "a.json"
    src.write_text('[{"id": 1, "data": {"t": "x"}}]')
    out = tmp_path / "out"
    convert([src], out)
    (out / "_manifest.json").unlink()
    for mode in ("new", "overwrite", "append"):
        with pytest.raises(AnnostreamError, match="no _manifest.json"):
            convert([src], out, mode=mode)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(TABLES)
    assert not [p for p in out.iterdir() if p.name.startswith(".annostream-tmp")]


def test_overwrite_replaces_whole_tables(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text('[{"id": 1, "data": {}}, {"id": 2, "data": {}}]')
    second.write_text('[{"id": 3, "data": {}}]')
    out = tmp_path / "out"
    convert([first], out)
    convert([second], out, mode="overwrite")
    assert read_tables(out)["tasks"].column("task_id").to_pylist() == ["3"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".annostream"]
    gens = sorted(p.name for p in (out / ".annostream").iterdir())
    assert len(gens) == 3 and gens[0] == "current"  # the new generation and the one before


def test_a_second_run_on_the_same_folder_fails_clearly_while_the_first_writes(tmp_path):
    """Two appends at once would both read the same manifest and the last would win."""
    from stream.writer import OutputFolder

    out = tmp_path / "out"
    first = OutputFolder(out, "new")
    with pytest.raises(AnnostreamError, match="another annostream run"):
        OutputFolder(out, "append")
    first.abort()
    OutputFolder(out, "new").abort()  # free again once the first run ended
