"""Label Studio sample exports: row counts and typed columns against the source JSON.

Every expected value here is computed from the sample files with the json module, following
docs/formats.md part A, never taken from the converter.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import (
    LISTS,
    LS,
    NER_FILE,
    ROOT,
    TASK_FILES,
    ann_id_of,
    is_storage_annotation,
    read_tables,
    source_annotations,
    source_tasks,
    task_id_of,
    ts,
)

from stream import convert
from stream.formats import common
from stream.tables import TABLES


def results_of(ann) -> list:
    """The result items of an annotation; a bare id, `result: null` or an import-style
    non-list `result` (docs/formats.md A4) has none."""
    return ann["result"] if isinstance(ann, dict) and isinstance(ann.get("result"), list) else []


def expected_counts(path: Path) -> Counter:
    n = Counter({t: 0 for t in TABLES})
    for _, _, obj in source_tasks(path):
        n["tasks"] += 1
        for _, _, ann in source_annotations(obj):
            n["annotations"] += 1
            for r in results_of(ann):
                n["relations" if r["type"] == "relation" else "results"] += 1
                if r["type"] == "videorectangle":
                    n["keyframes"] += len(r["value"]["sequence"])
    return n


def by_key(table, *cols) -> dict:
    rows = table.to_pylist()
    out = {tuple(r[c] for c in cols): r for r in rows}
    assert len(out) == len(rows), f"{cols} is not unique"
    return out


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Each sample converted once (the tables are read-only in these tests)."""
    base = tmp_path_factory.mktemp("ls")
    done = {}
    for name in TASK_FILES + [NER_FILE]:
        out = base / name
        convert([str(LS / name)], out)
        done[name] = read_tables(out)
    return done


# -- counts -----------------------------------------------------------------------------------
def test_every_sample_is_covered():
    assert sorted(p.name for p in LS.iterdir()) == sorted(TASK_FILES + [NER_FILE])


@pytest.mark.parametrize("name", TASK_FILES)
def test_row_counts_match_the_source(samples, name):
    got = {t: samples[name][t].num_rows for t in TABLES}
    assert got == dict(expected_counts(LS / name))


def test_ner_model_prediction_counts(samples):
    spans, texts = json.loads((LS / NER_FILE).read_text(encoding="utf-8"))
    docs = list(texts) + [d for d in spans if d not in texts]
    t = samples[NER_FILE]
    assert t["tasks"].num_rows == len(docs)
    assert t["annotations"].num_rows == len(spans)  # one prediction per document with spans
    assert t["results"].num_rows == sum(len(s) for s in spans.values())
    assert t["relations"].num_rows == t["keyframes"].num_rows == 0


def test_whole_folder_counts_are_the_sum_of_its_files(converted):
    total = sum((expected_counts(LS / n) for n in TASK_FILES), Counter())
    spans, texts = json.loads((LS / NER_FILE).read_text(encoding="utf-8"))
    docs = set(spans) | set(texts)
    total["tasks"] += len(docs)
    total["annotations"] += len(spans)
    total["results"] += sum(len(s) for s in spans.values())
    tables = converted(LS)
    assert {t: tables[t].num_rows for t in TABLES} == {t: total[t] for t in TABLES}


# -- tasks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TASK_FILES)
def test_task_columns(samples, name):
    rows = samples[name]["tasks"].to_pylist()
    src = source_tasks(LS / name)
    assert len(rows) == len(src)
    for row, (file, pos, obj) in zip(rows, src):
        task = obj["task"] if is_storage_annotation(obj) else obj if "data" in obj else {"data": obj}
        assert row["source"] == "labelstudio"
        assert row["file"] == str(file)
        assert row["position"] == pos
        assert row["task_id"] == task_id_of(file, pos, obj)
        assert json.loads(row["data"]) == task["data"]
        assert row["form"] == ("storage-annotation" if is_storage_annotation(obj)
                               else "task" if "data" in obj else "flat")
        if "project" in task:
            assert row["project_id"] == str(task["project"])
        for key in ("created_at", "updated_at"):
            if isinstance(task.get(key), str):
                assert row[key] == ts(task[key])
        for key in ("total_annotations", "cancelled_annotations", "total_predictions"):
            assert row[key] == task.get(key)
        extra = json.loads(row["extra"])
        known = {"id", "project", "data", "meta", "created_at", "updated_at", "total_annotations",
                 "cancelled_annotations", "total_predictions", *LISTS}
        for key in set(task) - known:
            assert extra[key] == task[key], f"task key {key} lost"
        assert row["list_keys"] == [k for k in task if k in LISTS]


