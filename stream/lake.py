"""A data lake of ingested exports: `annostream ingest`, `lake status`, `lake vacuum`.

Layout (docs/lake.md explains the choices):

    <lake>/_lake/lake.json                 format (parquet | delta), created with which version
    <lake>/_lake/ledger.jsonl              one line per batch; rewritten whole, atomically
    <lake>/_lake/pending/<batch>.json      a batch being published (removed after its commit)
    <lake>/_lake/lock                      fcntl lock (local) or a lease object (object storage)
    <lake>/<table>/source=S/project_id=P/batch=B/part-0.parquet    (format parquet)
    <lake>/<table>/  a Delta table partitioned by source, project_id, batch  (format delta)

A batch is one input file (or, with `--full`, one input argument) converted by
`stream.convert` into a staging folder, split per (source, project) by DuckDB, published
under its batch folders and then committed by rewriting the ledger. Readers (the views of
`register`) read only the batches the ledger lists as committed, so a batch appears in one
step and a run killed at any moment leaves nothing visible; the next run removes what the
killed one left (`_lake/pending`) and ingests the input again.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from . import __version__
from .convert import convert
from .errors import AnnostreamError, InputError
from .formats import sniff
from .query import LAKE_JSON, VIEWS, sql_type
from .sources import CHUNK, decompressed, iter_sources
from .tables import SCHEMA_VERSION, TABLES

log = logging.getLogger("annostream")

META = "_lake"
LEDGER = f"{META}/ledger.jsonl"
LAST_RUN = f"{META}/last_run.json"
PENDING = f"{META}/pending"
PARTITION_KEYS = ("source", "project_id", "batch")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # Hive's spelling of a NULL partition value
FULL_CONTAINERS = frozenset({"array", "ner"})  # a whole export in one file: a full snapshot
KILL_ENV = "ANNOSTREAM_LAKE_KILL_AT"  # test-only: SIGKILL ourselves at a named point
PAUSE_ENV = "ANNOSTREAM_LAKE_PAUSE_AT"  # test-only: '<point>:<seconds>' sleeps there


class LakeBusy(AnnostreamError):
    """Another ingest or vacuum holds the lake's lock (exit 1)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(d: datetime) -> str:
    return d.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _test_point(name: str) -> None:
    """Test hooks (docs/lake.md): ANNOSTREAM_LAKE_KILL_AT=<name> makes the process SIGKILL
    itself here (a deterministic 'killed after its first part file'), and
    ANNOSTREAM_LAKE_PAUSE_AT=<name>:<seconds> makes it sleep here (a run holding the lock)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, seconds = os.environ.get(PAUSE_ENV, "").partition(":")
    if point == name:
        time.sleep(float(seconds))


@contextmanager
def _storage_errors(uri: str) -> Iterator[None]:
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


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
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
        self.fs, self.root = _filesystem(self.uri)
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
        tmp = f"{target}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(os.path.dirname(target), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read_json(self, rel: str) -> dict | None:
        data = self.read_bytes(rel)
        return None if data is None else json.loads(data)  # bounded: the lake's own small files

    def write_json(self, rel: str, obj: dict) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

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

    @contextmanager
    def lock(self, wait: float = 0.0, what: str = "ingest") -> Iterator[None]:
        """Exclusive use of the lake for one writer: ingest and vacuum runs take turns."""
        holder = {"what": what, "host": socket.gethostname(), "pid": os.getpid(),
                  "since": _iso(_now()), "owner": uuid.uuid4().hex}
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
        self.f = None

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


# -- inputs -----------------------------------------------------------------------------------
@dataclass
class InputFile:
    """One file of an input argument: where to read it and what to call it."""

    name: str  # as stored and shown: the local path as given, or the redacted URI
    rel: str  # path relative to the argument ('' for a single file)
    size: int | None
    mtime: str | None
    fs: pafs.FileSystem | None  # None: an https:// URL
    path: str
    sha256: str | None = None
    local: str | None = None  # a local path convert() can read (the file or its download)
    container: str | None = None


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def expand(arg: str) -> list[InputFile]:
    """The files of one input argument, in sorted order (folders and prefixes recursively,
    hidden files skipped, as `convert` does)."""
    if arg == "-":
        raise InputError("-", "ingest needs files it can fingerprint; standard input is not "
                              "supported (save it to a file first)")
    if arg.startswith(("http://", "https://")):
        return [InputFile(redact(arg), "", None, None, None, arg)]
    fs, path = _filesystem(arg)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(redact(arg), "no such file, folder or prefix")
    local = isinstance(fs, pafs.LocalFileSystem)
    shown = arg if local and "://" not in arg else redact(arg)
    if info.type == pafs.FileType.File:
        return [_input_file(arg, shown, "", info, fs)]
    files = []
    for fi in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        rel = fi.path[len(path):].lstrip("/")
        if fi.type == pafs.FileType.File and not _hidden(rel):
            files.append(_input_file(arg, f"{shown.rstrip('/')}/{rel}", rel, fi, fs))
    return sorted(files, key=lambda f: f.rel)


def _input_file(arg: str, name: str, rel: str, info: pafs.FileInfo, fs) -> InputFile:
    mtime = info.mtime.astimezone(timezone.utc).isoformat() if info.mtime else None
    f = InputFile(name, rel, info.size, mtime, fs, info.path)
    if isinstance(fs, pafs.LocalFileSystem):
        f.local = name if "://" not in arg else info.path
    return f


class _Hashing:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw) -> None:
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n >= 0 else CHUNK)
        self.sha.update(data)
        self.size += len(data)
        return data


def _open_url(url: str):
    """An http(s) stream; `user:password@` in the URL becomes a Basic auth header."""
    p = urllib.parse.urlsplit(url)
    headers = {}
    if p.username is not None:
        token = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        url = urllib.parse.urlunsplit((p.scheme, p.netloc.rsplit("@", 1)[-1], p.path, p.query,
                                       p.fragment))
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)


def fingerprint(f: InputFile, download_to: Path) -> None:
    """Stream the file once: sha256 and size; a remote file is copied to `download_to` on
    the way (convert() reads local files), a local one is only read."""
    try:
        raw = _open_url(f.path) if f.fs is None else f.fs.open_input_stream(f.path)
    except OSError as exc:
        raise AnnostreamError(f"{f.name}: cannot read: {exc}") from exc
    h = _Hashing(raw)
    try:
        if f.local is not None:
            while h.read(CHUNK):
                pass
        else:
            download_to.parent.mkdir(parents=True, exist_ok=True)
            with open(download_to, "wb") as out:
                while chunk := h.read(CHUNK):
                    out.write(chunk)
            f.local = str(download_to)
    except OSError as exc:
        raise AnnostreamError(f"{f.name}: cannot read: {exc}") from exc
    finally:
        raw.close()
    f.sha256, f.size = h.sha.hexdigest(), h.size


def container(f: InputFile) -> str | None:
    """'array' for a whole export in one file, 'object' for per-task files ...; for a zip, the
    container of its members when they agree. None when it holds no JSON."""
    kinds = set()
    for src in iter_sources([f.local]):
        raw = src.open()
        try:
            plan = sniff(decompressed(src.name, raw))
        finally:
            raw.close()
        if plan is not None:
            kinds.add(plan.container)
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"


# -- planning ---------------------------------------------------------------------------------
@dataclass
class Batch:
    arg: str
    kind: str  # 'full' | 'partial'
    files: list[InputFile]
    fingerprint: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if len(self.files) == 1:
            self.fingerprint = self.files[0].sha256 or ""
        else:
            listing = "".join(f"{f.rel}\t{f.sha256}\n" for f in self.files)
            self.fingerprint = hashlib.sha256(listing.encode()).hexdigest()


@dataclass
class Report:
    """What one ingest run did, for the CLI and for schedulers calling the Python API."""

    lake: str
    ingested: list[dict] = field(default_factory=list)  # the ledger entries committed
    skipped: list[dict] = field(default_factory=list)  # {name, reason}

    @property
    def nothing_to_do(self) -> bool:
        return not self.ingested


def _committed(entries: list[dict]) -> list[dict]:
    return [e for e in entries if e.get("status") == "committed"]


def _check_schema(lake: Lake, entries: list[dict]) -> None:
    newer = sorted({e["schema_version"] for e in entries if e["schema_version"] > SCHEMA_VERSION})
    if newer:
        raise AnnostreamError(
            f"{redact(lake.uri)} holds batches of schema version {newer[-1]}, newer than this "
            f"annostream {__version__} (schema version {SCHEMA_VERSION}): upgrade it with "
            "`pip install -U annostream`")


def ingest(inputs: Sequence[str | os.PathLike], lake: str | os.PathLike, *,
           snapshot: str = "auto", format: str | None = None, on_error: str = "fail",
           wait: float = 0.0, batch_rows: int | None = None, progress: bool = False,
           echo=None) -> Report:
    """Add new inputs to the lake, each batch committed atomically; returns what was done.

    snapshot: 'auto' (a file holding a whole export is a full snapshot of its project; the
    new per-task files of an argument form one partial batch), 'partial' (every batch is a
    partial export: task-level upsert) or 'full' (each argument as a whole is one full
    snapshot). Inputs already in the ledger (same content) are skipped and reported.
    `echo` receives one line per batch (the CLI prints them unless --quiet).
    """
    if snapshot not in ("auto", "partial", "full"):
        raise ValueError(f"snapshot must be 'auto', 'partial' or 'full', not {snapshot!r}")
    if format not in (None, "parquet", "delta"):
        raise ValueError(f"format must be 'parquet' or 'delta', not {format!r}")
    say = echo or (lambda line: None)
    with _storage_errors(lake):
        report = _ingest(inputs, Lake(lake), snapshot, format, on_error, wait, batch_rows,
                         progress, say)
    if report.nothing_to_do:
        say(f"nothing to do: every input is already in {report.lake}")
    return report


def _ingest(inputs, lk: Lake, snapshot: str, format: str | None, on_error: str, wait: float,
            batch_rows: int | None, progress: bool, say) -> Report:
    report = Report(redact(lk.uri))
    started = _iso(_now())
    with lk.lock(wait, "ingest"):
        recover(lk)
        meta = _init(lk, format)
        entries = lk.ledger()
        _check_schema(lk, entries)
        with _run_dir(lk) as run_dir:
            batches = _plan([os.fspath(i) for i in inputs], snapshot, _committed(entries),
                            run_dir, report, say)
            for batch in batches:
                entry = _ingest_batch(lk, meta["format"], batch, run_dir, on_error, batch_rows,
                                      progress)
                report.ingested.append(entry)
                rows = ", ".join(f"{t} {n:,}" for t, n in entry["rows"].items())
                say(f"ingested {entry['input']} ({entry['kind']} snapshot) as batch "
                    f"{entry['batch']}: {rows}")
        lk.write_json(LAST_RUN, {"started_at": started, "finished_at": _iso(_now()),
                                 "inputs": [redact(os.fspath(i)) for i in inputs],
                                 "batches": [e["batch"] for e in report.ingested],
                                 "skipped": len(report.skipped), "version": __version__})
    return report


def _init(lk: Lake, fmt: str | None) -> dict:
    meta = lk.meta()
    if meta is None and lk.local and (Path(lk.root, "_manifest.json").exists() or any(
            Path(lk.root, t).exists() for t in TABLES)):
        raise AnnostreamError(f"{lk.uri} holds a conversion or other files, not a lake; "
                              "choose an empty or new folder for --lake")
    if meta is None:
        meta = {"tool": "annostream", "format": fmt or "parquet", "created_at": _iso(_now()),
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


def _plan(args: list[str], snapshot: str, committed: list[dict], run_dir: Path,
          report: Report, say) -> list[Batch]:
    """Which new content to ingest, grouped into batches; records what is skipped and why."""
    by_stat = {(f["name"], f["size"], f["mtime"]): e["batch"]
               for e in committed for f in e["files"]}
    by_sha = {f["sha256"]: e["batch"] for e in committed for f in e["files"]}
    by_batch = {e["fingerprint"]: e["batch"] for e in committed}
    seen: dict[str, str] = {}  # sha256 -> name, within this run
    batches: list[Batch] = []
    for k, arg in enumerate(args):
        files = expand(arg)
        fresh: list[InputFile] = []
        for f in files:
            known = by_stat.get((f.name, f.size, f.mtime)) if snapshot != "full" else None
            if known is None:
                fingerprint(f, run_dir / "in" / str(k) / (f.rel or "input"))
                known = by_sha.get(f.sha256) if snapshot != "full" else None
            if known is None and f.sha256 in seen and snapshot != "full":
                known = f"this run ({seen[f.sha256]})"
            if known is not None:
                if f.local and f.local.startswith(str(run_dir)):
                    os.unlink(f.local)  # a download we do not need
                report.skipped.append({"name": f.name, "reason": f"already ingested in {known}"})
                say(f"already ingested: {f.name} (batch {known})")
                continue
            seen[f.sha256] = f.name
            f.container = container(f)
            if f.container is None and f.rel:
                log.warning("%s: not JSON, skipped", f.name)
                continue
            fresh.append(f)
        if not fresh:
            continue
        if snapshot == "full":
            batch = Batch(redact(arg), "full", fresh)
            if batch.fingerprint in by_batch:  # (or given twice in this run)
                report.skipped.append({"name": batch.arg, "reason": "already ingested in "
                                       f"{by_batch[batch.fingerprint]}"})
                say(f"already ingested: {batch.arg} (batch {by_batch[batch.fingerprint]})")
                continue
            by_batch[batch.fingerprint] = f"this run ({batch.arg})"
            batches.append(batch)
            continue
        rest = []
        for f in fresh:
            if snapshot == "auto" and f.container in FULL_CONTAINERS:
                batches.append(Batch(f.name, "full", [f]))
            else:
                rest.append(f)
        if rest:
            batches.append(Batch(rest[0].name if len(rest) == 1 else redact(arg), "partial",
                                 rest))
    stamp = _now().strftime("%Y%m%dT%H%M%SZ")
    for b in batches:
        b.id = f"{stamp}-{b.fingerprint[:12]}"
    return batches


# -- one batch --------------------------------------------------------------------------------
def _partition_dir(source: str | None, project: str | None, batch: str) -> str:
    def seg(v: str | None) -> str:
        return NULL_PARTITION if v is None else urllib.parse.quote(v, safe="")
    return f"source={seg(source)}/project_id={seg(project)}/batch={batch}"


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


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
            expr = f"replace({expr}, {_q(old)}, {_q(new)})"
        if renames:
            fixed.append(f"{expr} AS {col}")
    star = "t.*"
    if drop_keys:
        star += f" EXCLUDE ({'source, project_id' if table == 'tasks' else 'source'})"
    if fixed:
        star += f" REPLACE ({', '.join(fixed)})"
    sql = f"SELECT {star}"
    src = f" FROM read_parquet({_q(str(stage / table / '*.parquet'))}) t"
    if join and table != "tasks":
        sql += "" if drop_keys else ", p.project_id"
        src += " LEFT JOIN _projects p ON t.file = p.file AND t.task_position = p.position"
    return sql + src


def _renames(files: list[InputFile]) -> list[tuple[str, str]]:
    """(download prefix, input prefix) pairs: one per argument folder, not one per file."""
    pairs = set()
    for f in files:
        if f.local != f.name:
            cut = len(f.rel)
            pairs.add((f.local[:len(f.local) - cut], f.name[:len(f.name) - cut]))
    return sorted(pairs, key=lambda p: -len(p[0]))


def _ingest_batch(lk: Lake, fmt: str, batch: Batch, run_dir: Path, on_error: str,
                  batch_rows: int | None, progress: bool) -> dict:
    started = _iso(_now())
    stage = run_dir / batch.id
    kwargs = {"batch_rows": batch_rows} if batch_rows else {}
    entry = {"batch": batch.id, "status": "committed", "kind": batch.kind, "input": batch.arg,
             "fingerprint": batch.fingerprint, "size": sum(f.size or 0 for f in batch.files),
             "files": [{"name": f.name, "size": f.size, "mtime": f.mtime, "sha256": f.sha256}
                       for f in batch.files],
             "schema_version": SCHEMA_VERSION, "format": fmt, "tool_version": __version__,
             "started_at": started}
    try:
        manifest = convert([f.local for f in batch.files], stage / "converted", on_error=on_error,
                           progress=progress, **kwargs)
    except InputError as exc:
        entry.update(status="failed", error=str(exc), finished_at=_iso(_now()), rows={},
                     partitions=[], parts={})
        _commit(lk, entry)
        raise
    entry["skipped_tasks"] = manifest["skipped_tasks"]
    entry["rows"] = manifest["rows"]
    renames = _renames(batch.files)
    converted = stage / "converted"
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET memory_limit = '512MB'")  # bounded: DuckDB spills beyond it
    con.execute(f"SET temp_directory = {_q(str(stage / 'duckdb.tmp'))}")
    con.execute(f"CREATE VIEW _tasks AS SELECT * FROM read_parquet("
                f"{_q(str(converted / 'tasks' / '*.parquet'))})")
    partitions = con.execute("SELECT DISTINCT source, project_id FROM _tasks "
                             "ORDER BY ALL").fetchall()
    entry["partitions"] = [list(p) for p in partitions]
    if fmt == "delta":
        _write_delta(lk, con, batch.id, converted, renames, entry)
    else:
        _write_parquet(lk, con, batch.id, converted, stage / "parts", renames, partitions, entry)
    con.close()
    entry["finished_at"] = _iso(_now())
    _test_point("before-commit")
    _commit(lk, entry)
    _test_point("committed")
    lk.delete(f"{PENDING}/{batch.id}.json")
    return entry


def _write_parquet(lk: Lake, con: duckdb.DuckDBPyConnection, batch: str, converted: Path,
                   parts_dir: Path, renames, partitions: list, entry: dict) -> None:
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
            where = (f" WHERE t.source = {_q(source)} AND {key}.project_id IS NOT DISTINCT FROM "
                     f"{'NULL' if project is None else _q(project)}") if multi else ""
            dest = parts_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY ({sql}{where}) TO {_q(str(dest))} "
                        "(FORMAT parquet, COMPRESSION zstd)")
            staged.append((rel, dest))
    entry["parts"] = {t: [rel.split("/", 1)[1] for rel, _ in staged if rel.startswith(t + "/")]
                      for t in TABLES}
    lk.write_json(f"{PENDING}/{batch}.json", {"batch": batch, "format": "parquet",
                                              "parts": [rel for rel, _ in staged]})
    _test_point("staged")
    for i, (rel, local) in enumerate(staged):
        target = lk.path(rel)
        if lk.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(local, target)
        else:
            pafs.copy_files(str(local), target, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=lk.fs)
        if i == 0:
            _test_point("first-part")


def _storage_options(lk: Lake) -> dict:
    """deltalake reads AWS_* / GOOGLE_* env vars itself; plain-HTTP endpoints (a local S3
    server) must be allowed explicitly, and a single writer per lake is guaranteed by our
    lock, so no external locking provider is needed."""
    if lk.local:
        return {}
    opts = {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


def _deltalake():
    """The optional deltalake package, or an error that says how to install it."""
    try:
        import deltalake
        import deltalake.exceptions
    except ImportError as exc:
        raise AnnostreamError("a Delta lake needs the deltalake package: "
                              "pip install 'annostream[lake]'") from exc
    return deltalake


def _delta_table():
    dl = _deltalake()
    return dl.DeltaTable, dl.exceptions.TableNotFoundError


def _delta_uri(lk: Lake, table: str) -> str:
    return lk.path(table) if lk.local else f"{lk.uri.rstrip('/')}/{table}"


def _write_delta(lk: Lake, con: duckdb.DuckDBPyConnection, batch: str, converted: Path,
                 renames, entry: dict) -> None:
    """One Delta append per table (partitioned by source, project_id, batch), streamed from
    DuckDB; the ledger commit afterwards is what makes the batch visible to our views."""
    write_deltalake = _deltalake().write_deltalake
    con.execute(PROJECTS_SQL)
    lk.write_json(f"{PENDING}/{batch}.json", {"batch": batch, "format": "delta"})
    _test_point("staged")
    entry["parts"] = {}
    for i, table in enumerate(TABLES):
        sql = _select(table, converted, renames, drop_keys=False, join=True)
        rel = con.sql(f"SELECT *, {_q(batch)} AS batch FROM ({sql})")
        to_reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader  # duckdb<2
        reader = to_reader(65536)
        schema = _delta_schema(table)
        reader = pa.RecordBatchReader.from_batches(schema, (
            pa.RecordBatch.from_arrays([b.column(n).cast(schema.field(n).type)
                                        for n in schema.names], schema=schema)
            for b in reader))
        write_deltalake(_delta_uri(lk, table), reader, mode="append",
                        partition_by=list(PARTITION_KEYS), schema_mode="merge",
                        storage_options=_storage_options(lk))
        if i == 0:
            _test_point("first-part")


def _delta_schema(table: str) -> pa.Schema:
    fields = list(TABLES[table].schema)
    if table != "tasks":
        fields.append(pa.field("project_id", pa.string()))
    fields.append(pa.field("batch", pa.string()))
    return pa.schema(fields)


def _commit(lk: Lake, entry: dict) -> None:
    """The atomic step: the ledger, re-read under the lock, rewritten with `entry` added."""
    entries = lk.ledger()
    lk.write_ledger(entries + [entry])


def recover(lk: Lake) -> None:
    """Undo what a killed run left: parts or Delta rows of batches never committed, stale
    staging folders and temp files. Runs under the lock before anything else."""
    committed = {e["batch"] for e in _committed(lk.ledger())}
    pending = lk.fs.get_file_info(pafs.FileSelector(lk.path(PENDING), allow_not_found=True))
    for info in pending:
        rec = lk.read_json(info.path[len(lk.root) + 1:]) or {}
        if rec.get("batch") not in committed:
            log.info("removing batch %s left by an interrupted run", rec.get("batch"))
            _drop_batches(lk, rec.get("format", "parquet"), [rec["batch"]], rec.get("parts"))
        lk.fs.delete_file(info.path)
    if lk.local:
        shutil.rmtree(lk.path(f"{META}/staging"), ignore_errors=True)
        for tmp in Path(lk.path(META)).glob("*.tmp"):
            tmp.unlink(missing_ok=True)


def _drop_batches(lk: Lake, fmt: str, batches: list[str], parts: list[str] | None) -> None:
    """Delete batches' data: their part files (and emptied folders), or their Delta rows."""
    if fmt == "delta":
        DeltaTable, TableNotFoundError = _delta_table()
        listed = ", ".join(_q(b) for b in batches)
        for table in TABLES:
            try:
                dt = DeltaTable(_delta_uri(lk, table), storage_options=_storage_options(lk))
            except TableNotFoundError:
                continue
            dt.delete(f"batch IN ({listed})")
        return
    for rel in parts or []:
        lk.delete(rel)
        if lk.local:
            folder = os.path.dirname(lk.path(rel))
            while folder != lk.root and os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
                folder = os.path.dirname(folder)


