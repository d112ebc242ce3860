"""Convert, export, compare: the proof that nothing is lost.

Every input shape the converter accepts is converted into real Parquet, rebuilt with
`export`, and compared with the original as parsed JSON values (numbers equal as numbers,
key order free); a difference is reported by its path, e.g. `$[0][3].annotations[0].id`.
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import SAMPLES, json_diff, json_values, run_cli

from stream import connect, convert, export
from stream.errors import AnnostreamError


def test_json_diff_reports_the_first_differing_path():
    assert json_diff({"a": [1, {"b": 2.0}]}, {"a": [1.0, {"b": 2}]}) is None
    assert json_diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == "$.a[1].b: 2 != 3"
    assert json_diff([True], [1]) == "$[0]: bool True != int 1"
    assert json_diff({"a": 1}, {"a": 1, "c": None}) == "$.c: not in the original"
    assert json_diff("é\n", "é\\n") is not None


def assert_same_file(original: Path, rebuilt: Path) -> None:
    found = json_diff(json_values(original), json_values(rebuilt))
    assert found is None, f"{original} -> {rebuilt}: {found}"


def roundtrip(tmp_path: Path, *inputs: Path, **kwargs) -> Path:
    """Convert the inputs together and export them into a folder; returns that folder."""
    out = tmp_path / "tables"
    convert([str(i) for i in inputs], out)
    rebuilt = tmp_path / "rebuilt"
    export(out, str(rebuilt) + "/", **kwargs)
    return rebuilt


def files_under(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


# -- inputs of every shape, written in the test --------------------------------------------

VIDEO_VALUE = {"framesCount": 90, "duration": 3.0, "labels": ["Car"], "sequence": [
    {"frame": 1, "enabled": True, "x": 10, "y": 20.5, "width": 30.25, "height": 5, "rotation": 0,
     "time": 0.0333},
    {"frame": 2, "enabled": True, "x": 11.0, "y": 20.5, "width": 30.25, "height": 5,
     "rotation": 0, "time": 0.0667, "auto": True},
    {"frame": 9, "enabled": False, "x": "12", "y": None, "time": 0.3, "note": {"k": [1]}}]}


def tricky_tasks() -> list:
    """Label Studio tasks with every key shape the restoring rule handles."""
    return [
        {"id": 1, "project": 7, "data": {"image": "s3://b/ü 1.jpg", "nested": {"a": [1, {"b": None}]}},
         "meta": {"tags": ["x"], "deep": {"d": {"e": [[], {}]}}},
         "created_at": "2024-01-02T03:04:05.123456Z", "updated_at": "2024-01-02 03:04:05",
         "total_annotations": 2, "cancelled_annotations": "0", "total_predictions": 2 ** 60,
         "file_upload": None, "agreement": 100.0, "inner_id": 1,
         "annotations": [
             {"id": 10, "completed_by": {"id": 3, "email": "a@b.c", "first_name": "Zoë"},
              "was_cancelled": False, "ground_truth": None, "lead_time": 12,
              "created_at": "2024-W01-2T03:04:05.123456Z", "updated_at": "2024-01-02T03:04:05+02:00",
              "result_count": 5, "unique_id": "u-1", "prediction": {}, "reviews": [],
              "result": [
                  {"id": "r1", "type": "rectanglelabels", "from_name": "box", "to_name": "image",
                   "original_width": 640, "original_height": 480, "image_rotation": 0,
                   "origin": "manual", "value": {"x": 1, "y": 2.5, "width": 3, "height": 4,
                                                 "rotation": 0, "rectanglelabels": ["Cat"]}},
                  {"id": "r1", "type": "textarea", "from_name": "note", "to_name": "image",
                   "value": {"text": ["tab\there", "quote \" and \\ and \u2028"]}},
                  {"type": "relation", "from_id": "r1", "to_id": "gone", "direction": "bi",
                   "labels": ["pair"], "meta": {"x": 1}},
                  {"type": "relation", "from_id": "r1", "to_id": 5, "labels": [1, "a"]},
                  {"value": {"choices": [["A", "B"], "C"]}, "type": "choices", "from_name": "c",
                   "to_name": "image", "readonly": "yes", "score": None},
                  {"id": 77, "type": "videorectangle", "from_name": "v", "to_name": "video",
                   "value": VIDEO_VALUE},
                  {"id": None, "type": "videorectangle", "value": {"sequence": [], "x": 1}},
                  {"id": "u", "type": "brandnewtool", "value": {"cube": {"q": [1.5e-7, -0.0]}},
                   "parentID": 4},
                  {"type": None, "value": None},
                  {}]},
             {"id": "11", "completed_by": 3, "was_cancelled": True, "result": None, "task": 1},
             {"completed_by": None, "result": [], "updated_by": "9"}],
         "predictions": [21, "22", {"id": 23, "model_version": 3, "score": 0.5, "result": "x"}],
         "drafts": [{"id": 31, "user": "First Last a@b.c, 3", "result": [
             {"id": "d1", "type": "labels", "value": {"start": 0, "end": 2, "labels": ["PER"]}}]}]},
        {"id": "task-a", "data": {"text": "Grüße 😀"}, "annotations": None, "predictions": None,
         "drafts": [], "comment_authors": [{"id": 1}], "project": None, "meta": None},
        {"id": "12", "data": None, "created_at": 5, "total_annotations": True},
        {"data": {"only": "data"}, "predictions": [{"model_version": "m1", "score": 1,
                                                    "result": [{"value": {"number": 3}}]}]},
        {"id": 2 ** 62, "data": {}, "annotations": [{"id": 1.5, "lead_time": 2 ** 60,
                                                    "result": [{"id": "k", "value": {}}]}]},
    ]


def write(path: Path, value, *, pretty: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2 if pretty else None))
    return path


def test_array_export_with_every_key_shape(tmp_path):
    src = write(tmp_path / "in" / "export.json", tricky_tasks(), pretty=True)
    rebuilt = roundtrip(tmp_path, src)
    assert_same_file(src, rebuilt / "export.json")


def test_single_file_output_and_compressed_inputs(tmp_path):
    tasks = tricky_tasks()
    raw = json.dumps(tasks).encode()
    inputs = {"a.json.gz": gzip.compress(raw), "a.json.bz2": bz2.compress(raw),
              "a.json.xz": lzma.compress(raw),
              "a.json.zst": pa.compress(raw, codec="zstd", asbytes=True)}
    for name, blob in inputs.items():
        src = tmp_path / "in" / name
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(blob)
        out = tmp_path / f"tables-{name}"
        convert([str(src)], out)
        export(out, tmp_path / "plain.json")  # one input, output not a folder: that file
        assert json_diff([tasks], json_values(tmp_path / "plain.json")) is None
        export(out, f"{tmp_path}/mirror/")  # a folder: the input's name, compressed the same way
        assert (tmp_path / "mirror" / name).read_bytes()[:2] == blob[:2]
        assert_same_file(src, tmp_path / "mirror" / name)


def test_single_object_ndjson_and_per_task_folder(tmp_path):
    tasks = tricky_tasks()
    single = write(tmp_path / "in" / "single.json", tasks[0], pretty=True)
    ndjson = tmp_path / "in" / "tasks.ndjson"
    ndjson.write_text("\n".join(json.dumps(t) for t in tasks[:3] + tasks[4:]) + "\n")
    folder = tmp_path / "in" / "per_task"
    for i, t in enumerate(tasks[:3]):
        write(folder / f"{i:03d}.json", t)
    rebuilt = roundtrip(tmp_path, single, ndjson, folder)
    names = files_under(rebuilt)
    assert sorted(names) == ["per_task/000.json", "per_task/001.json", "per_task/002.json",
                             "single.json", "tasks.ndjson"]
    for rel, path in names.items():
        assert_same_file(tmp_path / "in" / rel, path)


def test_legacy_storage_annotations_of_one_task(tmp_path):
    """One file per annotation, the same task nested in each: child rows must not mix."""
    task = {"id": 5, "data": {"image": "x.jpg"}, "project": 1, "annotations": []}
    folder = tmp_path / "in" / "storage"
    for i, ann_id in enumerate([50, 51, 52]):
        write(folder / f"ann_{i}.json", {
            "id": ann_id, "completed_by": {"id": 1, "email": "x@y.z"}, "task": dict(task),
            "result": [{"id": f"r{ann_id}", "type": "choices", "value": {"choices": [str(i)]}}]
            * (i + 1), "was_cancelled": False})
    write(folder / "no_task_id.json", {"task": {"data": {"t": 1}}, "result": None})
    rebuilt = roundtrip(tmp_path, folder)
    names = files_under(rebuilt)
    assert len(names) == 4
    for rel, path in names.items():
        assert_same_file(folder / rel, path)


def test_pre_1_0_id_only_predictions_and_import_shape(tmp_path):
    pre1 = write(tmp_path / "in" / "pre1.json", [
        {"id": 1, "data": {"text": "a"}, "completions": [
            {"id": 1, "skipped": True, "result": []},
            {"id": 2, "skipped": "no", "was_cancelled": False, "result": [
                {"id": "x", "type": "labels", "value": {"start": 0, "end": 1, "labels": ["A"]}}]}]},
        {"id": 2, "data": {"text": "b"}, "annotations": [{"id": 3, "result": []}],
         "completions": [{"result": []}, 4, "5"]}])
    ids = write(tmp_path / "in" / "ids.json", [
        {"id": 3, "data": {"x": 1}, "predictions": [1, 2, "3", "abc"], "drafts": [7]}])
    imports = write(tmp_path / "in" / "import.json", [
        {"data": {"image": "a.jpg"}, "predictions": [{"model_version": "v1", "score": 0.9,
                                                      "result": [{"value": {"x": 1}}]}]},
        {"image": "flat.jpg", "label": "no data key"},
        {"image": "flat2.jpg", "predictions": "not a list, still data"}])
    rebuilt = roundtrip(tmp_path, pre1, ids, imports)
    for name in ("pre1.json", "ids.json", "import.json"):
        assert_same_file(tmp_path / "in" / name, rebuilt / name)


def test_ner_model_json(tmp_path):
    src = write(tmp_path / "in" / "ner.json", [
        {"d1": [[0, 4], [5, 9]], "d2": [], "only-spans": [[1, 2]], "bad": [[1, 2.5], "x"]},
        {"d1": "José went", "d2": "nothing here", "no-spans": "text only", "bad": "b"}])
    rebuilt = roundtrip(tmp_path, src)
    assert_same_file(src, rebuilt / "ner.json")
    out = tmp_path / "as-tasks.json"
    export(tmp_path / "tables", out, fmt="labelstudio")  # the same documents as Label Studio tasks
    tasks = json.loads(out.read_text())
    assert [t["id"] for t in tasks] == ["d1", "d2", "no-spans", "bad", "only-spans"]
    assert tasks[0]["predictions"][0]["result"][0]["value"]["text"] == "José"


def test_zip_of_exports(tmp_path):
    members = {"a/one.json": write(tmp_path / "m" / "a/one.json", tricky_tasks()[:2]),
               "b/two.json": write(tmp_path / "m" / "b/two.json", tricky_tasks()[2])}
    src = tmp_path / "in" / "bundle.zip"
    src.parent.mkdir()
    with zipfile.ZipFile(src, "w") as zf:
        for name, path in members.items():
            zf.write(path, name)
    rebuilt = roundtrip(tmp_path, src)
    names = files_under(rebuilt)
    assert sorted(names) == sorted(members)
    for name, path in members.items():
        assert_same_file(path, names[name])


def originals_under(root: Path, tmp_path: Path) -> dict[str, Path]:
    """Every input file below root by relative name, zip members extracted as `<zip>/<member>`;
    a Dataloop V3 manifest is left out: it lists partition files and holds no item, so the
    converter keeps nothing of it (logged as skipped)."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or p.name.startswith("."):
            continue
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                for member in zf.namelist():
                    if not member.endswith("/"):
                        found[f"{rel}/{member}"] = Path(zf.extract(member, tmp_path / "unzipped" / rel))
        elif not (p.name == "manifest.json" and "manifestVersion" in p.read_text()):
            found[rel] = p
    return found


