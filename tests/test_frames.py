"""The `frames` view: video tracks expanded to one row per visible frame, in SQL.

Expected frames come from hand-computed values (Label Studio interpolation, docs/formats.md A7),
from Label Studio's own interpolated export (sample_data/labelstudio/video_interpolated.json,
whose generated frames carry "auto": true) and from the Dataloop hold-last rule (B5)
implemented here independently on the source JSON.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import SAMPLES

import stream
from stream.query import VIEWS

LS = SAMPLES / "labelstudio"
SHAPE = ("x", "y", "width", "height", "rotation")


def frames_of(out: Path, where: str = "true") -> dict[tuple, dict]:
    """(kind, annotation_id, region_id, frame) -> frames row, checking the key is unique."""
    rows = stream.connect(out).sql(f"SELECT * FROM frames WHERE {where}").to_arrow_table().to_pylist()
    got = {(r["kind"], r["annotation_id"], r["region_id"], r["frame"]): r for r in rows}
    assert len(got) == len(rows), "a (track, frame) appears twice"
    return got


def close(a: float | None, b: float | None, tol: float = 1e-9) -> bool:
    return a is None and b is None or a is not None and b is not None and math.isclose(
        a, b, rel_tol=tol, abs_tol=tol)


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def kf(frame: int, enabled: bool, x: float, y: float, w: float, h: float, rot: float,
       time: float) -> dict:
    return {"frame": frame, "enabled": enabled, "x": x, "y": y, "width": w, "height": h,
            "rotation": rot, "time": time}


def video_result(rid: str, seq: list[dict], frames_count: int | None = 14, **value) -> dict:
    if frames_count is not None:
        value["framesCount"] = frames_count
    return {"id": rid, "type": "videorectangle", "from_name": "box", "to_name": "video",
            "value": {"duration": 1.4, **value, "sequence": seq}}


@pytest.fixture
def ls_tracks(tmp_path) -> Path:
    """A hand-written export: one annotation with four tracks, one prediction with one."""
    task = {"id": 1, "data": {"video": "v.mp4"}, "annotations": [{"id": 10, "result": [
        # A: enabled 1 -> 5 (x 10 -> 30, rotation 0 -> 20), 5 -> disabled 8, gap, 12 holds to 14
        video_result("A", [kf(1, True, 10, 20, 30, 40, 0, 0.1), kf(5, True, 30, 20, 30, 40, 20, 0.5),
                           kf(8, False, 36, 26, 30, 40, 20, 0.8), kf(12, True, 50, 50, 10, 10, 45, 1.2)],
                     labels=["Car"]),
        # B: keyframes given out of order, label in a sibling `labels` result
        video_result("B", [kf(6, True, 0, 0, 10, 10, 0, 0.6), kf(2, True, 4, 8, 10, 10, 0, 0.2)]),
        {"id": "B", "type": "labels", "from_name": "lbl", "to_name": "video",
         "value": {"labels": ["Person"]}},
        # C: a lone disabled keyframe is visible on its own frame only
        video_result("C", [kf(3, False, 1, 1, 1, 1, 0, 0.3)]),
        # D: no framesCount: nothing to hold to after the last keyframe
        video_result("D", [kf(2, True, 5, 5, 5, 5, 0, 0.2)], frames_count=None),
    ]}], "predictions": [{"id": 20, "result": [
        video_result("A", [kf(13, True, 1, 2, 3, 4, 0, 1.3)])]}]}
    return write_json(tmp_path / "tracks.json", [task])


def test_labelstudio_interpolation_by_hand(ls_tracks, tmp_path):
    stream.convert([ls_tracks], tmp_path / "out")
    got = frames_of(tmp_path / "out")
    a = {f: r for (k, aid, rid, f), r in got.items() if (k, rid) == ("annotation", "A")}
    assert sorted(a) == [1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14]  # 9..11 hidden after disabled 8
    assert [f for f in sorted(a) if a[f]["is_keyframe"]] == [1, 5, 8, 12]
    # frame 3 is halfway from 1 to 5: x 10 -> 30, rotation 0 -> 20
    assert (a[3]["x"], a[3]["y"], a[3]["rotation"], a[3]["time"]) == (20, 20, 10, pytest.approx(0.3))
    # frames 6 and 7 move from 5 towards the disabled keyframe 8 (x 30 -> 36, y 20 -> 26)
    assert (a[6]["x"], a[6]["y"]) == (pytest.approx(32), pytest.approx(22))
    assert (a[7]["x"], a[7]["y"], a[7]["rotation"]) == (pytest.approx(34), pytest.approx(24), 20)
    assert (a[8]["x"], a[8]["y"]) == (36, 26)
    # after the last enabled keyframe the shape holds to framesCount; time runs to duration
    for f in (13, 14):
        assert tuple(a[f][k] for k in SHAPE) == (50, 50, 10, 10, 45)
    assert (a[13]["time"], a[14]["time"]) == (pytest.approx(1.3), pytest.approx(1.4))
    assert {tuple(r["labels"]) for r in a.values()} == {("Car",)}
    assert {r["unit"] for r in a.values()} == {"percent"}

    b = {f: r for (k, aid, rid, f), r in got.items() if rid == "B"}
    assert sorted(b) == list(range(2, 15))
    assert (b[4]["x"], b[4]["y"]) == (2, 4)  # halfway from frame 2 (4, 8) to frame 6 (0, 0)
    assert {tuple(r["labels"]) for r in b.values()} == {("Person",)}

    c = [f for (k, aid, rid, f) in got if rid == "C"]
    assert c == [3] and got[("annotation", "10", "C", 3)]["is_keyframe"]
    assert [f for (k, aid, rid, f) in got if rid == "D"] == [2]
    # the prediction's track "A" is its own track
    assert sorted(f for (k, aid, rid, f) in got if k == "prediction") == [13, 14]


def oracle(path: Path) -> dict[tuple, dict]:
    """(kind, annotation_id, region_id, frame) -> entry of every visible frame of an
    interpolated Label Studio export: each entry of an expanded sequence is one."""
    out = {}
    for task in json.loads(path.read_text(encoding="utf-8")):
        for ann in task.get("annotations", []):
            for r in ann["result"]:
                if r["type"] == "videorectangle":
                    for e in r["value"]["sequence"]:
                        out[("annotation", str(ann["id"]), r["id"], e["frame"])] = e
    return out


def test_labelstudio_matches_its_interpolated_export(tmp_path):
    """Keyframes only in, frames out: the same frames, shapes and times as Label Studio's export."""
    expected = oracle(LS / "video_interpolated.json")
    assert any(e.get("auto") for e in expected.values())
    stream.convert([LS / "video_tracks.json"], tmp_path / "out")
    got = frames_of(tmp_path / "out", "kind = 'annotation'")
    assert sorted(got) == sorted(expected)
    for key, e in expected.items():
        row = got[key]
        assert row["is_keyframe"] is not e.get("auto", False), key
        for k in SHAPE:
            assert close(row[k], e[k]), (key, k, row[k], e[k])
        assert abs(row["time"] - e["time"]) <= 0.005 + 1e-9, key  # the export rounds to 0.01


