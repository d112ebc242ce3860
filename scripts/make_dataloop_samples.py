"""Write the hand-made Dataloop samples of sample_data/dataloop/ (deterministic output).

    .venv/bin/python scripts/make_dataloop_samples.py [--out sample_data/dataloop]

Every shape the reader accepts (docs/formats.md part B): a folder tree of item JSON files (images
with every annotation type, a video with tracks, a text item with spans, an old-shape item),
an export zip, an SDK dataset-export array, a V3 NDJSON partition set (gzip and plain) with
its manifest, the docs' {"annotations": [items]} wrapper and a text-classification JSON.
The items are written out literally below so a reader can compare them with the tables.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import json
import struct
import zipfile
import zlib
from pathlib import Path

DATASET = "64a671e0d854daf23d6ed2b9"
GATE = "https://gate.dataloop.ai/api/v1"
USER = "annotator@example.com"
REVIEWER = "reviewer@example.com"


def tiny_png(width: int, height: int) -> str:
    """A real RGBA PNG with the left half opaque: Dataloop's binary mask encoding."""
    rows = b"".join(b"\x00" + b"".join(b"\xff\x00\x00\xff" if x < width // 2 else b"\x00" * 4
                                       for x in range(width)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def item(iid: str, filename: str, system: dict, annotations: list, **more) -> dict:
    """A current-shape item as the platform exports it (docs/formats.md B2)."""
    directory = filename.rsplit("/", 1)[0] or "/"
    return {
        "id": iid, "datasetId": DATASET, "url": f"{GATE}/items/{iid}",
        "dataset": f"{GATE}/datasets/{DATASET}", "createdAt": "2024-03-01T10:00:00.000Z",
        "dir": directory, "filename": filename, "type": "file", "hidden": False,
        "metadata": {"system": {"originalname": filename.rsplit("/", 1)[1], "refs": [],
                                "taskStatusLog": [], **system}, "user": {}},
        "name": filename.rsplit("/", 1)[1], "creator": USER,
        "updatedAt": "2024-03-02T11:30:00.250Z", "updatedBy": USER,
        "stream": f"{GATE}/items/{iid}/stream", "thumbnail": f"{GATE}/items/{iid}/thumbnail",
        "annotations": annotations, "annotationsCount": len(annotations), "annotated": True,
        **more,
    }


def ann(aid: str, iid: str, typ: str, label: str, coordinates, system: dict | None = None,
        attributes=None, source: str = "ui", **more) -> dict:
    """A Dataloop annotation (docs/formats.md B3); `attributes=...` (Ellipsis) leaves the key out."""
    a = {"id": aid, "datasetId": DATASET, "itemId": iid, "url": f"{GATE}/annotations/{aid}",
         "item": f"{GATE}/items/{iid}", "dataset": f"{GATE}/datasets/{DATASET}",
         "type": typ, "label": label}
    if attributes is not ...:
        a["attributes"] = [] if attributes is None else attributes
    if coordinates is not ...:
        a["coordinates"] = coordinates
    a["metadata"] = {"system": {"attributes": {}, "automated": False, "clientId": f"c-{aid[-4:]}",
                                "frame": 0, "endFrame": 1, "startTime": 0, "endTime": 1,
                                "itemLinks": [], "snapshots_": [], "system": False,
                                **(system or {})}, "user": {}}
    a.update({"creator": USER, "createdAt": "2024-03-01T12:00:00.123Z", "updatedBy": REVIEWER,
              "updatedAt": "2024-03-03T08:15:42.007Z", "hash": f"{int(aid, 16):040x}"[-40:],
              "source": source})
    a.update(more)
    return a


def pt(x: float, y: float) -> dict:
    return {"x": x, "y": y, "z": 0}


def image_item() -> dict:
    iid = "65f1a0000000000000000001"
    n = iter(range(1, 100))

    def aid() -> str:
        return f"65f1b{next(n):019x}"

    pose = aid()
    annotations = [
        ann(aid(), iid, "box", "car", [pt(10.5, 20.25), pt(110.5, 80.75)], {"objectId": "1"},
            attributes=["parked"]),
        ann(aid(), iid, "box", "car", [pt(200, 50), pt(260, 130), 15.5], {"objectId": "2",
            "attributes": {"1": False, "color": "red"}}, source="sdk"),
        ann(aid(), iid, "segment", "road", [[pt(0, 300), pt(640, 300), pt(640, 480), pt(0, 480)]],
            {"objectId": "3"}),
        ann(aid(), iid, "segment", "puddle", [pt(50, 400), pt(80, 390), pt(90, 420)],
            attributes=None),
        ann(aid(), iid, "polyline", "lane", [[pt(320, 480), pt(330, 380), pt(335, 300)]]),
        ann(aid(), iid, "point", "light", pt(600.5, 40.5), {"objectId": "6"}),
        ann(aid(), iid, "ellipse", "wheel", {"center": pt(150, 90), "rx": 12.5, "ry": 8, "angle": 30}),
        ann(aid(), iid, "class", "daytime", ..., attributes=...),
        ann(aid(), iid, "binary", "sky", tiny_png(4, 2)),
        ann(aid(), iid, "cube", "truck", {
            "front_tl": pt(300, 100), "front_tr": pt(380, 100), "front_br": pt(380, 180),
            "front_bl": pt(300, 180), "back_tl": pt(320, 90), "back_tr": pt(400, 90),
            "back_br": pt(400, 170), "back_bl": pt(320, 170), "angle": 0}),
        ann(pose, iid, "pose", "person", {"templateId": "tmpl-1", "instanceId": "inst-1"}),
        ann(aid(), iid, "point", "left-hand", pt(420, 210), {"parentId": pose}),
        ann(aid(), iid, "point", "right-hand", pt(460, 212), {"parentId": pose}),
        ann(aid(), iid, "text", "caption", "A red car parked on a wet road", source="sdk"),
        ann(aid(), iid, "note", "note", {"box": [pt(5, 5), pt(60, 40)], "note": {
            "messages": [{"id": "m1", "time": 1709290000000, "body": "is this a van?",
                          "creator": REVIEWER}],
            "status": "open", "createTime": 1709290000000, "creator": REVIEWER, "assignee": USER}}),
        ann(aid(), iid, "item_description", "item.description", {"text": "Street scene, rain"},
            {"system": True}),
        ann(aid(), iid, "magic_blob", "thing", {"whatever": [1, 2, 3]}, attributes=None,
            description="a type this reader does not know", labelSuggestions={"thing": 0.9}),
    ]
    annotations[1]["attributes"] = None  # v1 null next to a v2 dict
    annotations[1]["creator"] = "pipeline-7"  # not every creator is an email
    annotations[16]["createdAt"] = "2024-03-01T12:00:00Z"  # no milliseconds: kept in extra too
    del annotations[16]["updatedBy"]
    annotations[13]["metadata"]["user"] = {"model": {"confidence": 0.87, "name": "captioner",
                                                     "model_id": "m-42"}}
    return item(iid, "/street/rainy_day.jpg", {
        "size": 145493, "encoding": "7bit", "mimetype": "image/jpeg", "isBinary": True,
        "channels": 3, "width": 640, "height": 480, "thumbnailId": "65f1a00000000000000000ff",
    }, annotations)


def video_item() -> dict:
    iid = "65f2a0000000000000000001"
    box, seg, cls, sub = ("65f2b0000000000000000001", "65f2b0000000000000000002",
                          "65f2b0000000000000000003", "65f2b0000000000000000004")

    def snap(frame: int, data, label: str, visible: bool = True, fixed: bool = True,
             kind: str = "LINEAR", attributes=None, named=None) -> dict:
        s = {"attributes": attributes or [], "data": data, "fixed": fixed, "frame": frame,
             "label": label, "objectVisible": visible, "type": kind}
        if named is not None:
            s["namedAttributes"] = named
        return s

    annotations = [
        ann(box, iid, "box", "walking", [pt(100, 200), pt(160, 330)], {
            "objectId": "1", "frame": 0, "endFrame": 60, "startTime": 0, "endTime": 2.4,
            "coordinateVersion": "v2", "snapshots_": [
                snap(10, [pt(120, 205), pt(180, 335)], "walking", fixed=False),
                snap(20, [pt(140, 210), pt(200, 340)], "walking", visible=False),
                snap(30, [pt(160, 212), pt(222, 344)], "running"),
                snap(45, [pt(190, 215), pt(250, 350)], "running", kind="ATTRIBUTE_CHANGE",
                     attributes=["occluded"], named={"occluded": True}),
            ]}),
        ann(seg, iid, "segment", "dog", [[pt(400, 400), pt(450, 380), pt(470, 430)]], {
            "objectId": "2", "frame": 5, "endFrame": 30, "startTime": 0.2, "endTime": 1.2,
            "snapshots_": [
                snap(15, [[pt(410, 402), pt(460, 382), pt(480, 432)]], "dog", kind="segment"),
                snap(25, [[pt(420, 404), pt(470, 384), pt(490, 434)]], "puppy", kind="segment"),
            ]}),
        ann(cls, iid, "class", "rain", ..., {
            "objectId": "3", "frame": 12, "endFrame": 40, "startTime": 0.48, "endTime": 1.6,
            "attributes": {"intensity": "light"}, "snapshots_": [
                snap(30, None, "rain", kind="class", named={"intensity": "heavy"}),
            ]}, attributes=...),
        ann(sub, iid, "subtitle", "subtitle", {"text": "Hello there"}, {
            "frame": 25, "endFrame": 50, "startTime": 1.0, "endTime": 2.0}),
    ]
    annotations[2]["metadata"]["system"]["snapshots_"][0].pop("data")
    del annotations[3]["metadata"]["system"]["snapshots_"]  # subtitles have none
    video = item(iid, "/clips/crossing.mp4", {
        "size": 2101456, "encoding": "7bit", "mimetype": "video/mp4", "isBinary": True,
        "duration": 2.48, "fps": 25, "width": 1280, "height": 720, "startTime": 0,
        "nb_frames": 62, "nb_streams": 1,
        "ffmpeg": {"avg_frame_rate": "25/1", "codec_name": "h264", "nb_read_frames": "62",
                   "width": 1280, "height": 720},
    }, annotations)
    video["metadata"]["fps"] = 25
    video["metadata"]["startTime"] = 0
    return video


def text_item() -> dict:
    iid = "6569a9bb64a270e5cc8ae821"
    text = "The service was quick. The food was cold. We will come back."

    def span(aid: str, label: str, phrase: str, oid: str) -> dict:
        start = text.index(phrase)
        return ann(aid, iid, "text_mark", label,
                   {"end": start + len(phrase), "label": label, "start": start, "type": "block"},
                   {"objectId": oid})

    return item(iid, "/reviews/review_17.txt", {"size": len(text), "encoding": "7bit",
                                                 "mimetype": "text/plain", "isBinary": False}, [
        span("67b5b27511348cc123616201", "positive", "The service was quick.", "1"),
        span("67b5b27511348cc123616202", "negative", "The food was cold.", "2"),
        ann("67b5b27511348cc123616203", iid, "class", "mixed", ..., attributes=["needs-review"]),
    ])


def old_item() -> dict:
    """The older shape: `_id`, `itemMetadata`, `[]` coordinates for class (docs/formats.md B1)."""
    return {
        "_id": "5d7a2c1e8f1b2a0012345678", "filename": "/animals/hamster.jpg",
        "itemMetadata": {"system": {"originalname": "hamster.jpg", "mimetype": "image/jpeg",
                                    "width": 320, "height": 240, "size": 20480}},
        "annotations": [
            {"_id": "5d7a2c2a8f1b2a00123456a1", "type": "box", "label": "hamster",
             "attributes": ["Frontal"], "coordinates": [pt(40, 30), pt(280, 220)],
             "metadata": {"system": {"frame": 0, "endFrame": 1}},
             "creator": USER, "createdAt": "2019-09-12T10:30:02.123Z"},
            {"_id": "5d7a2c2a8f1b2a00123456a2", "type": "class", "label": "cute",
             "attributes": [], "coordinates": [], "creator": USER},
        ],
    }


def simple_image(n: int, folder: str) -> dict:
    """Small image items for the zip, the array and the NDJSON partitions."""
    iid = f"66{n:022x}"
    return item(iid, f"/{folder}/img_{n:03d}.jpg", {"mimetype": "image/jpeg", "width": 800,
                                                    "height": 600, "size": 1000 + n}, [
        ann(f"67{n:018x}0001", iid, "box", "cow" if n % 2 else "sheep",
            [pt(10 + n, 20), pt(100 + n, 90 + n)], {"objectId": "1"}),
        ann(f"67{n:018x}0002", iid, "point", "eye", pt(50 + n, 40), {"objectId": "2"},
            attributes={"side": "left"}),
    ][: 1 + n % 2])


def text_classification() -> dict:
    return {
        "shebang": "dataloop",
        "metadata": {"dltype": "text-classification", "callId": "3154919731610621952",
                     "companyId": "262834820328732"},
        "formatting": "html",
        "elements": [
            {"key": "task-a", "annotatable": True,
             "content": "<p><strong>[A_17]</strong> Hello, this is XYZ from ABC.</p>"},
            {"key": "text-b", "annotatable": False,
             "content": "<p>Intent: not_decision_maker</p>"},
            {"key": "task-c", "annotatable": True,
             "content": "<p><strong>Hello</strong>, everything went well — ça va.</p>"},
            {"key": "task-e", "annotatable": True, "content": "<p>Your html texts</p>"},
        ],
    }


def dump(obj, path: Path, indent: int | None = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


def write_zip(path: Path, members: dict[str, dict]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, obj in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 3, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, json.dumps(obj, indent=2) + "\n")


def write_partitions(folder: Path, parts: list[list[dict]], gzipped: list[bool]) -> None:
    """V3 layout: NDJSON partitions (gzip or plain) and the manifest that lists them."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (items, gz) in enumerate(zip(parts, gzipped)):
        name = f"part-{index:05d}.ndjson" + (".gz" if gz else "")
        data = "".join(json.dumps(i, separators=(",", ":")) + "\n" for i in items).encode()
        if gz:
            data = gzip.compress(data, mtime=0)
        (folder / name).write_bytes(data)
        entries.append({"index": index, "hash": f"{zlib.crc32(data):08x}", "itemCount": len(items),
                        "filePath": name, "fileSize": len(data), "url": f"https://exports.example/{name}"})
    dump({"manifestVersion": "1.0", "exportId": "exp-0001", "datasetId": DATASET,
          "exportedAt": "2024-03-04T00:00:00.000Z", "format": "ndjson", "version": {},
          "filters": {}, "metadata": {}, "partitioning": {"partitionCount": len(entries),
                                                          "partitions": entries},
          "statistics": {"totalRecords": sum(len(p) for p in parts), "fileCount": len(entries)}},
         folder / "manifest.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "sample_data" / "dataloop"))
    out = Path(ap.parse_args().out)
    tree = out / "export" / "json"
    dump(image_item(), tree / "street" / "rainy_day.jpg.json")
    dump(video_item(), tree / "clips" / "crossing.mp4.json")
    dump(text_item(), tree / "reviews" / "review_17.txt.json")
    dump(old_item(), tree / "animals" / "hamster.json", indent=None)
    write_zip(out / "farm_export.zip", {f"json/farm/field_{n % 2}/img_{n:03d}.jpg.json":
                                        simple_image(n, f"farm/field_{n % 2}") for n in range(1, 6)})
    dump([simple_image(n, "array") for n in range(10, 14)], out / "dataset_export.json")
    write_partitions(out / "v3_export", [[simple_image(n, "v3") for n in range(20, 23)],
                                         [simple_image(n, "v3") for n in range(23, 25)],
                                         [simple_image(n, "v3") for n in range(25, 28)]],
                     [True, True, False])
    wrapped = text_item()
    wrapped["id"], wrapped["filename"] = "6569a9bb64a270e5cc8ae899", "/reviews/review_99.txt"
    for a in wrapped["annotations"]:
        a["itemId"] = wrapped["id"]
        a["id"] = a["id"][:-4] + "99" + a["id"][-2:]
    dump({"annotations": [wrapped]}, out / "docs_wrapper.json")
    dump(text_classification(), out / "text_classification.json")


if __name__ == "__main__":
    main()
