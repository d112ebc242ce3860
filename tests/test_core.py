"""The compiled core (core/, Rust) against the Python reader, its specification.

Differential: every sample file, every generated shape, the bad-input corpus and the
hypothesis exports of tests/helpers.py convert to the same tables with the
core as with ANNOSTREAM_ENGINE=python (row by row, column by column; JSON columns as parsed
values), fail with the same error, and the core takes nearly every task of the generated
exports and of sample_data. Fuzz: random bytes and random JSON fed to the core directly
return or raise a clean exception, never crash the interpreter.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import (
    BAD,
    DL,
    SAMPLES,
    bad_file,
    dataloop_item,
    dataloop_malformed,
    export_shape,
    json_values,
    json_values_st,
    load_script,
    read_tables,
    system_of,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import convert
from stream.errors import InputError
from stream.formats import core
from stream.tables import TABLES

pytestmark = pytest.mark.skipif(core.annostream_core is None,
                                reason="the compiled core is not built (make builds it)")

gen = load_script("generate_export")
dl_samples = load_script("make_dataloop_samples")

JSON_COLUMNS = {"data", "meta", "value", "extra", "attributes"}


@contextmanager
def engine(name: str | None):
    old = os.environ.pop(core.ENGINE, None)
    if name:
        os.environ[core.ENGINE] = name
    try:
        yield
    finally:
        os.environ.pop(core.ENGINE, None)
        if old is not None:
            os.environ[core.ENGINE] = old


def rows(t: pa.Table) -> list[dict]:
    out = t.to_pylist()
    for r in out:
        for k in JSON_COLUMNS & r.keys():
            if r[k] is not None:
                r[k] = json.loads(r[k])
    return out


def assert_same(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    for name in TABLES:
        x, y = rows(a[name]), rows(b[name])
        assert len(x) == len(y), (name, len(x), len(y))
        for i, (r, s) in enumerate(zip(x, y)):
            for col in r:  # == alone lets 1 == 1.0 == True pass: compare the types too
                assert r[col] == s[col] and type(r[col]) is type(s[col]), (name, i, col, r[col], s[col])


def both(inputs: list, out: Path, **kwargs) -> tuple[dict, dict]:
    """Convert with the core and with the Python reader; the tables must be equal. Returns the
    core run's manifest and tables."""
    manifests, tables = [], []
    for name in (None, "python"):
        folder = out / (name or "core")
        with engine(name):
            manifests.append(convert([str(i) for i in inputs], folder, **kwargs).manifest)
        tables.append(read_tables(folder))
    assert_same(tables[0], tables[1])
    assert manifests[1]["engine"] == {"core": 0, "python": manifests[1]["rows"]["tasks"]}
    assert sum(manifests[0]["engine"].values()) == manifests[0]["rows"]["tasks"]
    return manifests[0], tables[0]


LS_FILES = sorted((SAMPLES / "labelstudio").rglob("*.json"))  # with the NER model JSON, read
# by stream/formats/ner.py, and the per-task files of storage_tasks/ (one a legacy annotation)


@pytest.mark.parametrize("path", LS_FILES, ids=lambda p: p.name)
def test_sample_file_same_tables(tmp_path, path):
    manifest, _ = both([path], tmp_path)
    assert manifest["engine"]["core"] >= 1


def ls_task_count(path: Path) -> int:
    """Tasks in a Label Studio sample file, counted from its JSON: the NER model JSON's
    documents are the keys of its spans and texts objects."""
    value = json.loads(path.read_text(encoding="utf-8"))
    if path.name == "ner_model_predictions.json":
        return len(set(value[0]) | set(value[1]))
    return len(value) if isinstance(value, list) else 1


def test_all_samples_same_tables_and_the_core_takes_the_label_studio_tasks(tmp_path):
    both([SAMPLES], tmp_path / "all")
    manifest, _ = both([SAMPLES / "labelstudio"], tmp_path / "ls")
    ls_tasks = sum(map(ls_task_count, LS_FILES))
    assert ls_tasks == manifest["rows"]["tasks"] > 20
    assert manifest["engine"] == {"core": ls_tasks, "python": 0}


def test_legacy_storage_annotation_same_tables(tmp_path):
    """An annotation object with its task under `task` (Label Studio's old storage sync):
    the task row (form 'storage-annotation') and the annotation at position -1."""
    path = SAMPLES / "labelstudio" / "storage_tasks" / "legacy_annotation_2203.json"
    ann = json.loads(path.read_text(encoding="utf-8"))
    manifest, tables = both([path], tmp_path)
    assert manifest["engine"] == {"core": 1, "python": 0}
    task, = rows(tables["tasks"])
    assert (task["task_id"], task["form"], task["data"]) == (
        str(ann["task"]["id"]), "storage-annotation", ann["task"]["data"])
    a, = rows(tables["annotations"])
    assert (a["annotation_id"], a["position"], a["kind"]) == (str(ann["id"]), -1, "annotation")
    assert "task" not in a["extra"]
    assert len(rows(tables["results"])) == len(ann["result"])