def test_positions_increase_in_input_order(samples):
    for name in TASK_FILES:
        rows = samples[name]["tasks"].to_pylist()
        for file in {r["file"] for r in rows}:
            pos = [r["position"] for r in rows if r["file"] == file]
            assert pos == sorted(set(pos)), name


def test_import_shape_gets_synthetic_ids(samples):
    tasks = samples["import_predictions.json"]["tasks"].to_pylist()
    assert all(r["task_id"].startswith("~") for r in tasks)
    src = json.loads((LS / "import_predictions.json").read_text(encoding="utf-8"))
    assert [r["form"] for r in tasks] == ["task" if "data" in o else "flat" for o in src]
    assert "flat" in {r["form"] for r in tasks}
    anns = samples["import_predictions.json"]["annotations"].to_pylist()
    assert anns and all(r["annotation_id"].startswith("~") for r in anns)
    assert all("id" in json.loads(r["extra"])["~absent"] for r in anns)
    # synthetic ids are unique
    assert len({(r["kind"], r["annotation_id"]) for r in anns}) == len(anns)


def test_import_result_that_is_not_a_list_is_kept_whole(tmp_path, converted):
    """docs/formats.md A4: on import `result` may be a bare string or a dict; no result rows."""
    tasks = [{"data": {"text": "Arrived quickly."}, "predictions": [
        {"model_version": "sentiment-v2", "result": "Positive"},
        {"model_version": "sentiment-v2", "result": {"type": "choices", "value": {"choices": ["Neg"]}}}]}]
    path = tmp_path / "import.json"
    path.write_text(json.dumps(tasks))
    t = converted(path)
    assert t["results"].num_rows == 0
    rows = t["annotations"].to_pylist()
    assert [json.loads(r["extra"])["result"] for r in rows] == [p["result"] for p in tasks[0]["predictions"]]
    assert [r["list_keys"] for r in rows] == [[], []]


# -- annotations, predictions, drafts ---------------------------------------------------------
@pytest.mark.parametrize("name", TASK_FILES)
def test_annotation_columns(samples, name):
    rows = samples[name]["annotations"].to_pylist()
    expected = [(task_id_of(f, p, obj), kind, ap, ann) for f, p, obj in source_tasks(LS / name)
                for kind, ap, ann in source_annotations(obj)]
    assert len(rows) == len(expected)
    for row, (task_id, kind, pos, ann) in zip(rows, expected):
        assert (row["task_id"], row["kind"], row["position"]) == (task_id, kind, pos)
        if not isinstance(ann, dict):  # a bare id
            assert row["form"] == "id" and row["annotation_id"] == str(ann)
            assert row["extra"] is None and row["completed_by"] is None
            continue
        assert row["form"] == "object"
        assert row["annotation_id"] == ann_id_of(task_id, kind, pos, ann)
        by = ann.get("completed_by")
        assert row["completed_by"] == (None if by is None else str(by["id"]) if isinstance(by, dict)
                                       else str(by))
        assert row["completed_by_email"] == (by.get("email") if isinstance(by, dict) else None)
        cancelled = ann.get("was_cancelled", ann.get("skipped"))
        assert row["was_cancelled"] == cancelled
        for key in ("ground_truth", "model_version", "result_count"):
            assert row[key] == ann.get(key)
        for key in ("lead_time", "score"):
            assert row[key] == (float(ann[key]) if ann.get(key) is not None else None)
        if isinstance(ann.get("created_at"), str):
            assert row["created_at"] == ts(ann["created_at"])
        extra = json.loads(row["extra"])
        typed = {"id", "completed_by", "created_at", "updated_at", "updated_by", "result",
                 "was_cancelled", "ground_truth", "lead_time", "model_version", "score", "result_count"}
        nested = {"task"} if is_storage_annotation(ann) else set()  # the task row holds it
        for key in set(ann) - typed - nested:
            assert extra[key] == ann[key], f"annotation key {key} lost"
        for key in typed & {k for k, v in ann.items() if v is None}:
            assert key in extra and extra[key] is None, f"null {key} lost"  # the restoring rule
        if isinstance(by, dict):
            assert extra["completed_by"] == by  # the object, not just its id