@pytest.mark.parametrize("platform", ["labelstudio", "dataloop"])
def test_every_sample_file(tmp_path, platform):
    """sample_data/<platform> converted in one run, rebuilt file by file under one folder."""
    root = SAMPLES / platform
    rebuilt = roundtrip(tmp_path, root)
    originals = originals_under(root, tmp_path)
    names = files_under(rebuilt)
    assert sorted(names) == sorted(originals)
    for rel, path in names.items():
        assert_same_file(originals[rel], path)


def dataloop_items() -> list:
    """Old and new Dataloop item shapes, a video track with snapshots, odd values."""
    box = [{"x": 1, "y": 2.5, "z": 0}, {"x": 30, "y": 40, "z": 0}, 15]
    return [
        {"id": "64a0000000000000000000a1", "datasetId": "64a00000000000000000d001",
         "createdAt": "2023-01-02T03:04:05.000Z", "updatedAt": "2023-01-02T03:04:05Z",
         "dir": "/cats", "filename": "/cats/ü 1.jpg", "name": "ü 1.jpg", "type": "file",
         "hidden": False, "annotated": "discarded", "annotationsCount": 3,
         "metadata": {"system": {"mimetype": "image/jpeg", "width": 640, "height": 480},
                      "user": {"deep": {"a": [1, {"b": None}]}}},
         "annotations": [
             {"id": "an1", "type": "box", "label": "cat", "attributes": ["Frontal"],
              "coordinates": box, "creator": "a@b.c", "source": "ui", "hash": "ff",
              "metadata": {"system": {"objectId": "1", "attributes": {"1": False}}, "user": {}},
              "createdAt": "2023-01-02T03:04:05.123Z"},
             {"_id": "an2", "type": "segment", "label": None, "attributes": None,
              "coordinates": [[{"x": 1, "y": 1}, {"x": 5, "y": 1}, {"x": 3, "y": 4}]]},
             {"type": "class", "label": "dog", "coordinates": [], "updatedBy": 7,
              "labelSuggestions": {"dog": 0.9}, "unknown": {"k": [[]]}}]},
        {"_id": "64a0000000000000000000a2", "filename": "/v.mp4", "itemMetadata": {
            "fps": 25, "system": {"mimetype": "video/mp4", "fps": 25.0}},
         "annotations": "https://api/items/a2/annotations"},
        {"id": "64a0000000000000000000a3", "filename": "/clips/walk.mp4",
         "metadata": {"fps": 30, "system": {"mimetype": "video/mp4", "duration": 2}},
         "annotations": [
             {"id": "t1", "type": "box", "label": "person", "coordinates": box[:2],
              "metadata": {"system": {"frame": 0, "endFrame": 50, "objectId": "2",
                                      "snapshots_": [
                  {"frame": 1, "fixed": True, "objectVisible": True, "type": "box",
                   "label": "person", "attributes": [], "data": box[:2]},
                  {"frame": 9, "fixed": False, "objectVisible": False, "type": "LINEAR",
                   "namedAttributes": {"x": 1}, "data": box, "description": None}]}}},
             {"id": "t2", "type": "point", "coordinates": {"x": 3, "y": 4, "z": 0},
              "metadata": {"system": {"frame": 3, "snapshots_": []}}},
             {"id": "t3", "type": "subtitle", "coordinates": {"text": "Grüße 😀"},
              "metadata": {"system": {"startTime": 0.5, "endTime": 1}}}]},
        {"id": 17, "filename": "/n.txt", "metadata": None},
    ]


