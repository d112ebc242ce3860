"""Dataloop exports (issue 3): every input shape converts into the five tables.

Expected rows and typed values are computed here from the sample JSON with the json module,
following docs/formats.md part B and the mapping in the issue; the item JSON is also rebuilt from
the tables alone (the recipe in stream/formats/dataloop.py's docstring) and compared with the
input, which is what "nothing is lost" means.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from helpers import (
    DL,
    ROOT,
    dataloop_malformed,
    folder_items,
    load_script,
    read_tables,
    run_cli,
    system_of,
)

EXPORT = DL / "export"
FPS_VIDEO = 25  # metadata.fps of the sample video
POLYGONS = {"segment", "polygon", "polyline"}

samples = load_script("make_dataloop_samples")


# -- the source side, read with the json module ----------------------------------------------
def zip_items(path: Path) -> list[tuple[str, dict]]:
    with zipfile.ZipFile(path) as zf:
        return [(f"{path}/{n}", json.loads(zf.read(n))) for n in sorted(zf.namelist())]


def partition_items(folder: Path) -> list[tuple[str, int, dict]]:
    """(file, line, item) of the partitions a V3 manifest lists."""
    manifest = json.loads((folder / "manifest.json").read_text())
    out = []
    for part in manifest["partitioning"]["partitions"]:
        raw = (folder / part["filePath"]).read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert len(lines) == part["itemCount"]
        out += [(f"{folder}/{part['filePath']}", n, item) for n, item in enumerate(lines)]
    return out


def ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def mimetype_of(item: dict) -> str:
    return system_of(item, "metadata" if "metadata" in item else "itemMetadata").get("mimetype", "")


def box_of(co) -> dict:
    (a, b) = co[0], co[1]
    out = {"x": min(a["x"], b["x"]), "y": min(a["y"], b["y"]), "width": abs(b["x"] - a["x"]),
           "height": abs(b["y"] - a["y"]), "rotation": co[2] if len(co) > 2 else None}
    return out


def expected_geometry(typ: str, co) -> dict:
    """Pixel geometry columns a coordinates value of `typ` must give (issue 3 mapping)."""
    if typ == "box":
        return box_of(co)
    if typ == "note":
        return box_of(co["box"])
    if typ in POLYGONS:
        ring = co[0] if isinstance(co[0], list) else co
        return {"points": [[p["x"], p["y"]] for p in ring]}
    if typ == "point":
        return {"x": co["x"], "y": co["y"]}
    if typ == "ellipse":
        return {"x": co["center"]["x"], "y": co["center"]["y"], "width": 2 * co["rx"],
                "height": 2 * co["ry"], "rotation": co["angle"]}
    if typ == "cube":
        corners = [k + "_" + c for k in ("front", "back") for c in ("tl", "tr", "br", "bl")]
        return {"points": [[co[k]["x"], co[k]["y"]] for k in corners], "rotation": co["angle"]}
    return {}


def rows_by(table, *key: str) -> dict:
    return {tuple(r[k] for k in key): r for r in table.to_pylist()}


# -- the table side: rebuild the items from the rows alone -----------------------------------
def ts_text(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"


def put(obj: dict, key: str, value) -> None:
    if value is not None:
        obj[key] = value


def rebuild(tables: dict) -> dict[str, dict]:
    """{task_id: item JSON} from tasks, annotations, results and keyframes, following the
    module docstring of stream/formats/dataloop.py."""
    snaps: dict[str, list] = {}
    for k in sorted(tables["keyframes"].to_pylist(), key=lambda r: (r["annotation_id"], r["position"])):
        if k["position"] == 0:  # the start state is derived from the annotation
            snaps.setdefault(k["annotation_id"], [])
            continue
        s: dict = {}
        for key, col in (("frame", "frame"), ("objectVisible", "enabled"), ("label", "label"),
                         ("fixed", "fixed"), ("type", "type")):
            put(s, key, k[col])
        s.update(json.loads(k["extra"]))
        snaps[k["annotation_id"]].append(s)
    results = rows_by(tables["results"], "annotation_id")
    anns: dict[str, list] = {}
    for a in sorted(tables["annotations"].to_pylist(), key=lambda r: (r["task_id"], r["position"])):
        extra = json.loads(a["extra"])
        absent = extra.pop("~absent", [])
        obj: dict = {} if "id" in absent else {"id": a["annotation_id"]}
        for key, col in (("creator", "completed_by"), ("updatedBy", "updated_by"), ("source", "origin")):
            put(obj, key, a[col])
        for key, col in (("createdAt", "created_at"), ("updatedAt", "updated_at")):
            put(obj, key, a[col] and ts_text(a[col]))
        r = results[(a["annotation_id"],)]
        put(obj, "type", r["type"])
        put(obj, "label", r["labels"] and r["labels"][0])
        if r["value"] is not None:
            obj["coordinates"] = json.loads(r["value"])
        obj.update(json.loads(r["extra"]))
        if a["annotation_id"] in snaps:
            obj["metadata"]["system"]["snapshots_"] = snaps[a["annotation_id"]]
        obj.update(extra)
        anns.setdefault(a["task_id"], []).append(obj)
    items = {}
    for t in tables["tasks"].to_pylist():
        extra = json.loads(t["extra"])
        absent = extra.pop("~absent", [])
        item: dict = {} if "id" in absent else {"id": t["task_id"]}
        put(item, "datasetId", t["project_id"])
        for key, col in (("createdAt", "created_at"), ("updatedAt", "updated_at")):
            put(item, key, t[col] and ts_text(t[col]))
        item.update(json.loads(t["data"]))
        if t["meta"] is not None and "metadata" not in absent:
            item["metadata"] = json.loads(t["meta"])
        if "annotations" in t["list_keys"]:
            item["annotations"] = anns.get(t["task_id"], [])
        item.update(extra)
        items[t["task_id"]] = item
    return items


# -- checks shared by every item shape -------------------------------------------------------
def check_items(tables: dict, sources: list[tuple[str, int, dict]], container: str) -> None:
    """Row counts, typed columns and the lossless rebuild for (file, position, item) sources."""
    ids = [item.get("id", item.get("_id")) for _, _, item in sources]
    anns = [(item, p, a) for _, _, item in sources for p, a in enumerate(item.get("annotations", []))]
    video_anns = [(i, a) for i, _, a in anns if mimetype_of(i).startswith("video/")
                  and isinstance(system_of(a).get("snapshots_"), list)]
    assert tables["tasks"].num_rows == len(sources)
    assert tables["annotations"].num_rows == tables["results"].num_rows == len(anns)
    assert tables["keyframes"].num_rows == sum(1 + len(system_of(a)["snapshots_"]) for _, a in video_anns)
    assert tables["relations"].num_rows == 0

    tasks = rows_by(tables["tasks"], "task_id")
    for (file, pos, item), tid in zip(sources, ids):
        row = tasks[(tid,)]
        meta = item.get("metadata", item.get("itemMetadata"))
        system = (meta or {}).get("system", {})
        assert (row["source"], row["file"], row["position"], row["container"], row["form"]) == (
            "dataloop", file, pos, container, "item")
        assert row["project_id"] == item.get("datasetId")
        assert json.loads(row["data"]) == {k: item[k] for k in
                                           ("filename", "dir", "name", "url", "stream", "thumbnail") if k in item}
        assert json.loads(row["meta"]) == meta
        assert (row["media_name"], row["mimetype"], row["width"], row["height"], row["duration"]) == (
            item.get("name"), system.get("mimetype"), system.get("width"), system.get("height"),
            system.get("duration"))
        assert row["fps"] == (meta.get("fps") or system.get("fps"))
        assert (row["created_at"], row["updated_at"]) == (ts(item.get("createdAt")), ts(item.get("updatedAt")))
        assert row["list_keys"] == ["annotations"]
        assert "annotationsCount" not in item or json.loads(row["extra"])["annotationsCount"] == item["annotationsCount"]

    annotations = rows_by(tables["annotations"], "annotation_id")
    results = rows_by(tables["results"], "annotation_id")
    for item, p, a in anns:
        aid = a.get("id", a.get("_id"))
        row, res = annotations[(aid,)], results[(aid,)]
        system = system_of(a)
        video = mimetype_of(item).startswith("video/")
        assert row["task_id"] == item.get("id", item.get("_id"))
        assert (row["kind"], row["position"]) == ("annotation", p)
        assert (row["completed_by"], row["updated_by"], row["origin"], row["automated"]) == (
            a.get("creator"), a.get("updatedBy"), a.get("source"), system.get("automated"))
        assert (row["created_at"], row["updated_at"]) == (ts(a.get("createdAt")), ts(a.get("updatedAt")))
        assert row["completed_by_email"] == (a["creator"] if "@" in a.get("creator", "") else None)
        assert res["region_id"] == system.get("objectId", aid)
        assert (res["type"], res["labels"], res["parent_id"]) == (a["type"], [a["label"]], system.get("parentId"))
        assert (json.loads(res["value"]) if res["value"] is not None else "absent") == a.get(
            "coordinates", "absent")
        v2 = system.get("attributes")
        want_attrs = v2 if v2 else a.get("attributes")
        assert (json.loads(res["attributes"]) if res["attributes"] is not None else None) == want_attrs
        geo = expected_geometry(a["type"], a.get("coordinates"))
        for col in ("x", "y", "width", "height", "rotation", "points"):
            assert res[col] == geo.get(col), (aid, a["type"], col)
        assert res["unit"] == ("pixel" if geo else None)
        co = a.get("coordinates")
        assert (res["span_start"], res["span_end"]) == (
            (co["start"], co["end"]) if a["type"] == "text_mark" else (None, None))
        want_text = co if a["type"] == "text" else co["text"] if a["type"] in ("subtitle", "item_description") else None
        assert res["text"] == want_text
        timed = video or a["type"] == "subtitle"
        assert (res["time_start"], res["time_end"]) == (
            (system["startTime"], system["endTime"]) if timed else (None, None))
        assert (res["frame_start"], res["frame_end"]) == (
            (system["frame"], system["endFrame"]) if video else (None, None))

    keyframes = rows_by(tables["keyframes"], "annotation_id", "position")
    for _item, a in video_anns:
        system, aid = system_of(a), a["id"]
        states = [{"frame": system["frame"], "objectVisible": True, "label": a["label"],
                   "data": a.get("coordinates")}] + system["snapshots_"]
        for p, s in enumerate(states):
            k = keyframes[(aid, p)]
            assert (k["region_id"], k["frame"], k["enabled"], k["label"]) == (
                system["objectId"], s["frame"], s["objectVisible"], s["label"])
            assert k["time"] == pytest.approx(s["frame"] / FPS_VIDEO)
            assert (k["fixed"], k["type"]) == ((s["fixed"], s["type"]) if p else (None, None))
            geo = expected_geometry(a["type"], s.get("data")) if s.get("data") is not None else {}
            for col in ("x", "y", "width", "height", "rotation", "points"):
                assert k[col] == geo.get(col), (aid, p, col)

    rebuilt = rebuild(tables)
    for _, _, item in sources:
        assert rebuilt[item.get("id", item.get("_id"))] == item


# -- input shapes ----------------------------------------------------------------------------
def test_folder_tree_of_item_files(converted):
    sources = [(f, 0, item) for f, item in folder_items(EXPORT)]
    types = Counter(a["type"] for _, _, i in sources for a in i["annotations"])
    issue_types = {"box", "segment", "polyline", "point", "ellipse", "class", "binary", "cube",
                   "pose", "text", "note", "item_description", "text_mark", "subtitle"}
    assert issue_types <= set(types), "the samples lack a type the issue lists"
    check_items(converted(EXPORT), sources, "object")


def test_image_frames_are_not_video_frames(converted):
    """UI image annotations carry frame 0 / endFrame 1: no frame columns, no keyframes."""
    _, item = folder_items(EXPORT / "json" / "street")[0]
    assert {system_of(a).get("endFrame") for a in item["annotations"]} == {1}
    tables = converted(EXPORT / "json" / "street")
    assert tables["keyframes"].num_rows == 0
    assert tables["results"].column("frame_start").null_count == tables["results"].num_rows


def test_video_tracks_hidden_frames_and_changes(converted):
    _, video = folder_items(EXPORT / "json" / "clips")[0]
    tables = converted(EXPORT / "json" / "clips")
    snaps = [s for a in video["annotations"] for s in system_of(a).get("snapshots_", [])]
    rows = tables["keyframes"].to_pylist()
    assert sum(r["enabled"] is False for r in rows) == sum(s["objectVisible"] is False for s in snaps) > 0
    labels = {(r["region_id"], r["label"]) for r in rows}
    assert labels == {(system_of(a)["objectId"], s["label"]) for a in video["annotations"]
                      if "snapshots_" in system_of(a) for s in system_of(a)["snapshots_"]}
    changed = [r for r in rows if r["type"] == "ATTRIBUTE_CHANGE"]
    assert [json.loads(r["attributes"]) for r in changed] == [
        s["namedAttributes"] for s in snaps if s["type"] == "ATTRIBUTE_CHANGE"]
    subtitle = next(r for r in tables["results"].to_pylist() if r["type"] == "subtitle")
    assert not any(r["annotation_id"] == subtitle["annotation_id"] for r in rows)


def test_old_shape_item(converted):
    _, item = folder_items(EXPORT / "json" / "animals")[0]
    assert "_id" in item and "itemMetadata" in item and "id" not in item
    tables = converted(EXPORT / "json" / "animals")
    (task,) = tables["tasks"].to_pylist()
    extra = json.loads(task["extra"])
    assert task["task_id"] == item["_id"] == extra["_id"]
    assert sorted(extra["~absent"]) == ["id", "metadata"]
    assert task["mimetype"] == item["itemMetadata"]["system"]["mimetype"]
    assert [a["annotation_id"] for a in tables["annotations"].to_pylist()] == [
        a["_id"] for a in item["annotations"]]


def test_export_zip(converted):
    sources = [(f, 0, item) for f, item in zip_items(DL / "farm_export.zip")]
    assert len(sources) > 1
    check_items(converted(DL / "farm_export.zip"), sources, "object")


def test_dataset_export_array(converted):
    path = DL / "dataset_export.json"
    items = json.loads(path.read_text())
    check_items(converted(path), [(str(path), n, i) for n, i in enumerate(items)], "array")


def test_ndjson_partitions_and_their_manifest(tmp_path):
    folder = DL / "v3_export"
    sources = partition_items(folder)
    assert {Path(f).suffix for f, _, _ in sources} == {".gz", ".ndjson"}
    out = tmp_path / "out"
    done = run_cli("convert", str(folder), "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr.decode()
    assert b"manifest.json: Dataloop export manifest" in done.stderr
    tables = read_tables(out)
    check_items(tables, sources, "object")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert tables["tasks"].num_rows == manifest["statistics"]["totalRecords"]
    (entry,) = json.loads((out / "_manifest.json").read_text())["inputs"]
    assert "dataloop/manifest" in entry["formats"]
    assert entry["files"] == 1 + len(manifest["partitioning"]["partitions"])


def test_docs_wrapper(converted):
    path = DL / "docs_wrapper.json"
    items = json.loads(path.read_text())["annotations"]
    check_items(converted(path), [(str(path), n, i) for n, i in enumerate(items)], "wrapper")


def test_item_that_starts_with_its_annotations(converted, tmp_path):
    _, item = folder_items(EXPORT / "json" / "reviews")[0]
    path = tmp_path / "item.json"
    path.write_text(json.dumps({"annotations": item["annotations"],
                                **{k: v for k, v in item.items() if k != "annotations"}}))
    check_items(converted(path), [(str(path), 0, item)], "object")


@pytest.mark.parametrize("where, fps", [("metadata", 24), ("system", 30), ("ffmpeg", 30000 / 1001),
                                        ("none", None)])
def test_video_fps_sources_and_keyframe_times(converted, tmp_path, where, fps):
    """fps: metadata.fps, else metadata.system.fps, else ffmpeg avg_frame_rate (docs/formats.md B5)."""
    _, video = folder_items(EXPORT / "json" / "clips")[0]
    meta = video["metadata"]
    del meta["fps"], meta["system"]["fps"], meta["system"]["ffmpeg"]["avg_frame_rate"]
    if where == "metadata":
        meta["fps"], meta["system"]["fps"] = 24, 50
    elif where == "system":
        meta["system"]["fps"] = 30
    elif where == "ffmpeg":
        meta["system"]["ffmpeg"]["avg_frame_rate"] = "30000/1001"
    path = tmp_path / "video.json"
    path.write_text(json.dumps(video))
    tables = converted(path)
    assert tables["tasks"].column("fps").to_pylist() == [fps]
    frames = [s["frame"] for a in video["annotations"] if "snapshots_" in system_of(a)
              for s in [system_of(a)] + system_of(a)["snapshots_"]]
    times = [r["time"] for r in tables["keyframes"].to_pylist()]
    assert sorted(times, key=lambda t: t or 0) == sorted(
        [f / fps if fps else None for f in frames], key=lambda t: t or 0)


def test_label_studio_task_that_starts_with_annotations_stays_label_studio(converted, tmp_path):
    """The wrapper check looks inside `annotations`: Label Studio annotations are not items."""
    task = dict(annotations=LS_EXPORT[0]["annotations"], data=LS_EXPORT[0]["data"], id=5)
    path = tmp_path / "task.json"
    path.write_text(json.dumps(task))
    tables = converted(path)
    assert tables["tasks"].column("source").to_pylist() == ["labelstudio"]
    assert tables["results"].num_rows == len(task["annotations"][0]["result"])


def test_text_classification_elements(converted):
    path = DL / "text_classification.json"
    doc = json.loads(path.read_text())
    tables = converted(path)
    rows = sorted(tables["tasks"].to_pylist(), key=lambda r: r["position"])
    assert [json.loads(r["data"]) for r in rows] == doc["elements"]
    assert [r["form"] for r in rows] == ["element" if e["annotatable"] else "context"
                                         for e in doc["elements"]]
    assert {r["container"] for r in rows} == {"elements"}
    assert {r["task_id"] for r in rows} == {f"~{path}#{n}" for n in range(len(doc["elements"]))}
    for r in rows:  # the document's other keys, so it can be rebuilt
        assert json.loads(r["meta"]) == {k: v for k, v in doc.items() if k != "elements"}
    assert tables["annotations"].num_rows == 0


# -- bad input --------------------------------------------------------------------------------
def assert_refused(done, out: Path, *words: str) -> None:
    message = done.stderr.decode()
    assert done.returncode == 2, message
    assert message.startswith("error: ") and len(message.strip().splitlines()) == 1, message
    for w in words:
        assert w in message, message
    assert not (out / "_manifest.json").exists()
    assert not any((out / t).exists() for t in ("tasks", "annotations", "results"))


@pytest.mark.parametrize("member", ["../evil.json", "/etc/evil.json", "json/../../evil.json"])
def test_zip_with_unsafe_member_path_is_refused(tmp_path, member):
    _, item = folder_items(EXPORT / "json" / "animals")[0]
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("json/ok.json", json.dumps(item))
        zf.writestr(zipfile.ZipInfo(member), json.dumps(item))
    out = tmp_path / "out"
    assert_refused(run_cli("convert", str(path), "-o", str(out)), out, "unsafe path", member)
    assert not (tmp_path / "evil.json").exists() and not Path("/etc/evil.json").exists()


@pytest.mark.parametrize("case", ["ndjson_array_line", "annotation_string", "snapshot_number",
                                  "truncated", "not_an_item", "shebang_without_elements"])
def test_malformed_items_give_a_clear_error_and_no_output(tmp_path, case):
    data, words = dataloop_malformed()[case]
    path = tmp_path / "items.json"
    path.write_bytes(data)
    out = tmp_path / "out"
    assert_refused(run_cli("convert", str(path), "-o", str(out)), out, str(path), *words)


def test_skip_leaves_out_the_bad_item_only(tmp_path):
    data, _ = dataloop_malformed()["ndjson_array_line"]
    path = tmp_path / "items.ndjson"
    path.write_bytes(data)
    out = tmp_path / "out"
    assert run_cli("convert", str(path), "-o", str(out), "--on-error", "skip", "-q").returncode == 0
    tables = read_tables(out)
    assert tables["tasks"].num_rows == 1
    assert json.loads((out / "_manifest.json").read_text())["skipped_tasks"] == 1


# -- both platforms in one run --------------------------------------------------------------
LS_EXPORT = [
    {"id": 1, "project": 7, "data": {"image": "a.jpg"}, "annotations": [
        {"id": 11, "completed_by": 3, "result": [
            {"id": "r1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
             "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["Car"]}},
            {"id": "r2", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
             "value": {"x": 50, "y": 20, "width": 5, "height": 8, "rectanglelabels": ["Person"]}},
            {"id": "r3", "from_name": "kind", "to_name": "image", "type": "choices",
             "value": {"choices": ["Street"]}}]}]},
    {"id": 2, "project": 7, "data": {"image": "b.jpg"}, "annotations": [
        {"id": 12, "completed_by": 3, "result": [
            {"id": "r4", "from_name": "kind", "to_name": "image", "type": "choices",
             "value": {"choices": ["Park"]}}]}]},
]


def test_both_platforms_in_one_results_table(tmp_path):
    ls = tmp_path / "ls_export.json"
    ls.write_text(json.dumps(LS_EXPORT))
    out = tmp_path / "out"
    done = run_cli("convert", str(ls), str(EXPORT), str(DL / "farm_export.zip"), "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr.decode()
    want = Counter(("labelstudio", r["type"]) for t in LS_EXPORT for a in t["annotations"]
                   for r in a["result"])
    for _, item in folder_items(EXPORT) + zip_items(DL / "farm_export.zip"):
        want.update(("dataloop", a["type"]) for a in item["annotations"])
    got = duckdb.sql(f"SELECT source, type, count(*) FROM '{out}/results/*.parquet' "
                     "GROUP BY source, type").fetchall()
    assert Counter({(s, t): n for s, t, n in got}) == want
    units = dict(duckdb.sql(f"SELECT source, any_value(unit) FROM '{out}/results/*.parquet' "
                            "WHERE x IS NOT NULL GROUP BY source").fetchall())
    assert units == {"labelstudio": "percent", "dataloop": "pixel"}


# -- many small files -------------------------------------------------------------------------
# The child's peak RSS, measured by a wrapper process (RUSAGE_CHILDREN keeps the maximum over
# every child ever waited for, so one wrapper per measurement). Linux: KiB.
MEASURE = ("import resource, subprocess, sys; "
           "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mb(*argv: str) -> float:
    done = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)
    return int(done.stdout.split()[-1]) / 1024


def write_folder(folder: Path, n: int) -> None:
    for k in range(n):
        path = folder / "json" / f"set_{k % 50:02d}" / f"img_{k:05d}.jpg.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(samples.simple_image(k, f"set_{k % 50:02d}")))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
def test_peak_rss_is_flat_in_the_number_of_files(tmp_path):
    """2,000 item files peak like 500 (scripts/bench_dataloop_files.py runs 10,000+)."""
    rss = []
    for n in (500, 2000):
        folder = tmp_path / f"items_{n}"
        write_folder(folder, n)
        rss.append(peak_rss_mb(sys.executable, "-m", "stream", "convert", str(folder), "-o",
                               str(tmp_path / f"out_{n}"), "-q", "--batch-rows", "200"))
        assert read_tables(tmp_path / f"out_{n}")["tasks"].num_rows == n
    print(f"peak RSS for 500 files: {rss[0]:.1f} MB, 2000 files: {rss[1]:.1f} MB")
    assert rss[1] <= rss[0] + 10, f"peak RSS grew with the number of files: {rss}"


def test_booleans_in_coordinates_leave_the_geometry_null(tmp_path):
    """A boolean where a coordinate or an angle is expected gives no geometry (pyarrow would
    make it 1.0 or 0.0), as for Label Studio; the coordinates stay whole in `value`."""
    from stream import convert

    iid, pt = "66" + "0" * 22, samples.pt
    corners = {f"{k}_{c}": pt(1, 2) for k in ("front", "back") for c in ("tl", "tr", "br", "bl")}
    cases = {  # label: (type, coordinates, the geometry columns it gives)
        "box": ("box", [pt(True, 20), pt(100, 90)], {}),
        "rotated": ("box", [pt(1, 2), pt(4, 6), False],
                    {"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0}),
        "point": ("point", pt(5, False), {}),
        "ellipse": ("ellipse", {"center": pt(5, 6), "rx": True, "ry": 2, "angle": 0}, {}),
        "cube": ("cube", {"angle": True, **corners}, {"points": [[1.0, 2.0]] * 8})}
    item = samples.item(iid, "/a.jpg", {"mimetype": "image/jpeg"}, [
        samples.ann(f"67{n:022x}", iid, typ, label, co, {})
        for n, (label, (typ, co, _)) in enumerate(cases.items())])
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item))
    convert([str(path)], tmp_path / "out")
    got = {r["labels"][0]: r for r in read_tables(tmp_path / "out")["results"].to_pylist()}
    for label, (_, co, want) in cases.items():
        r = got[label]
        assert json.loads(r["value"]) == co, label
        assert {c: r[c] for c in ("x", "y", "width", "height", "rotation", "points")
                if r[c] is not None} == want, label
