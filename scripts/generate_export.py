#!/usr/bin/env python3
"""Seeded generator of large, realistic Label Studio exports, written task by task.

Tests and benchmarks need multi-GB exports that look like real ones (docs/formats.md part A) and
hold every awkward case at once, without storing such files anywhere. The output is a pure
function of the seed: `iter_tasks(seed)` yields the very task objects that `generate` writes,
so a test can compute expected rows from the same seed (or by re-reading a small file with the
json module) without trusting the converter.

The mix: image tasks (rectangle/polygon/keypoint labels, per-region textareas sharing the
region id, relations, task-level choices), NER text tasks (unicode text, `labels` spans whose
`value.text == text[start:end]`, relations), video tasks (`videorectangle` tracks with long
keyframe sequences, some with export-time interpolated `auto` frames: the number-heavy part)
and classification tasks (choices, nested choices, rating, number, taxonomy, textarea,
datetime). Annotations have `completed_by` as an int, a user object or missing, some are
cancelled, some have string ids; predictions come as objects (some without id, as in the
import format) or as bare id lists, drafts likewise; some results have no `id`; unknown keys
sit at task, annotation and result level; strings in data and textareas hold `}, {"id":`,
escaped quotes, backslashes, newlines and unicode, to trip naive splitters.

    python scripts/generate_export.py --size 1GB -o big.json --seed 1
    python scripts/generate_export.py --size 50MB --format ndjson --gzip -o big.ndjson.gz
    python scripts/generate_export.py --size 10MB --format object-folder -o tasks_dir/
    python scripts/generate_export.py --big-task 100 -o one_big_task.json

Memory stays flat whatever --size: one task is built, encoded and written at a time (the
--big-task task is streamed piece by piece too).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

FORMATS = ("array", "ndjson", "object-folder")
FIRST_TASK_ID = 1000  # normal tasks count up from here; the --big-task task has id 1
BIG_TASK_ID = 1
PROJECT_ID = 83
CHUNK = 1 << 20  # bytes buffered before a write

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_pretty = json.JSONEncoder(ensure_ascii=False, indent=2, check_circular=False).encode

# Strings that break anything splitting JSON on bytes or handling escapes carelessly.
TRICKY = (
    '}, {"id": 1, "data": {"text": "fake"}}, {"id":',
    '"}]},{"id":999,"annotations":[{"result":[',
    'he said \\"hi\\" and "left" \\\\ C:\\path\\to\\file',
    "line one\nline two\r\n\ttabbed \u2028 sep \u2029 end",
    "] , [ { } : , \"\" '' ,\"id\":",
    "ünïcödé — 日本語のテキスト — עברית — Ελληνικά — 🚀🎉👩‍👩‍👧 — e\u0301",
    "\\u0041 is not A, \\n is not a newline",
    "control \u0001\u001f chars and a bell \u0007",
    "a string ending in a backslash \\",
    "\\",
    "",
    " ",
)
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "annotation", "label", "studio", "export", "stream", "parquet", "Paris", "Berlin", "München", "Zürich", "São", "Paulo", "Kraków", "Москва", "東京", "서울", "القاهرة", "Αθήνα", "February", "March", "22", "2021", "café", "naïve", "résumé", "coöperate", "🙂", "✓", "data", "model", "region", "span", "token"]
IMAGE_LABELS = ("Car", "Person", "Tree", "Sky", "Road", "Bicycle", "Traffic Light", "Dog")
NER_LABELS = ("PER", "ORG", "LOC", "DATE", "MISC")
VIDEO_LABELS = ("Car", "Pedestrian", "Cyclist", "Truck")
TAXONOMY = (("Europe", "France", "Paris"), ("Europe", "Germany"), ("Asia", "Japan", "Tokyo"),
            ("Americas",))
NESTED = (("Animal", "Cat"), ("Animal", "Dog", "Puppy"), ("Vehicle",), ("Vehicle", "Car"))
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
BASE_TS = 1_615_000_000  # March 2021


def parse_size(text: str) -> int:
    """'10MB', '1GB', '4GB', '512kB', '123' (bytes) -> bytes (decimal units)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([kKmMgGtT]?)[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 10MB, 1GB)")
    return int(float(m.group(1)) * 1000 ** " KMGT".index(m.group(2).upper() or " "))


