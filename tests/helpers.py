"""Shared test helpers, the one module tests import from (tests never import each other):
paths, the real converter and CLI, and the source side computed with the json module."""
from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import lzma
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

from stream.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"


def leftovers(out: Path) -> list[str]:
    """Everything under the output folder (hidden staging folders and temp files included)."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []


def check_one_line(stderr: bytes, path: Path, position: int | None, words: str) -> str:
    err = stderr.decode()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"error: {path}"), line
    assert words in line, line
    if position is not None:
        assert f": task {position} " in line, line
        offset = int(re.search(r"near byte (\d+)", line).group(1))
        assert 0 <= offset <= path.stat().st_size
    return line


def staging_left(out: Path) -> list[str]:
    """What a run left in an output folder besides its generations (writer.OutputFolder): a
    generation without a manifest (a dead run's stage), a temporary file, an old-style stage."""
    left = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".annostream"]
    state = out / ".annostream"
    if state.is_dir():
        left += [p.name for p in state.iterdir() if p.name != "current"
                 and not (p / "_manifest.json").is_file()]
    return left


def read_tables(out: Path) -> dict[str, pa.Table]:
    """Every table of a converted folder, read back from its Parquet parts."""
    return {t: pq.read_table(out / t) for t in TABLES}


def run_cli(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `annostream` command in a subprocess (python -m stream)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "stream", *args], input=input,
                          capture_output=True, cwd=cwd, env=env)


def load_script(name: str) -> Any:
    """A module of scripts/ (they are not a package), loaded once and registered in
    sys.modules (dataclasses look their module up there)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- Label Studio samples, read with the json module ------------------------------------------
LS = SAMPLES / "labelstudio"
TASK_FILES = ["image_regions.json", "ner_text.json", "video_tracks.json", "video_interpolated.json",
              "classification.json", "pre1_completions.json", "import_predictions.json",
              "single_task.json", "storage_tasks", "hypertext_paragraphs_timeseries.json"]
NER_FILE = "ner_model_predictions.json"
LISTS = {"annotations": "annotation", "completions": "annotation", "predictions": "prediction",
         "drafts": "draft"}


# -- the source side, read with the json module ---------------------------------------------
def source_files(path: Path) -> list[Path]:
    return sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()) \
        if path.is_dir() else [path]


def source_tasks(path: Path) -> list[tuple[Path, int, dict]]:
    """(file, position, object) for every task object of a sample file or folder."""
    out = []
    for f in source_files(path):
        root = json.loads(f.read_text(encoding="utf-8"))
        for pos, obj in enumerate(root if isinstance(root, list) else [root]):
            out.append((f, pos, obj))
    return out


def is_storage_annotation(obj: dict) -> bool:
    return "data" not in obj and isinstance(obj.get("task"), dict)


def source_annotations(obj: dict) -> list[tuple[str, int, object]]:
    """(kind, position, annotation object or bare id) of one task object."""
    if is_storage_annotation(obj):
        return [("annotation", -1, obj)]
    if "data" not in obj:
        return []  # a flat import object: all of it is data
    return [(LISTS[key], p, a) for key in LISTS for p, a in enumerate(obj.get(key) or [])]


def task_id_of(file: Path, pos: int, obj: dict) -> str:
    """The task's id as text; a synthetic '~<file>#<position>' for a task without one."""
    task = obj["task"] if is_storage_annotation(obj) else obj
    return str(task["id"]) if "data" in task and "id" in task else f"~{file}#{pos}"


def ann_id_of(task_id: str, kind: str, pos: int, ann: dict) -> str:
    """The annotation's id as text; '~<task_id>/<kind letter><position>' when it has none."""
    return str(ann["id"]) if "id" in ann else f"~{task_id}/{kind[0]}{pos}"


# -- small hand-written Label Studio exports ------------------------------------------------
def task(tid: int, project: int | None = 7, updated: str = "2026-01-01T00:00:00.000000Z",
         labels: tuple[str, ...] = ("A",), annotations: int = 1) -> dict:
    """A task with `annotations` annotations, each a choices result per label + a relation."""
    t = {"id": tid, "data": {"text": f"task {tid}"}, "updated_at": updated,
         "created_at": "2025-12-01T00:00:00.000000Z",
         "annotations": [
             {"id": tid * 100 + a, "completed_by": 1, "updated_at": updated,
              "result": [{"id": f"r{tid}-{a}-{i}", "type": "choices", "from_name": "c",
                          "to_name": "t", "value": {"choices": [label]}}
                         for i, label in enumerate(labels)]
              + [{"type": "relation", "from_id": f"r{tid}-{a}-0", "to_id": f"r{tid}-{a}-0",
                  "direction": "right"}]}
             for a in range(annotations)]}
    if project is not None:
        t["project"] = project
    return t


