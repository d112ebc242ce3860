"""`export`: rebuild exports from the tables, the way back from Parquet to JSON.

This is also the proof that conversion loses nothing: tests convert, export and compare.

Reading. Every table is read in write order (its part files by name, then row order) one
batch at a time. The converter writes a task's rows before the next task's in every table
(a task, then its annotations in list order, each followed by its results, relations and
keyframes), so one merge walk over the five streams hands every task its child rows with no
join, no sort and no index: linear in the data, memory bounded by one batch per table plus
the task being written. A child row belongs to the task at the head of the walk when its
link (`file`, `task_position`) is the task's (`file`, `position`), so tasks sharing an id
never share rows; within the task, to the annotation at the head when (kind, annotation_id)
match and its order key keeps increasing (a repeated key starts the next annotation with the
same id).

Selection. `--where` (an SQL predicate on `tasks`, other tables usable in subqueries) and
`--file` become one DuckDB query that returns the (part file, row) of every selected task in
the same order, walked alongside; unselected tasks are skipped, their children consumed.

Rebuilding follows the restoring rule of stream/tables.py: typed columns give back their keys
(ids through `restore_id`, timestamps through `restore_ts`), keys listed in extra["~absent"]
are dropped, then `extra` is laid over the object (it always wins). Numbers that went through
a float column come back as floats (1 -> 1.0): equal as numbers.

Writing. Each input file (`tasks.file`) is rebuilt in its own container shape ('array': a
JSON array, 'object': one object per line, 'ner': the two-object NER file) under a staging
name and moved into place only when the whole export succeeded; a name ending in .gz, .bz2,
.xz or .zst is compressed accordingly.
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, Iterator, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import AnnostreamError
from .formats import dataloop as dl
from .formats import labelstudio as ls
from .formats.common import ABSENT, ESCAPED, LISTED, dumps, restore_id, restore_ts
from .query import connect, sql_error
from .tables import TABLES

BATCH_ROWS = 2048
INF = float("inf")
KIND_ORDER = {"annotation": 0, "prediction": 1, "draft": 2}
KIND_LIST = {"prediction": "predictions", "draft": "drafts"}
FORMATS = ("auto", "labelstudio", "dataloop")


# -- reading ----------------------------------------------------------------------------------


def _cell(text: str):
    """One JSON cell of one row parsed back (a task's data, a result's value, an extra)."""
    return json.loads(text)  # bounded: one cell of one row, never an export


class _Rows:
    """One table's rows in write order as dicts, one Arrow batch converted at a time."""

    def __init__(self, folder: Path, table: str, batch_rows: int) -> None:
        self.table = table
        self.parts = sorted(str(p) for p in (folder / table).glob("*.parquet"))
        for path in self.parts:
            names = pq.read_schema(path).names
            link = {"tasks": "position", "annotations": "task_position"}.get(table,
                                                                             "annotation_position")
            if link not in names:
                raise AnnostreamError(f"{path} was written by an older annostream (no "
                                      f"{link} link to its parent row): convert the inputs "
                                      "again to export them")
        self._it = self._iter(batch_rows)
        self.head: dict | None = None
        self.advance()

    def _iter(self, batch_rows: int) -> Iterator[dict]:
        for path in self.parts:
            row = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                for r in batch.to_pylist():
                    r["_at"] = (path, row)
                    row += 1
                    yield r

    def advance(self) -> None:
        self.head = next(self._it, None)

    def take(self, owner: Callable[[dict], bool], order: Callable[[dict], Any]) -> list[dict]:
        """The rows at the head that belong to one owner: they match it and their order key
        increases (a repeated key starts the next owner that has the same id)."""
        out: list[dict] = []
        last = None
        while self.head is not None and owner(self.head):
            key = order(self.head)
            if last is not None and key <= last:
                break
            out.append(self.head)
            last = key
            self.advance()
        return out


def _x(row: dict) -> dict:
    """The row's `extra` object, parsed once (a copy is what rebuilding modifies)."""
    x = row.get("_x")
    if x is None:
        text = row.get("extra")
        x = row["_x"] = _cell(text) if text else {}
    return x


@dataclass
class Annotation:
    row: dict
    results: list[dict] = field(default_factory=list)
    relations: list[dict] = field(default_factory=list)
    keyframes: list[dict] = field(default_factory=list)


@dataclass
class Task:
    row: dict
    annotations: list[Annotation]
    selected: bool