def test_legacy_storage_annotations_of_every_shape_same_tables(tmp_path):
    """Unknown keys beside `task` stay in the annotation's extra; a task without an id, an
    annotation whose result is not a list, a completed_by object, pre-1.0 `skipped`."""
    base = {"id": 5, "result": [{"id": "r", "type": "choices", "from_name": "c",
                                 "to_name": "t", "value": {"choices": ["a"]}}],
            "task": {"id": 9, "data": {"t": "x"}, "meta": {"m": [1]}}}
    objs = [base, {**base, "zz": {"k": [1]}, "completed_by": {"id": 3, "email": "a@b"}},
            {"task": {"data": {"t": 1}}, "result": None, "skipped": True},
            {"result": [], "task": {"id": "7", "data": {}, "annotations": [{"id": 1}]}}]
    for n, obj in enumerate(objs):
        (tmp_path / f"{n}.json").write_text(json.dumps(obj))
    manifest, tables = both([tmp_path / f"{n}.json" for n in range(len(objs))], tmp_path)
    assert manifest["engine"] == {"core": len(objs), "python": 0}
    assert [r["form"] for r in rows(tables["tasks"])] == ["storage-annotation"] * len(objs)


NER_ODD = [{"d1": [[0, 5], [6, 11]], "d2": [[0, 3], "odd", [1], [5, 2], [0, 99], {"s": [1, 2]},
                                           [True, 1], [0.5, 2]],
            "d3": [], "no_text": [[0, 1]], "big": [[2 ** 70, 1]]},
           {"d1": "Hello world", "d2": "abc", "no_spans": "text only", "big": "xyz", "d3": ""}]


def test_ner_model_json_same_tables(tmp_path):
    """Odd spans (text, a pair out of order or past the text, floats, a boolean), a document
    with no spans, spans with no document, and an int orjson cannot write (that document
    goes to the Python reader): the core builds the rows of the tasks ner.py makes."""
    path = tmp_path / "ner.json"
    path.write_text(json.dumps(NER_ODD))
    manifest, tables = both([path], tmp_path)
    docs = set(NER_ODD[0]) | set(NER_ODD[1])
    assert manifest["engine"] == {"core": len(docs) - 1, "python": 1}
    tasks = rows(tables["tasks"])
    assert [t["position"] for t in tasks] == list(range(len(docs)))
    assert {t["task_id"]: t["data"] for t in tasks}["no_text"] == {}
    spans = [(r["span_start"], r["span_end"]) for r in rows(tables["results"])
             if r["task_id"] == "d1"]
    assert spans == [(0, 5), (6, 11)]


def test_ner_model_json_of_many_feeds_same_tables(tmp_path):
    """More documents than one feed: several core calls, positions running on."""
    n = 3 * core.FEED // 2000 + 7
    spans = {f"doc{i}": [[0, 4], [5, 9]] for i in range(0, n, 2)}
    texts = {f"doc{i}": f"word {i} " + "x" * 2000 for i in range(n)}
    path = tmp_path / "ner.json"
    path.write_text(json.dumps([spans, texts]))
    manifest, tables = both([path], tmp_path)
    assert manifest["engine"] == {"core": n, "python": 0}
    assert tables["tasks"]["position"].to_pylist() == list(range(n))
    assert tables["results"].num_rows == 2 * len(spans)


@pytest.mark.parametrize("tail", ['"d7": 42}]', '"d7": "seven"', '"d7": "sev'])
def test_bad_ner_model_json_same_error(tmp_path, tail):
    """A text that is not one, a truncated file: after the documents before it (more than a
    feed), the same message, task position and byte offset with either engine."""
    spans = {f"d{i}": [[0, 1]] for i in range(600)}
    texts = ", ".join(f'"d{i}": "{"t" * 3000}"' for i in range(400))
    path = tmp_path / "ner.json"
    path.write_text(json.dumps([spans])[:-1] + ", {" + texts + ", " + tail)
    found = []
    for eng in (None, "python"):
        with engine(eng), pytest.raises(InputError) as info:
            convert([str(path)], tmp_path / f"out-{eng}")
        found.append((info.value.reason, info.value.position, info.value.offset))
    assert found[0] == found[1]
    assert found[0][1] == 400 and found[0][2] > 400 * 3000, found

def dataloop_items(path: Path) -> int:
    """Dataloop items of an array, per-item or NDJSON input (zip members, folders), counted
    with the json module."""
    if path.is_dir():
        return sum(dataloop_items(p) for p in sorted(path.rglob("*")) if p.is_file())
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return sum(1 for n in zf.namelist() if not n.endswith("/"))
    values = json_values(path)
    if len(values) == 1 and isinstance(values[0], list):
        return len(values[0])
    if len(values) == 1 and "elements" in values[0]:  # a text-classification document
        return len(values[0]["elements"])
    if len(values) == 1 and set(values[0]) == {"annotations"}:  # the docs' wrapper
        return len(values[0]["annotations"])
    return sum(1 for v in values if isinstance(v, dict) and "manifestVersion" not in v)


DL_ITEMS = [DL / "dataset_export.json", DL / "docs_wrapper.json", DL / "export",
            DL / "farm_export.zip", DL / "text_classification.json", DL / "v3_export"]


def test_dataloop_samples_same_tables_and_the_core_takes_the_items(tmp_path):
    manifest, _ = both([DL], tmp_path)
    dl_tasks = sum(dataloop_items(p) for p in DL_ITEMS)
    # every Dataloop item and text-classification element
    assert manifest["engine"]["core"] == dl_tasks, (manifest["engine"], dl_tasks)