def test_dataloop_shapes(tmp_path):
    items = dataloop_items()
    array = write(tmp_path / "in" / "dataset.json", items)
    ndjson = tmp_path / "in" / "part.ndjson.gz"
    ndjson.write_bytes(gzip.compress("".join(json.dumps(i) + "\n" for i in items).encode()))
    wrapper = write(tmp_path / "in" / "wrapper.json", {"annotations": items})
    per_item = write(tmp_path / "in" / "json" / "clips" / "walk.mp4.json", items[2], pretty=True)
    rebuilt = roundtrip(tmp_path, array, ndjson, wrapper, per_item)
    names = files_under(rebuilt)
    assert sorted(names) == ["dataset.json", "json/clips/walk.mp4.json", "part.ndjson.gz",
                             "wrapper.json"]
    for rel, path in names.items():
        assert_same_file(tmp_path / "in" / rel, path)


def test_dataloop_format_writes_one_file_per_item(tmp_path):
    items = dataloop_items()
    src = write(tmp_path / "in" / "dataset.json", items)
    other = write(tmp_path / "in" / "ls.json", ner_tasks())  # left out: not Dataloop
    out = tmp_path / "tables"
    convert([str(src), str(other)], out)
    export(out, tmp_path / "items", fmt="dataloop")
    names = files_under(tmp_path / "items")
    expected = {i["filename"].lstrip("/") + ".json": i for i in items}
    assert sorted(names) == sorted(expected)
    for rel, item in expected.items():
        assert json_diff([item], json_values(names[rel])) is None, rel


