"""`convert`: inputs in, one Parquet dataset per table out, with a manifest.

source → format reader → row batches → table writer → Parquet. The output folder only
changes when the whole run succeeded (see `writer.OutputFolder`).
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from ._version import __version__
from .buffers import DEFAULT_BATCH_ROWS
from .depth import MAX_DEPTH, check_limit
from .errors import InputError, OutputError
from .executors import Executor, InProcess, executor_for
from .formats import SKIPPED_LISTED, FileStats
from .modes import ConvertMode, OnError, check
from .parallel import RANGE_BYTES, plan, raise_failure, run_job
from .progress import Progress
from .sources import iter_sources
from .tables import SCHEMA_VERSION, TABLES
from .writer import OutputFolder

PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42  # <linux/prctl.h>


@dataclass(frozen=True)
class ConversionResult:
    """What `convert` wrote: the output folder and its manifest (every run of the folder,
    as in its _manifest.json); `run` is this run's part of it."""

    output: Path
    manifest: dict

    @property
    def run(self) -> dict:
        """This run: its inputs, rows, seconds and skipped tasks."""
        return self.manifest["runs"][-1]

    @property
    def rows(self) -> dict[str, int]:
        """Rows per table in the folder (all runs)."""
        return self.manifest["rows"]

    @property
    def skipped_tasks(self) -> int:
        """Bad tasks left out (--on-error skip), all runs."""
        return self.manifest["skipped_tasks"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def convert(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
            mode: ConvertMode = "new", on_error: OnError = "fail",
            batch_rows: int = DEFAULT_BATCH_ROWS, progress: bool = False,
            workers: int | None = None, range_bytes: int = RANGE_BYTES, executor: Any = None,
            address: str | None = None, max_depth: int = MAX_DEPTH) -> ConversionResult:
    """Convert exports into `output`/<table>/*.parquet; returns what was written (the
    manifest, also in `output`/_manifest.json).

    mode: 'new' (refuse an existing conversion), 'overwrite' or 'append'.
    on_error: 'fail' stops at the first bad task; 'skip' leaves it out and records it.
    executor: 'local' (default: `workers` processes, by default one per core, or per two
    cores with the compiled core, whose workers run two busy threads; one runs in this
    process), 'dask' or 'ray' (at `address`, else the engine's environment
    variable), or an Executor, `distributed.Client` or Ray context (stream/executors.py).
    Big uncompressed JSON arrays are split into byte ranges of about `range_bytes`, other
    inputs are grouped (stream/parallel.py); the rows are the same whatever runs them.
    max_depth: input nested deeper than this is bad input (1 to 800; stream/depth.py).
    """
    check("on_error", on_error, OnError)
    check_limit(max_depth)
    started, t0 = _now(), time.monotonic()
    names = [os.fspath(i) for i in inputs]
    out = OutputFolder(output, mode)
    stats = _Inputs()
    try:
        if "-" in names and executor in (None, "local"):
            executor = InProcess()  # standard input is there for this process only
        ex = executor_for(executor, address, workers)
        try:
            with _lean_process():
                rows = _run(names, out, ex, on_error, batch_rows, progress, range_bytes, stats,
                            max_depth)
        finally:
            if ex is not executor:  # made here: a caller's executor stays open for more runs
                ex.close()
        for n in dict.fromkeys(names):  # a mistyped path in a cron job must not give empty
            if n not in stats.inputs:  # tables and exit 0
                raise InputError(n, "no input files found in this folder or zip")
            if n not in stats.json:
                raise InputError(n, f"no JSON file found in this folder or zip "
                                    f"({stats.inputs[n]['files']} file(s), none of them JSON)")
        manifest = _manifest(stats, rows, started, time.monotonic() - t0, out)
        out.commit(manifest, stats.parts)
        return ConversionResult(out.folder, manifest)
    except OSError as exc:  # input errors are InputErrors: this is the output's
        out.abort()
        raise OutputError(f"{output}: cannot write the output: {exc.strerror or exc}; the "
                          "previous conversion is unchanged") from exc
    except BaseException:
        out.abort()
        raise


def _run(names: list[str], out: OutputFolder, ex: Executor, on_error: OnError, batch_rows: int,
         progress: bool, range_bytes: int, stats: _Inputs, max_depth: int) -> dict[str, int]:
    """Plan, run the jobs on `ex`, and add up their results in input order."""
    jobs = plan(iter_sources(names), ex, range_bytes, stage=str(out.stage),
                prefix=out.part_prefix(), batch_rows=batch_rows, on_error=on_error,
                max_depth=max_depth)
    fn: Any = run_job
    bar = None
    if ex.ships:
        jobs = (job.shipped() for job in jobs)
    elif progress:
        total = sum(s.size or 0 for s in iter_sources(names))
        bar = Progress(total or None, True)
        fn = partial(run_job, progress=bar)
    rows: dict[str, int] = {}
    try:
        for result in ex.map(fn, jobs):
            done = raise_failure(result)
            for f, whole in done.files:
                stats.add(f, whole)
            for t, n in done.rows.items():
                rows[t] = rows.get(t, 0) + n
            stats.parts.update(done.parts)
    finally:
        if bar:
            bar.close()
    return rows


class _Inputs:
    """The manifest's per-input summary, added up file by file as they are read (a million
    small files cost a million FileStats otherwise); the first SKIPPED_LISTED skipped tasks
    are listed, the rest only counted."""

    def __init__(self) -> None:
        self.inputs: dict[str, dict] = {}
        self.json: set[str] = set()  # inputs with at least one JSON file
        self.skipped: list[dict] = []
        self.skipped_count = 0
        self.parts: set[str] = set()  # the jobs' part files (see OutputFolder.commit)
        self.engine = {"core": 0, "python": 0}  # tasks converted by each engine

    def add(self, f: FileStats, whole: bool) -> None:
        """`whole`: f is a file or its first byte range (sizes and files count once)."""
        entry = self.inputs.setdefault(f.input, {"name": f.input, "size": 0, "files": 0,
                                                 "tasks": 0, "formats": []})
        if whole:
            entry["size"] += f.size or 0
            entry["files"] += 1
        entry["tasks"] += f.tasks
        if f.platform:
            self.json.add(f.input)
        fmt = f"{f.platform}/{f.container}" if f.platform else "skipped (not JSON)"
        if fmt not in entry["formats"]:
            entry["formats"].append(fmt)
        self.skipped += f.skipped[:SKIPPED_LISTED - len(self.skipped)]
        self.skipped_count += f.skipped_count
        self.engine["core"] += f.core
        self.engine["python"] += f.tasks - f.core


@contextmanager
def _lean_process() -> Iterator[None]:
    """A conversion allocates millions of short-lived containers and makes no cycles: the
    cyclic GC running at its default pace costs about a tenth of the time. Its Arrow buffers
    are short-lived too: the system allocator gives them back, where Arrow's default pool
    (mimalloc) keeps some 40 MB cached, a sixth of the 256 MB a worker may use. Transparent
    huge pages are off meanwhile (worker processes forked now inherit it): the compiled
    core's allocator asks for them, and every column buffer it grows then faults in and
    zeroes 2 MB at a time (1 GB, one worker: 273 MB peak and 9% of the time in the kernel,
    without them 225 MB)."""
    old, pool = gc.get_threshold(), pa.default_memory_pool()
    thp = _huge_pages(False)
    gc.set_threshold(100_000, 50, 1000)
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        gc.set_threshold(*old)
        pa.set_memory_pool(pool)
        if thp is not None:
            _huge_pages(thp)


def _huge_pages(allow: bool) -> bool | None:
    """Allow transparent huge pages for this process or not (Linux: prctl); returns whether
    they were allowed before, or None where this cannot be told or set."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    before = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)
    if before < 0 or prctl(PR_SET_THP_DISABLE, int(not allow), 0, 0, 0) < 0:
        return None
    return before == 0


def _manifest(stats: _Inputs, rows: dict[str, int], started: str, seconds: float,
              out: OutputFolder) -> dict:
    """The run's summary; in append mode, merged with the runs already in the folder."""
    run = {"run_id": out.run_id, "started_at": started, "finished_at": _now(),
           "seconds": round(seconds, 3), "inputs": list(stats.inputs.values()), "rows": rows,
           "skipped_tasks": stats.skipped, "skipped_count": stats.skipped_count,
           "engine": stats.engine}
    runs = (out.previous or {}).get("runs", []) + [run]
    totals = {t: sum(r["rows"].get(t, 0) for r in runs) for t in TABLES}
    return {"tool": "annostream", "version": __version__, "schema_version": SCHEMA_VERSION,
            "started_at": runs[0]["started_at"], "finished_at": run["finished_at"],
            "inputs": [i for r in runs for i in r["inputs"]], "rows": totals,
            "skipped_tasks": sum(r.get("skipped_count", len(r["skipped_tasks"])) for r in runs),
            "engine": {e: sum(r.get("engine", {}).get(e, 0) for r in runs)
                       for e in ("core", "python")},
            "runs": runs}