SHAPES = {  # id: (format, pretty, gzip, seed, workers)
    "array": ("array", False, False, 11, 1),
    "pretty": ("array", True, False, 12, 1),
    "ndjson": ("ndjson", False, False, 13, 1),
    "array-gz": ("array", False, True, 14, 1),
    "array-2-workers": ("array", False, False, 15, 2),
    "pretty-2-workers": ("array", True, False, 16, 2),
}


@pytest.mark.parametrize("fmt,pretty,compressed,seed,workers", SHAPES.values(), ids=SHAPES.keys())
def test_generated_export_same_tables(tmp_path, fmt, pretty, compressed, seed, workers):
    size = 3_000_000
    path = tmp_path / ("export.json" + (".gz" if compressed else ""))
    n = gen.generate(path, size, seed=seed, fmt=fmt, pretty=pretty, compress=compressed)
    manifest, tables = both([path], tmp_path, batch_rows=5000, workers=workers,
                            range_bytes=size // 5)
    assert tables["tasks"].num_rows == n
    if fmt == "array":  # the core's share (issue 12: >= 99% of a generated export's tasks)
        assert manifest["engine"]["core"] >= 0.99 * n, manifest["engine"]


def test_one_task_bigger_than_a_feed_same_tables(tmp_path):
    """An element larger than one call's bytes: the feed grows instead of failing."""
    task = next(gen.iter_tasks(3))
    task["data"]["blob"] = "x" * (core.FEED + 12345)
    path = tmp_path / "big.json"
    path.write_text(json.dumps([task, task]))
    manifest, _ = both([path], tmp_path)
    assert manifest["engine"]["core"] == 2


def test_a_folder_of_one_task_files_keeps_its_order(tmp_path):
    """The core holds the rows of one-task files across files (up to a MB of input, so
    this folder of 1.4 MB makes it return them mid-folder too); the rows of a task the Python
    reader takes (an id beyond 64 bits, which the core declines; a 1e999 it cannot parse; a
    file whose array starts with a number, which the Python reader reads, skipping that)
    still come in input order, after the held ones."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    ids = []
    for k in range(700):
        task_id = 2 ** 70 + k if k % 50 == 7 else k
        data = {"text": "x" * 2000, "n": [1e999] if k % 250 == 3 else k}
        ids.append(str(task_id))
        result = [{"id": f"r{k}", "type": "choices", "from_name": "c", "to_name": "t",
                   "value": {"choices": [str(k)]}}]
        text = json.dumps({"id": task_id, "data": data,
                           "annotations": [{"id": k, "result": result}]})
        if k % 100 == 42:
            text = f"[{k}, {text}]"
        (folder / f"task_{k:04d}.json").write_text(text.replace("Infinity", "1e999"))
    manifest, tables = both([folder], tmp_path / "out", on_error="skip")
    assert manifest["engine"] == {"core": 700 - 14 - 3 - 7, "python": 14 + 3 + 7}
    assert tables["tasks"].column("task_id").to_pylist() == ids
    assert tables["results"].column("task_id").to_pylist() == ids


# Containers the core only copies into a JSON column (data, unknown keys, a result's value)
# stay their input text there: spaces, escapes and number spellings of the input, and values
# the Python reader reads differently (a key given twice, -0, 1e999, an int beyond 64 bits, a
# lone surrogate) deep inside them.
KEPT_AS_TEXT = [
    '{"id": 1, "data": {\n  "t": "caf\\u00e9 \\/ \\"q\\"",\t"n": [1, 2.50, 1E2, 0.0]},'
    ' "zz": {"a": [ {"b": null} ]}, "annotations": [{"id": 7, "result": [{"id": "r", '
    '"type": "brushlabels", "value": {"rle": [1, 2, 3], "brushlabels": ["x"], "format": "rle",'
    ' "nested": {"k": [true, false]}, "points": [[1, 2.5], [3.0, 4]]}}]}]}',
    '{"id": 2, "data": {"a": 1}, "annotations": [{"result": [{"type": "labels", '
    '"value": {"deep": {"k": 1, "k": 2}, "labels": ["a"]}}]}]}',
    '{"id": 4, "data": {"a": 1}, "annotations": [{"result": [{"type": "x", '
    '"value": {"deep": [-0]}}]}]}',
    '{"id": 5, "data": {"deep": [123456789012345678901234]}}',
    '{"id": 6, "data": {"a": 1}, "zz": {"k": 1, "k": 2}}',
    '{"id": 7, "data": {"a": 1}, "annotations": [{"result": [{"type": "polygonlabels", '
    '"value": {"points": [[0.5, 1.5], [2.5]], "polygonlabels": ["p"]}}]}]}',
    '{"id": 3, "data": {"deep": [[1e999]]}}',  # serde_json refuses it: ijson reads from here
]


def test_containers_kept_as_text_same_tables(tmp_path):
    path = tmp_path / "kept.json"
    path.write_text("[" + ",\n".join(KEPT_AS_TEXT) + "]")
    manifest, _ = both([path], tmp_path)
    assert manifest["engine"]["core"] == 2, manifest["engine"]  # the first and the polygons


def test_one_pretty_task_of_many_feeds_same_tables(tmp_path):
    """An element many feeds long (read to its end by the core's bracket count, then parsed
    once), pretty-printed: its big value is kept as text without the spaces."""
    task = next(gen.iter_tasks(5))
    rle = list(range(core.FEED // 3))
    task["annotations"] = [{"id": 1, "result": [{"type": "brushlabels", "value": {
        "format": "rle", "rle": rle, "brushlabels": ["a"]}}]}]
    path = tmp_path / "big.json"
    path.write_text(json.dumps([task, task, {"data": {"x": "]}"}}], indent=2))
    manifest, tables = both([path], tmp_path)
    assert manifest["engine"]["core"] == 3
    assert json.loads(tables["results"]["value"][0].as_py())["rle"] == rle


# JSON text the core's own parser must read as Python's json does: (literal, the core keeps
# its task). The core declines what Python reads differently from a 64-bit value or UTF-8:
# "-0" is the int 0, ints beyond 64 bits stay exact, lone surrogates stay in the str.
NUMBERS = [("0", True), ("-0", False), ("-0.0", False), ("7", True), ("-12", True),
           ("9223372036854775807", True), ("-9223372036854775808", True),
           ("9223372036854775808", False), ("-9223372036854775809", False),
           ("123456789012345678901234567890", False), ("0.1e1", True), ("1E+2", True),
           ("2.5e-3", True), ("1e22", True), ("-1.5e300", True), ("1e400", False), ("-1e400", False),
           ("5e-324", True), ("1.7976931348623157e308", True), ("0.30000000000000004", True),
           ("43.89616300445631", True), ("95.46463034017351", True), ("2.9574963966907064", True),
           ("12345678.87654321", True), ("0.000000001234567890123456789", True),
           ("1.00000000000000000000000001", True), ("9007199254740993.0", True)]
STRINGS = [(r'"plain"', True), (r'"\u0000 nul"', True), (r'"\ud83e\udd8a fox"', True),
           (r'"\/ \b\f\n\r\t \" \\"', True), (r'"\u00e9\u6771"', True)]
LONE_SURROGATES = [r'"\ud800 lone"', r'"\udc00 trailing"', r'"\ud800\ud800 two highs"',
                   r'"end \ud83e"']


def test_json_literals_read_as_python_reads_them(tmp_path):
    """Numbers and strings at the edges of JSON, in a task's data (kept as text), in a typed
    column and in a value: the same tables, and the core keeps exactly the tasks it reads
    as Python does."""
    tasks = []
    for i, (lit, _) in enumerate(NUMBERS):
        tasks.append(f'{{"id": {i}, "data": {{"n": {lit}}}, "annotations": [{{"id": {i}, '
                     f'"result": [{{"id": "r{i}", "type": "rectanglelabels", "from_name": "f", '
                     f'"to_name": "t", "value": {{"x": {lit}, "width": [{lit}, {lit}]}}}}]}}]}}')
    for i, (lit, _) in enumerate(STRINGS, start=len(NUMBERS)):
        tasks.append(f'{{"id": {i}, "data": {{"s": {lit}}}, "annotations": [{{"id": {i}, '
                     f'"result": [{{"id": "r{i}", "type": "choices", "from_name": {lit}, '
                     f'"to_name": "t", "value": {{"choices": [{lit}]}}}}]}}]}}')
    path = tmp_path / "literals.json"
    path.write_text("[" + ",\n".join(tasks) + "]")
    manifest, tables = both([path], tmp_path)
    kept = sum(k for _, k in NUMBERS + STRINGS)
    assert manifest["engine"] == {"core": kept, "python": len(tasks) - kept}
    x = {r["region_id"]: r["x"] for r in rows(tables["results"])}
    for i, (lit, _) in enumerate(NUMBERS):
        v = json.loads(lit)
        if isinstance(v, float) and abs(v) != float("inf"):
            assert x[f"r{i}"] == v, lit


@pytest.mark.parametrize("lit", LONE_SURROGATES)
def test_a_lone_surrogate_is_left_to_the_python_reader(tmp_path, lit):
    """UTF-8 cannot hold a lone surrogate: the core converts the task before and declines
    this one, whose bytes orjson refuses too, so the Python reader reads on from there; the
    run ends as the Python reader's does (its tables, or its error at that task)."""
    path = tmp_path / "lone.json"
    path.write_text(f'[{{"id": 1, "data": {{}}}}, {{"id": 2, "data": {{"s": {lit}}}, '
                    f'"annotations": [{{"id": 2, "result": [{{"type": "choices", "from_name": '
                    f'{lit}, "to_name": "t", "value": {{"choices": [{lit}]}}}}]}}]}}, '
                    f'{{"id": 3, "data": {{}}}}]')
    try:
        manifest, _ = both([path], tmp_path)
    except InputError:
        assert_same_error(path, tmp_path / "again")
    else:
        assert manifest["engine"] == {"core": 1, "python": 2}


ODD_LISTS = {  # value key: (the value, the typed column it would fill)
    "labels": ("abc", "labels"), "rectanglelabels": ("dog", "labels"),
    "labels_numbers": ([1, 2], "labels"), "labels_bool": ([True], "labels"),
    "labels_object": ({"a": ["b"]}, "labels"), "labels_nested": ([["a"]], "labels"),
    "choices": ("xyz", "choices"), "choices_number": (["a", 3], "choices"),
    "choices_path_number": ([["a", 1]], "choices"), "choices_path_null": ([["a", None]], "choices"),
    "choices_path_bool": ([["a", True]], "choices"), "text": ([1, "a"], "texts"),
    "text_object": ([{"t": "a"}], "texts"), "points": ("abc", "points"),
    "points_bool": ([[True, 1.0]], "points"), "points_flat": ([1.0, 2.0], "points"),
    "points_text": ([["1", "2"]], "points"), "points_big": ([[2 ** 60, 1]], "points"),
}


def test_lists_of_an_unexpected_shape_leave_the_column_null(tmp_path):
    """A string where a list of strings is expected was split into its characters by pyarrow
    (`labels: "abc"` gave ['a', 'b', 'c']); booleans in points became 1.0; a taxonomy path
    with a number or a null became "a > 1", "a > None". Every such value leaves its typed
    column null and stays exactly in `value`, with both engines alike."""
    results = []
    for name, (value, _) in ODD_LISTS.items():
        key = name.split("_")[0]
        typ = key if key.endswith("labels") else {"text": "textarea", "points": "polygon",
                                                   "labels": "labels"}.get(key, key)
        results.append({"id": name, "type": typ, "from_name": "f", "to_name": "t",
                        "value": {key: value}})
    path = tmp_path / "odd.json"
    path.write_text(json.dumps([{"id": 1, "data": {}, "annotations": [
        {"id": 1, "result": results}]}]))
    _, tables = both([path], tmp_path)
    got = {r["region_id"]: r for r in rows(tables["results"])}
    for name, (value, column) in ODD_LISTS.items():
        assert got[name][column] is None, (name, got[name][column])
        assert got[name]["value"] == {name.split("_")[0]: value}, name


def test_booleans_leave_the_number_columns_null(tmp_path):
    """A boolean where a number is expected (a box's x, a time series start, a rating) was
    1.0 or 0.0 (pyarrow's cast): now its column is null and it stays whole in `value`,
    as for the list columns, with both engines alike."""
    values = {"rect": ("rectanglelabels", {"x": True, "y": False, "width": 1, "height": True,
                                           "rotation": False, "rectanglelabels": ["a"]}),
              "ts": ("timeserieslabels", {"start": True, "end": 2.5, "timeserieslabels": ["b"]}),
              "rating": ("rating", {"rating": True}), "number": ("number", {"number": False})}
    results = [{"id": k, "type": t, "from_name": "f", "to_name": "t", "value": v}
               for k, (t, v) in values.items()]
    path = tmp_path / "bools.json"
    path.write_text(json.dumps([{"id": 1, "data": {}, "annotations": [
        {"id": 1, "result": results}]}]))
    manifest, tables = both([path], tmp_path)
    assert manifest["engine"] == {"core": 1, "python": 0}
    got = {r["region_id"]: r for r in rows(tables["results"])}
    for k, (_, v) in values.items():
        assert got[k]["value"] == v, k
    assert [got["rect"][c] for c in ("x", "y", "width", "height", "rotation", "unit")] == [
        None, None, 1.0, None, None, "percent"]
    assert (got["ts"]["time_start"], got["ts"]["time_end"]) == (None, 2.5)
    assert got["rating"]["number"] is None and got["number"]["number"] is None


@pytest.mark.parametrize("name", BAD)
def test_bad_input_same_error(tmp_path, name):
    """The same message naming the same task; the byte offset is the Python reader's or
    nearer the bad task (the core names a declined task's start where the Python reader's
    splitter had handed the rest of the array to ijson, whose offset is the bytes it read)."""
    assert_same_error(bad_file(tmp_path, name), tmp_path)


def assert_same_error(path: Path, out: Path) -> None:
    """Both engines raise: the same reason and task position; the core's byte offset is
    none when the Python reader's is, else at most the Python reader's."""
    found = []
    for eng in (None, "python"):
        with engine(eng), pytest.raises(InputError) as info:
            convert([str(path)], out / f"out-{eng}")
        found.append((info.value.reason, info.value.position, info.value.offset))
    assert found[0][:2] == found[1][:2]
    if found[1][2] is None:
        assert found[0][2] is None
    else:
        assert found[0][2] is not None and 0 <= found[0][2] <= found[1][2], found


@pytest.mark.parametrize("name", [n for n in BAD if BAD[n][1] is not None])
def test_bad_input_skip_same_tables(tmp_path, name):
    assert_same_skipping(bad_file(tmp_path, name), tmp_path)


def assert_same_skipping(path: Path, out: Path, offsets: bool = True) -> None:
    """`--on-error skip` on both engines: the same tables, or the same error (its reason,
    position and, with `offsets`, byte offset)."""
    results: list = []
    for eng in (None, "python"):
        with engine(eng):
            try:
                convert([str(path)], out / f"skip-{eng}", on_error="skip")
                results.append(read_tables(out / f"skip-{eng}"))
            except InputError as exc:
                results.append((exc.reason, exc.position) + ((exc.offset,) if offsets else ()))
    if isinstance(results[0], dict) and isinstance(results[1], dict):
        assert_same(*results)
    else:
        assert results[0] == results[1]


@pytest.mark.slow
@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tasks=export_shape)
def test_any_label_studio_export_same_tables(tasks):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "export.json"
        src.write_text(json.dumps(tasks, ensure_ascii=False, indent=1))
        both([src], Path(tmp))


