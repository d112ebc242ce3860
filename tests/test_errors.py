"""Bad input: one clear line naming file, task and byte, exit code 2, and no output left behind.

Each bad file is built from real sample tasks with one defect at a known task, so the task
position the error must name is known from the construction, not from the converter.
"""
from __future__ import annotations

import gzip
import json
import re
import zipfile
import zlib
from pathlib import Path

import pytest
from helpers import (
    BAD,
    BAD_AT,
    TASKS,
    array,
    bad_file,
    check_one_line,
    leftovers,
    read_tables,
    result_is_a_number,
    run_cli,
    set_key,
    task_start,
)

from stream import convert
from stream.errors import InputError
from stream.tables import TABLES


@pytest.mark.parametrize("name", BAD)
def test_bad_input_cli(tmp_path, name):
    path = bad_file(tmp_path, name)
    out = tmp_path / "out"
    r = run_cli("convert", str(path), "-o", str(out))
    assert r.returncode == 2, r.stderr.decode()
    check_one_line(r.stderr, path, BAD[name][1], BAD[name][2])
    assert leftovers(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name] + (["out"] if out.exists() else []))


@pytest.mark.parametrize("name", ["truncated", "invalid_utf8", "result_number", "annotations_string"])
def test_bad_input_api_names_file_task_and_offset(tmp_path, name):
    path = bad_file(tmp_path, name)
    with pytest.raises(InputError) as info:
        convert([str(path)], tmp_path / "out")
    err = info.value
    assert (err.file, err.position) == (str(path), BAD_AT)
    assert task_start(TASKS, BAD_AT) <= err.offset <= path.stat().st_size, (
        f"the byte offset must point into task {BAD_AT}: {err}")
    assert leftovers(tmp_path / "out") == []


def test_error_in_a_later_input_leaves_nothing(tmp_path):
    good = tmp_path / "good.json"
    good.write_bytes(array(TASKS))
    path = bad_file(tmp_path, "truncated")
    r = run_cli("convert", str(good), str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    check_one_line(r.stderr, path, BAD_AT, "truncated JSON")
    assert leftovers(tmp_path / "out") == []


def test_truncated_gzip_after_the_first_chunk_names_a_task(tmp_path):
    tasks = [dict(TASKS[0], id=i) for i in range(80)]
    data = array(tasks)
    z = gzip.compress(data)[: len(gzip.compress(data)) * 3 // 4]
    path = tmp_path / "export.json.gz"
    path.write_bytes(z)
    readable = zlib.decompressobj(31).decompress(z)  # what can be decoded before the cut
    complete = readable.count(b',"data":')  # tasks that began in the readable part
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    line = check_one_line(r.stderr, path, None, "corrupt or truncated gzip")
    task = int(re.search(r": task (\d+) ", line).group(1))
    offset = int(re.search(r"near byte (\d+)", line).group(1))
    assert 0 < task <= complete and 0 < offset <= len(readable)
    assert leftovers(tmp_path / "out") == []


def test_corrupt_zip_member_and_corrupt_zip(tmp_path):
    member = array(TASKS)
    stored = tmp_path / "export.zip"
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as z:
        z.writestr("tasks/all.json", member)
    data = stored.read_bytes()
    at = data.index(b'"Truck"')
    bad_crc = tmp_path / "bad_crc.zip"
    bad_crc.write_bytes(data[:at + 1] + b"t" + data[at + 2:])  # same length, wrong CRC
    r = run_cli("convert", str(bad_crc), "-o", str(tmp_path / "out1"))
    assert r.returncode == 2
    check_one_line(r.stderr, Path(f"{bad_crc}/tasks/all.json"), None, "corrupt or truncated zip")
    assert leftovers(tmp_path / "out1") == []
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])  # starts like a zip, has no central directory
    r = run_cli("convert", str(cut), "-o", str(tmp_path / "out2"))
    assert r.returncode == 2
    check_one_line(r.stderr, cut, None, "corrupt or truncated zip file")
    assert leftovers(tmp_path / "out2") == []


