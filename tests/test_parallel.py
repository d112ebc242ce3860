"""Conversion on several workers gives exactly the single-worker output.

Files are split into byte ranges of a few KB here (`range_bytes`) so that small generated
exports get many ranges. The expected side is always the single-worker conversion of the same
input, plus task positions and element counts computed here with the json module.
"""
from __future__ import annotations

import gzip
import io
import json
import shutil

import ijson
import pytest
from helpers import load_script, read_tables

from stream import convert
from stream.elements import ArrayItems
from stream.errors import InputError
from stream.parallel import _array_key, _candidates
from stream.sources import iter_sources
from stream.tables import TABLES

gen = load_script("generate_export")

RANGE = 16_384  # bytes per range: dozens of ranges on a few hundred KB


def both(tmp_path, inputs, **kwargs):
    """(sequential tables, parallel tables, parallel manifest) of the same inputs."""
    seq, par = tmp_path / "seq", tmp_path / "par"
    convert([str(i) for i in inputs], seq, workers=1, **kwargs)
    manifest = convert([str(i) for i in inputs], par, workers=2, range_bytes=RANGE,
                       **kwargs).manifest
    return read_tables(seq), read_tables(par), manifest


def assert_same(seq, par):
    for t in TABLES:
        assert par[t].num_rows == seq[t].num_rows, t
        assert par[t].equals(seq[t]), f"{t} differs between 1 and 2 workers"


def part_count(folder) -> int:
    return len(list((folder / "tasks").glob("*.parquet")))


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_generated_export_parallel_equals_sequential(tmp_path, pretty):
    path = tmp_path / "export.json"
    gen.generate(path, 400_000, seed=3, pretty=pretty)
    seq, par, manifest = both(tmp_path, [path])
    assert part_count(tmp_path / "par") >= 3, "the file was not split"
    assert_same(seq, par)
    tasks = json.loads(path.read_bytes())
    assert par["tasks"]["position"].to_pylist() == list(range(len(tasks)))
    assert par["tasks"]["task_id"].to_pylist() == [str(t["id"]) for t in tasks]
    assert manifest["inputs"][0]["tasks"] == len(tasks) and manifest["inputs"][0]["files"] == 1


def tricky_tasks(n: int) -> list[dict]:
    """Strings with separators, quotes, backslashes and unbalanced brackets; nested arrays of
    objects whose first key is the task's first key."""
    texts = ['}, {"id": 1, "data": {}}, {"id":', '"}]},{"id":999,"annotations":[{"result":[',
             'quote \\" backslash \\\\ end\\', "[[[{{{", "]]]}}}", "ünï 🚀\n\t"]
    tasks = []
    for k in range(n):
        task = {"id": k, "data": {"text": texts[k % len(texts)] * (1 + k % 3),
                                  "nested": [{"id": j, "v": [[j, {"id": j}]]} for j in range(k % 4)]},
                "annotations": [{"id": 100 * k + a, "result": [
                    {"id": f"r{a}", "type": "choices", "from_name": "c", "to_name": "t",
                     "value": {"choices": [texts[(k + a) % len(texts)]]}}]} for a in range(k % 3)]}
        tasks.append(task)
    return tasks


@pytest.mark.parametrize("indent", [None, 1], ids=["compact", "pretty"])
def test_tricky_strings_and_nested_objects(tmp_path, indent):
    tasks = tricky_tasks(600)
    path = tmp_path / "tricky.json"
    path.write_text(json.dumps(tasks, indent=indent, ensure_ascii=False))
    assert list(ArrayItems(io.BytesIO(path.read_bytes()).read)) == tasks
    seq, par, _ = both(tmp_path, [path])
    assert part_count(tmp_path / "par") >= 3
    assert_same(seq, par)
    assert par["tasks"]["position"].to_pylist() == list(range(len(tasks)))


def test_import_shape_synthetic_ids_use_global_positions(tmp_path):
    tasks = [{"data": {"text": f"document {k} {'x' * (k % 97)}"}, "predictions": [
        {"result": [{"type": "labels", "value": {"start": 0, "end": 3, "labels": ["A"]}}]}]}
        for k in range(2500)]
    path = tmp_path / "import.json"
    path.write_text(json.dumps(tasks))
    seq, par, _ = both(tmp_path, [path])
    assert part_count(tmp_path / "par") >= 3
    assert_same(seq, par)
    ids = par["tasks"]["task_id"].to_pylist()
    assert len(set(ids)) == len(tasks) and all(i.startswith("~") for i in ids)