# -- Dataloop items ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", DL_ITEMS, ids=lambda p: p.name)
def test_dataloop_sample_same_tables(tmp_path, path):
    manifest, _ = both([path], tmp_path)
    assert manifest["engine"] == {"core": dataloop_items(path), "python": 0}


def test_dataloop_samples_are_all_covered():
    assert sorted(DL_ITEMS) == sorted(DL.iterdir())


WRAPPERS = {  # id: (the text around the items array, the items; the core's share)
    "plain": ('{"annotations": %s}', 40, 40),
    "pretty": ('\n {\n  "annotations" :\n %s\n }\n', 40, 40),
    "more_keys": ('{"annotations": %s, "next": {"a": [1]}}', 3, 3),
    "escaped_key": ('{"annot\\u0061tions": %s}', 3, 0),  # read by the Python reader
}


@pytest.mark.parametrize("id", WRAPPERS)
def test_dataloop_wrapper_same_tables(tmp_path, id):
    text, n, share = WRAPPERS[id]
    items = generated_items()[:n]
    path = tmp_path / "wrapper.json"
    path.write_text(text % json.dumps(items, indent=1 if id == "pretty" else None))
    manifest, tables = both([path], tmp_path / "out")
    assert tables["tasks"].column("container").to_pylist() == ["wrapper"] * n
    assert manifest["engine"]["core"] == share, manifest["engine"]


