"""Label Studio tasks to rows (docs/formats.md part A), and back.

`LabelStudio.add` turns one parsed task object into rows of the five tables. It is the hot
path of a conversion: values go straight into column buffers, with no per-row dicts beyond
the `extra` object of keys that have no typed column. `rebuild_task` is the way back (export),
next to the key maps both directions share.
"""
from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, overload

from ..buffers import TableBuffers
from ..errors import AnnostreamError, TaskError
from .common import (
    ABSENT,
    ANNOTATION_LINK,
    BOOL,
    EXACT_INT,
    INT,
    LISTED,
    NONE,
    NUM,
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
    jtype,
    load_cell,
    num_fit,
    plain_object,
    point_rows,
    restore_id,
    restore_plain,
    restore_times,
    row_extra,
    set_link,
    str_list,
)

SOURCE = "labelstudio"
TS_DIGITS = 6  # Label Studio writes microseconds: 2021-03-09T21:52:49.513742Z

# (input key, column, accepted JSON types): plain typed keys of each object kind.
TASK_PLAIN = (("total_annotations", "total_annotations", INT),
              ("cancelled_annotations", "cancelled_annotations", INT),
              ("total_predictions", "total_predictions", INT))
ANNOTATION_PLAIN = (("was_cancelled", "was_cancelled", BOOL),
                    ("ground_truth", "ground_truth", BOOL), ("lead_time", "lead_time", NUM),
                    ("model_version", "model_version", STR),
                    ("score", "score", NUM), ("result_count", "result_count", INT))
RESULT_PLAIN = (("from_name", "from_name", STR), ("to_name", "to_name", STR),
                ("type", "type", STR), ("origin", "origin", STR), ("score", "score", NUM),
                ("parentID", "parent_id", STR), ("readonly", "readonly", BOOL),
                ("original_width", "original_width", INT),
                ("original_height", "original_height", INT),
                ("image_rotation", "image_rotation", NUM))
RELATION_PLAIN = (("from_id", "from_id", STR), ("to_id", "to_id", STR),
                  ("direction", "direction", STR))
KEYFRAME_PLAIN = (("frame", "frame", INT), ("time", "time", NUM), ("enabled", "enabled", BOOL),
                  ("x", "x", NUM), ("y", "y", NUM), ("width", "width", NUM),
                  ("height", "height", NUM), ("rotation", "rotation", NUM),
                  ("auto", "auto", BOOL))
# Keys handled by code rather than by the tables above.
TASK_SPECIAL = frozenset({"id", "project", "data", "meta", "created_at", "updated_at"})
ANNOTATION_SPECIAL = frozenset({"id", "completed_by", "created_at", "updated_at", "updated_by",
                                "result"})
RESULT_SPECIAL = frozenset({"id", "value"})
LISTS = (("annotations", "annotation"), ("completions", "annotation"),
         ("predictions", "prediction"), ("drafts", "draft"))
LIST_KEYS = frozenset(k for k, _ in LISTS)
GEOMETRY = ("x", "y", "width", "height", "rotation")


def _known(plain: tuple, special: frozenset) -> frozenset:
    return frozenset(k for k, _, _ in plain) | special


TASK_KNOWN = _known(TASK_PLAIN, TASK_SPECIAL) | LIST_KEYS
ANNOTATION_KNOWN = _known(ANNOTATION_PLAIN, ANNOTATION_SPECIAL)
RESULT_KNOWN = _known(RESULT_PLAIN, RESULT_SPECIAL)
RELATION_KNOWN = _known(RELATION_PLAIN, frozenset({"labels", "type"}))  # type is "relation"
KEYFRAME_KNOWN = _known(KEYFRAME_PLAIN, frozenset())
GEOMETRY_KEYS = frozenset(GEOMETRY) | {"points"}
TIME_TYPES = frozenset({"timeserieslabels"})


def _choices(ch: list) -> list[str | None] | None:
    """Choices as they are, a taxonomy path (a list of strings) joined with ' > '; None (the
    column null) when an item is of another shape (see `str_list`)."""
    out = []
    for x in ch:
        if type(x) is list:
            if str_list(x) is None:
                return None
            x = " > ".join(x)
        elif x is not None and type(x) is not str:
            return None
        out.append(x)
    return out