def test_id_only_predictions_and_drafts(samples):
    rows = samples["classification.json"]["annotations"].to_pylist()
    src = json.loads((LS / "classification.json").read_text())
    ids = {(LISTS[k], str(a)) for t in src for k in ("predictions", "drafts")
           for a in t[k] if isinstance(a, int)}
    got = {(r["kind"], r["annotation_id"]) for r in rows if r["form"] == "id"}
    assert got == ids and len(ids) == 5
    assert {r["kind"] for r in rows if r["form"] == "id"} == {"prediction", "draft"}


def test_pre1_completions_are_annotations_and_skipped_is_cancelled(samples):
    rows = samples["pre1_completions.json"]["annotations"].to_pylist()
    src = json.loads((LS / "pre1_completions.json").read_text())
    comps = [c for t in src for c in t["completions"]]
    got = [r for r in rows if r["kind"] == "annotation"]
    assert [r["annotation_id"] for r in got] == [str(c["id"]) for c in comps]
    for r, c in zip(got, comps):
        assert r["was_cancelled"] == c.get("skipped")
        extra = json.loads(r["extra"])
        if "skipped" in c:
            assert extra["skipped"] == c["skipped"] and "was_cancelled" in extra["~absent"]
        assert extra["created_at"] == c["created_at"]  # epoch ints are kept as written
    tasks = samples["pre1_completions.json"]["tasks"].to_pylist()
    assert all("completions" in r["list_keys"] for r in tasks)


def test_cancelled_annotation_and_drafts(samples):
    rows = samples["image_regions.json"]["annotations"].to_pylist()
    cancelled = [r for r in rows if r["was_cancelled"]]
    assert [r["annotation_id"] for r in cancelled] == ["60205851"]
    assert cancelled[0]["completed_by"] == "311"
    assert cancelled[0]["completed_by_email"] == "li.wei@example.com"
    drafts = [r for r in rows if r["kind"] == "draft"]
    assert [r["annotation_id"] for r in drafts] == ["9120"]
    assert json.loads(drafts[0]["extra"])["was_postponed"] is True


def test_completed_by_int_object_and_missing(samples):
    rows = samples["ner_text.json"]["annotations"].to_pylist()
    by = {r["annotation_id"]: (r["completed_by"], r["completed_by_email"]) for r in rows}
    assert by["8801"] == ("12", None)  # int
    assert by["8802"] == (None, None)  # missing
    assert by["8803"] == ("12", "ana.ruiz@example.org")  # user object


# -- results ----------------------------------------------------------------------------------
def expected_result(r: dict) -> dict:
    """The typed columns docs/formats.md A5/A6 give for one result item."""
    v, typ = r.get("value", {}), r["type"]
    exp = {"from_name": r.get("from_name"), "to_name": r.get("to_name"), "type": typ,
           "origin": r.get("origin"), "parent_id": r.get("parentID"), "readonly": r.get("readonly"),
           "original_width": r.get("original_width"), "original_height": r.get("original_height"),
           "image_rotation": r.get("image_rotation"), "score": r.get("score")}
    labels = v.get(typ) if typ.endswith("labels") and typ in v else v.get("labels")
    exp["labels"] = labels
    nested = v.get("choices", v.get("taxonomy"))
    exp["choices"] = None if nested is None else [
        " > ".join(c) if isinstance(c, list) else c for c in nested]
    exp["texts"] = v["text"] if isinstance(v.get("text"), list) else None
    exp["text"] = v["text"] if isinstance(v.get("text"), str) else None
    for k in ("x", "y", "width", "height", "rotation", "points"):
        exp[k] = v.get(k)
    exp["unit"] = "percent" if any(k in v for k in ("x", "points")) else None
    exp["number"] = v.get("number", v.get("rating"))
    timed = "channel" in v or typ == "timeserieslabels"  # audio or time series: seconds
    offsets = v.get("globalOffsets", {} if typ == "paragraphlabels" else v)  # chars, not paragraphs
    exp["span_start"] = None if timed else offsets.get("start")
    exp["span_end"] = None if timed else offsets.get("end")
    seconds = [v.get(k) if isinstance(v.get(k), (int, float)) else None for k in ("start", "end")]
    exp["time_start"], exp["time_end"] = seconds if timed else (None, None)
    return exp