def ts(text: str) -> datetime:
    """An ISO-8601 timestamp as the platforms write it ('Z' for UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- comparing JSON values --------------------------------------------------------------------
NUMBERS = (int, float)


def json_diff(a, b, path: str = "$") -> str | None:
    """The first path where two parsed JSON values differ, or None when they are equal.

    Numbers compare as numbers (1 == 1.0) but never equal a boolean; object key order is free.
    """
    ta, tb = type(a), type(b)
    if ta in NUMBERS and tb in NUMBERS:
        return None if a == b else f"{path}: {a!r} != {b!r}"
    if ta is not tb:
        return f"{path}: {ta.__name__} {a!r:.60} != {tb.__name__} {b!r:.60}"
    if ta is dict:
        for k in a.keys() | b.keys():
            if k not in b:
                return f"{path}.{k}: missing from the rebuilt value"
            if k not in a:
                return f"{path}.{k}: not in the original"
        for k in a:
            found = json_diff(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if ta is list:
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = json_diff(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r:.60} != {b!r:.60}"


def json_values(path: Path) -> list:
    """Every JSON value in a file (one for a document, several for NDJSON), decompressed."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:3] == b"BZh":
        raw = bz2.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        raw = lzma.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = pa.CompressedInputStream(pa.BufferReader(raw), "zstd").read()
    text, values, i = raw.decode("utf-8-sig"), [], 0
    decoder = json.JSONDecoder()
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i == len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


# -- the bad-input corpus: real sample tasks with one defect at a known task ------------------
TASKS = json.loads((LS / "image_regions.json").read_text(encoding="utf-8")) + \
    json.loads((LS / "classification.json").read_text(encoding="utf-8"))
BAD_AT = 1  # the defect sits in the second task of each bad array


def array(tasks: list) -> bytes:
    return json.dumps(tasks, separators=(",", ":"), ensure_ascii=False).encode()


def task_start(tasks: list, k: int) -> int:
    """Byte offset at which task k begins in `array(tasks)`: after '[' and k tasks with commas."""
    return 1 + sum(len(array(t)) + 1 for t in tasks[:k])


def with_bad_task(defect) -> bytes:
    tasks = json.loads(json.dumps(TASKS))
    defect(tasks[BAD_AT])
    return array(tasks)