class LabelStudio:
    """Writes Label Studio tasks into a set of table buffers."""

    source = SOURCE

    def __init__(self, out: TableBuffers) -> None:
        self.out = out
        self.tasks, self.annotations = out["tasks"], out["annotations"]
        self.results, self.relations, self.keyframes = (out["results"], out["relations"],
                                                        out["keyframes"])
        self.tcols = out.columns("tasks")
        self.acols = out.columns("annotations")
        self.rcols = out.columns("results")
        self.relcols = out.columns("relations")
        self.kcols = out.columns("keyframes")
        self.file, self.position = "", 0  # the task being added: its child rows' link
        self.link: tuple = ()  # the annotation being added: its result rows' ANNOTATION_LINK

    # -- tasks ------------------------------------------------------------------------------
    def add(self, obj: Any, file: str, position: int, container: str) -> None:
        """One task (or flat import object, or legacy storage annotation) into rows."""
        if type(obj) is not dict:
            raise TaskError(f"expected a task object, got {jtype(obj)}")
        self.file, self.position = file, position
        if "data" in obj:
            self._task(obj, file, position, container, "task")
        elif type(obj.get("task")) is dict and "result" in obj:
            task_id = self._task(obj["task"], file, position, container, "storage-annotation")
            ann = {k: v for k, v in obj.items() if k != "task"}
            self._annotation(ann, task_id, "annotation", -1)
        else:
            self._task({"data": obj}, file, position, container, "flat")

    def _task(self, task: dict, file: str, position: int, container: str, form: str) -> str:
        c, i = self.tcols, self.tasks.n
        extra = extra_of(task, TASK_KNOWN)
        task_id = self._id(task, "id", c["task_id"], i, extra,
                           lambda: f"~{file}#{position}", flag=form != "flat")
        self._id(task, "project", c["project_id"], i, extra)
        c["source"][i] = SOURCE
        c["position"][i] = position
        c["file"][i] = file
        c["container"][i] = container
        c["form"][i] = form
        if "data" in task:
            c["data"][i] = dumps(task["data"])
        if "meta" in task:
            c["meta"][i] = dumps(task["meta"])
        fill_ts(task, "created_at", c["created_at"], i, extra, TS_DIGITS)
        fill_ts(task, "updated_at", c["updated_at"], i, extra, TS_DIGITS)
        fill_plain(task, TASK_PLAIN, c, i, extra)
        lists = []
        for key in task:  # input order: list_keys restores the task's key order
            if key in LIST_KEYS:
                if type(task[key]) is list:
                    lists.append(key)
                elif task[key] is None:
                    extra[key] = None
                else:  # not an export: its annotations would silently go missing
                    raise TaskError(f"'{key}' is {jtype(task[key])}, expected a list")
        c["list_keys"][i] = lists
        c["extra"][i] = dumps(extra) if extra else "{}"
        self.tasks.n += 1
        both = "annotations" in lists and "completions" in lists  # one kind, two lists
        for key, kind in LISTS:
            if key in lists:
                listed = key if both and key == "completions" else None
                for p, ann in enumerate(task[key]):
                    self._annotation(ann, task_id, kind, p, listed)
        return task_id

    # -- annotations, predictions, drafts ---------------------------------------------------
    def _annotation(self, ann: Any, task_id: str, kind: str, position: int,
                    listed: str | None = None) -> None:
        c, i = self.acols, self.annotations.n
        set_link(c, i, (SOURCE, task_id, self.file, self.position, kind))
        c["position"][i] = position
        t = type(ann)
        if t is not dict:
            if t is not int and t is not str:
                raise TaskError(f"{kind} {position} is {jtype(ann)}, expected an object or an id")
            text, keep = id_fit(ann, True)
            c["annotation_id"][i] = text
            c["form"][i] = "id"
            extra = {"id": ann} if keep else {}
            if listed:
                extra[LISTED] = listed
            if extra:
                c["extra"][i] = dumps(extra)
            c["list_keys"][i] = []
            self.annotations.n += 1
            return
        extra = extra_of(ann, ANNOTATION_KNOWN)
        if listed:
            extra[LISTED] = listed
        aid = self._id(ann, "id", c["annotation_id"], i, extra,
                       lambda: f"~{task_id}/{(listed or kind)[0]}{position}")
        c["form"][i] = "object"
        if "completed_by" in ann:
            by = ann["completed_by"]
            if type(by) is dict:
                text, _ = id_fit(by.get("id"), True)
                c["completed_by"][i] = text
                if type(by.get("email")) is str:
                    c["completed_by_email"][i] = by["email"]
                extra["completed_by"] = by
            else:
                self._id(ann, "completed_by", c["completed_by"], i, extra)
        self._id(ann, "updated_by", c["updated_by"], i, extra)
        fill_ts(ann, "created_at", c["created_at"], i, extra, TS_DIGITS)
        fill_ts(ann, "updated_at", c["updated_at"], i, extra, TS_DIGITS)
        fill_plain(ann, ANNOTATION_PLAIN, c, i, extra)
        if "was_cancelled" not in ann and type(ann.get("skipped")) is bool:  # pre-1.0
            c["was_cancelled"][i] = ann["skipped"]
            extra.setdefault(ABSENT, []).append("was_cancelled")
        result = child_list(ann, "result", c, i, extra)
        c["extra"][i] = dumps(extra) if extra else "{}"
        self.annotations.n += 1
        if result is not None:
            self.link = (SOURCE, task_id, self.file, self.position, kind, aid, position)
            self._results(result, task_id, kind, aid)

    # -- result items -----------------------------------------------------------------------
    def _results(self, items: list, task_id: str, kind: str, aid: str) -> None:
        c = self.rcols
        for p, r in enumerate(items):
            if type(r) is not dict:
                raise TaskError(f"{kind} {aid}: result {p} is {jtype(r)}, expected an object")
            typ = r.get("type")
            if typ == "relation":
                self._relation(r, task_id, kind, aid, p)
                continue
            i = self.results.n
            extra = extra_of(r, RESULT_KNOWN)
            rid = self._id(r, "id", c["region_id"], i, extra,
                           lambda: f"~{p}", int_default=False)  # noqa: B023 (called at once)
            set_link(c, i, self.link)
            c["position"][i] = p
            fill_plain(r, RESULT_PLAIN, c, i, extra)
            if "value" in r:
                v = r["value"]
                if type(v) is dict:
                    if type(typ) is not str:
                        typ = ""
                    seq = v.get("sequence") if typ == "videorectangle" else None
                    if type(seq) is list and seq:
                        self._keyframes(seq, v, task_id, kind, aid, rid, p, i)
                        v = {k: x for k, x in v.items() if k != "sequence"}
                    self._value(v, typ, r, i)
                c["value"][i] = dumps(v)
            c["extra"][i] = dumps(extra) if extra else "{}"
            self.results.n += 1

    def _value(self, v: dict, typ: str, r: dict, i: int) -> None:
        """Typed copies of the value's common parts; `value` itself stays whole."""
        c = self.rcols
        labels = v.get(typ) if typ.endswith("labels") else None
        if labels is None:
            labels = v.get("labels")
        if labels is not None:
            c["labels"][i] = str_list(labels, nulls=True)
        ch = v.get("choices")
        if ch is None:
            ch = v.get("taxonomy")
        if type(ch) is list:
            c["choices"][i] = _choices(ch)
        tx = v.get("text")
        if type(tx) is list:
            c["texts"][i] = str_list(tx, nulls=True)
        elif tx is not None:
            c["text"][i] = tx
        geo = GEOMETRY_KEYS.intersection(v)
        if geo:
            for key in geo:
                c[key][i] = point_rows(v[key]) if key == "points" else num_fit(v[key])
            c["unit"][i] = "percent"
        if "start" in v:
            self._span(v, typ, r, i)
        num = v.get("number")
        if num is None:
            num = v.get("rating")
        if num is not None:
            c["number"][i] = num_fit(num)

    def _span(self, v: dict, typ: str, r: dict, i: int) -> None:
        c = self.rcols
        s, e = v.get("start"), v.get("end")
        go = v.get("globalOffsets")
        if type(go) is dict:
            s, e = go.get("start"), go.get("end")
        elif (typ in TIME_TYPES or "channel" in v or "original_length" in r
              or type(s) is float or type(e) is float):
            c["time_start"][i], c["time_end"][i] = num_fit(s), num_fit(e)
            return
        elif typ == "paragraphlabels":
            return  # paragraph indices, not character offsets: they stay in `value`
        if type(s) is int and type(e) is int:
            c["span_start"][i], c["span_end"][i] = s, e

    def _relation(self, r: dict, task_id: str, kind: str, aid: str, p: int) -> None:
        c, i = self.relcols, self.relations.n
        extra = extra_of(r, RELATION_KNOWN)
        set_link(c, i, self.link)
        c["position"][i] = p
        fill_plain(r, RELATION_PLAIN, c, i, extra)
        if "labels" in r:
            labels = str_list(r["labels"])
            if labels is None:
                extra["labels"] = r["labels"]
            else:
                c["labels"][i] = labels
        c["extra"][i] = dumps(extra) if extra else "{}"
        self.relations.n += 1

    def _keyframes(self, seq: list, v: dict, task_id: str, kind: str, aid: str, rid: str,
                   rpos: int, ri: int) -> None:
        """A whole sequence at once, column by column: keyframes are most of the rows of a
        video export, so per-keyframe Python work is what a conversion's speed hinges on."""
        if set(map(type, seq)) != {dict}:
            p = next(p for p, kf in enumerate(seq) if type(kf) is not dict)
            raise TaskError(f"{kind} {aid}: keyframe {p} of region {rid} is {jtype(seq[p])}")
        m, put, fill, i0 = len(seq), self.keyframes.put, self.keyframes.fill, self.keyframes.n
        extras = None
        if not all(map(KEYFRAME_KNOWN.issuperset, seq)):
            extras = [extra_of(kf, KEYFRAME_KNOWN) for kf in seq]
        frames: list = []  # the `frame` column, set in the loop below
        first = seq[0].keys()
        present = [k for k, _, _ in KEYFRAME_PLAIN if k in first]
        columns = {}
        if len(present) > 1 and all(map(first.__eq__, map(dict.keys, seq))):  # one key set
            columns = dict(zip(present, map(list, zip(*map(itemgetter(*present), seq)))))
        for key, col, ok in KEYFRAME_PLAIN:
            vals = columns.get(key) or [kf.get(key) for kf in seq]
            if key == "frame":
                frames = vals[:]
            types = set(map(type, vals))
            bad = not types <= ok | NONE
            if not bad and int in types:  # a float past the bound only costs the slow path
                nums = [x for x in vals if x is not None] if type(None) in types else vals
                bad = max(nums) > EXACT_INT or min(nums) < -EXACT_INT
            if bad:
                extras = extras or [{} for _ in seq]
                for j, x in enumerate(vals):
                    if x is not None and not (type(x) in ok and (
                            type(x) is not int or -EXACT_INT <= x <= EXACT_INT)):
                        extras[j][key] = x
                        vals[j] = None
            if type(None) in types:
                for j, x in enumerate(vals):
                    if x is None and key in seq[j] and seq[j][key] is None:
                        extras = extras or [{} for _ in seq]
                        extras[j][key] = None
            put(col, i0, vals)
        for col, value in zip(ANNOTATION_LINK + ("region_id", "result_position"),
                              self.link + (rid, rpos)):
            fill(col, i0, m, value)
        put("position", i0, list(range(m)))
        if extras is None:
            fill("extra", i0, m, "{}")
        else:
            put("extra", i0, [dumps(e) if e else "{}" for e in extras])
        self.keyframes.n += m
        start = next((j for j, f in enumerate(frames) if type(f) is int), None)
        if start is not None:
            self.rcols["frame_start"][ri] = frames[start]
            last_frame = seq[next(j for j in range(m - 1, -1, -1) if type(frames[j]) is int)]
            count = v.get("framesCount", v.get("frameCount"))
            held = last_frame.get("enabled") is True and type(count) is int
            end = count if held else last_frame["frame"]
            self.rcols["frame_end"][ri] = end

    # -- shared key rules -------------------------------------------------------------------
    @overload
    @staticmethod
    def _id(obj: dict, key: str, col: dict, i: int, extra: dict,
            synthetic: Callable[[], str], int_default: bool = True, flag: bool = True) -> str: ...

    @overload
    @staticmethod
    def _id(obj: dict, key: str, col: dict, i: int, extra: dict, synthetic: None = None,
            int_default: bool = True, flag: bool = True) -> str | None: ...

    @staticmethod
    def _id(obj: dict, key: str, col: dict, i: int, extra: dict,
            synthetic: Callable[[], str] | None = None, int_default: bool = True,
            flag: bool = True) -> str | None:
        """An id-like key into its text column (see `id_fit`); a missing id gets `synthetic()`."""
        if key in obj:
            v = obj[key]
            text, keep = id_fit(v, int_default)
            if keep:
                extra[key] = v
            if text is not None:
                col[i] = text
                return text
            if synthetic is None:
                return None
        elif synthetic is None:
            return None
        elif flag:
            extra.setdefault(ABSENT, []).append(key)
        col[i] = text = synthetic()
        return text


