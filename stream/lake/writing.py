"""Writing an ingest: each planned batch converted by `stream.convert` into a staging
folder, split per (source, project) by DuckDB, published under its batch folders (Parquet)
or appended to Delta tables, and committed by rewriting the ledger, the one atomic step.
A `_lake/pending/<batch>.json` record, removed after the commit, lets the next run remove
what a killed one left (`storage.recover`)."""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from .._version import __version__
from ..buffers import DEFAULT_BATCH_ROWS
from ..convert import convert
from ..errors import AnnostreamError, InputError
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
    delta_schema,
    delta_uri,
    deltalake_module,
    iso,
    now,
    recover,
    redact,
    storage_errors,
    storage_options,
)


def ingest(inputs: Sequence[str | os.PathLike], lake: str | os.PathLike, *,
           snapshot: Snapshot = "auto", format: LakeFormat | None = None,
           on_error: OnError = "fail", wait: float = 0.0, batch_rows: int | None = None,
           progress: bool = False, echo: Callable[[str], None] | None = None) -> IngestReport:
    """Add new inputs to the lake, each batch committed atomically; returns what was done.

    snapshot: 'auto' (a file holding a whole export is a full snapshot of its project; the
    new per-task files of an argument form one partial batch), 'partial' (every batch is a
    partial export: task-level upsert) or 'full' (each argument as a whole is one full
    snapshot). Inputs already in the ledger (same content) are skipped and reported.
    `echo` receives one line per batch (the CLI prints them unless --quiet).
    """
    check("snapshot", snapshot, Snapshot)
    if format is not None:
        check("format", format, LakeFormat)
    say = echo or (lambda line: None)
    with storage_errors(lake):
        report = _ingest(inputs, Lake(lake), snapshot, format, on_error, wait, batch_rows,
                         progress, say)
    if report.nothing_to_do:
        say(f"nothing to do: every input is already in {report.lake}")
    return report


def _ingest(inputs: Sequence[str | os.PathLike], lk: Lake, snapshot: Snapshot,
            format: LakeFormat | None, on_error: OnError, wait: float,
            batch_rows: int | None, progress: bool,
            say: Callable[[str], None]) -> IngestReport:
    report = IngestReport(redact(lk.uri))
    started = iso(now())
    with lk.lock(wait, "ingest"):
        recover(lk)
        meta = _init(lk, format)
        entries = lk.ledger()
        check_schema(lk, entries)
        args = [os.fspath(i) for i in inputs]
        with _run_dir(lk) as run_dir:
            batches = plan_batches([a for a in args if not is_server(a)], snapshot,
                                   committed_entries(entries), run_dir, report, say)
            pulls = pull_batches([a for a in args if is_server(a)], lk,
                                 committed_entries(entries), report, say)
            for batch, pulled in [(b, None) for b in batches] + pulls:
                entry = _ingest_batch(lk, meta["format"], batch, run_dir, on_error, batch_rows,
                                      progress)
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
        meta = {"tool": "annostream", "format": fmt or "parquet", "created_at": iso(now()),
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
                  batch_rows: int | None, progress: bool) -> dict:
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
                           on_error=on_error, progress=progress,
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
    if fmt == "delta":
        _write_delta(lk, con, batch.id, converted, renames, entry)
    else:
        _write_parquet(lk, con, batch.id, converted, stage / "parts", renames, partitions, entry)
    con.close()
    entry["finished_at"] = iso(now())
    failpoint("before-commit")
    _commit(lk, entry)
    failpoint("committed")
    lk.delete(f"{PENDING}/{batch.id}.json")
    return entry


def _write_parquet(lk: Lake, con: duckdb.DuckDBPyConnection, batch: str, converted: Path,
                   parts_dir: Path, renames: list[tuple[str, str]], partitions: list,
                   entry: dict) -> None:
    """Split each staged table per (source, project) into Hive folders, then publish them."""
    if len(partitions) > 1:  # child rows learn their project from their task
        con.execute(PROJECTS_SQL)
    multi = len(partitions) > 1
    staged: list[tuple[str, Path]] = []
    for table in TABLES:
        sql = _select(table, converted, renames, drop_keys=True, join=multi)
        key = "t" if table == "tasks" else "p"
        for source, project in partitions:
            rel = f"{table}/{_partition_dir(source, project, batch)}/part-0.parquet"
            where = (f" WHERE t.source = {literal(source)} AND {key}.project_id "
                     f"IS NOT DISTINCT FROM {literal(project)}") if multi else ""
            dest = parts_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY ({sql}{where}) TO {literal(str(dest))} "
                        "(FORMAT parquet, COMPRESSION zstd)")
            staged.append((rel, dest))
    entry["parts"] = {t: [rel.split("/", 1)[1] for rel, _ in staged if rel.startswith(t + "/")]
                      for t in TABLES}
    lk.write_json(f"{PENDING}/{batch}.json", {"batch": batch, "format": "parquet",
                                              "parts": [rel for rel, _ in staged]})
    failpoint("staged")
    for i, (rel, local) in enumerate(staged):
        target = lk.path(rel)
        if lk.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(local, target)
        else:
            pafs.copy_files(str(local), target, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=lk.fs)
        if i == 0:
            failpoint("first-part")



def _write_delta(lk: Lake, con: duckdb.DuckDBPyConnection, batch: str, converted: Path,
                 renames: list[tuple[str, str]], entry: dict) -> None:
    """One Delta append per table (partitioned by source, project_id, batch), streamed from
    DuckDB; the ledger commit afterwards is what makes the batch visible to our views."""
    write_deltalake = deltalake_module().write_deltalake
    con.execute(PROJECTS_SQL)
    lk.write_json(f"{PENDING}/{batch}.json", {"batch": batch, "format": "delta"})
    failpoint("staged")
    entry["parts"] = {}
    for i, table in enumerate(TABLES):
        sql = _select(table, converted, renames, drop_keys=False, join=True)
        rel = con.sql(f"SELECT *, {literal(batch)} AS batch FROM ({sql})")
        to_reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader  # duckdb<2
        reader = to_reader(65536)
        schema = delta_schema(table)
        reader = pa.RecordBatchReader.from_batches(schema, (
            pa.RecordBatch.from_arrays([b.column(n).cast(schema.field(n).type)
                                        for n in schema.names], schema=schema)
            for b in reader))
        write_deltalake(delta_uri(lk, table), reader, mode="append",
                        partition_by=list(PARTITION_KEYS), schema_mode="merge",
                        storage_options=storage_options(lk))
        if i == 0:
            failpoint("first-part")



def _commit(lk: Lake, entry: dict) -> None:
    """The atomic step: the ledger, re-read under the lock, rewritten with `entry` added."""
    entries = lk.ledger()
    lk.write_ledger(entries + [entry])