# -- selection, predictions, CLI ------------------------------------------------------------

def ner_tasks() -> list:
    labels = [["PER"], ["LOC"], ["PER", "LOC"], [], ["ORG"]]
    return [{"id": 100 + i, "data": {"text": f"doc {i}"},
             "annotations": [{"id": 200 + i, "result": [
                 {"id": f"e{i}", "type": "labels", "from_name": "label", "to_name": "text",
                  "value": {"start": 0, "end": 3, "labels": lab}}]}],
             "predictions": [{"id": 300 + i, "model_version": "m0", "score": 0.1 * i,
                              "result": []}]}
            for i, lab in enumerate(labels)]


def test_where_selects_tasks_by_sql(tmp_path):
    tasks = ner_tasks()
    src = write(tmp_path / "in" / "ner.json", tasks)
    other = write(tmp_path / "in" / "other.json", tricky_tasks())
    out = tmp_path / "tables"
    convert([str(src), str(other)], out)
    subset = tmp_path / "subset.json"
    export(out, subset, where="task_id IN (SELECT task_id FROM results WHERE type = 'labels' "
                              "AND list_contains(labels, 'PER'))")
    expected = [t for t in tasks + tricky_tasks()[:1]
                if any(r.get("type") == "labels" and "PER" in r["value"]["labels"]
                       for key in ("annotations", "predictions", "drafts")
                       for a in t.get(key) or [] if isinstance(a, dict)
                       for r in a.get("result") or [] if isinstance(r, dict))]
    assert len(expected) == 3  # two documents, and the draft of the first tricky task
    # two input files selected: a folder mirroring them
    names = files_under(subset)
    assert json_diff(json_values(names["ner.json"])[0] + json_values(names["other.json"])[0],
                     expected) is None


