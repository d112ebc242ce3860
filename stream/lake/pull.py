"""Ingesting live Label Studio projects (`labelstudio+http(s)://host/projects/ID|*` inputs).

The first ingest of a (server, project) pulls every task: a full snapshot batch. Later runs
list the server's task ids with their `updated_at` (a light page of 5,000 pairs per request),
compare them in DuckDB with what `latest.tasks` holds for that project, fetch only the tasks
created or changed since (by id, a few hundred per request), and record the ids no longer on
the server in the batch's ledger entry (`pull.deleted`, read as tombstones by `latest.*`):
one partial batch. Comparing versions rather than filtering on a time window leaves nothing
to clock skew or transactions that commit late, and re-fetches nothing already in the lake.

Pages are appended to `tasks.json` in a pull folder (`<lake>/_lake/pulls/<key>/` for a local
lake, a folder under the system's temp dir for one on object storage) with `state.json`
written after each page: a run killed mid-pull resumes after its last complete page, and the
batch it commits equals the one an uninterrupted run would. The folder is removed once its
batch is committed; a state left from before the lake's latest commit of that project is
stale and discarded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .. import labelstudio_api as ls
from ..formats.common import fromisoformat
from ..sql import literal
from .failpoints import failpoint
from .inputs import InputFile
from .planning import Batch, IngestReport
from .reading import register
from .storage import META, Lake, now

PULLS = f"{META}/pulls"
SOURCE = "labelstudio"


def is_server(arg: str) -> bool:
    return ls.is_uri(arg)


@dataclass
class Pull:
    """One project's pull in progress, as saved in its state.json after every page."""

    uri: str  # the project's URI (no token, no options)
    base_batch: str | None  # the project's last committed batch when this pull began
    mode: str  # 'full' | 'partial'
    after: int = 0  # the last task id written
    size: int = 0  # bytes of tasks.json holding whole pages
    tasks: int = 0
    deleted: list[str] = field(default_factory=list)
    done: bool = False


