"""The lake's storage: where its objects live (local disk, S3, GCS), small metadata objects
written in one step, the ledger, the writer's lock, Delta tables, and removing batches."""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.fs as pafs

from .._version import __version__
from ..atomic import write_atomic
from ..errors import AnnostreamError
from ..layout import LAKE_JSON, LAKE_META
from ..sql import literal
from ..tables import SCHEMA_VERSION, TABLES

log = logging.getLogger("annostream")

META = LAKE_META
LEDGER = f"{META}/ledger.jsonl"
LAST_RUN = f"{META}/last_run.json"
PENDING = f"{META}/pending"
STAGING = f"{META}/staging"  # a local lake's job folders, <run>/ (stream/lake/writing.py)
PARTITION_KEYS = ("source", "project_id", "batch")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # Hive's spelling of a NULL partition value


class LakeBusy(AnnostreamError):
    """Another ingest or vacuum holds the lake's lock (exit 1)."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(d: datetime) -> str:
    return d.isoformat(timespec="milliseconds").replace("+00:00", "Z")



@contextmanager
def storage_errors(uri: str | os.PathLike) -> Iterator[None]:
    """Storage failures (unreachable server, missing bucket, denied, disk full) become one
    line naming the lake (exit 1) instead of a traceback."""
    try:
        yield
    except AnnostreamError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise AnnostreamError(f"{redact(os.fspath(uri))}: {exc}") from exc


def redact(uri: str) -> str:
    """A URI as it may be printed or stored: no user:password, no query (signed URLs)."""
    p = urllib.parse.urlsplit(uri)
    if not p.scheme or len(p.scheme) == 1:
        return uri
    netloc = p.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((p.scheme, netloc, p.path, "", ""))


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path, file://, s3:// or gs:// URI.

    Credentials come from the filesystem's usual environment variables (AWS_ACCESS_KEY_ID,
    AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...); they are never logged.
    """
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise AnnostreamError(f"{redact(uri)}: cannot open this location: {exc}") from exc
    return fs, path.rstrip("/")


class Lake:
    """The lake's storage: small metadata objects written atomically, parts, and the lock."""

    def __init__(self, uri: str | os.PathLike) -> None:
        self.uri = os.fspath(uri)
        self.fs, self.root = filesystem(self.uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read()  # bounded: our own small metadata (ledger, lake.json, lock)
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Replace an object in one step: temp file, fsync, rename (local) or one PUT (S3/GCS:
        an object becomes visible whole or not at all)."""
        target = self.path(rel)
        if not self.local:
            with self.fs.open_output_stream(target) as f:
                f.write(data)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        write_atomic(target, data, durable=True)

    def read_json(self, rel: str) -> dict | None:
        data = self.read_bytes(rel)
        return None if data is None else json.loads(data)  # bounded: the lake's own small files

    def write_json(self, rel: str, obj: dict) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(rel))

    # -- the ledger --------------------------------------------------------------------------
    def ledger(self) -> list[dict]:
        """Every batch entry in commit order (committed and failed ones)."""
        data = self.read_bytes(LEDGER)
        if data is None:
            return []
        lines = data.decode().splitlines()
        return [json.loads(line) for line in lines if line.strip()]  # bounded: a line a batch

    def write_ledger(self, entries: list[dict]) -> None:
        self.write_bytes(LEDGER, "".join(json.dumps(e, ensure_ascii=False) + "\n"
                                         for e in entries).encode())

    def meta(self) -> dict | None:
        return self.read_json(LAKE_JSON)

    def existing_meta(self) -> dict:
        """lake.json, or an error saying that this is not a lake (for readers of a lake)."""
        meta = self.meta()
        if meta is None:
            raise AnnostreamError(f"{redact(self.uri)}: not a lake (no {LAKE_JSON})")
        return meta

    @contextmanager
    def lock(self, wait: float = 0.0, what: str = "ingest") -> Iterator[None]:
        """Exclusive use of the lake for one writer: ingest and vacuum runs take turns."""
        holder = {"what": what, "host": socket.gethostname(), "pid": os.getpid(),
                  "since": iso(now()), "owner": uuid.uuid4().hex}
        lock = _FileLock(self) if self.local else _LeaseLock(self)
        lock.acquire(holder, wait)
        try:
            yield
        finally:
            lock.release()


class _FileLock:
    """fcntl.flock on <lake>/_lake/lock: released by the kernel when the process dies."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.path = lake.path(f"{META}/lock")
        self.f: TextIO | None = None

    def acquire(self, holder: dict, wait: float) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        f = open(self.path, "a+")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.seek(0)
                    other = f.read().strip()  # bounded: one line written by the holder
                    f.close()
                    holder = json.loads(other) if other else {}  # bounded: one line
                    raise LakeBusy(_busy_message(self.lake, holder, wait)) from None
                time.sleep(0.1)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(holder))
        f.flush()
        self.f = f

    def release(self) -> None:
        if self.f is not None:
            self.f.truncate(0)
            fcntl.flock(self.f, fcntl.LOCK_UN)
            self.f.close()