# -- the way back: Label Studio objects rebuilt from rows (export) ----------------------------

TIMES = (("created_at", "created_at"), ("updated_at", "updated_at"))
KIND_LIST = {"prediction": "predictions", "draft": "drafts"}


def rebuild_task(task: TaskRows) -> Any:
    """The task object as it was read (a flat import object; a legacy storage annotation with
    the task under `task`)."""
    t = task.row
    if t["form"] == "flat":
        return load_cell(t["data"])
    obj: dict = {"id": restore_id(t["task_id"], True)}
    if t.get("project_id") is not None:
        obj["project"] = restore_id(t["project_id"], True)
    for key in ("data", "meta"):
        if t.get(key) is not None:
            obj[key] = load_cell(t[key])
    restore_times(obj, t, TIMES, TS_DIGITS)
    restore_plain(obj, t, TASK_PLAIN)
    lists: dict[str, list] = {k: [] for k in t.get("list_keys") or ()}
    storage = None
    for a in task.annotations:
        r = a.row
        if r["position"] < 0:
            storage = rebuild_annotation(a)
            continue
        key = _list_key(r, lists)
        if key not in lists or r["position"] != len(lists[key]):
            raise AnnostreamError(f"task {t['task_id']!r}: {r['kind']} {r['annotation_id']!r} "
                                  f"at position {r['position']} does not fit its list {key!r}")
        lists[key].append(rebuild_annotation(a))
    obj.update(lists)
    finish(obj, t)
    if t["form"] == "storage-annotation":
        if storage is None:
            raise AnnostreamError(f"task {t['task_id']!r}: its storage annotation row is missing")
        storage["task"] = obj
        return storage
    return obj