BAD_WRAPPERS = {  # id: the wrapper text around the items array's JSON text
    "truncated_after": lambda items: '{"annotations": ' + items,
    "garbage_after": lambda items: '{"annotations": ' + items + "} x",
    "not_an_item": lambda items: '{"annotations": ' + items[:-1] + ", 5]}",
    "truncated_inside": lambda items: '{"annotations": ' + items[:-30],
}


@pytest.mark.parametrize("id", BAD_WRAPPERS)
def test_bad_dataloop_wrapper_same_error(tmp_path, id):
    path = tmp_path / "wrapper.json"
    path.write_text(BAD_WRAPPERS[id](json.dumps(generated_items()[:5])))
    found = []
    for eng in (None, "python"):
        with engine(eng), pytest.raises(InputError) as info:
            convert([str(path)], tmp_path / f"out-{eng}")
        found.append((info.value.reason, info.value.position, info.value.offset))
    assert found[0][:2] == found[1][:2], found
    assert found[0][2] is None or 0 <= found[0][2] <= found[1][2], found


ELEMENT_DOCS = {  # id: (the document, the core's share)
    "sample": (dl_samples.text_classification(), 4),
    "empty": (dict(dl_samples.text_classification(), elements=[]), 0),
    "odd_elements": (dict(dl_samples.text_classification(), elements=[
        {"key": "a", "annotatable": 1}, {"key": "b", "annotatable": True, "n": [1.5, None]},
        {}]), 3),
    "element_number": (dict(dl_samples.text_classification(), elements=[{"key": "a"}, 5]), None),
    "elements_object": (dict(dl_samples.text_classification(), elements={"key": "a"}), None),
}


