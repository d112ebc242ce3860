"""Dataloop items to rows (docs/formats.md part B), into the same five tables as Label Studio,
and back (`rebuild_item`, at the end).

`Dataloop.add` turns one parsed item (or one element of a text-classification JSON) into rows,
writing straight into column buffers like the Label Studio reader. Where each key goes, and
how a later reader rebuilds the item JSON from the tables (the restoring rule of
stream/tables.py applies; `extra[key]` always wins over a typed column):

Item (one `tasks` row, form 'item'; container 'array', 'object' (one item per file or NDJSON
lines) or 'wrapper' (the docs' `{"annotations": [items]}`)):
  id -> task_id.  Old shape: `_id` stays in `extra` and task_id copies it, with "id" listed
      in extra["~absent"]; neither -> synthetic '~<file>#<position>', "id" in "~absent".
  datasetId -> project_id.  createdAt, updatedAt -> created_at, updated_at (3 fraction digits
      and 'Z' restore exactly; other spellings stay in `extra` too).
  filename, dir, name, url, stream, thumbnail -> `data` JSON (only the keys present).
  metadata -> `meta` JSON, whole.  Old shape: `itemMetadata` stays in `extra`, `meta` copies
      it and "metadata" is listed in "~absent".
  annotations (a list) -> annotation rows, list_keys = ['annotations']; any other value (the
      API's URL string) stays in `extra`.
  everything else (type, hidden, creator, updatedBy, annotationsCount, annotated, dataset,
      description, spec, ...) -> `extra`.
  Copies for queries, never used to rebuild: media_name (`name`), mimetype, width, height
  (`metadata.system`), fps (`metadata.fps`, else `metadata.system.fps`, else
  `metadata.system.ffmpeg.avg_frame_rate` such as "25/1"), duration (`metadata.system.duration`).
  `meta` keeps them too: fps has three sources that can disagree (docs/formats.md B7).

Annotation (one `annotations` row + one `results` row; every key lands in exactly one of them):
  annotations row: id -> annotation_id (`_id` and missing ids as for items, synthetic
      '~<task_id>/a<position>'); creator -> completed_by; updatedBy -> updated_by;
      source -> origin; createdAt, updatedAt -> created_at, updated_at; every key not named
      here or under the results row (datasetId, itemId, url, item, dataset, hash, unknown
      keys) -> annotations.extra.  `automated` copies metadata.system.automated and
      completed_by_email copies `creator` when it is an email (as Label Studio's column).
  results row (position 0, kind 'annotation'): type -> type; label -> labels = [label];
      coordinates -> `value` JSON, whole (absent -> NULL); attributes, metadata, description,
      labelSuggestions -> results.extra (`metadata` whole, except that `system.snapshots_` is
      removed when it became keyframe rows, see below).
  Copies for queries: region_id = metadata.system.objectId, else the annotation id;
  parent_id = metadata.system.parentId; attributes = metadata.system.attributes (v2 dict)
  when non-empty, else the top-level `attributes` (v1 list) as written; geometry in pixels
  (unit 'pixel') from the coordinates by type:
      box: x, y = left, top; width, height = right - left, bottom - top (of the first two
           points); rotation = a bare number third element (degrees);
      segment, polygon, polyline: points = ring 0 (or the flat list of points);
      point: x, y;  ellipse: x, y = centre, width = 2*rx, height = 2*ry, rotation = angle;
      cube: points = the eight corners (front_tl, front_tr, front_br, front_bl, back_*),
           rotation = angle;  note: the box under `box`;
  text_mark: span_start, span_end = start, end;  text (a bare string), subtitle and
  item_description (`{text}`): text;  time_start, time_end = metadata.system.startTime,
  endTime for subtitles and on video/audio items;  frame_start, frame_end = metadata.system
  frame, endFrame (inclusive) on video items only.  Other types (class, binary, pose, gis,
  unknown ones) keep only `value`.

Video tracks (items whose mimetype is video/*, never guessed from endFrame) whose
metadata.system.snapshots_ is a list: keyframes position 0 is the track's start state,
derived from the annotation (frame = metadata.system.frame, label, geometry from
coordinates, enabled = true) and never used to rebuild; positions 1.. are the snapshots in
order. Snapshot keys: frame -> frame, objectVisible -> enabled, label -> label, fixed -> fixed,
type -> type (as written: the annotation type or 'LINEAR'/'ATTRIBUTE_CHANGE'); everything
else (data, attributes, namedAttributes, ...) -> keyframes.extra. Copies: geometry from `data`
parsed by the annotation's type; attributes = namedAttributes when non-empty, else
attributes; time = frame / item fps. Rebuild: metadata.system.snapshots_ = the snapshot rows
in position order, each extra + its typed keys.

Text-classification JSON (`"shebang": "dataloop"` with `elements`; container 'elements'):
every element is a tasks row, form 'element' when `annotatable` is true, else 'context'
(kept so nothing is lost; filter on form for the annotatable ones); data = the element
object whole; meta = the document's other top-level keys (shebang, metadata, formatting);
task_id = '~<file>#<position>'. The document is one item's content, held whole.

A V3 export manifest (`manifestVersion`, `exportId`, `partitioning`; it has a `datasetId` too)
is recognised by content and skipped with a log line: it lists the partition files and holds
no items; the partitions are read like any NDJSON input (give the export folder).

Rebuilding a file: container 'array' -> [items by position]; 'wrapper' -> {"annotations":
[items]}; 'object' -> one item per file, or one NDJSON line per item in position order.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..buffers import TableBuffers
from ..depth import Limited
from ..errors import AnnostreamError, InputError, TaskError
from ..numbers import kvitems
from .common import (
    ABSENT,
    BOOL,
    INT,
    STR,
    AnnotationRows,
    TaskRows,
    child_list,
    dumps,
    extra_of,
    fill_plain,
    fill_ts,
    finish,
    id_fit,
    is_num,
    jtype,
    load_cell,
    plain_object,
    restore_plain,
    restore_times,
    row_extra,
    set_link,
)

SOURCE = "dataloop"
TS_DIGITS = 3  # Dataloop writes milliseconds: 2022-06-07T09:13:41.000Z

DATA_KEYS = ("filename", "dir", "name", "url", "stream", "thumbnail")
ITEM_KNOWN = frozenset(DATA_KEYS) | {"id", "datasetId", "createdAt", "updatedAt", "metadata",
                                     "annotations"}
ITEM_MARKERS = frozenset({"id", "_id", "filename"})
ANNOTATION_PLAIN = (("creator", "completed_by", STR), ("updatedBy", "updated_by", STR),
                    ("source", "origin", STR))
RESULT_KEYS = ("attributes", "metadata", "description", "labelSuggestions")  # -> results.extra
ANNOTATION_KNOWN = (frozenset(k for k, _, _ in ANNOTATION_PLAIN) | set(RESULT_KEYS)
                    | {"id", "createdAt", "updatedAt", "type", "label", "coordinates"})
SNAPSHOT_PLAIN = (("frame", "frame", INT), ("objectVisible", "enabled", BOOL),
                  ("label", "label", STR), ("fixed", "fixed", BOOL), ("type", "type", STR))
SNAPSHOT_KNOWN = frozenset(k for k, _, _ in SNAPSHOT_PLAIN)
CUBE_CORNERS = ("front_tl", "front_tr", "front_br", "front_bl",
                "back_tl", "back_tr", "back_br", "back_bl")
POLYGONS = frozenset({"segment", "polygon", "polyline"})
MISSING = object()  # a key absent from its object
TEXT_OBJECTS = frozenset({"subtitle", "item_description"})


def _point(p: Any) -> tuple[float, float] | None:
    if type(p) is dict:
        x, y = p.get("x"), p.get("y")
        if is_num(x) and is_num(y):
            return x, y
    return None


def _points(ring: Any) -> list[list[float]] | None:
    if type(ring) is not list or not ring:
        return None
    pts = [_point(p) for p in ring]
    return None if None in pts else [list(p) for p in pts if p is not None]


def geometry(c: dict, i: int, typ: Any, co: Any) -> bool:
    """Pixel geometry of one coordinates value into row i of the column maps `c` (x, y,
    width, height, rotation, points); True when something was filled."""
    if typ == "note" and type(co) is dict:
        typ, co = "box", co.get("box")
    if typ == "box":
        if type(co) is not list or len(co) < 2:
            return False
        a, b = _point(co[0]), _point(co[1])
        if a is None or b is None:
            return False
        c["x"][i], c["y"][i] = min(a[0], b[0]), min(a[1], b[1])
        c["width"][i], c["height"][i] = abs(b[0] - a[0]), abs(b[1] - a[1])
        if len(co) > 2 and is_num(co[2]):
            c["rotation"][i] = co[2]
        return True
    if typ in POLYGONS:
        ring = co[0] if type(co) is list and co and type(co[0]) is list else co
        pts = _points(ring)
        if pts is not None:
            c["points"][i] = pts
        return pts is not None
    if typ == "point":
        p = _point(co)
        if p is not None:
            c["x"][i], c["y"][i] = p
        return p is not None
    if type(co) is not dict:
        return False
    if typ == "ellipse":
        p, rx, ry = _point(co.get("center")), co.get("rx"), co.get("ry")
        if p is None or not is_num(rx) or not is_num(ry):
            return False
        c["x"][i], c["y"][i] = p
        c["width"][i], c["height"][i] = 2 * rx, 2 * ry
    elif typ == "cube":
        pts = _points([co[k] for k in CUBE_CORNERS if k in co])
        if pts is None:
            return False
        c["points"][i] = pts
    else:
        return False
    if is_num(co.get("angle")):
        c["rotation"][i] = co["angle"]
    return True


def attributes_of(v1: Any, v2: Any) -> Any:
    """The attributes a query wants: the v2 dict when it has entries, else v1 as written."""
    if type(v2) is dict and v2:
        return v2
    return v1


def media_fps(meta: dict, system: dict) -> float | None:
    """metadata.fps, else metadata.system.fps, else the ffmpeg average frame rate 'n/d'."""
    for v in (meta.get("fps"), system.get("fps")):
        if is_num(v) and v > 0:
            return float(v)
    ffmpeg = system.get("ffmpeg")
    rate = ffmpeg.get("avg_frame_rate") if type(ffmpeg) is dict else None
    if type(rate) is str:
        num, _, den = rate.partition("/")
        try:
            value = float(num) / float(den or 1)
        except (ValueError, ZeroDivisionError):
            return None
        return value if value > 0 else None
    return None


class Dataloop:
    """Writes Dataloop items (and text-classification elements) into a set of table buffers."""

    source = SOURCE

    def __init__(self, out: TableBuffers) -> None:
        self.out = out
        self.tasks, self.annotations = out["tasks"], out["annotations"]
        self.results, self.keyframes = out["results"], out["keyframes"]
        self.tcols = out.columns("tasks")
        self.acols = out.columns("annotations")
        self.rcols = out.columns("results")
        self.kcols = out.columns("keyframes")
        self.file, self.position = "", 0  # the item being added: its child rows' link
        self.link: tuple = ()  # the annotation being added: ANNOTATION_LINK of its rows

    def add(self, obj: Any, file: str, position: int, container: str) -> None:
        """One item (or, for container 'elements', one `(element, document meta)` pair)."""
        if container == "elements":
            self._element(obj[0], obj[1], file, position)
            return
        if type(obj) is not dict:
            raise TaskError(f"expected a Dataloop item object, got {jtype(obj)}")
        if ITEM_MARKERS.isdisjoint(obj):
            raise TaskError("not a Dataloop item: the object has none of 'id', '_id', 'filename'")
        self.file, self.position = file, position
        self._item(obj, file, position, container)

    # -- items ------------------------------------------------------------------------------
    def _item(self, item: dict, file: str, position: int, container: str) -> None:
        c, i = self.tcols, self.tasks.n
        extra = extra_of(item, ITEM_KNOWN)
        task_id = _id(item, c["task_id"], i, extra, f"~{file}#{position}")
        if "datasetId" in item:
            c["project_id"][i], keep = id_fit(item["datasetId"], False)
            if keep:
                extra["datasetId"] = item["datasetId"]
        c["source"][i] = SOURCE
        c["position"][i] = position
        c["file"][i] = file
        c["container"][i] = container
        c["form"][i] = "item"
        c["data"][i] = dumps({k: item[k] for k in DATA_KEYS if k in item})
        key = next((k for k in ("metadata", "itemMetadata") if k in item), None)
        meta = item[key] if key else None
        if key:
            c["meta"][i] = dumps(meta)
            if key == "itemMetadata":  # old shape: the original stays in `extra`
                extra.setdefault(ABSENT, []).append("metadata")
        fill_ts(item, "createdAt", c["created_at"], i, extra, TS_DIGITS)
        fill_ts(item, "updatedAt", c["updated_at"], i, extra, TS_DIGITS)
        if type(item.get("name")) is str:
            c["media_name"][i] = item["name"]
        meta = meta if type(meta) is dict else {}
        system = meta.get("system")
        system = system if type(system) is dict else {}
        mimetype = system.get("mimetype")
        if type(mimetype) is str:
            c["mimetype"][i] = mimetype
        else:
            mimetype = ""
        for key in ("width", "height"):
            if type(system.get(key)) is int:
                c[key][i] = system[key]
        fps = media_fps(meta, system)
        c["fps"][i] = fps
        if is_num(system.get("duration")):
            c["duration"][i] = system["duration"]
        annotations = child_list(item, "annotations", c, i, extra)
        c["extra"][i] = dumps(extra) if extra else "{}"
        self.tasks.n += 1
        if annotations is not None:
            video = mimetype.startswith("video/")
            timed = video or mimetype.startswith("audio/")
            for p, ann in enumerate(annotations):
                self._annotation(ann, task_id, p, video, timed, fps)

    def _element(self, el: Any, meta: str, file: str, position: int) -> None:
        if type(el) is not dict:
            raise TaskError(f"element {position} is {jtype(el)}, expected an object")
        c, i = self.tcols, self.tasks.n
        c["source"][i] = SOURCE
        c["task_id"][i] = f"~{file}#{position}"
        c["position"][i] = position
        c["file"][i] = file
        c["container"][i] = "elements"
        c["form"][i] = "element" if el.get("annotatable") is True else "context"
        c["data"][i] = dumps(el)
        c["meta"][i] = meta
        c["list_keys"][i] = []
        c["extra"][i] = "{}"
        self.tasks.n += 1

    # -- annotations: one annotations row and one results row each -----------------------------
    def _annotation(self, ann: Any, task_id: str, p: int, video: bool, timed: bool,
                    fps: float | None) -> None:
        if type(ann) is not dict:
            raise TaskError(f"annotation {p} is {jtype(ann)}, expected an object")
        c, i = self.acols, self.annotations.n
        extra = extra_of(ann, ANNOTATION_KNOWN)
        aid = _id(ann, c["annotation_id"], i, extra, f"~{task_id}/a{p}")
        set_link(c, i, (SOURCE, task_id, self.file, self.position, "annotation"))
        c["position"][i] = p
        self.link = (SOURCE, task_id, self.file, self.position, "annotation", aid, p)
        c["form"][i] = "object"
        fill_plain(ann, ANNOTATION_PLAIN, c, i, extra)
        creator = c["completed_by"].get(i)
        if creator is not None and "@" in creator:  # Dataloop users are emails
            c["completed_by_email"][i] = creator
        fill_ts(ann, "createdAt", c["created_at"], i, extra, TS_DIGITS)
        fill_ts(ann, "updatedAt", c["updated_at"], i, extra, TS_DIGITS)
        md = ann.get("metadata")
        system = md.get("system") if type(md) is dict else None
        system = system if type(system) is dict else {}
        if type(system.get("automated")) is bool:
            c["automated"][i] = system["automated"]
        c["list_keys"][i] = []
        c["extra"][i] = dumps(extra) if extra else "{}"
        self.annotations.n += 1
        self._result(ann, task_id, aid, system, video, timed, fps)

    def _result(self, ann: dict, task_id: str, aid: str, system: dict, video: bool,
                timed: bool, fps: float | None) -> None:
        c, i = self.rcols, self.results.n
        extra = {k: ann[k] for k in RESULT_KEYS if k in ann}
        typ = ann.get("type")
        if type(typ) is str:
            c["type"][i] = typ
        elif "type" in ann:  # kept as is; no geometry can be read without a type name
            extra["type"] = typ
            typ = None
        label = ann.get("label")
        if type(label) is str:
            c["labels"][i] = [label]
        elif "label" in ann:
            extra["label"] = label
        oid, _ = id_fit(system.get("objectId"), False)
        rid = oid if oid is not None else aid
        set_link(c, i, self.link)
        c["region_id"][i] = rid
        c["position"][i] = 0
        if type(system.get("parentId")) is str:
            c["parent_id"][i] = system["parentId"]
        attributes = attributes_of(ann.get("attributes", MISSING), system.get("attributes"))
        if attributes is not MISSING:
            c["attributes"][i] = dumps(attributes)
        co = ann.get("coordinates")
        if "coordinates" in ann:
            c["value"][i] = dumps(co)
        if geometry(c, i, typ, co):
            c["unit"][i] = "pixel"
        elif typ == "text_mark" and type(co) is dict:
            if type(co.get("start")) is int and type(co.get("end")) is int:
                c["span_start"][i], c["span_end"][i] = co["start"], co["end"]
        elif typ == "text" and type(co) is str:
            c["text"][i] = co
        elif typ in TEXT_OBJECTS and type(co) is dict and type(co.get("text")) is str:
            c["text"][i] = co["text"]
        if timed or typ == "subtitle":
            for key, col in (("startTime", "time_start"), ("endTime", "time_end")):
                if is_num(system.get(key)):
                    c[col][i] = system[key]
        snapshots = system.get("snapshots_") if video else None
        if video:
            for key, col in (("frame", "frame_start"), ("endFrame", "frame_end")):
                if type(system.get(key)) is int:
                    c[col][i] = system[key]
        if type(snapshots) is list:
            extra["metadata"] = {**ann["metadata"], "system": {
                k: v for k, v in system.items() if k != "snapshots_"}}
        c["extra"][i] = dumps(extra) if extra else "{}"
        self.results.n += 1
        if type(snapshots) is list:
            self._keyframes(snapshots, ann, system, task_id, aid, rid, typ, fps, attributes)

    # -- video tracks ---------------------------------------------------------------------------
    def _keyframes(self, snapshots: list, ann: dict, system: dict, task_id: str, aid: str,
                   rid: str, typ: Any, fps: float | None, attributes: Any) -> None:
        c = self.kcols
        for p in range(len(snapshots) + 1):
            i = self.keyframes.n
            set_link(c, i, self.link)
            c["region_id"][i] = rid
            c["result_position"][i] = 0
            c["position"][i] = p
            if p == 0:  # the start state lives in the annotation itself
                frame = system.get("frame")
                if type(frame) is int:
                    c["frame"][i] = frame
                c["enabled"][i] = True
                if type(ann.get("label")) is str:
                    c["label"][i] = ann["label"]
                if attributes is not MISSING:
                    c["attributes"][i] = dumps(attributes)
                geometry(c, i, typ, ann.get("coordinates"))
                c["extra"][i] = "{}"
            else:
                snap = snapshots[p - 1]
                if type(snap) is not dict:
                    raise TaskError(f"annotation {aid}: snapshot {p - 1} is {jtype(snap)}, "
                                    "expected an object")
                extra = extra_of(snap, SNAPSHOT_KNOWN)
                fill_plain(snap, SNAPSHOT_PLAIN, c, i, extra)
                snap_attributes = attributes_of(snap.get("attributes", MISSING),
                                                snap.get("namedAttributes"))
                if snap_attributes is not MISSING:
                    c["attributes"][i] = dumps(snap_attributes)
                geometry(c, i, typ, snap.get("data"))
                frame = snap.get("frame")
                c["extra"][i] = dumps(extra) if extra else "{}"
            if fps and type(frame) is int:
                c["time"][i] = frame / fps
            self.keyframes.n += 1


def _id(obj: dict, col: dict, i: int, extra: dict, synthetic: str) -> str:
    """`id` into its text column; the old `_id` (left in `extra`) or `synthetic` stand in."""
    v = obj.get("id")
    text, keep = id_fit(v, False)
    if "id" in obj and keep:
        extra["id"] = v
    if text is None:
        if "id" not in obj:
            extra.setdefault(ABSENT, []).append("id")
        text, _ = id_fit(obj.get("_id"), False)
        if text is None:
            text = synthetic
    col[i] = text
    return text


def read_elements(reader: Limited, name: str) -> Iterator[tuple[dict, str]]:
    """Yield `(element, document meta JSON)` per element of a text-classification JSON."""
    doc: dict = {}
    elements = None
    for key, value in kvitems(reader, ""):  # bounded: one item's content
        if key == "elements":
            elements = value
        else:
            doc[key] = value
    if type(elements) is not list:
        meta = doc.get("metadata")
        dltype = meta.get("dltype") if type(meta) is dict else None
        raise InputError(name, "a Dataloop 'shebang' JSON without an 'elements' list "
                               f"(dltype {dltype!r}) is item content, not an export", offset=0)
    meta = dumps(doc)
    for el in elements:
        yield el, meta


# -- the way back: Dataloop objects rebuilt from rows (export; the key map above) -------------

TIMES = (("createdAt", "created_at"), ("updatedAt", "updated_at"))


def rebuild_item(task: TaskRows) -> dict:
    """The item object as it was read."""
    t = task.row
    obj: dict = {"id": t["task_id"]}
    if t.get("project_id") is not None:
        obj["datasetId"] = t["project_id"]
    obj.update(load_cell(t["data"]))
    if t.get("meta") is not None:
        obj["metadata"] = load_cell(t["meta"])
    restore_times(obj, t, TIMES, TS_DIGITS)
    if "annotations" in (t.get("list_keys") or ()):
        if [a.row["position"] for a in task.annotations] != list(range(len(task.annotations))):
            raise AnnostreamError(f"item {t['task_id']!r}: annotation positions have gaps")
        obj["annotations"] = [rebuild_annotation(a) for a in task.annotations]
    return finish(obj, t)


def rebuild_annotation(a: AnnotationRows) -> dict:
    """The annotation from its annotations row and its one results row (and the snapshots of
    a video track from keyframes 1..; keyframe 0 is derived from the annotation itself)."""
    r = a.row
    if len(a.results) != 1:
        raise AnnostreamError(f"annotation {r['annotation_id']!r}: {len(a.results)} result rows")
    res = a.results[0]
    obj: dict = {"id": r["annotation_id"]}
    restore_plain(obj, r, ANNOTATION_PLAIN)
    restore_times(obj, r, TIMES, TS_DIGITS)
    if res.get("type") is not None:
        obj["type"] = res["type"]
    if res.get("labels") is not None:
        obj["label"] = res["labels"][0]
    if res.get("value") is not None:
        obj["coordinates"] = load_cell(res["value"])
    obj.update(row_extra(res))
    if a.keyframes:
        obj["metadata"]["system"]["snapshots_"] = [
            finish(plain_object(k, SNAPSHOT_PLAIN), k) for k in a.keyframes if k["position"]]
    return finish(obj, r)


def rebuild_element(task: TaskRows) -> tuple[dict, Any]:
    """(the text-classification document's other keys, this element)."""
    return load_cell(task.row["meta"]), load_cell(task.row["data"])