def truncated() -> bytes:
    data = array(TASKS)
    start, end = task_start(TASKS, BAD_AT), task_start(TASKS, BAD_AT + 1)
    return data[:(start + end) // 2]


def invalid_utf8() -> bytes:
    data = array(TASKS)
    at = data.index(b'"Truck"', task_start(TASKS, BAD_AT))  # a label of task 1
    return data[:at + 1] + b"\xff\xfe" + data[at + 3:]


def set_key(key, value):
    return lambda t: t.__setitem__(key, value)


def result_is_a_number(t):
    t["annotations"][1]["result"][1] = 7


def annotation_is_a_list(t):
    t["annotations"][0] = [1, 2]


# name -> (file bytes, task position the message must name or None, words it must contain)
BAD = {
    "truncated": (truncated(), BAD_AT, "truncated JSON"),
    "invalid_utf8": (invalid_utf8(), BAD_AT, "invalid UTF-8"),
    "scalar_root": (b"42\n", None, "not a JSON export"),
    "string_root": (b'"tasks.json"', None, "not a JSON export"),
    "empty": (b"", None, "not a JSON export: it is empty"),
    "not_json": (b"id,image\n1,a.jpg\n", None, "not a JSON export"),
    "array_of_numbers": (b"[1, 2, 3]", 0, "expected a task object, got a number"),
    "array_of_arrays": (array([TASKS[0], [TASKS[1]]]), BAD_AT, "expected a task object, got an array"),
    "object_without_data": (b'{"title": "My project", "label_config": "<View/>"}', 0, "no 'data' key"),
    "annotations_string": (with_bad_task(set_key("annotations", "none yet")), BAD_AT,
                           "'annotations' is a string, expected a list"),
    "predictions_object": (with_bad_task(set_key("predictions", {"id": 4})), BAD_AT,
                           "'predictions' is an object, expected a list"),
    "result_number": (with_bad_task(result_is_a_number), BAD_AT, "result 1 is a number"),
    "annotation_array": (with_bad_task(annotation_is_a_list), BAD_AT, "annotation 0 is an array"),
    "garbage_after_task": (array(TASKS[:1])[:-1] + b",}", BAD_AT, "invalid JSON"),
    "ndjson_broken_line": (array(TASKS[0]) + b"\n" + array(TASKS[1])[:-9] + b"\n" + array(TASKS[2]),
                           BAD_AT, "invalid JSON"),
    "ndjson_line_without_data": (array(TASKS[0]) + b"\n" + array({"title": "not a task"}), BAD_AT,
                                 "no 'data' key"),
    "corrupt_gzip": (lambda: corrupt(gzip.compress(array(TASKS))), None, "corrupt or truncated gzip"),
    "truncated_gzip": (lambda: gzip.compress(array(TASKS))[:-12], None, "corrupt or truncated gzip"),
    "truncated_bz2": (lambda: bz2.compress(array(TASKS))[:-40], None, "corrupt or truncated bz2"),
    "truncated_xz": (lambda: lzma.compress(array(TASKS))[:-40], None, "corrupt or truncated xz"),
}


def corrupt(data: bytes) -> bytes:
    """Flip bytes in the middle of a compressed stream."""
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0x5A for b in data[mid:mid + 64]) + data[mid + 64:]


def bad_file(tmp_path: Path, name: str) -> Path:
    data = BAD[name][0]
    path = tmp_path / f"{name}.json"  # every bad file is named .json: the content decides
    path.write_bytes(data() if callable(data) else data)
    return path


# -- Dataloop samples and broken Dataloop inputs ----------------------------------------------
DL = SAMPLES / "dataloop"


def folder_items(folder: Path) -> list[tuple[str, dict]]:
    """(file column value, item) of a folder of one-item files, in sorted path order."""
    files = sorted(folder.rglob("*.json"), key=lambda p: p.relative_to(folder).as_posix())
    return [(f"{folder}/{f.relative_to(folder).as_posix()}", json.loads(f.read_text("utf-8")))
            for f in files]


def system_of(obj: dict, key: str = "metadata") -> dict:
    return ((obj.get(key) or {}).get("system") or {}) if isinstance(obj.get(key), dict) else {}


def dataloop_malformed() -> dict[str, tuple[bytes, list[str]]]:
    """Broken Dataloop inputs: (bytes, words the one-line error holds)."""
    _, item = folder_items(DL / "export" / "json" / "reviews")[0]
    line = json.dumps(item)
    bad_ann = dict(item, annotations=["not an annotation"])
    bad_snap = folder_items(DL / "export" / "json" / "clips")[0][1]
    system_of(bad_snap["annotations"][0])["snapshots_"].append(17)
    return {
        "ndjson_array_line": ((line + "\n[1, 2]\n").encode(), ["task 1", "expected a Dataloop item object, got an array"]),
        "annotation_string": (json.dumps(bad_ann).encode(), ["task 0", "annotation 0 is a string"]),
        "snapshot_number": (json.dumps(bad_snap).encode(), ["snapshot 4 is a number"]),
        "truncated": (line[: len(line) // 2].encode(), ["truncated JSON"]),
        "not_an_item": ((line + '\n{"datasetId": "x", "hello": 1}\n').encode(), ["task 1", "not a Dataloop item"]),
        "shebang_without_elements": (b'{"shebang": "dataloop", "metadata": {"dltype": "prompt"}, "prompts": {}}',
                                     ["without an 'elements' list", "'prompt'"]),
    }


# -- hypothesis: random Label Studio exports (every object kind, drift, unknown keys) ---------
RESERVED = ("~absent", "~list")  # the converter's own extra keys (see stream/tables.py)

keys = st.text(max_size=6).filter(lambda k: k not in RESERVED)
ints = st.integers(min_value=1 - 2 ** 63, max_value=2 ** 63 - 1)  # yajl rejects the others
small_ints = st.integers(min_value=-5, max_value=100_000)
floats = st.floats(allow_nan=False, allow_infinity=False)
leaves = st.none() | st.booleans() | ints | small_ints | floats | st.text(max_size=12)
json_values_st = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(keys, inner, max_size=3), max_leaves=10)
deep = st.recursive(leaves, lambda inner: st.lists(inner, max_size=2)
                    | st.dictionaries(keys, inner, max_size=2), max_leaves=25)
data = st.dictionaries(keys, deep, max_size=3)  # Label Studio task data is an object


def drift(typed: st.SearchStrategy) -> st.SearchStrategy:
    """The right JSON type most of the time, else anything (null, a string for a number...)."""
    return st.one_of(typed, typed, json_values_st)


def unknown(known: frozenset) -> st.SearchStrategy:
    return st.dictionaries(keys.filter(lambda k: k not in known), json_values_st, max_size=2)


def with_unknown(fixed: dict, known: frozenset) -> st.SearchStrategy:
    """Optional typed keys plus unknown keys, in random order."""
    return st.builds(lambda a, b: {**b, **a}, st.fixed_dictionaries({}, optional=fixed),
                     unknown(known | frozenset(fixed)))


def _ts(d: datetime, style: int) -> str:
    return [d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), d.isoformat(), d.strftime("%Y-%m-%d %H:%M:%S"),
            d.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            d.astimezone(timezone(timedelta(hours=2))).isoformat()][style]