@pytest.mark.parametrize("id", ELEMENT_DOCS)
def test_dataloop_elements_same_tables_or_error(tmp_path, id):
    doc, share = ELEMENT_DOCS[id]
    path = tmp_path / "text.json"
    path.write_text(json.dumps(doc))
    if share is None:  # the Python reader raises: the same error with both engines
        found = []
        for eng in (None, "python"):
            with engine(eng), pytest.raises(InputError) as info:
                convert([str(path)], tmp_path / f"out-{eng}")
            found.append((info.value.reason, info.value.position))
        assert found[0] == found[1]
        return
    manifest, tables = both([path], tmp_path / "out")
    assert manifest["engine"]["core"] == share
    assert tables["tasks"].num_rows == len(doc["elements"])


def generated_items() -> list[dict]:
    items = [dl_samples.image_item(), dl_samples.video_item(), dl_samples.text_item(),
             dl_samples.old_item()]
    return items + [dl_samples.simple_image(n, f"set_{n % 3}") for n in range(40)]


@pytest.mark.parametrize("shape", ["array", "ndjson", "files"])
def test_generated_dataloop_items_same_tables(tmp_path, shape):
    items = generated_items()
    if shape == "array":
        path = tmp_path / "dataset.json"
        path.write_text(json.dumps(items, indent=1))
    elif shape == "ndjson":
        path = tmp_path / "part-00000.ndjson"
        path.write_text("".join(json.dumps(i) + "\n" for i in items))
    else:
        path = tmp_path / "json"
        for n, item in enumerate(items):
            (path / f"d{n % 4}").mkdir(parents=True, exist_ok=True)
            (path / f"d{n % 4}" / f"item_{n}.json").write_text(json.dumps(item))
    manifest, tables = both([path], tmp_path / "out")
    assert manifest["engine"] == {"core": len(items), "python": 0}
    assert tables["keyframes"].num_rows > 0  # the video track's snapshots


@pytest.mark.parametrize("where", ["metadata", "system", "ffmpeg", "ffmpeg-plain", "ffmpeg-zero",
                                   "ffmpeg-odd", "none"])