def _list_key(r: dict, lists: dict) -> str:
    if r["kind"] in KIND_LIST:
        return KIND_LIST[r["kind"]]
    listed = row_extra(r).get(LISTED)
    if listed:
        return listed
    return "completions" if "completions" in lists and "annotations" not in lists else "annotations"


def rebuild_annotation(a: AnnotationRows) -> Any:
    """An annotation, prediction or draft object (or the bare id it was)."""
    r = a.row
    if r["form"] == "id":
        extra = row_extra(r)
        return extra["id"] if "id" in extra else restore_id(r["annotation_id"], True)
    obj: dict = {"id": restore_id(r["annotation_id"], True)}
    for key in ("completed_by", "updated_by"):
        if r.get(key) is not None:
            obj[key] = restore_id(r[key], True)
    restore_times(obj, r, TIMES, TS_DIGITS)
    restore_plain(obj, r, ANNOTATION_PLAIN)
    if "result" in (r.get("list_keys") or ()):
        obj["result"] = _result_list(a)
    return finish(obj, r)


def _result_list(a: AnnotationRows) -> list:
    seqs: dict[int, list] = {}
    for k in a.keyframes:
        seqs.setdefault(k["result_position"], []).append(
            finish(plain_object(k, KEYFRAME_PLAIN), k))
    items = [(r["position"], _rebuilt_result(r, seqs.pop(r["position"], None)))
             for r in a.results]
    items += [(r["position"], _rebuilt_relation(r)) for r in a.relations]
    items.sort(key=lambda x: x[0])
    if [p for p, _ in items] != list(range(len(items))) or seqs:
        raise AnnostreamError(f"{a.row['kind']} {a.row['annotation_id']!r}: result positions "
                              f"{[p for p, _ in items]} have gaps or orphan keyframes")
    return [o for _, o in items]