timestamps = drift(st.builds(_ts, st.datetimes(min_value=datetime(1970, 1, 1),
                                               max_value=datetime(2100, 1, 1),
                                               timezones=st.just(timezone.utc)),
                             st.integers(0, 4)))
ids = drift(small_ints | st.text(max_size=8) | small_ints.map(str))
labels = drift(st.lists(st.text(max_size=5), max_size=3))
TYPES = ["rectanglelabels", "polygonlabels", "keypointlabels", "labels", "choices", "textarea",
         "taxonomy", "rating", "number", "hypertextlabels", "paragraphlabels", "timeserieslabels",
         "brush", "pairwise", "brandnewtool", ""]
VALUE_KEYS = ["x", "y", "width", "height", "rotation", "points", "start", "end", "text",
              "labels", "choices", "taxonomy", "number", "rating", "globalOffsets", "channel",
              "rectanglelabels", "startOffset", "format", "rle"]

keyframe = with_unknown({"frame": drift(small_ints), "time": drift(floats), "enabled":
                         drift(st.booleans()), "x": drift(floats | small_ints), "y": drift(floats),
                         "width": drift(floats), "height": drift(floats), "rotation": drift(floats),
                         "auto": drift(st.booleans())}, frozenset())
video_value = st.builds(lambda seq, rest: {**rest, "sequence": seq}, st.lists(keyframe, max_size=4),
                        st.dictionaries(st.sampled_from(["framesCount", "frameCount", "duration",
                                                         "labels"]), drift(small_ints), max_size=3))
value = (st.dictionaries(st.sampled_from(VALUE_KEYS) | keys, json_values_st, max_size=4)
         | json_values_st)
RESULT_KNOWN = frozenset({"id", "from_name", "to_name", "type", "value", "origin", "score",
                          "parentID", "readonly", "original_width", "original_height",
                          "image_rotation"})
region = st.builds(lambda r, typ, v: {**r, **typ, **v}, with_unknown(
    {"id": drift(st.text(min_size=1, max_size=10)), "from_name": drift(st.text(max_size=5)),
     "to_name": st.text(max_size=5), "origin": drift(st.sampled_from(["manual", "prediction"])),
     "score": drift(floats), "parentID": st.text(max_size=4), "readonly": drift(st.booleans()),
     "original_width": drift(small_ints), "original_height": drift(small_ints),
     "image_rotation": drift(floats)}, RESULT_KNOWN),
    st.fixed_dictionaries({}, optional={"type": drift(st.sampled_from(TYPES) | st.text(max_size=8))}),
    st.fixed_dictionaries({}, optional={"value": value}))
video = st.builds(lambda r, v: {**r, "type": "videorectangle", "value": v},
                  with_unknown({"id": drift(st.text(max_size=10))}, RESULT_KNOWN), video_value)
