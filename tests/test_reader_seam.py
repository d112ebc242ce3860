"""The reader seam: a platform reader fills column buffers in memory, with no file, no
sniffing and no read loop (what the compiled core plugs into); full batches leave the
buffers only through their sink."""
from __future__ import annotations

import json

import pyarrow as pa

from stream.buffers import TableBuffers
from stream.formats import PLATFORMS
from stream.formats.reader import FormatReader

LS_TASK = {
    "id": 7, "project": 3, "data": {"image": "a.png"}, "predictions": [],
    "annotations": [{"id": 70, "completed_by": 5, "result": [
        {"id": "r1", "type": "rectanglelabels", "from_name": "box", "to_name": "image",
         "value": {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, "rotation": 0,
                   "rectanglelabels": ["Cat"]}},
        {"type": "relation", "from_id": "r1", "to_id": "r1", "direction": "right"}]}]}

DL_ITEM = {
    "id": "i1", "datasetId": "d1", "filename": "/a.jpg",
    "metadata": {"system": {"mimetype": "image/jpeg", "width": 100, "height": 50}},
    "annotations": [{"id": "a1", "type": "box", "label": "Dog",
                     "coordinates": [{"x": 1, "y": 2}, {"x": 11, "y": 22}],
                     "metadata": {"system": {"objectId": "o1"}}}]}


def _rows(tables: dict[str, pa.Table], name: str) -> list[dict]:
    return tables[name].to_pylist()


def test_a_label_studio_task_becomes_rows_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bufs = TableBuffers()
    reader: FormatReader = PLATFORMS["labelstudio"](bufs)
    reader.add(LS_TASK, "mem.json", 4, "array")
    tables = bufs.take()
    assert list(tmp_path.iterdir()) == []  # nothing was written anywhere

    [task] = _rows(tables, "tasks")
    assert (task["source"], task["task_id"], task["project_id"], task["file"], task["position"],
            task["container"]) == ("labelstudio", "7", "3", "mem.json", 4, "array")
    assert json.loads(task["data"]) == LS_TASK["data"]
    assert task["list_keys"] == ["predictions", "annotations"]  # input key order
    [ann] = _rows(tables, "annotations")
    assert (ann["annotation_id"], ann["completed_by"], ann["kind"], ann["file"],
            ann["task_position"], ann["position"]) == ("70", "5", "annotation", "mem.json", 4, 0)
    [res] = _rows(tables, "results")
    value = LS_TASK["annotations"][0]["result"][0]["value"]
    assert (res["region_id"], res["type"], res["labels"], res["annotation_id"],
            res["annotation_position"], res["task_position"], res["position"]) == (
        "r1", "rectanglelabels", value["rectanglelabels"], "70", 0, 4, 0)
    assert (res["x"], res["y"], res["width"], res["height"], res["unit"]) == (
        value["x"], value["y"], value["width"], value["height"], "percent")
    assert json.loads(res["value"]) == value
    [rel] = _rows(tables, "relations")
    assert (rel["from_id"], rel["to_id"], rel["direction"], rel["position"],
            rel["annotation_id"], rel["file"]) == ("r1", "r1", "right", 1, "70", "mem.json")
    assert tables["keyframes"].num_rows == 0


def test_a_dataloop_item_becomes_rows_in_memory():
    bufs = TableBuffers()
    PLATFORMS["dataloop"](bufs).add(DL_ITEM, "items/a.json", 0, "object")
    tables = bufs.take()
    [task] = _rows(tables, "tasks")
    assert (task["source"], task["task_id"], task["project_id"], task["mimetype"],
            task["width"], task["height"]) == ("dataloop", "i1", "d1", "image/jpeg", 100, 50)
    [res] = _rows(tables, "results")
    (x1, y1), (x2, y2) = [(p["x"], p["y"]) for p in DL_ITEM["annotations"][0]["coordinates"]]
    assert (res["region_id"], res["annotation_id"], res["labels"], res["type"]) == (
        "o1", "a1", ["Dog"], "box")
    assert (res["x"], res["y"], res["width"], res["height"], res["unit"]) == (
        x1, y1, x2 - x1, y2 - y1, "pixel")


def test_full_batches_leave_through_the_sink_and_a_rollback_drops_a_task():
    sent: list[tuple[str, int]] = []
    bufs = TableBuffers(batch_rows=2, sink=lambda name, rows: sent.append((name, rows.num_rows)))
    reader = PLATFORMS["labelstudio"](bufs)
    for position in range(3):
        marks = bufs.mark()
        reader.add({**LS_TASK, "id": position}, "mem.json", position, "array")
        if position == 1:
            bufs.rollback(marks)  # as the read loop does for a skipped bad task
        bufs.maybe_flush()
    # tasks 0 and 2 are kept: the second makes a batch of 2 task rows, sent as it fills
    assert ("tasks", 2) in sent and ("annotations", 2) in sent
    assert bufs.take()["tasks"].num_rows == 0
    bufs.flush()  # the rest (nothing here) goes to the sink too
    assert sum(n for name, n in sent if name == "tasks") == 2


def test_many_small_arrow_tables_are_joined_in_order():
    """One-task files give the buffers one small Arrow table each (the compiled core): they
    are joined as they come, so a batch holds few chunks however many files it spans, and the
    rows keep their order."""
    out = TableBuffers()
    schema = out["tasks"].table.schema
    n = 1000
    for i in range(n):
        row = {name: [None] for name in schema.names}
        row["position"], row["task_id"] = [i], [f"t{i}"]
        out.extend({"tasks": pa.Table.from_pydict(row, schema=schema)})
    taken = out.take()["tasks"]
    assert taken.column("position").to_pylist() == list(range(n))
    assert taken.column("task_id").to_pylist() == [f"t{i}" for i in range(n)]
    assert taken.column("position").num_chunks < 64 + n // 64