# -- reading ----------------------------------------------------------------------------------
def _live(committed: list[dict]) -> list[tuple[str, str | None, str, int]]:
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
    with _storage_errors(uri):
        _register(con, Lake(uri))


def _register(con: duckdb.DuckDBPyConnection, lk: Lake) -> None:
    meta = lk.meta()
    if meta is None:
        raise AnnostreamError(f"{redact(lk.uri)}: not a lake (no {LAKE_JSON})")
    entries = lk.ledger()
    _check_schema(lk, entries)
    committed = _committed(entries)
    batches = [e["batch"] for e in committed]
    for table in TABLES:
        if meta["format"] == "delta":
            ds = _delta_dataset(lk, table)
        else:
            ds = _parquet_dataset(lk, table, committed)
        con.register(f"_lake_{table}", ds)
        have = set(ds.schema.names)
        cols = [n if n in have else f"CAST(NULL AS {sql_type(f.type)}) AS {n}"
                for f in _delta_schema(table) for n in [f.name]]  # older schema: NULL
        where = ""
        if meta["format"] == "delta":
            where = (f" WHERE batch IN ({', '.join(_q(b) for b in batches)})" if batches
                     else " WHERE false")
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT "
                    f"{', '.join(cols)} FROM _lake_{table}{where}")
    live = _live(committed)
    rows = ", ".join(f"({_q(s)}, {'NULL' if p is None else _q(p)}, {_q(b)}, {n})"
                     for s, p, b, n in live)
    con.execute("CREATE OR REPLACE VIEW _lake_live AS SELECT * FROM (VALUES "
                + (rows or "(NULL, NULL, NULL, NULL)") + ") v(source, project_id, batch, seq)"
                + ("" if rows else " WHERE false"))
    con.execute("CREATE SCHEMA IF NOT EXISTS latest")
    con.execute("""CREATE OR REPLACE VIEW latest.tasks AS
        SELECT t.* FROM main.tasks t JOIN _lake_live l ON t.batch = l.batch
            AND t.source = l.source AND t.project_id IS NOT DISTINCT FROM l.project_id
        QUALIFY row_number() OVER (PARTITION BY t.source, t.project_id, t.task_id
            ORDER BY t.updated_at DESC NULLS LAST, l.seq DESC, t.file DESC, t.position DESC) = 1""")
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
        [_ledger_row(e) for e in entries], schema=LEDGER_SCHEMA))
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
    DeltaTable, TableNotFoundError = _delta_table()
    try:
        dt = DeltaTable(_delta_uri(lk, table), storage_options=_storage_options(lk))
    except TableNotFoundError:
        return pads.dataset([], schema=_delta_schema(table), format="parquet")
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


