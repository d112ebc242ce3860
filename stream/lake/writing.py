"""Writing an ingest. The driver plans (stream/lake/planning.py) and commits; the workers
read and write. Every batch is planned into jobs as `stream.convert` plans a conversion
(stream/parallel.py), and all of them go to the executor at once: each job reads its inputs
where they are, converts them into its own staging folder, splits its rows per (source,
project) with DuckDB and puts the part files in the lake, under their batch folders, where
no reader looks before the commit. The driver then commits the batches in order: one Delta
transaction per table (add actions, with the batch's application transaction id) and the
ledger rewritten. A `_lake/pending/<batch>.json` record, written before any job runs and
removed after the commit, lets the next run finish or remove what a killed one left
(`storage.recover`)."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import pyarrow.fs as pafs

from .._version import __version__
from ..buffers import DEFAULT_BATCH_ROWS
from ..errors import AnnostreamError, InputError
from ..executors import Executor, executor_for
from ..layout import LAKE_JSON, MANIFEST
from ..modes import LakeFormat, OnError, Snapshot, check
from ..parallel import RANGE_BYTES, Done, plan, raise_failure, run_job
from ..progress import Progress
from ..sources import Source, named_sources
from ..sql import literal
from ..tables import SCHEMA_VERSION, TABLES
from .failpoints import failpoint
from .planning import Batch, IngestReport, plan_batches
from .pull import is_server, pull_batches
from .storage import (
    LAST_RUN,
    NULL_PARTITION,
    PARTITION_KEYS,
    PENDING,
    STAGING,
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
    executor, address: who reads and converts the inputs, as for `stream.convert`.
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
        with _staging(lk) as stage:
            batches = plan_batches([a for a in args if not is_server(a)], snapshot,
                                   committed_entries(entries), ex, report, say)
            pulls = pull_batches([a for a in args if is_server(a)], lk,
                                 committed_entries(entries), report, say)
            work = [(b, None) for b in batches] + pulls
            settings = {"stage": stage, "batch_rows": batch_rows or DEFAULT_BATCH_ROWS,
                        "on_error": on_error}
            converted = _convert(lk, meta["format"], [b for b, _ in work], ex, progress,
                                 settings)
            with contextlib.closing(converted):
                for (batch, pulled), done in zip(work, converted):
                    entry = _commit_batch(lk, meta["format"], batch, done, tables)
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
def _staging(lk: Lake) -> Iterator[str]:
    """Where the workers write a job's conversion before splitting it into the lake's part
    files: `_lake/staging/<run>` of a local lake (the parts then move into place by a
    rename; a dead run's folder is removed by the next run, storage.recover), '' for a lake
    on object storage: each worker's own temporary folder (the driver's disk is not used)."""
    if not lk.local:
        yield ""
        return
    d = Path(lk.path(f"{STAGING}/{uuid.uuid4().hex[:12]}"))
    for table in TABLES:
        (d / table).mkdir(parents=True)
    try:
        yield str(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):  # the last run folder: staging goes too
            d.parent.rmdir()


# -- converting the batches on the executor ---------------------------------------------------
def _convert(lk: Lake, fmt: str, batches: list[Batch], ex: Executor, progress: bool,
             settings: dict) -> Generator[list, None, None]:
    """Every batch planned (a pending record each, so that a killed run's parts are found),
    all their jobs handed to the executor at once, and each batch's job results yielded in
    batch order as they complete: batches convert in parallel, commit one by one."""
    plans = []
    for batch in batches:
        lk.write_json(f"{PENDING}/{batch.id}.json", {"batch": batch.id, "format": fmt})
        default = (batch.extra.get("pull") or {}).get("partition")  # a pull of deletions only
        finish = functools.partial(place_parts, lk, batch.id, default)
        plans.append(list(plan(_sources(batch), ex, RANGE_BYTES, prefix=batch.id,
                                finish=finish, **settings)))
    jobs = [job for jobs in plans for job in jobs]
    fn: Any = run_job
    bar = None
    if ex.ships:
        jobs = [job.shipped() for job in jobs]
    elif progress:
        bar = Progress(sum(f.size or 0 for b in batches for f in b.files) or None, True)
        fn = functools.partial(run_job, progress=bar)
    results = ex.map(fn, jobs)
    try:
        for jobs in plans:
            yield [next(results) for _ in jobs]
    finally:
        if bar:
            bar.close()
        close = getattr(results, "close", None)
        if close is not None:  # stops (and cancels) what is left
            close()


def _sources(batch: Batch) -> Iterator[Source]:
    """The batch's files as the converter reads them, under their input names: a local file
    (or one on a shared filesystem) as it is, a remote one where it is (the worker copies it
    to its own disk)."""
    for f in batch.files:
        if f.local is not None:
            yield from named_sources(f.local, f.name)
        else:
            yield Source(f.name, f.size, _unopened, f.name, remote=f.remote)


def _unopened() -> BinaryIO:
    raise AssertionError("a remote file is read by its job (stream/parallel.py Item.sources)")


# -- a job's parts, split per (source, project) and placed in the lake (on the worker) ------
def _partition_dir(source: str | None, project: str | None, batch: str) -> str:
    def seg(v: str | None) -> str:
        return NULL_PARTITION if v is None else urllib.parse.quote(v, safe="")
    return f"source={seg(source)}/project_id={seg(project)}/batch={batch}"


# each task row's project, keyed as child rows name their task (for _select's `join`)
PROJECTS_SQL = "CREATE TABLE _projects AS SELECT file, position, project_id FROM _tasks"


def _select(table: str, files: list[str], *, join: bool) -> str:
    """DuckDB SELECT of one table of a job without the partition columns (Hive style: in the
    path only); with `join`, a child row's project_id looked up from its task by (file,
    task_position) for the WHERE: task ids may repeat across the batch's files."""
    star = f"t.* EXCLUDE ({'source, project_id' if table == 'tasks' else 'source'})"
    src = f" FROM read_parquet([{', '.join(literal(f) for f in files)}]) t"
    if join and table != "tasks":
        src += " LEFT JOIN _projects p ON t.file = p.file AND t.task_position = p.position"
    return f"SELECT {star}{src}"