def test_an_interpolated_export_gives_the_same_frames(tmp_path):
    """Converting the expanded export: its `auto` frames are derived rows, nothing doubles."""
    stream.convert([LS / "video_tracks.json"], tmp_path / "a")
    stream.convert([LS / "video_interpolated.json"], tmp_path / "b")
    a = frames_of(tmp_path / "a", "kind = 'annotation'")
    b = frames_of(tmp_path / "b", "kind = 'annotation'")
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key]["is_keyframe"] == b[key]["is_keyframe"], key
        assert all(close(a[key][k], b[key][k]) for k in SHAPE), key


# -- Dataloop: hold the latest snapshot, no rows while hidden (docs/formats.md B5) ------------------
def box(x1: float, y1: float, x2: float, y2: float) -> list[dict]:
    return [{"x": x1, "y": y1, "z": 0}, {"x": x2, "y": y2, "z": 0}]


def dataloop_item(tmp_path: Path) -> Path:
    snaps = [{"frame": 3, "fixed": True, "objectVisible": True, "type": "box", "label": "car",
              "attributes": [], "data": box(20, 10, 40, 30)},
             {"frame": 5, "fixed": True, "objectVisible": False, "type": "box", "label": "car",
              "attributes": [], "data": box(20, 10, 40, 30)},
             {"frame": 8, "fixed": False, "objectVisible": True, "type": "box", "label": "truck",
              "attributes": [], "data": box(25, 15, 55, 35)}]
    ann = {"id": "a1", "type": "box", "label": "car", "attributes": [], "coordinates": box(0, 0, 10, 20),
           "metadata": {"system": {"frame": 1, "endFrame": 10, "objectId": "7", "snapshots_": snaps}}}
    item = {"id": "i1", "name": "clip.mp4", "filename": "/clip.mp4", "datasetId": "d1",
            "metadata": {"system": {"mimetype": "video/mp4", "fps": 10}}, "annotations": [ann]}
    return write_json(tmp_path / "clip.mp4.json", item)