relation = st.builds(lambda r: {**r, "type": "relation"}, with_unknown(
    {"from_id": drift(st.text(max_size=5)), "to_id": drift(st.text(max_size=5)),
     "direction": drift(st.sampled_from(["right", "left", "bi"])), "labels": labels},
    frozenset({"type"})))
not_list = json_values_st.filter(lambda v: type(v) is not list)
results = st.lists(region | video | relation, max_size=5) | not_list  # items must be objects

ANNOTATION_KNOWN = frozenset({"id", "completed_by", "created_at", "updated_at", "updated_by",
                              "result", "was_cancelled", "ground_truth", "lead_time",
                              "model_version", "score", "result_count", "skipped"})
user = st.fixed_dictionaries({"id": ids}, optional={"email": drift(st.text(max_size=8)),
                                                     "first_name": st.text(max_size=5)})
annotation = with_unknown(
    {"id": ids, "completed_by": drift(small_ints | user), "updated_by": ids,
     "created_at": timestamps, "updated_at": timestamps, "was_cancelled": drift(st.booleans()),
     "skipped": drift(st.booleans()), "ground_truth": drift(st.booleans()),
     "lead_time": drift(floats | small_ints), "model_version": drift(st.text(max_size=5)),
     "score": drift(floats), "result_count": drift(small_ints), "result": results},
    ANNOTATION_KNOWN)
id_only = small_ints | st.text(max_size=6) | small_ints.map(str)
anns = st.lists(annotation, max_size=3)
LIST_KEYS = frozenset({"annotations", "completions", "predictions", "drafts"})
TASK_KNOWN = frozenset({"id", "project", "data", "meta", "created_at", "updated_at",
                        "total_annotations", "cancelled_annotations", "total_predictions",
                        "task", "result"}) | LIST_KEYS
task_object = with_unknown(
    {"id": ids, "project": ids, "meta": deep, "created_at": timestamps, "updated_at": timestamps,
     "total_annotations": drift(small_ints), "cancelled_annotations": drift(small_ints),
     "total_predictions": drift(small_ints),
     "annotations": anns | st.none(), "completions": anns,
     "predictions": st.lists(annotation | id_only, max_size=3) | st.none(),
     "drafts": st.lists(annotation | id_only, max_size=2)},
    TASK_KNOWN).flatmap(lambda t: st.builds(lambda d: {"data": d, **t}, data))
# A first key holding a list would make the file sniff as the NER model JSON (see the report
# of issue 6): tasks start with `data`, flat objects with a string, as real files do.
flat = st.builds(lambda first, rest: {**first, **rest},
                 st.dictionaries(keys.filter(lambda k: k not in ("data", "task")),
                                 st.text(max_size=8), min_size=1, max_size=1),
                 st.dictionaries(keys.filter(lambda k: k not in ("data", "task")), deep,
                                 max_size=3))
storage = st.builds(lambda a, t: {"task": t, **a, "result": a.get("result") or []},
                    annotation, task_object.map(lambda t: {k: v for k, v in t.items() if k != "data"}))


def completions_apart(tasks: list) -> list:
    """Ids may repeat (tasks, annotations of one kind): rows link to their owners by position.
    The one case left out: a task holding both `annotations` and pre-1.0 `completions` (both
    kind 'annotation') where the two lists have an annotation with the same id at the same
    position (the known limit in docs/export.md)."""
    for t in tasks:
        inner = t["task"] if "data" not in t and "task" in t else t
        anns, comps = inner.get("annotations"), inner.get("completions")
        if type(anns) is list and type(comps) is list:
            inner["completions"] = [
                c for p, c in enumerate(comps)
                if not (p < len(anns) and type(c) is dict and type(anns[p]) is dict
                        and c.get("id") == anns[p].get("id"))]
    return tasks


export_shape = st.lists(task_object | task_object | flat | storage, min_size=1, max_size=4).map(completions_apart)


# -- lakes ------------------------------------------------------------------------------------
def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


def expected_counts(tasks: list[dict]) -> dict[str, int]:
    """Rows per table, from the JSON: relations are results of type 'relation'."""
    anns = [a for t in tasks for a in t.get("annotations", [])]
    results = [r for a in anns for r in a["result"]]
    rel = sum(r["type"] == "relation" for r in results)
    return {"tasks": len(tasks), "annotations": len(anns), "results": len(results) - rel,
            "relations": rel, "keyframes": 0}