def test_file_option_selects_one_input(tmp_path):
    tasks = ner_tasks()
    a = write(tmp_path / "in" / "a.json", tasks)
    b = write(tmp_path / "in" / "b.json", tricky_tasks())
    out = tmp_path / "tables"
    convert([str(a), str(b)], out)
    export(out, tmp_path / "only_b.json", files=[str(b)])
    assert_same_file(b, tmp_path / "only_b.json")
    export(out, tmp_path / "folder_pick.json", files=[str(tmp_path / "in")],
           where="position < 2")
    names = files_under(tmp_path / "folder_pick.json")
    assert json_diff(json_values(names["a.json"]), [tasks[:2]]) is None


def test_as_predictions_is_the_import_shape(tmp_path):
    tasks = tricky_tasks()
    src = write(tmp_path / "in" / "export.json", tasks)
    out = tmp_path / "tables"
    convert([str(src)], out)
    target = tmp_path / "import_me.json"
    export(out, target, as_predictions=True, model_version="v3")
    got = json.loads(target.read_text())
    expected = []
    for t in tasks:
        item = {"data": t.get("data", t)}
        if t.get("meta"):
            item["meta"] = t["meta"]
        item["predictions"] = [
            {"model_version": "v3", "result": a["result"] if isinstance(a.get("result"), list) else []}
            | ({"score": a["score"]} if isinstance(a.get("score"), (int, float)) else {})
            for a in t.get("annotations") or [] if isinstance(a, dict) and a.get("was_cancelled") is not True]
        expected.append(item)
    assert json_diff(expected, got) is None


@pytest.mark.slow
def test_cli_export_and_errors(tmp_path):
    src = write(tmp_path / "in" / "export.json", ner_tasks())
    out = tmp_path / "tables"
    assert run_cli("convert", str(src), "-o", str(out), "-q").returncode == 0
    done = run_cli("export", str(out), "-o", str(tmp_path / "rebuilt.json"))
    assert done.returncode == 0, done.stderr
    assert b"5 task(s)" in done.stderr
    assert_same_file(src, tmp_path / "rebuilt.json")
    bad = run_cli("export", str(out), "--where", "no_such_column = 1", "-o", str(tmp_path / "x.json"))
    assert bad.returncode == 1 and b"no_such_column" in bad.stderr
    assert bad.stderr.count(b"\n") == 1
    none = run_cli("export", str(out), "--where", "false", "-o", str(tmp_path / "x.json"))
    assert none.returncode == 1 and b"no task matches" in none.stderr
    assert not (tmp_path / "x.json").exists()
    (tmp_path / "file.json").write_text("{}")
    both = run_cli("export", str(out), "--file", str(src), "--file", str(src.parent),
                   "--format", "dataloop", "-o", str(tmp_path / "file.json"))
    assert both.returncode == 1 and b"no task matches" in both.stderr  # no Dataloop items
    assert run_cli("export", str(tmp_path / "in"), "-o", "x").returncode == 1  # not converted
    ner = run_cli("export", str(out), "--as-predictions", "--model-version", "v3",
                  "-o", str(tmp_path / "p.json"))
    assert ner.returncode == 0, ner.stderr
    assert {p["model_version"] for t in json.loads((tmp_path / "p.json").read_text())
            for p in t["predictions"]} == {"v3"}


