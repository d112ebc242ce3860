"""The merge walk: every task of a converted folder with its child rows, in write order.

Every table is read in write order (its part files by name, then row order) one batch at a
time. The converter writes a task's rows before the next task's in every table (a task, then
its annotations in list order, each followed by its results, relations and keyframes), so
one merge walk over the five streams hands every task its child rows with no join, no sort
and no index: linear in the data, memory bounded by one batch per table plus the task being
written. A child row belongs to the task at the head of the walk when its link (`file`,
`task_position`) is the task's (`file`, `position`), so tasks sharing an id never share rows;
within the task, to the annotation at the head when (kind, annotation_id) match and its
order key keeps increasing (a repeated key starts the next annotation with the same id).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..errors import AnnostreamError
from ..formats.common import LISTED, AnnotationRows, TaskRows, row_extra
from ..tables import TABLES

BATCH_ROWS = 2048
KIND_ORDER = {"annotation": 0, "prediction": 1, "draft": 2}
PARENT_LINK = {"tasks": "position", "annotations": "task_position"}  # others: annotation_position


class TableRows:
    """One table's rows in write order as dicts, one Arrow batch converted at a time."""

    def __init__(self, folder: Path, table: str, batch_rows: int) -> None:
        self.table = table
        self.parts = sorted(str(p) for p in (folder / table).glob("*.parquet"))
        link = PARENT_LINK.get(table, "annotation_position")
        for path in self.parts:
            if link not in pq.read_schema(path).names:
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


def _ann_order(r: dict) -> tuple:
    """Write order of a task's annotation rows: lists in reader order, the storage
    annotation (position -1) last."""
    if r["position"] < 0:
        return (9, 0, 0)
    return (KIND_ORDER.get(r["kind"], 8), LISTED in row_extra(r), r["position"])


def _has_results(a: dict) -> bool:
    """Whether result rows may follow an annotation row (an empty list or a bare id has none;
    a Dataloop annotation always has its one result row)."""
    return bool(a.get("list_keys")) or a["source"] == "dataloop"


def _position(r: dict) -> int:
    return r["position"]


def _kf_order(r: dict) -> tuple:
    return (r["result_position"], r["position"])


def walk(folder: Path, batch_rows: int = BATCH_ROWS,
         selected: Iterator[tuple[str, int]] | None = None) -> Iterator[TaskRows]:
    """Every task with its child rows, in write order; `selected` lists the (part, row) of
    the tasks to build, in the same order (None: all)."""
    tasks, anns, res, rels, kfs = (TableRows(folder, t, batch_rows) for t in TABLES)
    nxt = next(selected, None) if selected is not None else None
    while tasks.head is not None:
        t = tasks.head
        tasks.advance()
        chosen = selected is None or nxt == t["_at"]
        if selected is not None and chosen:
            nxt = next(selected, None)
        yield TaskRows(t, _children(t, anns, res, rels, kfs), chosen)
    for rows in (anns, res, rels, kfs):
        if rows.head is not None:
            h = rows.head
            raise AnnostreamError(
                f"{folder}: {rows.table} row {h['_at'][1]} of {h['_at'][0]} belongs to no task "
                f"(task {h['task_id']!r}, position {h['task_position']} of {h['file']}); the "
                "tables do not come from one conversion")


def _of_annotation(of_task: Callable[[dict], bool], a: dict) -> Callable[[dict], bool]:
    """Whether a child row belongs to annotation row `a` of the task `of_task` accepts
    (completions and annotations share kind and positions, so the id is compared too)."""
    kind, aid, apos = a["kind"], a["annotation_id"], a["position"]

    def same(r: dict) -> bool:
        return (of_task(r) and r["kind"] == kind and r["annotation_position"] == apos
                and r["annotation_id"] == aid)

    return same


def _children(t: dict, anns: TableRows, res: TableRows, rels: TableRows,
              kfs: TableRows) -> list[AnnotationRows]:
    """The annotations at the heads of the child tables that belong to task row `t`."""
    file, pos = t["file"], t["position"]

    def of_task(r: dict) -> bool:
        return r["task_position"] == pos and r["file"] == file

    children = []
    for a in anns.take(of_task, _ann_order):
        ann = AnnotationRows(a)
        if _has_results(a):
            same = _of_annotation(of_task, a)
            ann.results = res.take(same, _position)
            ann.relations = rels.take(same, _position)
            ann.keyframes = kfs.take(same, _kf_order)
        children.append(ann)
    return children
