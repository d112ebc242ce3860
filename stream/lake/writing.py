"""Writing an ingest: each planned batch converted by `stream.convert` (on the executor the
caller chose) into a staging folder, split per (source, project) by DuckDB into part files
published under their batch folders, registered in one Delta transaction per table (a Delta
lake: add actions, with the batch's application transaction id), and committed by rewriting
the ledger. A `_lake/pending/<batch>.json` record (the parts and the ledger entry), removed
after the commit, lets the next run finish or remove what a killed one left
(`storage.recover`)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.fs as pafs

from .._version import __version__
from ..buffers import DEFAULT_BATCH_ROWS
from ..convert import convert
from ..errors import AnnostreamError, InputError
from ..executors import Executor, executor_for
from ..layout import LAKE_JSON, MANIFEST
from ..modes import LakeFormat, OnError, Snapshot, check
from ..sql import literal
from ..tables import SCHEMA_VERSION, TABLES
from .failpoints import failpoint
from .inputs import InputFile
from .planning import Batch, IngestReport, plan_batches
from .pull import is_server, pull_batches
from .storage import (
    LAST_RUN,
    META,
    NULL_PARTITION,
    PARTITION_KEYS,
    PENDING,
    Lake,
    check_schema,
    committed_entries,
    delta_app_id,
    delta_schema,
    delta_uri,
    deltalake_module,
    iso,
    now,
    open_delta,
    recover,
    redact,
    storage_errors,
    storage_options,
)


def ingest(inputs: Sequence[str | os.PathLike], lake: str | os.PathLike, *,
           snapshot: Snapshot = "auto", format: LakeFormat | None = None,
           on_error: OnError = "fail", wait: float = 0.0, batch_rows: int | None = None,
           progress: bool = False, echo: Callable[[str], None] | None = None,
           executor: Any = None, address: str | None = None) -> IngestReport:
    """Add new inputs to the lake, each batch committed atomically; returns what was done.

    snapshot: 'auto' (a file holding a whole export is a full snapshot of its project; the
    new per-task files of an argument form one partial batch), 'partial' (every batch is a
    partial export: task-level upsert) or 'full' (each argument as a whole is one full
    snapshot). Inputs already in the ledger (same content) are skipped and reported.
    `echo` receives one line per batch (the CLI prints them unless --quiet).
    format: of a new lake, 'delta' (default) or 'parquet'; an existing lake keeps its own.
    executor, address: who converts the batches, as for `stream.convert`.
    """
    check("snapshot", snapshot, Snapshot)
    if format is not None:
        check("format", format, LakeFormat)
    say = echo or (lambda line: None)
    ex = executor_for(executor, address)
    try:
        with storage_errors(lake):
            report = _ingest(inputs, Lake(lake), snapshot, format, on_error, wait, batch_rows,
                             progress, say, ex)
    finally:
        if ex is not executor:  # made here: a caller's executor stays open
            ex.close()
    if report.nothing_to_do:
        say(f"nothing to do: every input is already in {report.lake}")
    return report


def _ingest(inputs: Sequence[str | os.PathLike], lk: Lake, snapshot: Snapshot,
            format: LakeFormat | None, on_error: OnError, wait: float,
            batch_rows: int | None, progress: bool,
            say: Callable[[str], None], ex: Executor) -> IngestReport:
    report = IngestReport(redact(lk.uri))
    started = iso(now())
    with lk.lock(wait, "ingest"):
        recover(lk)
        meta = _init(lk, format)
        entries = lk.ledger()
        check_schema(lk, entries)
        args = [os.fspath(i) for i in inputs]
        tables: dict[str, Any] = {}  # the Delta tables, opened once per run (we hold the lock)
        with _run_dir(lk) as run_dir:
            batches = plan_batches([a for a in args if not is_server(a)], snapshot,
                                   committed_entries(entries), run_dir, report, say)
            pulls = pull_batches([a for a in args if is_server(a)], lk,
                                 committed_entries(entries), report, say)
            for batch, pulled in [(b, None) for b in batches] + pulls:
                entry = _ingest_batch(lk, meta["format"], batch, run_dir, on_error, batch_rows,
                                      progress, ex, tables)
                if pulled is not None:  # committed: its pages are no longer needed
                    shutil.rmtree(pulled.path, ignore_errors=True)
                report.ingested.append(entry)
                rows = ", ".join(f"{t} {n:,}" for t, n in entry["rows"].items())
                say(f"ingested {entry['input']} ({entry['kind']} snapshot) as batch "
                    f"{entry['batch']}: {rows}")
        lk.write_json(LAST_RUN, {"started_at": started, "finished_at": iso(now()),
                                 "inputs": [redact(os.fspath(i)) for i in inputs],
                                 "batches": [e["batch"] for e in report.ingested],
                                 "skipped": len(report.skipped), "version": __version__})
    return report


def _init(lk: Lake, fmt: str | None) -> dict:
    meta = lk.meta()
    if meta is None and lk.local and (Path(lk.root, MANIFEST).exists() or any(
            Path(lk.root, t).exists() for t in TABLES)):
        raise AnnostreamError(f"{lk.uri} holds a conversion or other files, not a lake; "
                              "choose an empty or new folder for --lake")
    if meta is None:
        meta = {"tool": "annostream", "format": fmt or "delta", "created_at": iso(now()),
                "created_by": __version__, "schema_version": SCHEMA_VERSION}
        lk.write_json(LAKE_JSON, meta)
    elif fmt is not None and fmt != meta["format"]:
        raise AnnostreamError(f"{redact(lk.uri)} is a {meta['format']} lake; it cannot take "
                              f"--format {fmt} batches (use another --lake)")
    return meta


@contextmanager
def _run_dir(lk: Lake) -> Iterator[Path]:
    """Local scratch space: inside the lake for a local lake (renames into place are then
    cheap and atomic), a temporary folder for a lake on object storage."""
    if lk.local:
        d = Path(lk.path(f"{META}/staging/{uuid.uuid4().hex[:12]}"))
        d.mkdir(parents=True)
    else:
        d = Path(tempfile.mkdtemp(prefix="annostream-ingest-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)



# -- one batch --------------------------------------------------------------------------------
def _partition_dir(source: str | None, project: str | None, batch: str) -> str:
    def seg(v: str | None) -> str:
        return NULL_PARTITION if v is None else urllib.parse.quote(v, safe="")
    return f"source={seg(source)}/project_id={seg(project)}/batch={batch}"



# each task row's project, keyed as child rows name their task (for _select's `join`)
PROJECTS_SQL = "CREATE TABLE _projects AS SELECT file, position, project_id FROM _tasks"


def _select(table: str, stage: Path, renames: list[tuple[str, str]], *, drop_keys: bool,
            join: bool) -> str:
    """DuckDB SELECT of one staged table: download names mapped back to the input's URI (in
    `file` and synthetic ids), partition columns dropped from the files (Hive style) or, with
    `join`, a child row's project_id looked up from its task by (file, task_position): task
    ids may repeat across the batch's files, and a child's `file` must stay its task's."""
    fixed = []
    for col in ("task_id", "file") + (() if table == "tasks" else ("annotation_id",)):
        expr = f"t.{col}"  # qualified: _projects has a `file` column too
        for old, new in renames:
            expr = f"replace({expr}, {literal(old)}, {literal(new)})"
        if renames:
            fixed.append(f"{expr} AS {col}")
    star = "t.*"
    if drop_keys:
        star += f" EXCLUDE ({'source, project_id' if table == 'tasks' else 'source'})"
    if fixed:
        star += f" REPLACE ({', '.join(fixed)})"
    sql = f"SELECT {star}"
    src = f" FROM read_parquet({literal(str(stage / table / '*.parquet'))}) t"
    if join and table != "tasks":
        sql += "" if drop_keys else ", p.project_id"
        src += " LEFT JOIN _projects p ON t.file = p.file AND t.task_position = p.position"
    return sql + src