def test_missing_input(tmp_path):
    r = run_cli("convert", str(tmp_path / "nope.json"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    check_one_line(r.stderr, tmp_path / "nope.json", None, "no such file or folder")
    assert leftovers(tmp_path / "out") == []


def test_debug_shows_the_traceback(tmp_path):
    path = bad_file(tmp_path, "truncated")
    r = run_cli("--debug", "convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode != 0 and "Traceback" in r.stderr.decode()


# -- --on-error skip --------------------------------------------------------------------------
def mixed_tasks() -> tuple[list, set[int]]:
    """Good sample tasks with bad ones between them; returns the tasks and the bad positions."""
    tasks = json.loads(json.dumps(TASKS))
    bad1 = json.loads(json.dumps(TASKS[BAD_AT]))
    result_is_a_number(bad1)
    bad2 = dict(TASKS[1], annotations="none yet")
    mixed = [tasks[0], bad1, tasks[1], tasks[2], bad2, 17, tasks[3]]
    return mixed, {1, 4, 5}


def count_children(tasks: list) -> dict[str, int]:
    n = {t: 0 for t in TABLES}
    for t in tasks:
        n["tasks"] += 1
        for key in ("annotations", "predictions", "drafts"):
            for a in t.get(key) or []:
                n["annotations"] += 1
                for r in (a.get("result") or []) if isinstance(a, dict) else []:
                    n["relations" if r["type"] == "relation" else "results"] += 1
    return n


@pytest.mark.parametrize("via", ["api", "cli"])
def test_on_error_skip_converts_the_good_tasks(tmp_path, via):
    tasks, bad = mixed_tasks()
    path = tmp_path / "mixed.json"
    path.write_bytes(array(tasks))
    out = tmp_path / "out"
    if via == "api":
        manifest = convert([str(path)], out, on_error="skip").manifest
    else:
        r = run_cli("convert", str(path), "-o", str(out), "--on-error", "skip")
        assert r.returncode == 0, r.stderr.decode()
        err = r.stderr.decode()
        for p in sorted(bad):
            assert f"{path}: task {p} skipped" in err
        assert f"skipped {len(bad)} bad task(s)" in err
        manifest = json.loads((out / "_manifest.json").read_text())
    good = [t for i, t in enumerate(tasks) if i not in bad]
    tables = read_tables(out)
    assert {t: tables[t].num_rows for t in TABLES} == count_children(good)
    assert tables["tasks"]["task_id"].to_pylist() == [str(t["id"]) for t in good]
    assert tables["tasks"]["position"].to_pylist() == [i for i in range(len(tasks)) if i not in bad]
    assert manifest["skipped_tasks"] == len(bad)
    skipped = manifest["runs"][-1]["skipped_tasks"]
    assert [(s["file"], s["position"]) for s in skipped] == [(str(path), p) for p in sorted(bad)]
    assert all(s["error"] for s in skipped)
    assert manifest["inputs"][0]["tasks"] == len(good)
    assert manifest["rows"] == {t: tables[t].num_rows for t in TABLES}


def test_on_error_skip_still_fails_on_broken_json(tmp_path):
    path = bad_file(tmp_path, "truncated")
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"), "--on-error", "skip")
    assert r.returncode == 2
    check_one_line(r.stderr, path, BAD_AT, "truncated JSON")
    assert leftovers(tmp_path / "out") == []


# -- a failed run never touches the previous conversion ----------------------------------------
def snapshot(out: Path) -> dict[str, bytes]:
    return {p: (out / p).read_bytes() for p in leftovers(out) if (out / p).is_file()}


@pytest.mark.parametrize("flag", ["--overwrite", "--append"])
def test_failed_overwrite_or_append_keeps_the_previous_conversion(tmp_path, flag):
    good = tmp_path / "good.json"
    good.write_bytes(array(TASKS))
    out = tmp_path / "out"
    convert([str(good)], out)
    before = snapshot(out)
    expected = read_tables(out)
    for name in ("truncated", "corrupt_gzip", "annotations_string"):
        path = bad_file(tmp_path, name)
        r = run_cli("convert", str(good), str(path), "-o", str(out), flag)
        assert r.returncode == 2, r.stderr.decode()
        assert snapshot(out) == before  # same files, same bytes, no staging folder
        after = read_tables(out)
        assert all(after[t].equals(expected[t]) for t in TABLES)


def test_a_failed_run_in_a_fresh_folder_leaves_no_table_folders(tmp_path):
    path = bad_file(tmp_path, "result_number")
    out = tmp_path / "out"
    with pytest.raises(InputError):
        convert([str(path)], out, batch_rows=1)  # parts were flushed before the bad task
    assert leftovers(out) == []
    assert not (out / "_manifest.json").exists() and not any((out / t).exists() for t in TABLES)


# -- the same errors when a big array is split across workers ---------------------------------
def big_array_with(defect, n: int = 60, bad: int = 45) -> tuple[bytes, int]:
    """`n` sample tasks (about 130 KB) with one defect at task `bad`; returns the bytes and the
    offset at which the bad task starts."""
    tasks = [dict(TASKS[i % len(TASKS)], id=i) for i in range(n)]
    data = array(tasks)
    start = task_start(tasks, bad)
    return defect(tasks, data, bad, start), start


def _replace_task(fix):
    def defect(tasks, data, bad, start):
        t = json.loads(json.dumps(tasks[bad]))
        fix(t)
        return data[:start] + array(t) + data[start + len(array(tasks[bad])):]
    return defect


PARALLEL_BAD = {
    "truncated": (lambda tasks, data, bad, start: data[:start + 500], "truncated JSON"),
    "invalid_utf8": (lambda tasks, data, bad, start: data[:start + 300] + b"\xff" + data[start + 301:],
                     "invalid UTF-8"),
    "annotations_string": (_replace_task(set_key("annotations", "none yet")), "expected a list"),
    "result_number": (_replace_task(lambda t: t["annotations"][0]["result"].__setitem__(0, 7)),
                      "is a number"),
}


@pytest.mark.parametrize("name", PARALLEL_BAD)
def test_errors_are_the_same_when_an_array_is_split_across_workers(tmp_path, name):
    defect, words = PARALLEL_BAD[name]
    data, start = big_array_with(defect)
    path = tmp_path / "big.json"
    path.write_bytes(data)
    errors = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        with pytest.raises(InputError) as info:  # range_bytes: split this small file in ranges
            convert([str(path)], out, workers=workers, range_bytes=len(data) // 4)
        err = info.value
        assert (err.file, err.position) == (str(path), 45), str(err)
        assert words in str(err) and start <= err.offset <= len(data), str(err)
        assert leftovers(out) == []
        errors.append(err.reason)
    assert errors[0] == errors[1]


def test_on_error_skip_is_the_same_when_an_array_is_split_across_workers(tmp_path):
    data, _ = big_array_with(_replace_task(set_key("predictions", 3)))
    path = tmp_path / "big.json"
    path.write_bytes(data)
    tables, manifests = [], []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        manifests.append(convert([str(path)], out, workers=workers, on_error="skip",
                                 range_bytes=len(data) // 4).manifest)
        tables.append(read_tables(out))
    assert all(tables[0][t].equals(tables[1][t]) for t in TABLES)
    assert [m["runs"][-1]["skipped_tasks"] for m in manifests] == [
        [{"file": str(path), "position": 45, "error": "'predictions' is a number, expected a list"}]] * 2
    assert tables[0]["tasks"].num_rows == 59


@pytest.mark.parametrize("workers", [1, 2])
def test_offset_of_a_late_error_in_a_big_array_is_near_the_bad_byte(tmp_path, workers):
    """An error deep in a multi-MB array is reported within one parser buffer of its byte,
    not at the end of whatever the fast element reader had buffered."""
    tasks = [dict(t, id=1000 + k) for k in range(600) for t in TASKS[:1]]
    data = bytearray(array(tasks))
    bad_task = 450
    at = data.index(b'"image"', task_start(tasks, bad_task)) + 1  # inside a key string
    data[at] = 0xFF
    path = tmp_path / "late_error.json"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        convert([path], tmp_path / "out", workers=workers, range_bytes=len(data) // 3)
    assert err.value.position == bad_task
    assert at <= err.value.offset <= at + (1 << 17), (at, err.value.offset, len(data))


def test_an_empty_folder_is_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_cli("convert", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "no input files found" in err and err.count("\n") == 1, err
    assert leftovers(tmp_path / "out") == []


def test_on_error_skip_skips_a_broken_per_task_file_of_a_folder(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    good = [dict(t, id=500 + k) for k, t in enumerate(TASKS[:2])]
    (folder / "a.json").write_text(json.dumps(good[0]))
    (folder / "b.json").write_text(json.dumps(good[1])[:-7])  # truncated
    (folder / "c.json").write_text(json.dumps(dict(good[1], id=777)))
    with pytest.raises(InputError):
        convert([folder], tmp_path / "strict")
    manifest = convert([folder], tmp_path / "out", on_error="skip").manifest
    assert manifest["skipped_tasks"] == 1
    assert manifest["runs"][-1]["skipped_tasks"][0]["file"].endswith("b.json")
    ids = read_tables(tmp_path / "out")["tasks"].column("task_id").to_pylist()
    assert ids == ["500", "777"]