def test_dataloop_fps_sources_same_tables(tmp_path, where):
    """fps from metadata.fps, metadata.system.fps or the ffmpeg rate 'n/d' (docs/formats.md
    B5), and the keyframe times from it; a rate Python's float() reads in a way the core does
    not ('1e3/2') is left to the Python reader."""
    video = dl_samples.video_item()
    meta = video["metadata"]
    meta.pop("fps", None)
    meta["system"].pop("fps", None)
    ffmpeg = meta["system"].setdefault("ffmpeg", {})
    ffmpeg.pop("avg_frame_rate", None)
    if where == "metadata":
        meta["fps"], meta["system"]["fps"] = 24, 50
    elif where == "system":
        meta["fps"], meta["system"]["fps"] = -1, 29.97
    elif where.startswith("ffmpeg"):
        ffmpeg["avg_frame_rate"] = {"ffmpeg": "30000/1001", "ffmpeg-plain": "25",
                                    "ffmpeg-zero": "25/0", "ffmpeg-odd": "1e3/2"}[where]
    path = tmp_path / "video.json"
    path.write_text(json.dumps(video))
    manifest, tables = both([path], tmp_path)
    assert manifest["engine"] == ({"core": 0, "python": 1} if where == "ffmpeg-odd"
                                  else {"core": 1, "python": 0})
    assert any(t is not None for t in tables["keyframes"].column("time").to_pylist()) == (
        where not in ("none", "ffmpeg-zero"))


def odd_items() -> list[dict]:
    """Items of unusual shape: every one converts alike with both engines (the core may leave
    some to the Python reader)."""
    video = dl_samples.video_item()
    track = next(a for a in video["annotations"] if "snapshots_" in system_of(a))
    base = dl_samples.simple_image(1, "odd")
    ann = base["annotations"][0]
    odd = [
        dict(base, id=17),  # an int id
        dict(base, id=None, _id="old"),
        {k: v for k, v in base.items() if k != "id"},  # a synthetic id
        dict(base, createdAt="2024-03-01T12:00:00Z", updatedAt="2024-03-01T12:00:00.5Z"),
        dict(base, createdAt="2024-03-01T12:00:00+01:00", updatedAt="2024-13-01T12:00:00.000Z"),
        dict(base, createdAt=17, datasetId=5, annotations="https://gate/annotations"),
        dict(base, metadata=None, annotations=None),
        dict(base, **{"~absent": 1}),  # a reserved key: escaped by the Python reader
        dict(base, name=["x"], metadata={"system": {"mimetype": 3, "width": 1.5, "duration": 7}}),
        dict(base, annotations=[dict(ann, type=["box"], label=3, creator="x@y", source=1)]),
        dict(base, annotations=[dict(ann, coordinates=[{"x": 1, "y": 2}, {"x": 0.5, "y": 2**60}])]),
        dict(base, annotations=[dict(ann, coordinates=[{"x": 5, "y": 2}, {"x": 1, "y": 9}, 30])]),
        dict(base, annotations=[dict(ann, type="note", coordinates={"box": ann["coordinates"]})]),
        dict(base, annotations=[dict(ann, type="ellipse", coordinates={
            "center": {"x": 3, "y": 4}, "rx": 2, "ry": 1.5, "angle": 10})]),
        dict(base, annotations=[dict(ann, type="cube", coordinates={
            "front_tl": {"x": 1, "y": 2}, "back_br": {"x": 3, "y": 4}, "angle": 5})]),
        dict(base, annotations=[dict(ann, type="segment", coordinates=[[{"x": 1, "y": 2}] * 3])]),
        dict(base, annotations=[dict(ann, type="polyline", coordinates=[])]),
        dict(base, annotations=[dict(ann, type="text_mark", coordinates={"start": 1, "end": 4})]),
        dict(base, annotations=[dict(ann, type="text", coordinates="hello")]),
        dict(base, annotations=[dict(ann, type="subtitle", coordinates={"text": "hi"}, metadata={
            "system": {"startTime": 1, "endTime": 2.5, "attributes": {"a": 1}}})]),
        dict(base, annotations=[dict(ann, attributes=None, metadata={"system": {"objectId": 7,
                                                                               "automated": 1}})]),
        dict(video, annotations=[dict(track, metadata=dict(track["metadata"], system=dict(
            system_of(track), snapshots_=[{"frame": 2**60, "objectVisible": 1, "fixed": True,
                                           "data": "x", "namedAttributes": {"k": 1}}])))]),
        dict(base, metadata={"system": {"mimetype": "video/mp4", "snapshots_": []}},
             annotations=[dict(ann, metadata={"system": {"snapshots_": [], "frame": 3}})]),
    ]
    return odd


def test_odd_dataloop_items_same_tables(tmp_path):
    items = odd_items()
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(items))
    manifest, _ = both([path], tmp_path / "array")
    assert manifest["engine"]["core"] >= len(items) - 4, manifest["engine"]
    ndjson = tmp_path / "odd.ndjson"
    ndjson.write_text("".join(json.dumps(i) + "\n" for i in items))
    both([ndjson], tmp_path / "ndjson")