def _renames(files: list[InputFile]) -> list[tuple[str, str]]:
    """(download prefix, input prefix) pairs: one per argument folder, not one per file."""
    pairs = set()
    for f in files:
        local = f.local_path
        if local != f.name:
            cut = len(f.rel)
            pairs.add((local[:len(local) - cut], f.name[:len(f.name) - cut]))
    return sorted(pairs, key=lambda p: -len(p[0]))


def _ingest_batch(lk: Lake, fmt: str, batch: Batch, run_dir: Path, on_error: OnError,
                  batch_rows: int | None, progress: bool, ex: Executor,
                  tables: dict[str, Any]) -> dict:
    started = iso(now())
    stage = run_dir / batch.id
    entry = {"batch": batch.id, "status": "committed", "kind": batch.kind, "input": batch.arg,
             "fingerprint": batch.fingerprint, "size": sum(f.size or 0 for f in batch.files),
             "files": [{"name": f.name, "size": f.size, "mtime": f.mtime, "sha256": f.sha256}
                       for f in batch.files],
             "schema_version": SCHEMA_VERSION, "format": fmt, "tool_version": __version__,
             "started_at": started, **batch.extra}
    try:
        result = convert([f.local_path for f in batch.files], stage / "converted",
                         on_error=on_error, progress=progress, executor=ex,
                         batch_rows=batch_rows or DEFAULT_BATCH_ROWS)
    except InputError as exc:
        entry.update(status="failed", error=str(exc), finished_at=iso(now()), rows={},
                     partitions=[], parts={})
        _commit(lk, entry)
        raise
    entry["skipped_tasks"] = result.skipped_tasks
    entry["rows"] = result.rows
    renames = _renames(batch.files)
    converted = stage / "converted"
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET memory_limit = '512MB'")  # bounded: DuckDB spills beyond it
    con.execute(f"SET temp_directory = {literal(str(stage / 'duckdb.tmp'))}")
    con.execute(f"CREATE VIEW _tasks AS SELECT * FROM read_parquet("
                f"{literal(str(converted / 'tasks' / '*.parquet'))})")
    partitions = con.execute("SELECT DISTINCT source, project_id FROM _tasks "
                             "ORDER BY ALL").fetchall()
    if "pull" in batch.extra and not partitions:  # only deletions: the batch is the project's
        partitions = [tuple(batch.extra["pull"]["partition"])]
    entry["partitions"] = [list(p) for p in partitions]
    staged = _stage_parts(con, batch.id, converted, stage / "parts", renames, partitions)
    con.close()
    entry["parts"] = {t: [p.rel.split("/", 1)[1] for p in staged if p.table == t]
                      for t in TABLES}
    entry["finished_at"] = iso(now())
    lk.write_json(f"{PENDING}/{batch.id}.json", {"batch": batch.id, "format": fmt,
                                                 "parts": [p.rel for p in staged],
                                                 "entry": entry})
    failpoint("staged")
    _publish(lk, staged)
    if fmt == "delta":
        _commit_delta(lk, batch.id, staged, tables)
    failpoint("before-commit")
    _commit(lk, entry)
    failpoint("committed")
    lk.delete(f"{PENDING}/{batch.id}.json")
    return entry