def _ann_order(r: dict) -> tuple:
    """Write order of a task's annotation rows: lists in reader order, the storage
    annotation (position -1) last."""
    if r["position"] < 0:
        return (9, 0, 0)
    return (KIND_ORDER.get(r["kind"], 8), LISTED in _x(r), r["position"])


def _has_results(a: dict) -> bool:
    """Whether result rows may follow an annotation row (an empty list or a bare id has none;
    a Dataloop annotation always has its one result row)."""
    return bool(a.get("list_keys")) or a["source"] == "dataloop"


def walk(folder: Path, batch_rows: int = BATCH_ROWS,
         selected: Iterator[tuple[str, int]] | None = None) -> Iterator[Task]:
    """Every task with its child rows, in write order; `selected` lists the (part, row) of
    the tasks to build, in the same order (None: all)."""
    tasks, anns, res, rels, kfs = (_Rows(folder, t, batch_rows) for t in TABLES)
    nxt = next(selected, None) if selected is not None else None
    while tasks.head is not None:
        t = tasks.head
        tasks.advance()
        if selected is None:
            chosen = True
        else:
            chosen = nxt == t["_at"]
            if chosen:
                nxt = next(selected, None)
        file, pos = t["file"], t["position"]

        def of_task(r: dict) -> bool:
            return r["task_position"] == pos and r["file"] == file

        children = []
        for a in anns.take(of_task, _ann_order):
            ann = Annotation(a)
            if _has_results(a):
                kind, aid, apos = a["kind"], a["annotation_id"], a["position"]

                def same(r: dict) -> bool:  # completions and annotations share kind and positions
                    return (of_task(r) and r["kind"] == kind and r["annotation_position"] == apos
                            and r["annotation_id"] == aid)

                ann.results = res.take(same, _position)
                ann.relations = rels.take(same, _position)
                ann.keyframes = kfs.take(same, _kf_order)
            children.append(ann)
        yield Task(t, children, chosen)
    for rows in (anns, res, rels, kfs):
        if rows.head is not None:
            h = rows.head
            raise AnnostreamError(
                f"{folder}: {rows.table} row {h['_at'][1]} of {h['_at'][0]} belongs to no task "
                f"(task {h['task_id']!r}, position {h['task_position']} of {h['file']}); the "
                "tables do not come from one conversion")


def _position(r: dict) -> int:
    return r["position"]


def _kf_order(r: dict) -> tuple:
    return (r["result_position"], r["position"])


# -- Label Studio objects ---------------------------------------------------------------------

def _plain(obj: dict, row: dict, plain: tuple) -> None:
    for key, col, _ in plain:
        v = row.get(col)
        if v is not None:
            obj[key] = v


LS_TIMES = (("created_at", "created_at"), ("updated_at", "updated_at"))
DL_TIMES = (("createdAt", "created_at"), ("updatedAt", "updated_at"))


def _ts(obj: dict, row: dict, keys: tuple, digits: int) -> None:
    for key, col in keys:
        if row.get(col) is not None:
            obj[key] = restore_ts(row[col], digits)


def _finish(obj: dict, row: dict) -> dict:
    """Drop keys filled although absent, then lay `extra` over the object (it wins), the
    input's own keys named like reserved ones last."""
    extra = dict(_x(row))
    for key in extra.pop(ABSENT, ()):
        obj.pop(key, None)
    extra.pop(LISTED, None)
    escaped = extra.pop(ESCAPED, None)
    obj.update(extra)
    if escaped:
        obj.update(escaped)
    return obj


def ls_task(task: Task) -> Any:
    """The task object as it was read (a flat import object; a legacy storage annotation with
    the task under `task`)."""
    t = task.row
    if t["form"] == "flat":
        return _cell(t["data"])
    obj: dict = {"id": restore_id(t["task_id"], True)}
    if t.get("project_id") is not None:
        obj["project"] = restore_id(t["project_id"], True)
    for key in ("data", "meta"):
        if t.get(key) is not None:
            obj[key] = _cell(t[key])
    _ts(obj, t, LS_TIMES, ls.TS_DIGITS)
    _plain(obj, t, ls.TASK_PLAIN)
    lists: dict[str, list] = {k: [] for k in t.get("list_keys") or ()}
    storage = None
    for a in task.annotations:
        r = a.row
        if r["position"] < 0:
            storage = ls_annotation(a)
            continue
        key = _list_key(r, lists)
        if key not in lists or r["position"] != len(lists[key]):
            raise AnnostreamError(f"task {t['task_id']!r}: {r['kind']} {r['annotation_id']!r} "
                                  f"at position {r['position']} does not fit its list {key!r}")
        lists[key].append(ls_annotation(a))
    obj.update(lists)
    _finish(obj, t)
    if t["form"] == "storage-annotation":
        if storage is None:
            raise AnnostreamError(f"task {t['task_id']!r}: its storage annotation row is missing")
        storage["task"] = obj
        return storage
    return obj


