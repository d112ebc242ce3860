"""`convert`: inputs in, one Parquet dataset per table out, with a manifest.

source → format reader → row batches → table writer → Parquet. The output folder only
changes when the whole run succeeded (see `writer.Output`).
"""
from __future__ import annotations

import gc
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Sequence

import pyarrow as pa

from . import __version__
from .formats import FileStats, Readers, read_source
from .parallel import RANGE_BYTES, convert_parallel, default_workers
from .progress import Progress
from .sources import iter_sources
from .tables import SCHEMA_VERSION, TABLES
from .writer import DEFAULT_BATCH_ROWS, Buffers, Output


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def convert(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
            mode: str = "new", on_error: str = "fail", batch_rows: int = DEFAULT_BATCH_ROWS,
            progress: bool = False, workers: int | None = None,
            range_bytes: int = RANGE_BYTES) -> dict:
    """Convert exports into `output`/<table>/*.parquet; returns the manifest written.

    mode: 'new' (refuse an existing conversion), 'overwrite' or 'append'.
    on_error: 'fail' stops at the first bad task; 'skip' leaves it out and records it.
    workers: processes (default: the number of cores). Big uncompressed JSON arrays are split
    into byte ranges of about `range_bytes`, other inputs are grouped (stream/parallel.py);
    the rows are the same as with one worker.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    started, t0 = _now(), time.monotonic()
    sources = list(iter_sources([os.fspath(i) for i in inputs]))  # file entries, not tasks
    out = Output(output, mode)
    try:
        with _lean_process():
            done = convert_parallel(sources, out, on_error, batch_rows,
                                    default_workers() if workers is None else workers, range_bytes)
            files, rows = done or _sequential(sources, out, on_error, batch_rows, progress)
        manifest = _manifest(files, rows, started, time.monotonic() - t0, out)
        out.commit(manifest)
        return manifest
    except BaseException:
        out.abort()
        raise


def _sequential(sources: list, out: Output, on_error: str, batch_rows: int,
                progress: bool) -> tuple[list[FileStats], dict[str, int]]:
    bufs = Buffers(out.stage, out.part_prefix(), batch_rows)
    readers = Readers(bufs)
    bar = Progress(sum(s.size or 0 for s in sources) or None, progress)
    files: list[FileStats] = []
    try:
        for src in sources:
            files.append(read_source(src, readers, on_error, bar.tick))
            bar.next_input(src.size)
    finally:
        bar.close()
    return files, bufs.close()


@contextmanager
def _lean_process():
    """A conversion allocates millions of short-lived containers and makes no cycles: the
    cyclic GC running at its default pace costs about a tenth of the time. Its Arrow buffers
    are short-lived too: the system allocator gives them back, where Arrow's default pool
    (mimalloc) keeps some 40 MB cached, a sixth of the 256 MB a worker may use."""
    old, pool = gc.get_threshold(), pa.default_memory_pool()
    gc.set_threshold(100_000, 50, 1000)
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        gc.set_threshold(*old)
        pa.set_memory_pool(pool)


def _manifest(files: list[FileStats], rows: dict[str, int], started: str, seconds: float,
              out: Output) -> dict:
    """The run's summary; in append mode, merged with the runs already in the folder."""
    inputs: dict[str, dict] = {}
    for f in files:
        entry = inputs.setdefault(f.input, {"name": f.input, "size": 0, "files": 0, "tasks": 0,
                                            "formats": []})
        entry["size"] += f.size or 0
        entry["files"] += 1
        entry["tasks"] += f.tasks
        fmt = f"{f.platform}/{f.container}" if f.platform else "skipped (not JSON)"
        if fmt not in entry["formats"]:
            entry["formats"].append(fmt)
    skipped = [s for f in files for s in f.skipped]
    run = {"run_id": out.run_id, "started_at": started, "finished_at": _now(),
           "seconds": round(seconds, 3), "inputs": list(inputs.values()), "rows": rows,
           "skipped_tasks": skipped}
    runs = (out.previous or {}).get("runs", []) + [run]
    totals = {t: sum(r["rows"].get(t, 0) for r in runs) for t in TABLES}
    return {"tool": "annostream", "version": __version__, "schema_version": SCHEMA_VERSION,
            "started_at": runs[0]["started_at"], "finished_at": run["finished_at"],
            "inputs": [i for r in runs for i in r["inputs"]], "rows": totals,
            "skipped_tasks": sum(len(r["skipped_tasks"]) for r in runs), "runs": runs}