@pytest.mark.parametrize("name", TASK_FILES)
def test_result_columns(samples, name):
    rows = by_key(samples[name]["results"], "kind", "annotation_id", "position")
    checked = 0
    for f, p, obj in source_tasks(LS / name):
        task_id = task_id_of(f, p, obj)
        for kind, apos, ann in source_annotations(obj):
            if not isinstance(ann, dict):
                continue
            for pos, r in enumerate(results_of(ann)):
                if r["type"] == "relation":
                    continue
                row = rows[(kind, ann_id_of(task_id, kind, apos, ann), pos)]
                assert row["task_id"] == task_id
                assert row["region_id"] == r.get("id", f"~{pos}")
                for col, want in expected_result(r).items():
                    assert row[col] == want, (name, kind, ann["id"], pos, col)
                value = dict(r["value"])
                if r["type"] == "videorectangle":
                    value.pop("sequence")  # moved to keyframes
                assert json.loads(row["value"]) == value
                extra = json.loads(row["extra"])
                for key in set(r) - {"id", "value", *TYPED_RESULT_KEYS}:
                    assert extra[key] == r[key], f"result key {key} lost"
                if "id" not in r:
                    assert "id" in extra["~absent"]
                checked += 1
    assert checked > 0


TYPED_RESULT_KEYS = ("from_name", "to_name", "type", "origin", "score", "parentID", "readonly",
                     "original_width", "original_height", "image_rotation")


def test_ner_spans_index_the_unicode_text(samples):
    t = samples["ner_text.json"]
    texts = {r["task_id"]: json.loads(r["data"])["text"] for r in t["tasks"].to_pylist()}
    rows = t["results"].to_pylist()
    assert any(not s.isascii() for s in texts.values())
    for r in rows:
        assert texts[r["task_id"]][r["span_start"]:r["span_end"]] == r["text"]
    assert {"Zürich", "東京大学", "Łukasz Wąsowski"} <= {r["text"] for r in rows}


def test_ner_model_predictions_become_label_results(samples):
    spans, texts = json.loads((LS / NER_FILE).read_text(encoding="utf-8"))
    t = samples[NER_FILE]
    tasks = {r["task_id"]: r for r in t["tasks"].to_pylist()}
    assert set(tasks) == set(spans) | set(texts)
    for doc, text in texts.items():
        assert json.loads(tasks[doc]["data"]) == {"text": text}
    rows = t["results"].to_pylist()
    got = {(r["task_id"], r["position"]): r for r in rows}
    for doc, doc_spans in spans.items():
        for i, (s, e) in enumerate(doc_spans):
            r = got[(doc, i)]
            assert (r["span_start"], r["span_end"], r["type"]) == (s, e, "labels")
            assert r["text"] == (texts[doc][s:e] if doc in texts else None)
            assert r["region_id"].startswith("~")
    anns = t["annotations"].to_pylist()
    assert {r["kind"] for r in anns} == {"prediction"}


def test_split_region_and_per_region_textarea_share_the_region_id(samples):
    rows = samples["image_regions.json"]["results"].to_pylist()
    src = json.loads((LS / "image_regions.json").read_text())
    ids = Counter(r["id"] for r in src[0]["annotations"][0]["result"] if "id" in r)
    shared = {i for i, n in ids.items() if n > 1}
    assert shared == {"G1wj68-AlF", "hplPm0Szvc"}
    for rid in shared:
        parts = [r for r in rows if r["annotation_id"] == "60205850" and r["region_id"] == rid]
        assert len(parts) == 2 and len({(r["x"], r["y"], r["width"], r["height"]) for r in parts}) == 1