def test_stdin_input_is_rebuilt_as_stdin_json(tmp_path):
    raw = json.dumps(ner_tasks()).encode()
    out = tmp_path / "tables"
    assert run_cli("convert", "-", "-o", str(out), "-q", input=raw).returncode == 0
    export(out, f"{tmp_path}/r/")
    assert json_diff(json_values(tmp_path / "r" / "stdin.json"), [ner_tasks()]) is None


def test_failed_export_leaves_no_output(tmp_path):
    """The same file converted twice (--append) cannot be rebuilt as one: the error comes
    after the first output was written, and nothing is left behind."""
    a = write(tmp_path / "in" / "a.json", ner_tasks())
    b = write(tmp_path / "in" / "b.json", ner_tasks())
    out = tmp_path / "tables"
    convert([str(a), str(b)], out)
    convert([str(a)], out, mode="append")
    target = tmp_path / "rebuilt"
    with pytest.raises(AnnostreamError, match="converted more than once"):
        export(out, target)
    assert list(target.iterdir()) == []


def test_several_inputs_refuse_a_file_as_output(tmp_path):
    a = write(tmp_path / "in" / "a.json", ner_tasks())
    b = write(tmp_path / "in" / "b.json", ner_tasks())
    out = tmp_path / "tables"
    convert([str(a), str(b)], out)
    target = write(tmp_path / "taken.json", [])
    with pytest.raises(AnnostreamError, match="is a file, but the selection spans several"):
        export(out, target)
    assert json.loads(target.read_text()) == []


def test_same_task_id_in_two_snapshots_with_an_empty_list_first(tmp_path):
    monday = write(tmp_path / "in" / "monday.json", [{"id": 5, "data": {}, "annotations": []}])
    tuesday = write(tmp_path / "in" / "tuesday.json",
                    [{"id": 5, "data": {}, "annotations": [{"id": 1, "result": []}]}])
    rebuilt = roundtrip(tmp_path, monday, tuesday)
    assert_same_file(monday, rebuilt / "monday.json")
    assert_same_file(tuesday, rebuilt / "tuesday.json")


def snapshot(day: int) -> list:
    """One project on one day: the same task and annotation ids every day, the work changing
    (a task whose lists are empty one day, a region added, an item's annotation relabelled)."""
    region = {"id": "r", "type": "labels", "from_name": "l", "to_name": "t",
              "value": {"start": 0, "end": 1, "labels": [f"day{day}"]}}
    video = {"id": "v", "type": "videorectangle", "from_name": "b", "to_name": "video",
             "value": {"framesCount": 9, "sequence": [
                 {"frame": f, "enabled": True, "x": f + day} for f in range(1, day + 2)]}}
    return [
        {"id": 5, "data": {"t": "a"}, "annotations": [] if day == 0 else [
            {"id": 1, "result": [region] * day + [video]}],
         "predictions": [{"id": 2, "result": [region, {"type": "relation", "from_id": "r",
                                                       "to_id": "r", "labels": [str(day)]}]}]},
        {"id": 6, "data": {"t": "b"}, "annotations": [{"id": 3, "result": [region] * (1 - day % 2)}]},
        {"id": 5, "data": {"t": "a, again in one file"}, "annotations": [{"id": 1, "result": []}]},
    ]


def test_same_task_ids_in_files_converted_in_one_run(tmp_path):
    """Three days of one project in one run (one Label Studio day as NDJSON, Dataloop items of
    one id in two files): every file comes back with its own children, and a selection by id
    picks the task of each file without mixing their rows."""
    days = [write(tmp_path / "in" / f"day{d}.json", snapshot(d)) for d in range(3)]
    ndjson = tmp_path / "in" / "day3.ndjson"
    ndjson.write_text("".join(json.dumps(t) + "\n" for t in snapshot(3)))
    items = dataloop_items()
    relabelled = json.loads(json.dumps(items))
    relabelled[0]["annotations"][0]["label"] = "lion"
    del relabelled[2]["annotations"][1:]
    dl = [write(tmp_path / "in" / "dl1.json", items), write(tmp_path / "in" / "dl2.json", relabelled)]
    rebuilt = roundtrip(tmp_path, *days, ndjson, *dl)
    for src in (*days, ndjson, *dl):
        assert_same_file(src, rebuilt / src.name)
    picked = tmp_path / "picked"
    export(tmp_path / "tables", f"{picked}/", where="task_id = '5'")
    for d, src in enumerate(days):
        assert json_diff(json_values(picked / src.name), [[snapshot(d)[0], snapshot(d)[2]]]) is None