@pytest.mark.parametrize("case", sorted(dataloop_malformed()))
def test_bad_dataloop_input_same_error_and_skip(tmp_path, case):
    data, _ = dataloop_malformed()[case]
    path = tmp_path / "items.json"
    path.write_bytes(data)
    assert_same_error(path, tmp_path)
    assert_same_skipping(path, tmp_path, offsets=False)


@pytest.mark.slow
@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=st.lists(dataloop_item, min_size=1, max_size=3), ndjson=st.booleans())
def test_any_dataloop_export_same_tables(items, ndjson):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dataset.json"
        src.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items) if ndjson
                       else json.dumps(items, ensure_ascii=False, indent=1))
        both([src], Path(tmp))


# -- fuzz: the entry point itself --------------------------------------------------------------

def call(data: bytes, **kw):
    args = dict(file="f.json", position=0, container="array", array=True, eof=True, first=True)
    args.update(kw)
    status, used, tasks, declined, batches, held = core.annostream_core.Converter().convert(
        data, **args)
    assert held is False
    assert status in ("next", "end", "more", "error")
    assert 0 <= used <= len(data) and tasks >= 0
    if declined is not None:
        s, e = declined
        assert 0 <= s < e <= len(data)
    if batches is not None:
        tables = core._tables(batches)  # checks the schema too
        assert tables["tasks"].num_rows == tasks
    else:
        assert tasks == 0
    return status, used, tasks, declined


def test_an_element_cut_anywhere_needs_more_bytes():
    """A valid element cut at any byte is incomplete, never an error, also where the cut
    falls in a number ("44." may go on) inside a container the core keeps as text, in an
    escape, or inside a character of several bytes (the core checks UTF-8 once per call)."""
    task = (b'{"id":1,"data":{"n":[1.5e3,-2.25,"]"]},"annotations":[{"result":[{"type":"x",'
            b'"value":{"a":[44.5,{"b":"c\\"d"}],"x":1.25,"t":"' + "é東🦊".encode() + b'"}}]}]}')
    for cut in range(1, len(task)):
        assert call(task[:cut], array=False, eof=False, first=False)[:3] == ("more", 0, 0), cut
    assert call(task, array=False, eof=True, first=False)[:3] == ("end", len(task), 1)


def test_invalid_utf8_after_converted_tasks_hands_over_at_its_element():
    """The tasks before an element with invalid UTF-8 are converted; the core stops at that
    element's start (the Python reader then reports the error), also when more bytes could
    follow, and when the bytes are only cut inside a character at the end, it asks for more."""
    good = b'{"id":1,"data":{"t":"' + "東".encode() + b'"}}'
    bad = b'{"id":2,"data":{"t":"' + b"\xff" + b'"}}'
    for eof in (False, True):
        status, used, tasks, _ = call(good + b"," + bad + b"]", eof=eof, first=False)
        assert (status, used, tasks) == ("error", len(good) + 1, 1)
    cut = good + b"," + b'{"id":2,"data":{"t":"' + "東".encode()[:2]
    assert call(cut, eof=False, first=False)[:3] == ("more", len(good) + 1, 1)
    assert call(cut, eof=True, first=False)[:3] == ("error", len(good) + 1, 1)


PLATFORMS = st.sampled_from(sorted(core.PLATFORMS))


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300), array=st.booleans(), eof=st.booleans(),
       first=st.booleans(), platform=PLATFORMS)
def test_fuzz_random_bytes(data, array, eof, first, platform):
    call(data, array=array, eof=eof, first=first, platform=platform)


value_like = st.dictionaries(st.sampled_from(["x", "labels", "sequence", "start", "end",
                                              "choices", "text"]), json_values_st)
result_like = st.dictionaries(st.sampled_from(["type", "value", "id", "from_id"]),
                              json_values_st | value_like)
annotation_like = st.dictionaries(st.sampled_from(["id", "result", "created_at", "completed_by",
                                                   "x"]),
                                  json_values_st | st.lists(result_like, max_size=3))
task_like = st.fixed_dictionaries({"data": json_values_st}, optional={
    "id": json_values_st, "annotations": st.lists(annotation_like, max_size=3)})
dl_system_like = st.dictionaries(st.sampled_from(["mimetype", "fps", "snapshots_", "frame",
                                                  "objectId", "ffmpeg", "startTime"]),
                                 json_values_st | st.just("video/mp4"))
dl_annotation_like = st.dictionaries(st.sampled_from(["id", "type", "label", "coordinates",
                                                      "metadata", "createdAt"]),
                                     json_values_st | st.fixed_dictionaries(
                                         {"system": dl_system_like}))
item_like = st.fixed_dictionaries({"id": json_values_st}, optional={
    "metadata": st.fixed_dictionaries({"system": dl_system_like}),
    "annotations": st.lists(dl_annotation_like, max_size=3)})


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(task_like | item_like | json_values_st, max_size=4),
       cut=st.integers(0, 10_000), array=st.booleans(), platform=PLATFORMS)
def test_fuzz_random_json(values, cut, array, platform):
    text = (json.dumps(values) if array else "\n".join(json.dumps(v) for v in values)).encode()
    data = text[1:] if array else text
    status, used, tasks, declined = call(data, array=array, first=array, platform=platform)
    # cut anywhere: never more than the complete elements, never a crash
    call(data[:cut % (len(data) + 1)], array=array, eof=False, first=array, platform=platform)
    if status == "end" and declined is None:
        assert tasks == len(values)