def dataloop_expected(path: Path) -> dict[tuple, dict]:
    """B5 by hand: for f in [frame, endFrame], the state of the latest snapshot <= f (the start
    state counts), skipped while objectVisible is false; box geometry as left/top/size."""
    item = json.loads(path.read_text(encoding="utf-8"))
    fps = item["metadata"]["system"].get("fps")
    out = {}
    for ann in item["annotations"]:
        system = ann["metadata"]["system"]
        if not isinstance(system.get("snapshots_"), list):
            continue
        states = [(system["frame"], True, ann["label"], ann.get("coordinates"), True)]
        states += [(s["frame"], s.get("objectVisible", True), s.get("label"), s.get("data"), True)
                   for s in system["snapshots_"]]
        for f in range(system["frame"], system["endFrame"] + 1):
            frame, visible, label, data, _ = max((s for s in states if s[0] <= f), key=lambda s: s[0])
            if visible is False:
                continue
            row = {"labels": [label], "is_keyframe": frame == f, "time": f / fps if fps else None}
            if ann["type"] == "box":
                (p, q) = data[:2]
                row.update(x=p["x"], y=p["y"], width=q["x"] - p["x"], height=q["y"] - p["y"])
            region = system.get("objectId") or ann["id"]
            out[("annotation", ann["id"], region, f)] = row
    return out


@pytest.mark.parametrize("sample", ["hand", "sample_data"])
def test_dataloop_holds_the_last_snapshot(tmp_path, sample):
    path = (dataloop_item(tmp_path) if sample == "hand"
            else SAMPLES / "dataloop" / "export" / "json" / "clips" / "crossing.mp4.json")
    expected = dataloop_expected(path)
    stream.convert([path], tmp_path / "out")
    got = frames_of(tmp_path / "out")
    assert sorted(got) == sorted(expected)
    for key, e in expected.items():
        for k, v in e.items():
            assert got[key][k] == pytest.approx(v), (key, k)
        assert got[key]["unit"] == "pixel"
    if sample == "hand":  # the hand-made track: 1..4, hidden 5..7, back 8..10 as a truck
        assert sorted(k[3] for k in got) == [1, 2, 3, 4, 8, 9, 10]
        assert got[("annotation", "a1", "7", 9)]["labels"] == ["truck"]


def test_no_video_no_frames(tmp_path):
    stream.convert([LS / "image_regions.json"], tmp_path / "out")
    rel = stream.connect(tmp_path / "out").sql("SELECT * FROM frames")
    assert rel.columns == list(VIEWS["frames"].columns)
    assert rel.to_arrow_table().num_rows == 0