def _list_key(r: dict, lists: dict) -> str:
    if r["kind"] in KIND_LIST:
        return KIND_LIST[r["kind"]]
    listed = _x(r).get(LISTED)
    if listed:
        return listed
    return "completions" if "completions" in lists and "annotations" not in lists else "annotations"


def ls_annotation(a: Annotation) -> Any:
    r = a.row
    if r["form"] == "id":
        extra = _x(r)
        return extra["id"] if "id" in extra else restore_id(r["annotation_id"], True)
    obj: dict = {"id": restore_id(r["annotation_id"], True)}
    for key in ("completed_by", "updated_by"):
        if r.get(key) is not None:
            obj[key] = restore_id(r[key], True)
    _ts(obj, r, LS_TIMES, ls.TS_DIGITS)
    _plain(obj, r, ls.ANNOTATION_PLAIN)
    if "result" in (r.get("list_keys") or ()):
        obj["result"] = _result_list(a)
    return _finish(obj, r)


def _result_list(a: Annotation) -> list:
    seqs: dict[int, list] = {}
    for k in a.keyframes:
        seqs.setdefault(k["result_position"], []).append(_finish(_plain_obj(k, ls.KEYFRAME_PLAIN), k))
    items = [(r["position"], _result(r, seqs.pop(r["position"], None))) for r in a.results]
    items += [(r["position"], _relation(r)) for r in a.relations]
    items.sort(key=lambda x: x[0])
    if [p for p, _ in items] != list(range(len(items))) or seqs:
        raise AnnostreamError(f"{a.row['kind']} {a.row['annotation_id']!r}: result positions "
                              f"{[p for p, _ in items]} have gaps or orphan keyframes")
    return [o for _, o in items]


def _plain_obj(row: dict, plain: tuple) -> dict:
    obj: dict = {}
    _plain(obj, row, plain)
    return obj


def _result(r: dict, sequence: list | None) -> dict:
    obj = {"id": r["region_id"]}
    _plain(obj, r, ls.RESULT_PLAIN)
    if r.get("value") is not None:
        value = _cell(r["value"])
        if sequence is not None:
            value["sequence"] = sequence
        obj["value"] = value
    return _finish(obj, r)


def _relation(r: dict) -> dict:
    obj = {"type": "relation"}
    _plain(obj, r, ls.RELATION_PLAIN)
    if r.get("labels") is not None:
        obj["labels"] = r["labels"]
    return _finish(obj, r)


# -- Dataloop objects (the key mapping is the docstring of stream/formats/dataloop.py) -------

def dl_item(task: Task) -> dict:
    t = task.row
    obj: dict = {"id": t["task_id"]}
    if t.get("project_id") is not None:
        obj["datasetId"] = t["project_id"]
    obj.update(_cell(t["data"]))
    if t.get("meta") is not None:
        obj["metadata"] = _cell(t["meta"])
    _ts(obj, t, DL_TIMES, dl.TS_DIGITS)
    if "annotations" in (t.get("list_keys") or ()):
        if [a.row["position"] for a in task.annotations] != list(range(len(task.annotations))):
            raise AnnostreamError(f"item {t['task_id']!r}: annotation positions have gaps")
        obj["annotations"] = [dl_annotation(a) for a in task.annotations]
    return _finish(obj, t)


