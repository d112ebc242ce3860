"""Reading a lake: DuckDB views over the batches the ledger lists as committed (each table
with its history, `latest.<table>`, `ledger`), so a batch appears in one step and nothing
a killed run left is ever read."""
from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from ..query import VIEWS, sql_type
from ..sql import literal
from ..tables import TABLES
from .storage import (
    PARTITION_KEYS,
    Lake,
    check_schema,
    committed_entries,
    delta_schema,
    open_delta,
    storage_errors,
)


def live_batches(committed: list[dict]) -> list[tuple[str, str | None, str, int]]:
    """Per (source, project): the newest full snapshot and the partial batches after it (or
    every partial batch when there is no full one), as (source, project, batch, seq).

    Tasks without a project (import-shape files, NER model JSON) are not snapshots of one
    project: every batch of theirs is read as partial, so files add up (upsert by task id)."""
    by_part: dict[tuple, list[tuple[int, dict]]] = {}
    for seq, e in enumerate(committed):
        for source, project in e["partitions"]:
            by_part.setdefault((source, project), []).append((seq, e))
    live = []
    for (source, project), seq_entries in by_part.items():
        fulls = [s for s, e in seq_entries if e["kind"] == "full" and project is not None]
        start = fulls[-1] if fulls else -1
        live += [(source, project, e["batch"], s) for s, e in seq_entries if s >= start]
    return live


def register(con: duckdb.DuckDBPyConnection, uri: str | os.PathLike) -> None:
    """Create the lake's views on `con`: each table (every committed snapshot, with its
    `batch` and `project_id`), `latest.<table>` (per source and project the newest snapshot,
    partial batches upserted by task), and `ledger` (one row per batch).

    The query layer calls this for a lake folder; only committed batches are ever read.
    """
    with storage_errors(uri):
        _register(con, Lake(uri))


def _register(con: duckdb.DuckDBPyConnection, lk: Lake) -> None:
    meta = lk.existing_meta()
    entries = lk.ledger()
    check_schema(lk, entries)
    committed = committed_entries(entries)
    batches = [e["batch"] for e in committed]
    for table in TABLES:
        if meta["format"] == "delta":
            ds = _delta_dataset(lk, table)
        else:
            ds = _parquet_dataset(lk, table, committed)
        con.register(f"_lake_{table}", ds)
        have = set(ds.schema.names)
        cols = [n if n in have else f"CAST(NULL AS {sql_type(f.type)}) AS {n}"
                for f in delta_schema(table) for n in [f.name]]  # older schema: NULL
        where = ""
        if meta["format"] == "delta":
            where = (f" WHERE batch IN ({', '.join(literal(b) for b in batches)})" if batches
                     else " WHERE false")
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT "
                    f"{', '.join(cols)} FROM _lake_{table}{where}")
    live = live_batches(committed)
    rows = ", ".join(f"({literal(s)}, {literal(p)}, {literal(b)}, {n})"
                     for s, p, b, n in live)
    con.execute("CREATE OR REPLACE VIEW _lake_live AS SELECT * FROM (VALUES "
                + (rows or "(NULL, NULL, NULL, NULL)") + ") v(source, project_id, batch, seq)"
                + ("" if rows else " WHERE false"))
    # tasks a live pull found deleted on the server (stream/lake/pull.py): a task row older
    # than its tombstone is not the latest state
    by_batch = {e["batch"]: e for e in committed}
    gone = ", ".join(f"({literal(s)}, {literal(p)}, {literal(t)}, {n})" for s, p, b, n in live
                     for t in (by_batch[b].get("pull") or {}).get("deleted", []))
    con.execute("CREATE OR REPLACE VIEW _lake_deleted AS SELECT * FROM (VALUES "
                + (gone or "(NULL, NULL, NULL, NULL)") + ") v(source, project_id, task_id, seq)"
                + ("" if gone else " WHERE false"))
    con.execute("CREATE SCHEMA IF NOT EXISTS latest")
    con.execute("""CREATE OR REPLACE VIEW latest.tasks AS
        SELECT * EXCLUDE (_seq) FROM (
            SELECT t.*, l.seq AS _seq FROM main.tasks t JOIN _lake_live l ON t.batch = l.batch
                AND t.source = l.source AND t.project_id IS NOT DISTINCT FROM l.project_id
            QUALIFY row_number() OVER (PARTITION BY t.source, t.project_id, t.task_id
                ORDER BY t.updated_at DESC NULLS LAST, l.seq DESC, t.file DESC,
                         t.position DESC) = 1) k
        WHERE NOT EXISTS (SELECT 1 FROM _lake_deleted d WHERE d.source = k.source
            AND d.project_id IS NOT DISTINCT FROM k.project_id AND d.task_id = k.task_id
            AND d.seq > k._seq)""")
    # a child follows its own task row, (file, task_position), since task ids may repeat
    # within a batch; child rows of batches written before those columns follow the task id
    for table in TABLES:
        if table != "tasks":
            con.execute(f"""CREATE OR REPLACE VIEW latest.{table} AS
                SELECT c.* FROM main.{table} c SEMI JOIN latest.tasks t ON c.batch = t.batch
                    AND c.source = t.source AND c.task_id = t.task_id
                    AND c.project_id IS NOT DISTINCT FROM t.project_id
                    AND (c.file IS NULL OR c.file = t.file AND c.task_position = t.position)""")
    con.register("_lake_ledger", pa.Table.from_pylist(
        [ledger_row(e) for e in entries], schema=LEDGER_SCHEMA))
    con.execute("CREATE OR REPLACE VIEW ledger AS SELECT * FROM _lake_ledger")