@dataclass
class _Part:
    """One part file in the lake: a table's rows of one (source, project) of a batch, from
    one job."""

    table: str
    rel: str  # <table>/source=S/project_id=P/batch=B/part-<job>.parquet, in the lake
    rows: int
    size: int
    partition: dict[str, str | None]


def place_parts(lk: Lake, batch: str, default: list | None, stage: Path, paths: list[Path],
                number: int) -> list[_Part]:
    """Split a job's part files per (source, project) into the batch's Hive folders, written
    beside the job's conversion and then put in the lake: renamed into place (a local lake)
    or uploaded (object storage) by the worker. The names are the job's number: an engine's
    retry of a job replaces the same files, and nothing reads them before the commit (a
    Delta table: its log; a Parquet lake: the ledger's list)."""
    files = {t: [str(p) for p in paths if p.parent.name == t] for t in TABLES}
    out = stage / f"split-{number:06d}-{uuid.uuid4().hex[:6]}"
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET memory_limit = '512MB'")  # bounded: DuckDB spills beyond it
        con.execute(f"SET temp_directory = {literal(str(out / 'duckdb.tmp'))}")
        con.execute("CREATE VIEW _tasks AS SELECT * FROM read_parquet("
                    f"[{', '.join(literal(f) for f in files['tasks'])}])")
        partitions = [tuple(p) for p in con.execute(
            "SELECT DISTINCT source, project_id FROM _tasks ORDER BY ALL").fetchall()]
        if not partitions and default is not None:
            partitions = [tuple(default)]
        multi = len(partitions) > 1
        if multi:  # child rows learn their project from their task
            con.execute(PROJECTS_SQL)
        placed: list[_Part] = []
        for table in TABLES:
            sql = _select(table, files[table], join=multi)
            key = "t" if table == "tasks" else "p"
            for source, project in partitions:
                rel = f"{table}/{_partition_dir(source, project, batch)}/part-{number:05d}.parquet"
                where = (f" WHERE t.source = {literal(source)} AND {key}.project_id "
                         f"IS NOT DISTINCT FROM {literal(project)}") if multi else ""
                local = out / rel
                local.parent.mkdir(parents=True, exist_ok=True)
                rows = con.execute(f"COPY ({sql}{where}) TO {literal(str(local))} "
                                   "(FORMAT parquet, COMPRESSION zstd)").fetchone()
                size = local.stat().st_size
                _put(lk, local, rel)
                placed.append(_Part(table, rel, rows[0] if rows else 0, size,
                                    {"source": source, "project_id": project, "batch": batch}))
                if len(placed) == 1:
                    failpoint("first-part")
        return placed
    finally:
        con.close()
        shutil.rmtree(out, ignore_errors=True)