class _LeaseLock:
    """Object storage has no flock: a lease object `_lake/lock.json` that the holder renews
    every TTL/3 seconds. A run killed with SIGKILL stops renewing, so its lease lapses after
    TTL seconds. Taking it is write-then-verify: two runs starting within the verify delay of
    each other could both proceed; docs/lake.md says what that can (and cannot) do."""

    TTL = 120.0
    VERIFY_DELAY = 1.0
    REL = f"{META}/lock.json"

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.holder: dict = {}

    def _write(self) -> None:
        self.holder["expires"] = time.time() + self.TTL
        self.lake.write_json(self.REL, self.holder)

    def acquire(self, holder: dict, wait: float) -> None:
        self.holder = holder
        deadline = time.monotonic() + wait
        while True:
            other = self.lake.read_json(self.REL)
            if other is None or other.get("expires", 0) < time.time():
                self._write()
                time.sleep(self.VERIFY_DELAY)
                other = self.lake.read_json(self.REL) or {}
                if other.get("owner") == holder["owner"]:
                    break
            if time.monotonic() >= deadline:
                raise LakeBusy(_busy_message(self.lake, other or {}, wait))
            time.sleep(1.0)
        self.thread = threading.Thread(target=self._renew, daemon=True)
        self.thread.start()

    def _renew(self) -> None:
        while not self.stop.wait(self.TTL / 3):
            self._write()

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        if (self.lake.read_json(self.REL) or {}).get("owner") == self.holder.get("owner"):
            self.lake.delete(self.REL)


def _busy_message(lake: Lake, other: dict, wait: float) -> str:
    who = (f"{other.get('what', 'a run')} (pid {other.get('pid')} on {other.get('host')}, "
           f"since {other.get('since')})" if other else "another run")
    waited = f" after waiting {wait:g}s" if wait else ""
    return (f"{redact(lake.uri)} is locked by {who}{waited}; try again later or pass "
            "--wait SECONDS")



def committed_entries(entries: list[dict]) -> list[dict]:
    return [e for e in entries if e.get("status") == "committed"]


def check_schema(lake: Lake, entries: list[dict]) -> None:
    newer = sorted({e["schema_version"] for e in entries if e["schema_version"] > SCHEMA_VERSION})
    if newer:
        raise AnnostreamError(
            f"{redact(lake.uri)} holds batches of schema version {newer[-1]}, newer than this "
            f"annostream {__version__} (schema version {SCHEMA_VERSION}): upgrade it with "
            "`pip install -U annostream`")