def counts(con: Any, schema: str = "main") -> dict[str, int]:
    return {t: con.sql(f"SELECT count(*) FROM {schema}.{t}").fetchall()[0][0] for t in TABLES}


# -- hypothesis: random Dataloop items (every annotation type, drift, unknown keys) ------------
def _dl_ts(d: datetime, style: int) -> str:
    return [d.isoformat(timespec="milliseconds").replace("+00:00", "Z"), d.isoformat()][style]


dl_timestamps = drift(st.builds(_dl_ts, st.datetimes(min_value=datetime(1970, 1, 1),
                                                     max_value=datetime(2100, 1, 1),
                                                     timezones=st.just(timezone.utc)),
                                st.integers(0, 1)))
dl_point = st.fixed_dictionaries({"x": floats | small_ints, "y": floats | small_ints},
                                 optional={"z": small_ints})
coordinates = drift(st.lists(dl_point, min_size=2, max_size=3) | dl_point
                    | st.lists(st.lists(dl_point, max_size=3), max_size=2)
                    | st.fixed_dictionaries({"center": dl_point, "rx": floats, "ry": floats},
                                            optional={"angle": floats}))
DL_TYPES = ["box", "segment", "polyline", "point", "ellipse", "class", "text_mark", "subtitle",
            "note", "cube", "binary", "brandnew"]
snapshot = with_unknown({"frame": drift(small_ints), "fixed": drift(st.booleans()),
                         "objectVisible": drift(st.booleans()), "label": drift(st.text(max_size=4)),
                         "type": drift(st.sampled_from(["box", "LINEAR"])), "data": coordinates,
                         "attributes": json_values_st, "namedAttributes": json_values_st},
                        frozenset())
system = with_unknown({"objectId": ids, "parentId": drift(st.text(max_size=4)),
                       "frame": drift(small_ints), "endFrame": drift(small_ints),
                       "startTime": drift(floats), "endTime": drift(floats),
                       "automated": drift(st.booleans()), "attributes": json_values_st,
                       "snapshots_": drift(st.lists(snapshot, max_size=3))}, frozenset())
dl_annotation = with_unknown(
    {"id": drift(st.text(max_size=6)), "_id": st.text(max_size=6),
     # a list or object `type` crashes the Dataloop reader (reported on issue 6)
     "type": st.sampled_from(DL_TYPES) | st.text(max_size=4) | st.none() | small_ints,
     "label": drift(st.text(max_size=5)),
     "coordinates": coordinates, "attributes": json_values_st, "creator": drift(st.text(max_size=5)),
     "updatedBy": drift(st.text(max_size=5)), "source": drift(st.text(max_size=3)),
     "createdAt": dl_timestamps, "updatedAt": dl_timestamps, "description": json_values_st,
     "labelSuggestions": json_values_st,
     "metadata": drift(st.fixed_dictionaries({}, optional={"system": drift(system), "user": deep}))},
    frozenset())
media = st.sampled_from(["image/jpeg", "video/mp4", "audio/wav", "text/plain"])
item_meta = st.fixed_dictionaries({}, optional={
    "fps": drift(small_ints), "system": with_unknown(
        {"mimetype": drift(media), "fps": drift(floats), "width": drift(small_ints),
         "height": drift(small_ints), "duration": drift(floats)}, frozenset()), "user": deep})
dataloop_item = with_unknown(
    {"id": drift(st.text(min_size=1, max_size=8)), "_id": st.text(max_size=8), "datasetId": ids,
     "createdAt": dl_timestamps, "updatedAt": dl_timestamps, "dir": drift(st.text(max_size=5)),
     "name": drift(st.text(max_size=5)), "url": st.text(max_size=5), "metadata": drift(item_meta),
     "itemMetadata": item_meta,
     "annotations": st.lists(dl_annotation, max_size=3) | st.text(max_size=8) | st.none()},
    frozenset({"filename", "shebang", "annotationsCount", "manifestVersion", "exportId",
               "partitioning", "elements"})
).flatmap(lambda i: st.builds(lambda f: {"filename": f, **i}, drift(st.text(max_size=8))))