def _ledger_row(e: dict) -> dict:
    rows = e.get("rows") or {}
    return {"batch": e["batch"], "status": e["status"], "kind": e["kind"], "input": e["input"],
            "files": len(e["files"]), "size": e["size"], "fingerprint": e["fingerprint"],
            "schema_version": e["schema_version"], "format": e["format"],
            "projects": [f"{s}/{p}" for s, p in e.get("partitions", [])],
            **{t: rows.get(t) for t in TABLES}, "skipped_tasks": e.get("skipped_tasks"),
            "started_at": e["started_at"], "finished_at": e.get("finished_at"),
            "error": e.get("error")}


def connect(uri: str | os.PathLike) -> duckdb.DuckDBPyConnection:
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


# -- status and vacuum ------------------------------------------------------------------------
def status(uri: str | os.PathLike) -> dict:
    """The lake at a glance: format, schema versions, batches (as ledger rows), last run."""
    with _storage_errors(uri):
        return _status(Lake(uri))


def _status(lk: Lake) -> dict:
    meta = lk.meta()
    if meta is None:
        raise AnnostreamError(f"{redact(lk.uri)}: not a lake (no {LAKE_JSON})")
    entries = lk.ledger()
    committed = _committed(entries)
    return {"lake": redact(lk.uri), "format": meta["format"],
            "schema_versions": sorted({e["schema_version"] for e in committed}),
            "tool_schema_version": SCHEMA_VERSION,
            "batches": [_ledger_row(e) for e in entries],
            "committed": len(committed), "failed": len(entries) - len(committed),
            "rows": {t: sum((e.get("rows") or {}).get(t, 0) for e in committed) for t in TABLES},
            "live_batches": sorted({b for _, _, b, _ in _live(committed)}),
            "last_run": lk.read_json(LAST_RUN)}


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '2w', '90m', '45s' as a timedelta."""
    m = _DURATION.match(text.strip())
    if not m:
        raise AnnostreamError(f"--keep {text!r}: expected a number and a unit, e.g. 30d, 12h, 2w")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def vacuum(uri: str | os.PathLike, keep: timedelta, *, dry_run: bool = False,
           wait: float = 0.0) -> list[dict]:
    """Remove batches finished more than `keep` ago, except every batch `latest.*` reads
    (the newest snapshot per source and project, and partial batches after it); returns the
    ledger entries removed. The ledger is rewritten first, so readers stop seeing a batch
    before its files go."""
    with _storage_errors(uri):
        return _vacuum(Lake(uri), keep, dry_run, wait)


def _vacuum(lk: Lake, keep: timedelta, dry_run: bool, wait: float) -> list[dict]:
    meta = lk.meta()
    if meta is None:
        raise AnnostreamError(f"{redact(lk.uri)}: not a lake (no {LAKE_JSON})")
    cutoff = _iso(_now() - keep)
    with lk.lock(wait, "vacuum"):
        recover(lk)
        entries = lk.ledger()
        live = {b for _, _, b, _ in _live(_committed(entries))}
        old = [e for e in entries
               if e["batch"] not in live and (e.get("finished_at") or e["started_at"]) < cutoff]
        if dry_run or not old:
            return old
        gone = {e["batch"] for e in old}
        lk.write_ledger([e for e in entries if e["batch"] not in gone])
        dropped = [e for e in old if e["status"] == "committed"]
        if dropped and meta["format"] == "delta":
            _drop_batches(lk, "delta", [e["batch"] for e in dropped], None)
            _vacuum_delta(lk)
        for e in dropped if meta["format"] != "delta" else []:
            _drop_batches(lk, "parquet", [e["batch"]],
                          [f"{t}/{rel}" for t, rels in e["parts"].items() for rel in rels])
        return old


def _vacuum_delta(lk: Lake) -> None:
    """Delete the files of the removed rows now (Delta would otherwise keep them for time
    travel); older table versions then no longer read."""
    DeltaTable, TableNotFoundError = _delta_table()
    for table in TABLES:
        try:
            dt = DeltaTable(_delta_uri(lk, table), storage_options=_storage_options(lk))
        except TableNotFoundError:
            continue
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