@dataclass
class _Part:
    """One staged part file: a table's rows of one (source, project) of the batch."""

    table: str
    rel: str  # <table>/source=S/project_id=P/batch=B/part-0.parquet, in the lake
    local: Path
    rows: int
    partition: dict[str, str | None]


def _stage_parts(con: duckdb.DuckDBPyConnection, batch: str, converted: Path, parts_dir: Path,
                 renames: list[tuple[str, str]], partitions: list) -> list[_Part]:
    """Split each staged table per (source, project) into Hive folders, without the partition
    columns (in the path only, as Hive, Spark, Trino and Delta expect): the same files serve
    the Parquet layout and the Delta tables."""
    multi = len(partitions) > 1
    if multi:  # child rows learn their project from their task
        con.execute(PROJECTS_SQL)
    staged: list[_Part] = []
    for table in TABLES:
        sql = _select(table, converted, renames, drop_keys=True, join=multi)
        key = "t" if table == "tasks" else "p"
        for source, project in partitions:
            rel = f"{table}/{_partition_dir(source, project, batch)}/part-0.parquet"
            where = (f" WHERE t.source = {literal(source)} AND {key}.project_id "
                     f"IS NOT DISTINCT FROM {literal(project)}") if multi else ""
            dest = parts_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            rows = con.execute(f"COPY ({sql}{where}) TO {literal(str(dest))} "
                               "(FORMAT parquet, COMPRESSION zstd)").fetchone()
            staged.append(_Part(table, rel, dest, rows[0] if rows else 0,
                                {"source": source, "project_id": project, "batch": batch}))
    return staged


def _publish(lk: Lake, staged: list[_Part]) -> None:
    """Move (local) or upload (object storage) the parts into their folders: a Parquet lake
    does not read them before the ledger lists them, a Delta table before its commit."""
    for i, part in enumerate(staged):
        target = lk.path(part.rel)
        if lk.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(part.local, target)
        else:
            pafs.copy_files(str(part.local), target, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=lk.fs)
        if i == 0:
            failpoint("first-part")


def _commit_delta(lk: Lake, batch: str, staged: list[_Part], tables: dict[str, Any]) -> None:
    """One Delta transaction per table registers the batch's parts (add actions), tagged with
    the batch's application transaction id: a table that already has it is left alone, so a
    retried commit (after a crash, see storage.recover) never adds the rows twice. `tables`
    keeps each table open across the run's batches (reading a log anew costs its length)."""
    dl = deltalake_module()
    from deltalake.transaction import AddAction, create_table_with_add_actions

    props = dl.CommitProperties(app_transactions=[dl.Transaction(delta_app_id(batch), 1)])
    stamp = int(now().timestamp() * 1000)
    for table in TABLES:
        dt = tables.get(table)
        if dt is None:  # first use in this run: the table may have the batch already
            dt = open_delta(lk, table)
            if dt is not None and dt.transaction_version(delta_app_id(batch)) is not None:
                continue
        adds = [AddAction(urllib.parse.quote(p.rel.split("/", 1)[1], safe="/="),
                          lk.fs.get_file_info(lk.path(p.rel)).size, p.partition, stamp, True,
                          json.dumps({"numRecords": p.rows}))
                for p in staged if p.table == table]
        schema = dl.Schema.from_arrow(delta_schema(table))
        if dt is None:
            create_table_with_add_actions(delta_uri(lk, table), schema, adds, mode="append",
                                          partition_by=list(PARTITION_KEYS),
                                          storage_options=storage_options(lk),
                                          commit_properties=props)
            tables[table] = open_delta(lk, table)
            continue
        have = {f.name for f in dt.schema().fields}
        new = [f for f in schema.fields if f.name not in have]
        if new:  # a lake of an older schema version: the new columns read as NULL before
            dt.alter.add_columns(new)
        dt.create_write_transaction(adds, mode="append", schema=dt.schema(),
                                    partition_by=list(PARTITION_KEYS), commit_properties=props)
        dt.update_incremental()
        tables[table] = dt


def _commit(lk: Lake, entry: dict) -> None:
    """The atomic step: the ledger, re-read under the lock, rewritten with `entry` added."""
    entries = lk.ledger()
    lk.write_ledger(entries + [entry])