def dl_annotation(a: Annotation) -> dict:
    """The annotation from its annotations row and its one results row (and the snapshots of
    a video track from keyframes 1..; keyframe 0 is derived from the annotation itself)."""
    r = a.row
    if len(a.results) != 1:
        raise AnnostreamError(f"annotation {r['annotation_id']!r}: {len(a.results)} result rows")
    res = a.results[0]
    obj: dict = {"id": r["annotation_id"]}
    _plain(obj, r, dl.ANNOTATION_PLAIN)
    _ts(obj, r, DL_TIMES, dl.TS_DIGITS)
    if res.get("type") is not None:
        obj["type"] = res["type"]
    if res.get("labels") is not None:
        obj["label"] = res["labels"][0]
    if res.get("value") is not None:
        obj["coordinates"] = _cell(res["value"])
    obj.update(_x(res))
    if a.keyframes:
        obj["metadata"]["system"]["snapshots_"] = [
            _finish(_plain_obj(k, dl.SNAPSHOT_PLAIN), k) for k in a.keyframes if k["position"]]
    return _finish(obj, r)


def dl_element(task: Task) -> tuple[dict, Any]:
    """(the text-classification document's other keys, this element)."""
    return _cell(task.row["meta"]), _cell(task.row["data"])


def as_prediction(task: Task, model_version: str | None) -> dict:
    """Label Studio's import shape: `data` (+ `meta`) and one prediction per submitted
    (not cancelled) annotation, results and relations with their region ids."""
    t = task.row
    data = _cell(t["data"]) if t.get("data") is not None else {}
    obj: dict = {"data": data}
    meta = _cell(t["meta"]) if t.get("meta") else None
    if meta:
        obj["meta"] = meta
    preds = []
    for a in task.annotations:
        r = a.row
        if r["kind"] != "annotation" or r["form"] == "id" or r.get("was_cancelled"):
            continue
        ann = ls_annotation(a)
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


# -- output files -----------------------------------------------------------------------------

def _open(path: Path) -> BinaryIO:
    """A binary stream compressing by the name's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext == ".gz":
        return gzip.open(path, "wb")  # type: ignore[return-value]
    if ext == ".bz2":
        return bz2.open(path, "wb")  # type: ignore[return-value]
    if ext == ".xz":
        return lzma.open(path, "wb")  # type: ignore[return-value]
    if ext == ".zst":
        return pa.output_stream(str(path), compression="zstd")  # type: ignore[return-value]
    return open(path, "wb")


class _Array:
    """A JSON array written one element at a time, between `head` and `tail`."""

    head, tail = "[", "]"

    def __init__(self, path: Path) -> None:
        self.f = _open(path)
        self.n = 0

    def add(self, obj: Any) -> None:
        self.f.write((",\n" if self.n else self.head + "\n").encode() + dumps(obj).encode())
        self.n += 1

    def close(self) -> None:
        end = f"\n{self.tail}\n" if self.n else f"{self.head}{self.tail}\n"
        self.f.write(end.encode())
        self.f.close()


class _Objects(_Array):
    """One JSON object per line: a single-object file, or newline-delimited JSON."""

    def add(self, obj: Any) -> None:
        self.f.write(dumps(obj).encode() + b"\n")
        self.n += 1

    def close(self) -> None:
        self.f.close()


class _Wrapper(_Array):
    """The Dataloop docs' `{"annotations": [items]}`."""

    head, tail = '{"annotations": [', "]}"


class _Elements(_Array):
    """A Dataloop text-classification JSON: the document's keys, then `elements`."""

    def add(self, obj: Any) -> None:
        doc, element = obj
        if not self.n:
            head = dumps(doc)[:-1] + ("," if doc else "")
            self.f.write((head + '"elements":[\n').encode())
        else:
            self.f.write(b",\n")
        self.f.write(dumps(element).encode())
        self.n += 1

    def close(self) -> None:
        self.f.write(b"]}\n" if self.n else b'{"elements":[]}\n')
        self.f.close()


class _Ner:
    """FORMATS.md part C, `[{doc: spans}, {doc: text}]`: the spans object is written as tasks
    come, the texts object to a side file appended at the end (both streamed)."""

    def __init__(self, path: Path) -> None:
        self.f = _open(path)
        self.f.write(b"[{")
        self.texts = tempfile.TemporaryFile(dir=path.parent)
        self.n_spans = self.n_texts = 0

    def add(self, obj: Any) -> None:
        doc = dumps(obj["id"]).encode()
        preds = obj.get("predictions") or []
        if preds:
            spans = [v["span"] if "span" in v else [v["start"], v["end"]]
                     for v in (r["value"] for r in preds[0]["result"])]
            self.f.write((b", " if self.n_spans else b"") + doc + b": " + dumps(spans).encode())
            self.n_spans += 1
        if "text" in obj["data"]:
            self.texts.write((b",\n" if self.n_texts else b"") + doc + b": "
                             + dumps(obj["data"]["text"]).encode())
            self.n_texts += 1

    def close(self) -> None:
        self.f.write(b"},\n{")
        self.texts.seek(0)
        shutil.copyfileobj(self.texts, self.f)
        self.texts.close()
        self.f.write(b"}]\n")
        self.f.close()