def test_wrong_candidates_fall_back_to_a_rescan(tmp_path):
    """Tasks made of long lists of objects opening like a task (same first two keys): most
    split points land inside a task, where the range scan cannot start; the output must not
    change."""
    tasks = [{"id": k, "annotations": [{"id": 10_000 * k + a, "annotations": "x", "result": []}
                                       for a in range(300)], "data": {"k": k}} for k in range(12)]
    path = tmp_path / "nested.json"
    text = json.dumps(tasks, separators=(",", ":"))
    path.write_text(text)
    starts = {len(json.dumps(tasks[:k], separators=(",", ":"))[:-1]) + (k > 0) for k in range(12)}
    src = next(iter_sources([str(path)]))
    key, first = _array_key(src)
    candidates = _candidates(src, key, first, 16)
    assert len(set(candidates) - starts) > 3, "candidates not inside tasks: no fallback exercised"
    seq, par, manifest = both(tmp_path, [path])
    assert_same(seq, par)
    assert par["annotations"].num_rows == 12 * 300
    assert manifest["rows"]["tasks"] == 12


def test_several_inputs_compressed_tiny_and_single_task(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    gen.generate(folder / "a_big.json", 200_000, seed=5)
    gen.generate(folder / "b_big.json.gz", 150_000, seed=6, compress=True)
    (folder / "c_one.json").write_text(json.dumps({"id": 1, "data": {"text": "single task"}}))
    (folder / "d_tiny.json").write_text("[]")
    (folder / "e_one_in_array.json").write_text(json.dumps([{"id": 2, "data": {}}]))
    gen.generate(folder / "f_big.json", 120_000, seed=7, pretty=True)
    seq, par, manifest = both(tmp_path, [folder])
    assert_same(seq, par)
    with gzip.open(folder / "b_big.json.gz") as f:
        gz_tasks = sum(1 for _ in ijson.items(f, "item"))
    assert len(manifest["inputs"]) == 1 and manifest["inputs"][0]["files"] == 6
    expected = sum(len(json.loads((folder / n).read_text())) for n in ("a_big.json", "f_big.json"))
    assert manifest["rows"]["tasks"] == expected + gz_tasks + 1 + 0 + 1


def test_skipped_tasks_keep_their_global_position(tmp_path):
    tasks = [{"id": k, "data": {"n": k}, "annotations": [{"id": k, "result": [{"id": "x",
              "type": "labels", "value": {"labels": ["A" * (k % 50)]}}]}]} for k in range(3000)]
    for k in (5, 1234, 2999):
        tasks[k]["annotations"][0]["result"][0] = 7  # a result that is not an object
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(tasks))
    seq, par, manifest = both(tmp_path, [path], on_error="skip")
    assert_same(seq, par)
    skipped = manifest["runs"][-1]["skipped_tasks"]
    assert [s["position"] for s in skipped] == [5, 1234, 2999]
    assert par["tasks"].num_rows == 2997


def test_bad_input_fails_the_same_way(tmp_path):
    path = tmp_path / "export.json"
    gen.generate(path, 200_000, seed=9)
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(path.read_bytes()[:-5000])
    errors = []
    for workers in (1, 2):
        with pytest.raises(InputError) as info:
            convert([str(truncated)], tmp_path / f"out{workers}", workers=workers, range_bytes=RANGE)
        errors.append((info.value.position, info.value.reason))
        assert not (tmp_path / f"out{workers}" / "_manifest.json").exists()
        assert not list((tmp_path / f"out{workers}").glob("*/*.parquet"))
    assert errors[0] == errors[1]
    shutil.rmtree(tmp_path / "out1", ignore_errors=True)


def test_elements_msgspec_rejects_are_read_by_ijson(tmp_path):
    """A lone surrogate escape (msgspec refuses it, ijson reads it) and invalid UTF-8 inside a
    range that was scanned fine: ijson takes over, as in the sequential reader."""
    tasks = [{"id": k, "data": {"text": "t" * (k % 300)}} for k in range(2000)]
    raw = json.dumps(tasks).encode()
    at = raw.index(b'"t', raw.index(b'"id": 1500,'))
    odd = tmp_path / "surrogate.json"
    odd.write_bytes(raw[:at + 1] + b"\\ud800" + raw[at + 1:])
    seq, par, _ = both(tmp_path, [odd])
    assert_same(seq, par)
    assert par["tasks"].num_rows == 2000
    bad = tmp_path / "utf8.json"
    bad.write_bytes(raw[:at + 1] + b"\xff" + raw[at + 2:])
    errors = []
    for workers in (1, 2):
        with pytest.raises(InputError) as info:
            convert([str(bad)], tmp_path / f"bad{workers}", workers=workers, range_bytes=RANGE)
        errors.append((info.value.position, info.value.reason))
    assert errors[0] == errors[1] and errors[0][0] == 1500