def _parquet_dataset(lk: Lake, table: str, committed: list[dict]) -> pads.Dataset:
    """The committed part files of a table; columns a batch of an older schema version lacks
    read as NULL (the dataset's schema is the current one)."""
    file_fields = [f for f in TABLES[table].schema
                   if f.name not in ("source", "project_id")]
    parts_schema = pa.schema([pa.field(k, pa.string()) for k in PARTITION_KEYS])
    files = [lk.path(f"{table}/{rel}") for e in committed for rel in e["parts"].get(table, [])]
    return pads.dataset(files, schema=pa.schema(file_fields + list(parts_schema)),
                        filesystem=lk.fs, format="parquet",
                        partitioning=pads.partitioning(parts_schema, flavor="hive"),
                        partition_base_dir=lk.path(table))


def _delta_dataset(lk: Lake, table: str) -> pads.Dataset:
    dt = open_delta(lk, table)
    if dt is None:
        return pads.dataset([], schema=delta_schema(table), format="parquet")
    return dt.to_pyarrow_dataset()


LEDGER_SCHEMA = pa.schema([
    ("batch", pa.string()), ("status", pa.string()), ("kind", pa.string()),
    ("input", pa.string()), ("files", pa.int64()), ("size", pa.int64()),
    ("fingerprint", pa.string()), ("schema_version", pa.int64()), ("format", pa.string()),
    ("projects", pa.list_(pa.string())), ("tasks", pa.int64()), ("annotations", pa.int64()),
    ("results", pa.int64()), ("relations", pa.int64()), ("keyframes", pa.int64()),
    ("skipped_tasks", pa.int64()), ("started_at", pa.string()), ("finished_at", pa.string()),
    ("error", pa.string()),
])


def ledger_row(e: dict) -> dict:
    rows = e.get("rows") or {}
    return {"batch": e["batch"], "status": e["status"], "kind": e["kind"], "input": e["input"],
            "files": len(e["files"]), "size": e["size"], "fingerprint": e["fingerprint"],
            "schema_version": e["schema_version"], "format": e["format"],
            "projects": [f"{s}/{p}" for s, p in e.get("partitions", [])],
            **{t: rows.get(t) for t in TABLES}, "skipped_tasks": e.get("skipped_tasks"),
            "started_at": e["started_at"], "finished_at": e.get("finished_at"),
            "error": e.get("error")}


def connect_lake(uri: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection over a lake: its tables, `latest.*`, `ledger`, and the
    query layer's convenience views (`regions`, `frames`, ...) over the latest snapshot.

    The convenience views group by annotation and region ids, which repeat in every
    snapshot, so over history they would merge snapshots: they are defined in `latest`
    (where DuckDB resolves their table names) and the plain names point there.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    register(con, uri)
    for view in VIEWS.values():
        con.execute(f"CREATE VIEW latest.{view.name} AS {view.sql}")
        con.execute(f"CREATE VIEW {view.name} AS SELECT * FROM latest.{view.name}")
    return con