def _rebuilt_result(r: dict, sequence: list | None) -> dict:
    obj = {"id": r["region_id"]}
    restore_plain(obj, r, RESULT_PLAIN)
    if r.get("value") is not None:
        value = load_cell(r["value"])
        if sequence is not None:
            value["sequence"] = sequence
        obj["value"] = value
    return finish(obj, r)


def _rebuilt_relation(r: dict) -> dict:
    obj = {"type": "relation"}
    restore_plain(obj, r, RELATION_PLAIN)
    if r.get("labels") is not None:
        obj["labels"] = r["labels"]
    return finish(obj, r)


def as_prediction(task: TaskRows, model_version: str | None) -> dict:
    """Label Studio's import shape: `data` (+ `meta`) and one prediction per submitted
    (not cancelled) annotation, results and relations with their region ids."""
    t = task.row
    data = load_cell(t["data"]) if t.get("data") is not None else {}
    obj: dict = {"data": data}
    meta = load_cell(t["meta"]) if t.get("meta") else None
    if meta:
        obj["meta"] = meta
    preds = []
    for a in task.annotations:
        r = a.row
        if r["kind"] != "annotation" or r["form"] == "id" or r.get("was_cancelled"):
            continue
        ann = rebuild_annotation(a)
        result = ann.get("result")
        pred: dict = {"result": result if type(result) is list else []}
        if model_version is not None:
            pred["model_version"] = model_version
        score = ann.get("score")
        if type(score) in (int, float):
            pred["score"] = score
        preds.append(pred)
    obj["predictions"] = preds
    return obj