CONTAINERS = {"array": _Array, "object": _Objects, "ner": _Ner, "wrapper": _Wrapper,
              "elements": _Elements}


class _Stage:
    """Outputs written under a hidden staging folder, moved to their final names on commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / f".annostream-tmp-{uuid.uuid4().hex[:12]}"
        self.dir.mkdir(parents=True)
        self.files: list[str] = []

    def path(self, rel: str) -> Path:
        self.files.append(rel)
        return self.dir / rel

    def commit(self, single: Path | None = None) -> list[Path]:
        done = []
        for rel in self.files:
            dest = single if single is not None else self.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / rel, dest)
            done.append(dest)
        shutil.rmtree(self.dir, ignore_errors=True)
        return done

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _relative(file: str, prefix: str) -> str:
    """The output name of an input: its path below the common prefix, made safe."""
    if file == "<stdin>":
        return "stdin.json"
    parts = [p if p not in ("..", ".") else "_" for p in
             PurePosixPath(file[len(prefix):].replace("\\", "/")).parts if p != "/"]
    return "/".join(parts) or "export.json"


def _common_dir(lo: str, hi: str) -> str:
    """Longest common folder prefix of all names (that of the least and greatest suffices)."""
    common = os.path.commonprefix([lo, hi])
    return common[: common.rfind("/") + 1]


# -- the command ------------------------------------------------------------------------------

@dataclass
class ExportSummary:
    tasks: int
    outputs: list[Path]


def _selection(where: str | None, files: Sequence[str], source: str | None) -> tuple[str, list]:
    """The SQL predicate on tasks and its parameters ('true': everything)."""
    preds, params = [], []
    if where:
        preds.append(f"({where})")
    if files:
        preds.append("(" + " OR ".join("file = ? OR starts_with(file, ?)" for _ in files) + ")")
        for f in files:
            params += [f, f.rstrip("/") + "/"]
    if source:
        preds.append("source = ?")
        params.append(source)
    return (" AND ".join(preds) or "true"), params


def _selected_rows(con: duckdb.DuckDBPyConnection, parts: list[str], pred: str,
                   params: list) -> Iterator[tuple[str, int]]:
    """(part file, row) of every selected task, in write order."""
    listing = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in parts) + "]"
    reader = con.sql(
        f"SELECT filename, file_row_number FROM read_parquet({listing}, filename = true, "
        f"file_row_number = true, union_by_name = true) AS tasks WHERE {pred} ORDER BY 1, 2",
        params=params).to_arrow_reader(65536)
    for batch in reader:
        yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist())


def export(folder: str | os.PathLike, output: str | os.PathLike, *, where: str | None = None,
           files: Sequence[str] = (), fmt: str = "auto", as_predictions: bool = False,
           model_version: str | None = None, batch_rows: int = BATCH_ROWS) -> ExportSummary:
    """Rebuild the exports held in the converted `folder`.

    fmt 'auto': every input in its own shape; 'labelstudio': only Label Studio tasks, NER
    model files as task arrays; 'dataloop': only Dataloop items, one JSON file per item named
    after its `filename` + '.json' (as Dataloop's per-item export writes them).
    One input file selected and `output` not a folder (existing, or ending in '/'): `output`
    is that file; otherwise `output` is a folder mirroring the input names below their common
    folder. `as_predictions`: one JSON array file in Label Studio's import shape.
    """
    if fmt not in FORMATS:
        raise AnnostreamError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = Path(folder).resolve()
    out = Path(output)
    if not any((root / "tasks").glob("*.parquet")):
        raise AnnostreamError(f"{folder}: no tasks/*.parquet; is it the output of "
                              "`annostream convert`?")
    source = "labelstudio" if as_predictions else None if fmt == "auto" else fmt
    pred, params = _selection(where, files, source)
    con = connect(root) if pred != "true" else None  # no selection: no SQL needed
    if con is None:
        n_tasks, lo, hi = _file_range(root)
    else:
        try:
            n_tasks, lo, hi = con.sql(f"SELECT count(*), min(file), max(file) FROM tasks "
                                      f"WHERE {pred}", params=params).fetchall()[0]
        except duckdb.Error as exc:
            con.close()
            raise sql_error(exc) from exc
    if n_tasks == 0:
        if con is not None:
            con.close()
        raise AnnostreamError(f"{folder}: no task " + ("matches the selection" if pred != "true"
                                                       else "to export"))
    as_dir = str(output).endswith(("/", os.sep)) or out.is_dir()
    single = as_predictions or (lo == hi and not as_dir and fmt != "dataloop")
    if single and out.is_dir():
        raise AnnostreamError(f"{out} is a folder; name the output file")
    if not single and out.exists() and not out.is_dir():
        raise AnnostreamError(f"{out} is a file, but the selection spans several inputs (or "
                              "Dataloop items): name a folder, or select one with --file")
    stage = _Stage(out.parent if single else out)
    try:
        parts = sorted(str(p) for p in (root / "tasks").glob("*.parquet"))
        chosen = None if con is None else _selected_rows(con, parts, pred, params)
        target = _Targets(stage, out.name if single else None, _common_dir(lo, hi), fmt)
        written = _write(walk(root, batch_rows, chosen), target, as_predictions, model_version)
        outputs = stage.commit(out if single else None)
    except BaseException:
        stage.abort()
        raise
    finally:
        if con is not None:
            con.close()
    return ExportSummary(written, outputs)


def _file_range(root: Path) -> tuple[int, str | None, str | None]:
    """Number of tasks and the least and greatest input name, one column batch at a time."""
    n, lo, hi = 0, None, None
    for path in sorted((root / "tasks").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(columns=["file"]):
            n += batch.num_rows
            mm = pc.min_max(batch.column(0))
            a, b = mm["min"].as_py(), mm["max"].as_py()
            if a is not None:
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
    return n, lo, hi


class _Targets:
    """Which output file each task goes to, opening and closing writers as the input changes."""

    def __init__(self, stage: _Stage, single: str | None, prefix: str, fmt: str) -> None:
        self.stage, self.single, self.prefix, self.fmt = stage, single, prefix, fmt
        self.current: tuple[str, Any] | None = None  # (output key, writer)
        self.seen: set[str] = set()

    def writer(self, t: dict) -> Any:
        if self.fmt == "dataloop":
            key, container = self._item_name(t), "object"
        else:
            key, container = t["file"], t["container"]
            if self.fmt == "labelstudio" and container == "ner":
                container = "array"
        if self.current is not None and self.current[0] == key:
            return self.current[1]
        self.close()
        if key in self.seen:
            raise AnnostreamError(f"{key} was converted more than once (--append); select one "
                                  "copy with --where")
        self.seen.add(key)
        rel = self.single or (key if self.fmt == "dataloop" else _relative(key, self.prefix))
        self.current = (key, CONTAINERS.get(container, _Array)(self.stage.path(rel)))
        return self.current[1]

    def _item_name(self, t: dict) -> str:
        """`<filename>.json` as Dataloop's per-item export names it; the id where two collide."""
        name = _cell(t["data"]).get("filename")
        stem = name.lstrip("/") if type(name) is str and name.strip("/") else t["task_id"]
        rel = _relative(stem + ".json", "")
        if rel in self.seen:
            rel = _relative(f"{stem}.{t['task_id'].replace('/', '_')}.json", "")
        return rel

    def close(self) -> None:
        if self.current is not None:
            writer, self.current = self.current[1], None
            writer.close()


def _rebuild(task: Task) -> Any:
    t = task.row
    if t["source"] == "labelstudio":
        return ls_task(task)
    if t["form"] in ("element", "context"):
        return dl_element(task)
    return dl_item(task)


def _write(tasks: Iterator[Task], targets: _Targets, as_predictions: bool,
           model_version: str | None) -> int:
    """Stream the selected tasks into their output files; returns the number written."""
    n = 0
    try:
        if as_predictions:
            preds = _Array(targets.stage.path(targets.single or "predictions.json"))
            targets.current = ("", preds)
        for task in tasks:
            if not task.selected:
                continue
            if as_predictions:
                preds.add(as_prediction(task, model_version))
            else:
                targets.writer(task.row).add(_rebuild(task))
            n += 1
    finally:
        targets.close()
    return n
