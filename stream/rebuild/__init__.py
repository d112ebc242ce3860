"""`export`: rebuild exports from the tables, the way back from Parquet to JSON.

This is also the proof that conversion loses nothing: tests convert, export and compare.

Three parts: the merge walk (`walk`: every task with its child rows, in write order), each
platform's rebuilder next to its reader's key maps (`stream/formats/labelstudio.py`,
`dataloop.py`), and the output containers (`containers`); this module selects, names the
outputs and drives them.

Selection. `--where` (an SQL predicate on `tasks`, other tables usable in subqueries) and
`--file` become one DuckDB query that returns the (part file, row) of every selected task in
the same order, walked alongside; unselected tasks are skipped, their children consumed.

Rebuilding follows the restoring rule of stream/tables.py: typed columns give back their keys
(ids through `restore_id`, timestamps through `restore_ts`), keys listed in extra["~absent"]
are dropped, then `extra` is laid over the object (it always wins). Numbers that went through
a float column come back as floats (1 -> 1.0): equal as numbers.

Writing. Each input file (`tasks.file`) is rebuilt in its own container shape under a
staging name and moved into place only when the whole export succeeded.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import AnnostreamError
from ..formats import dataloop, labelstudio
from ..formats.common import TaskRows, load_cell
from ..layout import current
from ..modes import ExportFormat, choices
from ..query import allowed_roots, connect_folder, lock_down, one_expression, sql_error
from ..sql import literal
from .containers import CONTAINERS, JsonArray, Staging
from .walk import BATCH_ROWS, walk

FORMATS = choices(ExportFormat)


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


@dataclass
class ExportSummary:
    tasks: int
    outputs: list[Path]


def _selection(where: str | None, files: Sequence[str], source: str | None) -> tuple[str, list]:
    """The SQL predicate on tasks and its parameters ('true': everything)."""
    preds, params = [], []
    if where:
        preds.append(one_expression(where))
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
    listing = "[" + ", ".join(literal(p) for p in parts) + "]"
    reader = con.sql(
        f"SELECT filename, file_row_number FROM read_parquet({listing}, filename = true, "
        f"file_row_number = true, union_by_name = true) AS tasks WHERE {pred} ORDER BY 1, 2",
        params=params).to_arrow_reader(65536)
    for batch in reader:
        yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist())


def export(folder: str | os.PathLike, output: str | os.PathLike, *, where: str | None = None,
           files: Sequence[str] = (), fmt: ExportFormat = "auto", as_predictions: bool = False,
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
    root = current(folder) or Path(folder).resolve()  # one generation for every table
    out = Path(output)
    if not any((root / "tasks").glob("*.parquet")):
        raise AnnostreamError(f"{folder}: no tasks/*.parquet; is it the output of "
                              "`annostream convert`?")
    source = "labelstudio" if as_predictions else None if fmt == "auto" else fmt
    pred, params = _selection(where, files, source)
    con = connect_folder(root) if pred != "true" else None  # no selection: no SQL needed
    if con is not None:  # the selection reads this conversion and nothing else
        lock_down(con, allowed_roots(root))
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
    stage = Staging(out.parent if single else out)
    try:
        parts = sorted(str(p) for p in (root / "tasks").glob("*.parquet"))
        chosen = None if con is None else _selected_rows(con, parts, pred, params)
        target = _Targets(stage, out.name if single else None, _common_dir(lo or "", hi or ""), fmt)
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

    def __init__(self, stage: Staging, single: str | None, prefix: str, fmt: str) -> None:
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
        self.current = (key, CONTAINERS.get(container, JsonArray)(self.stage.path(rel)))
        return self.current[1]

    def _item_name(self, t: dict) -> str:
        """`<filename>.json` as Dataloop's per-item export names it; the id where two collide."""
        name = load_cell(t["data"]).get("filename")
        stem = name.lstrip("/") if type(name) is str and name.strip("/") else t["task_id"]
        rel = _relative(stem + ".json", "")
        if rel in self.seen:
            rel = _relative(f"{stem}.{t['task_id'].replace('/', '_')}.json", "")
        return rel

    def close(self) -> None:
        if self.current is not None:
            writer, self.current = self.current[1], None
            writer.close()


def _rebuild(task: TaskRows) -> Any:
    t = task.row
    if t["source"] == "labelstudio":
        return labelstudio.rebuild_task(task)
    if t["form"] in ("element", "context"):
        return dataloop.rebuild_element(task)
    return dataloop.rebuild_item(task)


def _write(tasks: Iterator[TaskRows], targets: _Targets, as_predictions: bool,
           model_version: str | None) -> int:
    """Stream the selected tasks into their output files; returns the number written."""
    n = 0
    try:
        if as_predictions:
            preds = JsonArray(targets.stage.path(targets.single or "predictions.json"))
            targets.current = ("", preds)
        for task in tasks:
            if not task.selected:
                continue
            if as_predictions:
                preds.add(labelstudio.as_prediction(task, model_version))
            else:
                targets.writer(task.row).add(_rebuild(task))
            n += 1
    finally:
        targets.close()
    return n