# -- relations --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["image_regions.json", "ner_text.json"])
def test_relations(samples, name):
    rows = by_key(samples[name]["relations"], "kind", "annotation_id", "position")
    region_ids = {r["region_id"] for r in samples[name]["results"].to_pylist()}
    n = 0
    for _, _, obj in source_tasks(LS / name):
        for kind, _, ann in source_annotations(obj):
            for pos, r in enumerate(results_of(ann)):
                if r["type"] != "relation":
                    continue
                row = rows[(kind, str(ann["id"]), pos)]
                assert (row["from_id"], row["to_id"], row["direction"], row["labels"]) == (
                    r["from_id"], r["to_id"], r["direction"], r.get("labels"))
                n += 1
    assert n == len(rows) > 0
    if name == "image_regions.json":  # one relation points at a region that is not there
        assert any(r["to_id"] not in region_ids for r in rows.values())


# -- keyframes --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["video_tracks.json", "video_interpolated.json"])
def test_keyframes(samples, name):
    t = samples[name]
    rows = by_key(t["keyframes"], "kind", "annotation_id", "result_position", "position")
    results = by_key(t["results"], "kind", "annotation_id", "position")
    n = 0
    for _, _, obj in source_tasks(LS / name):
        for kind, _, ann in source_annotations(obj):
            for rpos, r in enumerate(ann["result"]):
                if r["type"] != "videorectangle":
                    continue
                seq = r["value"]["sequence"]
                for pos, kf in enumerate(seq):
                    row = rows[(kind, str(ann["id"]), rpos, pos)]
                    assert row["region_id"] == r["id"]
                    for k in ("frame", "time", "enabled", "x", "y", "width", "height", "rotation"):
                        assert row[k] == kf[k], (k, row, kf)
                    assert row["auto"] == kf.get("auto")
                    n += 1
                res = results[(kind, str(ann["id"]), rpos)]
                assert res["frame_start"] == seq[0]["frame"]
                last = seq[-1]
                assert res["frame_end"] == (r["value"]["framesCount"] if last["enabled"] else last["frame"])
                assert res["labels"] == r["value"].get("labels")
    assert n == len(rows)


def test_interpolated_export_marks_generated_frames(samples):
    rows = samples["video_interpolated.json"]["keyframes"].to_pylist()
    stored = samples["video_tracks.json"]["keyframes"].to_pylist()
    auto = [r for r in rows if r["auto"]]
    assert len(auto) == len(rows) - len(stored) > 0
    keyframes = {(r["region_id"], r["frame"]) for r in stored}
    assert all((r["region_id"], r["frame"]) not in keyframes for r in auto)
    assert all(r["auto"] is None for r in rows if (r["region_id"], r["frame"]) in keyframes)


def test_interpolation_script_reproduces_the_oracle(tmp_path):
    out = tmp_path / "video_interpolated.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "interpolate_ls_video.py"),
                    str(LS / "video_tracks.json"), str(out)], check=True)
    assert out.read_bytes() == (LS / "video_interpolated.json").read_bytes()


# -- determinism ------------------------------------------------------------------------------
def test_converting_twice_gives_identical_tables(converted):
    first, second = converted(LS), converted(LS)
    for t in TABLES:
        assert first[t].equals(second[t]), t


UTC = timezone.utc


@pytest.mark.parametrize("text,expected", [
    ("2024-03-01T10:20:30.123456Z", datetime(2024, 3, 1, 10, 20, 30, 123456, UTC)),
    ("2024-03-01T10:20:30.123Z", datetime(2024, 3, 1, 10, 20, 30, 123000, UTC)),
    ("2024-03-01T10:20:30Z", datetime(2024, 3, 1, 10, 20, 30, 0, UTC)),
    ("2024-03-01T10:20:30.5+02:00",
     datetime(2024, 3, 1, 10, 20, 30, 500000, timezone(timedelta(hours=2)))),
    ("2024-03-01T10:20:30", datetime(2024, 3, 1, 10, 20, 30)),
])
def test_timestamps_with_a_z_are_read_on_python_3_10_too(text, expected):
    """Python 3.10's fromisoformat rejects the 'Z' both platforms write; the path this
    package takes there reads the platforms' spellings as 3.11 does."""
    got = common._fromisoformat_z(text)
    assert got == expected and got.utcoffset() == expected.utcoffset()
    assert common.fromisoformat(text) == expected