def test_input_keys_named_like_the_reserved_extra_keys(tmp_path):
    """"~absent", "~list" and "~escaped" are the converter's own `extra` keys; an input key of
    that name (any value) is kept aside, also on objects that get a reserved key themselves
    (a missing id, pre-1.0 `skipped`, an old Dataloop `_id`)."""
    odd = {"~absent": "not a list", "~list": 5, "~escaped": {"~absent": ["id"]}}
    ls_tasks = [
        {"data": {"~absent": 1}, **odd, "annotations": [  # flat id: "id" in the task's ~absent
            {"skipped": True, "~absent": None, "~list": "completions", "result": [
                {"id": "v", "type": "videorectangle", "~escaped": 1, "value": {"sequence": [
                    {"frame": 1, "~absent": ["frame"]}, {"frame": 2, "enabled": True}]}},
                {"type": "relation", "from_id": "v", "to_id": "v", "~list": []}]}],
         "completions": [{"id": 9, "result": [], "~absent": {}}]},
        {"id": 1, "data": {}, "~absent": ["data"]}]
    items = [{"_id": "i1", "filename": "/a.jpg", "~absent": "x", "annotations": [
        {"type": "box", "~absent": "y", "metadata": {"system": {"objectId": "1"}},
         "coordinates": []}]}]
    ls, dl = write(tmp_path / "in" / "ls.json", ls_tasks), write(tmp_path / "in" / "dl.json", items)
    rebuilt = roundtrip(tmp_path, ls, dl)
    assert_same_file(ls, rebuilt / "ls.json")
    assert_same_file(dl, rebuilt / "dl.json")


def test_dataloop_annotation_types_that_are_not_strings_are_kept(tmp_path):
    """An unknown `type` is kept, whatever its JSON type (no geometry is read from it)."""
    box = [{"x": 1, "y": 2}, {"x": 3, "y": 4}]
    item = {"id": "i1", "filename": "/v.mp4", "metadata": {"system": {"mimetype": "video/mp4"}},
            "annotations": [{"id": f"a{i}", "type": typ, "coordinates": box,
                             "metadata": {"system": {"snapshots_": [{"frame": 1, "data": box}]}}}
                            for i, typ in enumerate([["box"], {"box": True}, 7, None, "box"])]}
    src = write(tmp_path / "in" / "item.json", item)
    rebuilt = roundtrip(tmp_path, src)
    assert_same_file(src, rebuilt / "item.json")
    widths = connect(tmp_path / "tables").sql(
        "SELECT annotation_id, type, width FROM results ORDER BY annotation_id").fetchall()
    assert widths == [(a["id"], a["type"], box[1]["x"] - box[0]["x"]) if a["type"] == "box"
                      else (a["id"], None, None) for a in item["annotations"]]


def test_annotations_sharing_an_id_in_one_task_keep_their_own_results(tmp_path):
    """Rows link to their annotation by position, so repeated ids (and completions next to
    annotations at the same positions) cannot trade results."""
    r = {"id": "r", "type": "choices", "from_name": "c", "to_name": "t",
         "value": {"choices": ["A"]}}
    rel = {"type": "relation", "from_id": "r", "to_id": "q", "direction": "right"}
    tasks = [{"id": 1, "data": {"t": "x"},
              "annotations": [{"id": 9, "result": []}, {"id": 9, "result": [r, rel]}],
              "completions": [{"id": 9, "result": []}],
              "predictions": [{"id": 4, "result": [r]}, {"id": 4, "result": []}]}]
    src = tmp_path / "dup.json"
    src.write_text(json.dumps(tasks))
    convert([src], tmp_path / "tables")
    export(tmp_path / "tables", tmp_path / "rebuilt.json")
    assert json.loads((tmp_path / "rebuilt.json").read_text()) == tasks