class _Gen:
    """The random choices behind one stream of tasks; all state is in `self.r` and counters."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.task_id = FIRST_TASK_ID
        self.annotation_id = 5000
        self.prediction_id = 90000
        self.draft_id = 300
        self.inner_id = 0

    # -- small values ----------------------------------------------------------------------
    def rid(self) -> str:
        return "".join(self.r.choices(ID_CHARS, k=10))

    def ts(self, after: float = 0.0) -> tuple[str, float]:
        t = (after or BASE_TS + self.r.random() * 3e7) + self.r.random() * 5e4
        d = datetime.fromtimestamp(t, timezone.utc)
        return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), t

    def tricky(self) -> str:
        r = self.r
        return r.choice(TRICKY) if r.random() < 0.5 else " ".join(r.choices(WORDS, k=r.randint(1, 8)))

    def user(self) -> int | dict:
        uid = self.r.randint(1, 40)
        if self.r.random() < 0.35:
            return {"id": uid, "first_name": "Ann", "last_name": f"Otator{uid}",
                    "email": f"annotator{uid}@example.com"}
        return uid

    # -- tasks -----------------------------------------------------------------------------
    def task(self) -> dict:
        r = self.r
        self.task_id += 1
        self.inner_id += 1
        tid = self.task_id
        kind = r.random()
        if kind < 0.35:
            data, make = self.image_data(), self.image_results
        elif kind < 0.60:
            data, make = self.text_data(), self.text_results
        elif kind < 0.75:
            data, make = {"video": f"/data/upload/83/video_{tid}.mp4"}, self.video_results
        else:
            data, make = self.classification_data(), self.classification_results
        created, t0 = self.ts()
        annotations = [self.annotation(tid, make(data), t0) for _ in range(r.choice((0, 1, 1, 1, 2, 3)))]
        predictions: list = [self.prediction(tid, make(data)) for _ in range(r.choice((0, 0, 1, 1, 2)))]
        if predictions and r.random() < 0.3:  # the plain export API gives predictions as ids
            predictions = [p["id"] if "id" in p else self.next_prediction_id() for p in predictions]
        cancelled = sum(1 for a in annotations if a["was_cancelled"])
        task: dict[str, Any] = {
            "id": tid, "data": data, "annotations": annotations, "predictions": predictions,
            "file_upload": f"upload_{tid}.json", "meta": {} if r.random() < 0.9 else {"batch": r.randint(1, 9)},
            "created_at": created, "updated_at": self.ts(t0)[0], "inner_id": self.inner_id,
            "total_annotations": len(annotations) - cancelled, "cancelled_annotations": cancelled,
            "total_predictions": len(predictions), "comment_count": 0, "unresolved_comment_count": 0,
            "last_comment_updated_at": None, "project": PROJECT_ID, "updated_by": r.randint(1, 40),
            "comment_authors": [],
        }
        if r.random() < 0.3:
            drafts: list = [self.draft(tid, make(data)) for _ in range(r.randint(1, 2))]
            task["drafts"] = drafts if r.random() < 0.6 else [d["id"] for d in drafts]
        if r.random() < 0.1:
            task["x_enterprise_state"] = {"state": "REVIEWED", "weights": [r.random(), r.random()],
                                          "note": self.tricky()}
        if r.random() < 0.2:
            task["agreement"] = r.choice((100.0, 66.66666666666667, 0.0))
        return task

    def annotation(self, tid: int, result: list, t0: float) -> dict:
        r = self.r
        self.annotation_id += 1
        cancelled = r.random() < 0.06
        if cancelled:
            result = []
        created, t1 = self.ts(t0)
        ann: dict[str, Any] = {
            "id": self.annotation_id if r.random() < 0.95 else str(self.annotation_id),
            "result": result, "was_cancelled": cancelled, "ground_truth": r.random() < 0.1,
            "created_at": created, "updated_at": self.ts(t1)[0],
            "draft_created_at": None if r.random() < 0.7 else self.ts(t0)[0],
            "lead_time": round(r.random() * 300, 3), "prediction": {}, "result_count": len(result),
            "unique_id": f"{r.getrandbits(128):032x}", "import_id": None,
            "last_action": r.choice((None, "submitted", "updated", "accepted")),
            "bulk_created": False, "task": tid, "project": PROJECT_ID,
            "updated_by": r.randint(1, 40), "parent_prediction": None, "parent_annotation": None,
            "last_created_by": None,
        }
        if r.random() < 0.9:
            ann["completed_by"] = self.user()
        if r.random() < 0.08:
            ann["x_review_flag"] = {"flagged": True, "reason": self.tricky()}
        return ann

    def next_prediction_id(self) -> int:
        self.prediction_id += 1
        return self.prediction_id

    def prediction(self, tid: int, result: list) -> dict:
        r = self.r
        for item in result:
            item.pop("origin", None)  # predictions usually lack origin ...
            if r.random() < 0.3 and item["type"] != "relation":
                item["source"] = "$image"  # ... and may carry the legacy `source`
        pred: dict[str, Any] = {"result": result, "score": r.choice((None, r.random())),
                                "model_version": r.choice(("yolo-v8", "bert-ner-2", "model 1")),
                                "cluster": None, "neighbors": None, "mislabeling": 0.0,
                                "created_ago": "4 days, 1 hour", "created_at": self.ts()[0],
                                "updated_at": self.ts()[0], "task": tid, "project": PROJECT_ID,
                                "model": None, "model_run": None}
        if r.random() < 0.9:  # import-format predictions have no id
            pred = {"id": self.next_prediction_id(), **pred}
        return pred

    def draft(self, tid: int, result: list) -> dict:
        r = self.r
        self.draft_id += 1
        return {"id": self.draft_id, "result": result, "lead_time": round(r.random() * 60, 3),
                "task": tid, "annotation": None, "user": r.randint(1, 40), "was_postponed": False,
                "import_id": None, "created_at": self.ts()[0], "updated_at": self.ts()[0],
                "created_username": " annotator@example.com, 7", "created_ago": "1 hour"}

    def result(self, type_: str, from_name: str, to_name: str, value: dict, rid: str | None,
               **more: Any) -> dict:
        r = self.r
        item: dict[str, Any] = {"value": value, "from_name": from_name, "to_name": to_name,
                                "type": type_, "origin": "manual", **more}
        if rid is not None:
            item["id"] = rid
        if r.random() < 0.05:
            item["meta"] = {"text": [self.tricky()]}
        if r.random() < 0.03:
            item["x_custom"] = {"nested": [1, {"a": None}], "s": self.tricky()}
        return item

    def relations(self, ids: list[str]) -> list[dict]:
        r = self.r
        out = []
        for _ in range(r.choice((0, 0, 1, 2)) if len(ids) > 1 else 0):
            a, b = r.sample(ids, 2)
            if r.random() < 0.05:
                b = self.rid()  # a relation to a region that is not in the result
            rel: dict[str, Any] = {"from_id": a, "to_id": b, "type": "relation",
                                   "direction": r.choice(("right", "left", "bi"))}
            if r.random() < 0.6:
                rel["labels"] = r.sample(("pair", "part-of", "same"), r.randint(1, 2))
            out.append(rel)
        return out

    # -- images ----------------------------------------------------------------------------
    def image_data(self) -> dict:
        data: dict[str, Any] = {"image": f"s3://bucket/images/img_{self.task_id:07d}.jpg"}
        if self.r.random() < 0.4:
            data["caption"] = self.tricky()
        if self.r.random() < 0.3:  # nested arrays of objects with their own "id" keys
            data["views"] = [{"id": i, "url": f"s3://bucket/views/{self.task_id}_{i}.jpg",
                              "tags": [{"id": self.r.randint(1, 9), "name": self.tricky()}]}
                             for i in range(self.r.randint(1, 4))]
        return data

    def image_results(self, data: dict) -> list:
        r = self.r
        w, h = r.choice(((640, 480), (1920, 1080), (500, 320), (4032, 3024)))
        img = {"original_width": w, "original_height": h, "image_rotation": 0}
        out: list[dict] = []
        ids: list[str] = []
        for _ in range(r.randint(1, 8)):
            rid = self.rid()
            ids.append(rid)
            shape = r.random()
            if shape < 0.55:
                geo = {"x": r.random() * 80, "y": r.random() * 80, "width": r.random() * 20,
                       "height": r.random() * 20, "rotation": r.choice((0, 0, 0, r.random() * 360))}
                out.append(self.result("rectanglelabels", "label", "image",
                                       {**geo, "rectanglelabels": [r.choice(IMAGE_LABELS)]},
                                       rid, **img))
                if r.random() < 0.4:  # per-region textarea: same id, geometry copied in
                    out.append(self.result("textarea", "region_text", "image",
                                           {**geo, "text": [self.tricky()]}, rid, **img))
            elif shape < 0.8:
                pts = [[r.random() * 100, r.random() * 100] for _ in range(r.randint(3, 20))]
                out.append(self.result("polygonlabels", "poly", "image",
                                       {"points": pts, "closed": True,
                                        "polygonlabels": [r.choice(IMAGE_LABELS)]}, rid, **img))
            else:
                more = dict(img)
                if len(ids) > 1 and r.random() < 0.5:
                    more["parentID"] = ids[0]
                out.append(self.result("keypointlabels", "kp", "image",
                                       {"x": r.random() * 100, "y": r.random() * 100,
                                        "width": 0.6, "keypointlabels": ["Nose"]}, rid, **more))
        out += self.relations(ids)
        if r.random() < 0.5:
            out.append(self.result("choices", "quality", "image",
                                   {"choices": [r.choice(("good", "blurry", "dark"))]},
                                   self.rid() if r.random() < 0.8 else None))
        return out

    # -- NER text --------------------------------------------------------------------------
    def text_data(self) -> dict:
        r = self.r
        parts = []
        for _ in range(r.randint(20, 120)):
            parts.append(r.choice(TRICKY) if r.random() < 0.05 else r.choice(WORDS))
        return {"text": " ".join(parts), "title": self.tricky()}

    def text_results(self, data: dict) -> list:
        r = self.r
        text = data["text"]
        cuts = sorted(r.sample(range(len(text) + 1), min(len(text) + 1, 2 * r.randint(1, 8))))
        out: list[dict] = []
        ids: list[str] = []
        for s, e in zip(cuts[::2], cuts[1::2]):
            rid = self.rid()
            ids.append(rid)
            out.append(self.result("labels", "label", "text",
                                   {"start": s, "end": e, "text": text[s:e],
                                    "labels": [r.choice(NER_LABELS)]}, rid))
        return out + self.relations(ids)

    # -- video -----------------------------------------------------------------------------
    def video_results(self, data: dict) -> list:
        r = self.r
        fps = r.choice((24.0, 25.0, 29.97, 30.0))
        count = r.randint(300, 5000)
        out = []
        for _ in range(r.randint(1, 4)):
            seq = []
            frame = r.randint(1, 50)
            x, y, w, h = r.random() * 60, r.random() * 60, 5 + r.random() * 30, 5 + r.random() * 30
            interpolated = r.random() < 0.2
            for _ in range(r.randint(10, 150)):
                x += r.random() - 0.5
                y += r.random() - 0.5
                kf: dict[str, Any] = {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                                      "frame": frame, "enabled": r.random() < 0.95,
                                      "time": frame / fps}
                if interpolated and seq and r.random() < 0.5:
                    kf["auto"] = True
                seq.append(kf)
                frame += 1 if interpolated else 1 + int(r.random() * 30)
            if r.random() < 0.6:
                seq[-1]["enabled"] = False  # the track ends here
            frames_key = "framesCount" if r.random() < 0.95 else "frameCount"  # misspelt in test data
            value = {frames_key: count, "duration": count / fps, "sequence": seq,
                     "labels": [r.choice(VIDEO_LABELS)]}
            out.append(self.result("videorectangle", "box", "video", value, self.rid()))
        return out

    # -- classification --------------------------------------------------------------------
    def classification_data(self) -> dict:
        r = self.r
        return {"text": self.tricky(), "meta_info": {"source": "survey", "n": r.randint(1, 99),
                                                     "tags": [self.tricky()]}}

    def classification_results(self, data: dict) -> list:
        r = self.r

        def rid() -> str | None:
            return self.rid() if r.random() < 0.85 else None

        out = [self.result("choices", "sentiment", "text",
                           {"choices": r.sample(("Positive", "Negative", "Neutral"), r.randint(1, 2))},
                           rid())]
        if r.random() < 0.5:
            out.append(self.result("choices", "topic", "text",
                                   {"choices": [list(x) for x in r.sample(NESTED, r.randint(1, 2))]},
                                   rid()))
        if r.random() < 0.6:
            out.append(self.result("rating", "stars", "text", {"rating": r.randint(1, 5)}, rid()))
        if r.random() < 0.4:
            out.append(self.result("number", "confidence", "text",
                                   {"number": r.choice((r.random() * 10, r.randint(0, 10)))}, rid()))
        if r.random() < 0.4:
            out.append(self.result("taxonomy", "place", "text",
                                   {"taxonomy": [list(x) for x in r.sample(TAXONOMY, r.randint(1, 2))]},
                                   rid()))
        if r.random() < 0.5:
            out.append(self.result("textarea", "comment", "text",
                                   {"text": [self.tricky() for _ in range(r.randint(1, 3))]}, rid()))
        if r.random() < 0.2:
            out.append(self.result("datetime", "when", "text", {"datetime": self.ts()[0][:16]}, rid()))
        return out


def iter_tasks(seed: int = 1) -> Iterator[dict]:
    """The endless, deterministic stream of tasks that `generate` writes for `seed`."""
    gen = _Gen(seed)
    while True:
        yield gen.task()


class _Sink:
    """Buffered text-to-bytes writer that counts the uncompressed bytes written."""

    def __init__(self, path: Path, compress: bool) -> None:
        self.f: IO[bytes] = (gzip.open(path, "wb", compresslevel=1) if compress
                             else open(path, "wb"))
        self.parts: list[str] = []
        self.pending = 0
        self.written = 0

    def write(self, s: str) -> None:
        self.parts.append(s)
        self.pending += len(s)
        if self.pending >= CHUNK:
            self.flush()

    def flush(self) -> None:
        data = "".join(self.parts).encode()
        self.f.write(data)
        self.written += len(data)
        self.parts.clear()
        self.pending = 0

    def close(self) -> None:
        self.flush()
        self.f.close()


def _big_task(sink: _Sink, size_bytes: int, seed: int) -> None:
    """One task of about `size_bytes`: half a brush RLE list, half polygon results, streamed.

    Always compact, even with --pretty (a pretty-printed 100 MB RLE would be mostly spaces).
    """
    gen = _Gen(seed + 1_000_003)
    r = gen.r
    head = {"id": BIG_TASK_ID, "data": {"image": "s3://bucket/huge/mask.png", "caption": TRICKY[0]},
            "project": PROJECT_ID, "created_at": "2024-01-02T03:04:05.123456Z"}
    sink.write(_compact(head)[:-1] + ',"annotations":[{"id":1,"completed_by":1,"result":[')
    brush = {"id": "bigbrush01", "type": "brushlabels", "from_name": "mask", "to_name": "image",
             "original_width": 4000, "original_height": 3000, "image_rotation": 0,
             "value": {"format": "rle", "brushlabels": ["Sky"], "rle": None}}
    text = _compact(brush)
    cut = text.index("null")
    sink.write(text[:cut] + "[")
    start = sink.written + sink.pending
    first = True
    while sink.written + sink.pending - start < size_bytes // 2:
        sink.write(("" if first else ",") + ",".join(map(str, r.randbytes(50_000))))
        first = False
    sink.write("]" + text[cut + 4:])
    n = 1
    while sink.written + sink.pending - start < size_bytes:
        pts = [[r.random() * 100, r.random() * 100] for _ in range(r.randint(3, 40))]
        sink.write("," + _compact({"id": f"poly{n:07d}", "type": "polygonlabels",
                                   "from_name": "poly", "to_name": "image",
                                   "value": {"points": pts, "polygonlabels": ["Building"]}}))
        n += 1
    sink.write(f'],"result_count":{n},"was_cancelled":false}}],"predictions":[]}}')


def generate(path: str | os.PathLike, size_bytes: int, seed: int = 1, fmt: str = "array",
             pretty: bool = False, compress: bool = False, big_task_bytes: int = 0) -> int:
    """Write an export of at least `size_bytes` (uncompressed) to `path`; returns the task count.

    fmt: 'array' (one JSON array), 'ndjson' (one task per line) or 'object-folder' (`path` is a
    folder holding one `<task id>.json` file per task). `big_task_bytes` adds a first task of
    about that size (id 1). The tasks after it are `iter_tasks(seed)`, stopping once the size is
    reached (at least one task unless only the big task was asked for).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    encode = _pretty if pretty else _compact
    path = Path(path)
    suffix = ".json.gz" if compress else ".json"
    tasks = iter_tasks(seed)
    count = 0
    if fmt == "object-folder":
        path.mkdir(parents=True, exist_ok=True)
        written = 0
        if big_task_bytes:
            sink = _Sink(path / f"{BIG_TASK_ID}{suffix}", compress)
            _big_task(sink, big_task_bytes, seed)
            sink.close()
            written, count = sink.written, 1
        while written < size_bytes or count == 0:
            task = next(tasks)
            sink = _Sink(path / f"{task['id']}{suffix}", compress)
            sink.write(encode(task))
            sink.close()
            written += sink.written
            count += 1
        return count
    sink = _Sink(path, compress)
    try:
        if fmt == "array":
            sink.write("[\n  " if pretty else "[")
        comma = {"array": ",\n  " if pretty else ",", "ndjson": "\n"}[fmt]
        if big_task_bytes:
            _big_task(sink, big_task_bytes, seed)
            count = 1
        while sink.written + sink.pending < size_bytes or count == 0:
            text = encode(next(tasks))
            if pretty:  # indented under the array; in NDJSON a task stays on one line
                text = text.replace("\n", "\n  " if fmt == "array" else " ")
            sink.write(comma + text if count else text)
            count += 1
        sink.write(("\n]\n" if pretty else "]\n") if fmt == "array" else "\n")
    finally:
        sink.close()
    return count


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=None,
                   help="uncompressed size to reach, e.g. 10MB, 200MB, 1GB, 4GB (default 10MB, "
                        "or only the big task with --big-task)")
    p.add_argument("-o", "--output", required=True, help="file to write (a folder for object-folder)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--format", choices=FORMATS, default="array")
    p.add_argument("--pretty", action="store_true", help="indent like a pretty-printed export")
    p.add_argument("--gzip", action="store_true", help="gzip the output (each file in a folder)")
    p.add_argument("--big-task", type=float, default=0, metavar="MB",
                   help="first write one single task of this many MB (brush RLE + many polygons)")
    a = p.parse_args(argv)
    size = a.size if a.size is not None else (0 if a.big_task else parse_size("10MB"))
    t0 = time.perf_counter()
    n = generate(a.output, size, seed=a.seed, fmt=a.format, pretty=a.pretty, compress=a.gzip,
                 big_task_bytes=int(a.big_task * 1e6))
    secs = time.perf_counter() - t0
    out = Path(a.output)
    on_disk = (sum(f.stat().st_size for f in out.iterdir()) if out.is_dir() else out.stat().st_size)
    print(f"wrote {n:,} tasks, {on_disk / 1e6:,.1f} MB on disk to {a.output} in {secs:.1f}s "
          f"({max(size, on_disk) / 1e6 / secs:,.1f} MB/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