class PullFolder:
    """tasks.json + state.json (+ the id listing and the changed ids of a partial pull)."""

    def __init__(self, lk: Lake, uri: str) -> None:
        key = hashlib.sha256(f"{lk.uri}\n{uri}".encode()).hexdigest()[:16]
        self.path = (Path(lk.path(f"{PULLS}/{key}")) if lk.local
                     else Path(tempfile.gettempdir(), "annostream-pulls", key))
        self.tasks = self.path / "tasks.json"
        self.state_file = self.path / "state.json"

    def load(self) -> Pull | None:
        try:
            return Pull(**json.loads(self.state_file.read_text()))  # bounded: our small state
        except (OSError, ValueError, TypeError):
            return None

    def save(self, pull: Pull) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(pull.__dict__, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    def reset(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)

    def append(self, pull: Pull, tasks: list[dict]) -> None:
        """One page after the last whole one (a page half-written by a killed run is cut)."""
        if tasks:
            with open(self.tasks, "r+b" if self.tasks.exists() else "wb") as f:
                f.truncate(pull.size)
                f.seek(pull.size)
                f.write((b"[" if pull.size == 0 else b",") + ls.page_bytes(tasks))
                f.flush()
                os.fsync(f.fileno())
                pull.size = f.tell()
            pull.after = tasks[-1]["id"]
            pull.tasks += len(tasks)
        self.save(pull)

    def finish(self, pull: Pull) -> None:
        with open(self.tasks, "r+b" if self.tasks.exists() else "wb") as f:
            f.truncate(pull.size)
            f.seek(pull.size)
            f.write(b"]" if pull.size else b"[]")
        pull.done = True
        self.save(pull)


def pull_batches(args: list[str], lk: Lake, committed: list[dict], report: IngestReport,
                 say: Callable[[str], None]) -> list[tuple[Batch, PullFolder]]:
    """Pull what is new of every project the server URIs name, one batch each (none for a
    project without changes), with the folder to remove once the batch is committed."""
    out = []
    for given in args:
        target = ls.parse(given)
        client = ls.Client(target)
        ids = [target.project] if target.project is not None else ls.project_ids(client)
        for project in ids:
            uri = target.uri(project)
            prev = [e for e in committed if (e.get("pull") or {}).get("uri") == uri]
            folder = PullFolder(lk, uri)
            pull = _pull(client, project, uri, prev[-1]["batch"] if prev else None, folder, lk)
            if pull is None:
                report.skipped.append({"name": uri, "reason": "no task changed or deleted"})
                say(f"up to date: {uri} (no task changed or deleted since batch "
                    f"{prev[-1]['batch']})")
                shutil.rmtree(folder.path, ignore_errors=True)
                continue
            out.append((_batch(pull, folder), folder))
    return out


def _pull(client: ls.Client, project: int, uri: str, base: str | None, folder: PullFolder,
          lk: Lake) -> Pull | None:
    """Fetch (or finish fetching) the project's new tasks into the folder; None: nothing new."""
    pull = folder.load()
    if pull is None or pull.uri != uri or pull.base_batch != base:
        folder.reset()
        pull = Pull(uri, base, "full" if base is None else "partial")
        if pull.mode == "partial":
            changed = _diff(client, project, uri, folder, lk, pull)
            if not changed and not pull.deleted:
                return None
        folder.save(pull)
    if pull.done:
        return pull
    progress = ls.PullProgress(uri)
    try:
        pages = (ls.task_pages(client, project, pull.after) if pull.mode == "full"
                 else _changed_pages(client, project, folder, pull.after))
        for tasks, total in pages:
            folder.append(pull, tasks)
            progress.add(len(tasks), total)
            failpoint("pulled-page")
    finally:
        progress.close()
    folder.finish(pull)
    return pull


def _diff(client: ls.Client, project: int, uri: str, folder: PullFolder, lk: Lake,
          pull: Pull) -> int:
    """The server's (id, updated_at) listing against latest.tasks of this project, in DuckDB
    (bounded: it spills): the ids to fetch go to changed.parquet, those gone to
    `pull.deleted`; returns how many changed."""
    schema = pa.schema([("id", pa.int64()), ("updated_us", pa.int64())])
    listing = folder.path / "listing.parquet"
    with pq.ParquetWriter(listing, schema) as w:
        for page in ls.listing(client, project):
            w.write_table(pa.table({"id": [t["id"] for t in page],
                                    "updated_us": [_micros(t.get("updated_at")) for t in page]},
                                   schema=schema))
    con = duckdb.connect()
    con.execute(f"SET temp_directory = {literal(str(folder.path / 'duckdb.tmp'))}")
    register(con, lk.uri)
    con.execute(f"""CREATE TEMP VIEW lake_tasks AS SELECT task_id, epoch_us(updated_at) AS us
                    FROM latest.tasks WHERE source = {literal(SOURCE)}
                    AND file = {literal(uri)}""")
    con.execute(f"CREATE TEMP VIEW server AS SELECT * FROM read_parquet("
                f"{literal(str(listing))})")
    changed = folder.path / "changed.parquet"
    con.execute(f"""COPY (SELECT s.id FROM server s LEFT JOIN lake_tasks l
                          ON l.task_id = CAST(s.id AS VARCHAR)
                          WHERE l.task_id IS NULL OR l.us IS DISTINCT FROM s.updated_us
                          ORDER BY s.id) TO {literal(str(changed))} (FORMAT parquet)""")
    (n,) = con.execute(f"SELECT count(*) FROM read_parquet({literal(str(changed))})"
                       ).fetchall()[0]
    pull.deleted = [r[0] for r in con.execute(
        "SELECT task_id FROM lake_tasks WHERE task_id NOT IN "
        "(SELECT CAST(id AS VARCHAR) FROM server) ORDER BY TRY_CAST(task_id AS BIGINT), task_id"
    ).fetchall()]  # bounded: the ids deleted on the server since the last run
    con.close()
    return n


def _micros(ts: str | None) -> int | None:
    if not isinstance(ts, str):
        return None
    d = fromisoformat(ts)
    return int(d.timestamp()) * 1_000_000 + d.microsecond


def _changed_pages(client: ls.Client, project: int, folder: PullFolder, after: int
                   ) -> Iterator[tuple[list, int]]:
    """Pages of the changed tasks with id > after, IDS_PER_REQUEST ids a request."""
    changed = pq.ParquetFile(folder.path / "changed.parquet")
    total = changed.metadata.num_rows
    for b in changed.iter_batches(batch_size=ls.IDS_PER_REQUEST, columns=["id"]):
        ids = [i for i in b.column(0).to_pylist() if i > after]
        if ids:
            yield ls.tasks_by_id(client, project, ids), total


def _batch(pull: Pull, folder: PullFolder) -> Batch:
    sha = hashlib.sha256()
    with open(folder.tasks, "rb") as raw:
        while chunk := raw.read(ls.CHUNK):
            sha.update(chunk)
    size = folder.tasks.stat().st_size
    batch = Batch(pull.uri, pull.mode, [InputFile(pull.uri, "", size, None, None,
                                                  str(folder.tasks), sha.hexdigest(),
                                                  str(folder.tasks), "array")])
    batch.id = f"{now().strftime('%Y%m%dT%H%M%SZ')}-{batch.fingerprint[:12]}"
    batch.extra = {"pull": {"uri": pull.uri, "mode": pull.mode, "tasks": pull.tasks,
                            "deleted": pull.deleted,
                            "partition": [SOURCE, str(ls.parse(pull.uri).project)]}}
    return batch