def storage_options(lk: Lake) -> dict:
    """deltalake reads AWS_* / GOOGLE_* env vars itself; plain-HTTP endpoints (a local S3
    server) must be allowed explicitly, and a single writer per lake is guaranteed by our
    lock, so no external locking provider is needed."""
    if lk.local:
        return {}
    opts = {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


def deltalake_module() -> Any:
    """The optional deltalake package, or an error that says how to install it."""
    try:
        import deltalake
        import deltalake.exceptions
    except ImportError as exc:
        raise AnnostreamError("a Delta lake needs the deltalake package: "
                              "pip install 'annostream[lake]'") from exc
    return deltalake


def open_delta(lk: Lake, table: str) -> Any:
    """The Delta table of `table` (a deltalake.DeltaTable), or None before its first batch."""
    dl = deltalake_module()
    try:
        return dl.DeltaTable(delta_uri(lk, table), storage_options=storage_options(lk))
    except dl.exceptions.TableNotFoundError:
        return None


def delta_uri(lk: Lake, table: str) -> str:
    return lk.path(table) if lk.local else f"{lk.uri.rstrip('/')}/{table}"



def delta_schema(table: str) -> pa.Schema:
    fields = list(TABLES[table].schema)
    if table != "tasks":
        fields.append(pa.field("project_id", pa.string()))
    fields.append(pa.field("batch", pa.string()))
    return pa.schema(fields)



def delta_app_id(batch: str) -> str:
    """The Delta application transaction id of a batch's commit to each table: a table whose
    log holds it has the batch, so committing it again is a no-op."""
    return f"annostream-{batch}"


def delta_has(lk: Lake, table: str, batch: str) -> bool:
    dt = open_delta(lk, table)
    return dt is not None and dt.transaction_version(delta_app_id(batch)) is not None


def recover(lk: Lake) -> None:
    """Finish or undo what a killed run left, under the lock before anything else: a Delta
    batch that every table committed but the ledger does not list yet is committed to the
    ledger (its Delta commits are not redone); any other uncommitted batch's parts and Delta
    rows are removed; stale staging folders and temp files go."""
    entries = lk.ledger()
    committed = {e["batch"] for e in committed_entries(entries)}
    pending = lk.fs.get_file_info(pafs.FileSelector(lk.path(PENDING), allow_not_found=True))
    for info in pending:
        rec = lk.read_json(info.path[len(lk.root) + 1:]) or {}
        batch, fmt = str(rec.get("batch")), rec.get("format", "parquet")
        if batch in committed:
            pass
        elif fmt == "delta" and rec.get("entry") and all(delta_has(lk, t, batch)
                                                          for t in TABLES):
            log.info("committing batch %s, which an interrupted run wrote whole", batch)
            entries.append(rec["entry"])
            lk.write_ledger(entries)
        else:
            log.info("removing batch %s left by an interrupted run", batch)
            parts = rec.get("parts")
            drop_batches(lk, fmt, [batch], _batch_files(lk, batch) if parts is None else parts)
        lk.fs.delete_file(info.path)
    if lk.local:
        shutil.rmtree(lk.path(STAGING), ignore_errors=True)
        for tmp in Path(lk.path(META)).glob("*.tmp"):
            tmp.unlink(missing_ok=True)


def _batch_files(lk: Lake, batch: str) -> list[str]:
    """The files a run killed while its jobs ran may have put in the lake for `batch` (its
    parts were not listed yet): every file under a `batch=<batch>` folder of a table."""
    found = []
    for table in TABLES:
        for info in lk.fs.get_file_info(pafs.FileSelector(lk.path(table), recursive=True,
                                                          allow_not_found=True)):
            if info.type == pafs.FileType.File and f"/batch={batch}/" in info.path:
                found.append(info.path[len(lk.root) + 1:])
    return found


def drop_batches(lk: Lake, fmt: str, batches: list[str], parts: list[str] | None) -> None:
    """Delete batches' data: their Delta rows (a Delta lake), then their part files (and
    emptied folders)."""
    if fmt == "delta":
        listed = ", ".join(literal(b) for b in batches)
        for table in TABLES:
            dt = open_delta(lk, table)
            if dt is not None:
                dt.delete(f"batch IN ({listed})")
    for rel in parts or []:
        lk.delete(rel)
        if lk.local:
            folder = os.path.dirname(lk.path(rel))
            while folder != lk.root and os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
                folder = os.path.dirname(folder)