def _put(lk: Lake, local: Path, rel: str) -> None:
    """One part file into the lake in one step: a rename (a local lake: the stage is inside
    it) or one upload (an object appears whole)."""
    target = lk.path(rel)
    if lk.local:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(local, target)
    else:
        pafs.copy_files(str(local), target, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=lk.fs)


# -- committing a batch (on the driver) -------------------------------------------------------
def _commit_batch(lk: Lake, fmt: str, batch: Batch, results: list, tables: dict[str, Any]) -> dict:
    """The batch's jobs done: its ledger entry, the Delta transactions, the ledger commit."""
    entry = {"batch": batch.id, "status": "committed", "kind": batch.kind, "input": batch.arg,
             "fingerprint": batch.fingerprint, "size": sum(f.size or 0 for f in batch.files),
             "files": [{"name": f.name, "size": f.size, "mtime": f.mtime, "sha256": f.sha256}
                       for f in batch.files],
             "schema_version": SCHEMA_VERSION, "format": fmt, "tool_version": __version__,
             "started_at": iso(now()), **batch.extra}
    done = [r for r in results if isinstance(r, Done)]
    staged = [p for d in done for p in d.finished]
    try:
        for r in results:
            raise_failure(r)
        _check_json(batch, done)
    except InputError as exc:
        for p in staged:  # placed by the batch's other jobs: never committed
            lk.delete(p.rel)
        lk.delete(f"{PENDING}/{batch.id}.json")
        entry.update(status="failed", error=str(exc), finished_at=iso(now()), rows={},
                     partitions=[], parts={})
        _commit(lk, entry)
        raise
    entry["skipped_tasks"] = sum(f.skipped_count for d in done for f, _ in d.files)
    entry["rows"] = {t: sum(d.rows.get(t, 0) for d in done) for t in TABLES}
    parts = sorted({(p.partition["source"], p.partition["project_id"]) for p in staged},
                   key=lambda sp: tuple((v is None, v or "") for v in sp))
    entry["partitions"] = [list(p) for p in parts]
    entry["parts"] = {t: [p.rel.split("/", 1)[1] for p in staged if p.table == t]
                      for t in TABLES}
    entry["finished_at"] = iso(now())
    lk.write_json(f"{PENDING}/{batch.id}.json", {"batch": batch.id, "format": fmt,
                                                 "parts": [p.rel for p in staged],
                                                 "entry": entry})
    failpoint("staged")
    if fmt == "delta":
        _commit_delta(lk, batch.id, staged, tables)
    failpoint("before-commit")
    _commit(lk, entry)
    failpoint("committed")
    lk.delete(f"{PENDING}/{batch.id}.json")
    return entry


def _check_json(batch: Batch, done: list[Done]) -> None:
    """A file of the batch in which no JSON was found is bad input, not empty tables."""
    found = {f.input for d in done for f, _ in d.files if f.platform}
    for f in batch.files:
        if f.name not in found:
            raise InputError(f.name, "no JSON file found in this file or zip")


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
                          p.size, p.partition, stamp, True,
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


