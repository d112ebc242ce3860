"""Column buffers and atomic Parquet output.

Readers append values to per-column Python lists (dense columns) or set them by row index
(sparse columns, mostly empty); `Buffer.take` turns each column into one Arrow array per batch.
`Output` writes every table under a staging folder and moves the parts into place only when
the whole run succeeded, so a failed run never leaves output that looks complete.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from itertools import accumulate
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import AnnostreamError
from .layout import MANIFEST
from .tables import TABLES, Table

DEFAULT_BATCH_ROWS = 65536
COMPACT_ROWS = 4096  # rows per table held as Python objects before they become Arrow arrays
BATCH_BYTES = 8 << 20  # a batch of wide rows (long texts, big values) is written earlier
ROLL_GROUPS = 64  # row groups per part file (see PartWriter)


def to_array(values: list, type_: pa.DataType) -> pa.Array:
    """One Arrow array from Python values; a value that does not fit becomes null.

    Only derived columns reach the slow path (their source stays whole in a JSON column), so
    nulling a misfit loses nothing.
    """
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError):
        fixed = []
        for v in values:
            try:
                pa.array([v], type=type_)
                fixed.append(v)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError):
                fixed.append(None)
        return pa.array(fixed, type=type_)


class Buffer:
    """Rows of one table under construction, held as columns.

    Row numbers (`n`, the keys readers set) count from the last `take`. Rows older than the
    last `compact` are already Arrow arrays: Python objects (a dict entry per sparse cell costs
    ~100 bytes) only exist for the newest rows, which keeps a batch of wide rows small.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self.n = 0
        self.base = 0  # rows before this are in self._done
        self.done_bytes = 0
        self._done: list[pa.Table] = []
        self._dense: dict[str, list] = {}
        self._sparse: dict[str, dict[int, Any]] = {}
        self._runs: dict[str, list[tuple[int, int, list | None, Any]]] = {}
        self._names = frozenset(table.names)

    def col(self, name: str) -> list:
        """The dense list of a column: append exactly one value per row."""
        self._check(name)
        return self._dense.setdefault(name, [])

    def at(self, name: str) -> dict[int, Any]:
        """The sparse map of a column: set `map[row] = value` for the rows that have one."""
        self._check(name)
        return self._sparse.setdefault(name, {})

    def put(self, name: str, start: int, values: list) -> None:
        """Values of rows start, start + 1, ... of a sparse column at once: a whole keyframe
        sequence costs one list, not one dict entry per row."""
        self._check(name)
        self._runs.setdefault(name, []).append((start, len(values), values, None))

    def fill(self, name: str, start: int, count: int, value: Any) -> None:
        """`count` rows from `start` that all hold `value` (the task id of a keyframe
        sequence, ...): kept as one run, expanded by Arrow rather than by Python."""
        self._check(name)
        self._runs.setdefault(name, []).append((start, count, None, value))

    def _check(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(f"{self.table.name} has no column {name!r}")

    def mark(self) -> int:
        return self.n

    def rollback(self, n: int) -> None:
        """Drop the rows appended since `mark()` returned n (a skipped bad task)."""
        if n < self.base:
            raise AssertionError("rollback past a compaction: compact only between tasks")
        for lst in self._dense.values():
            del lst[n - self.base:]
        for d in self._sparse.values():
            for k in [k for k in d if k >= n]:
                del d[k]
        for runs in self._runs.values():
            runs[:] = [(s, min(k, n - s), v if v is None else v[: n - s], x)
                       for s, k, v, x in runs if s < n]
        self.n = n

    def compact(self) -> None:
        """Turn the rows since the last compaction into Arrow arrays (call between tasks)."""
        if self.n > self.base:
            self._done.append(self._window())
            self.done_bytes += self._done[-1].nbytes
            self.base = self.n

    def take(self) -> pa.Table:
        """The buffered rows as an Arrow table; the buffer is emptied in place."""
        tables = self._done + [self._window()]
        self._done, self.n, self.base, self.done_bytes = [], 0, 0, 0
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def _window(self) -> pa.Table:
        """Rows base..n-1 as an Arrow table; their Python values are dropped."""
        base, n, arrays = self.base, self.n - self.base, []
        for c in self.table.columns:
            if c.name in self._dense:
                values = self._dense[c.name]
                if len(values) != n:
                    raise AssertionError(f"{self.table.name}.{c.name}: {len(values)} values "
                                         f"for {n} rows")
            elif self._sparse.get(c.name) or self._runs.get(c.name):
                runs = self._runs.get(c.name, [])
                if not self._sparse.get(c.name) and _constant_tiling(runs, base, self.n):
                    ends = pa.array(list(accumulate(k for _, k, _, _ in runs)), pa.int32())
                    consts = to_array([x for _, _, _, x in runs], c.type)
                    runs_array = pa.RunEndEncodedArray.from_arrays(ends, consts)
                    arrays.append(pc.run_end_decode(runs_array))
                    continue
                sparse = self._sparse.get(c.name, {})
                if len(sparse) == n and not runs and list(sparse) == list(range(base, self.n)):
                    values = list(sparse.values())  # every row set, in order: no Python loop
                else:
                    values = [None] * n
                    for start, k, run, x in runs:
                        values[start - base:start - base + k] = [x] * k if run is None else run
                    for i, v in sparse.items():
                        values[i - base] = v
            else:
                arrays.append(pa.nulls(n, c.type))
                continue
            arrays.append(to_array(values, c.type))
        for lst in self._dense.values():
            lst.clear()
        for d in self._sparse.values():
            d.clear()
        for runs in self._runs.values():
            runs.clear()
        return pa.Table.from_arrays(arrays, schema=self.table.schema)


def _constant_tiling(runs: list, first: int, end: int) -> bool:
    """Runs of constants that cover rows first..end-1 in order, as keyframe sequences do."""
    at = first
    for start, k, run, _ in runs:
        if run is not None or start != at:
            return False
        at += k
    return at == end > first


class PartWriter:
    """The part files of one table for one writer, one row group per flushed batch.

    A ParquetWriter keeps the metadata of every row group it wrote until it closes (some
    18 KB each), so one file per run would grow with the export: the writer moves on to a new
    file every `ROLL_GROUPS` row groups. Files are named `<stem>-<k:05d>.parquet`, which sort
    in write order, after the parts of earlier writers ('-' sorts before digits) and before
    those of later ones.
    """

    def __init__(self, stem: Path, table: Table) -> None:
        self.stem, self.table = stem, table  # its folder exists (Output made it): a job still
        self.rows = self._groups = 0  # running after its run was aborted cannot write
        self.paths: list[Path] = []
        self._w = self._open()  # a table without rows still gets one (empty) file

    def _open(self) -> pq.ParquetWriter:
        path = self.stem.with_name(f"{self.stem.name}-{len(self.paths):05d}.parquet")
        self.paths.append(path)
        self._groups = 0
        return pq.ParquetWriter(path, self.table.schema, compression="zstd")

    def write(self, t: pa.Table) -> None:
        if t.num_rows:
            if self._groups >= ROLL_GROUPS:
                self._w.close()
                self._w = self._open()
            self._w.write_table(t)
            self._groups += 1
            self.rows += t.num_rows

    def close(self) -> None:
        self._w.close()


class Buffers:
    """The five table buffers of one reader, flushed into part files per table."""

    def __init__(self, folder: Path, part: str, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.batch_rows = batch_rows
        self.tables = {name: Buffer(t) for name, t in TABLES.items()}
        self.writers = {name: PartWriter(folder / name / f"part-{part}", t)
                        for name, t in TABLES.items()}

    def __getitem__(self, name: str) -> Buffer:
        return self.tables[name]

    def columns(self, name: str) -> dict[str, dict[int, Any]]:
        """Every column of a table as its sparse map: a reader sets `map[row] = value`."""
        b = self.tables[name]
        return {c: b.at(c) for c in b.table.names}

    def mark(self) -> dict[str, int]:
        return {name: b.n for name, b in self.tables.items()}

    def rollback(self, marks: dict[str, int]) -> None:
        for name, n in marks.items():
            self.tables[name].rollback(n)

    def maybe_flush(self) -> None:
        """Between tasks: write full batches, turn the newest rows of the others into Arrow."""
        for name, b in self.tables.items():
            if b.n >= self.batch_rows or b.done_bytes >= BATCH_BYTES:
                self.writers[name].write(b.take())
            elif b.n - b.base >= COMPACT_ROWS:
                b.compact()

    def close(self) -> dict[str, int]:
        """Flush what is left and close the part files; returns rows written per table."""
        for name, b in self.tables.items():
            self.writers[name].write(b.take())
            self.writers[name].close()
        return {name: w.rows for name, w in self.writers.items()}

    def paths(self) -> list[Path]:
        """Every part file written."""
        return [p for w in self.writers.values() for p in w.paths]


class Output:
    """An output folder written atomically: staged under a hidden folder, moved in on commit.

    mode 'new' refuses a folder that already holds a conversion, 'overwrite' replaces it,
    'append' adds this run's parts next to the existing ones.
    """

    def __init__(self, folder: str | os.PathLike, mode: str = "new") -> None:
        self.folder = Path(folder)
        self.mode = mode
        self._lock = _lock_folder(self.folder)
        try:
            self._check()
        except BaseException:
            os.close(self._lock)
            raise
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        # absolute: workers on other processes or machines do not share our working folder
        self.stage = self.folder.absolute() / f".annostream-tmp-{self.run_id}"
        for t in TABLES:
            (self.stage / t).mkdir(parents=True)

    def _check(self) -> None:
        mode = self.mode
        manifest = self.folder / MANIFEST
        if manifest.exists() and mode == "new":
            raise AnnostreamError(
                f"{self.folder} already holds a conversion; use --overwrite to replace it "
                "or --append to add to it")
        if not manifest.exists() and any((self.folder / t).exists() for t in TABLES):
            raise AnnostreamError(f"{self.folder} has table folders but no {MANIFEST}; "
                                  "remove them or choose another output folder")
        self.previous = json.loads(manifest.read_text()) if (  # bounded: our small manifest
            mode == "append" and manifest.exists()) else None

    def part_prefix(self) -> str:
        """Part names sort after existing ones, so a glob reads runs in order: '0' for a new
        folder, then the run number (6 digits; '.' sorts before digits) and the run id, as
        run ids started within the same second do not sort in run order."""
        if self.mode != "append":
            return "0"
        return f"{len((self.previous or {}).get('runs', [])):06d}-{self.run_id}"

    def commit(self, manifest: dict, parts: set[str]) -> None:
        """Move the staged `parts` (paths relative to the stage) into place, then write the
        manifest (the completion mark). Other staged files (a dead worker's) are dropped.

        Whole table folders are renamed, so the window between the old and the new state is a
        few renames; during it the folder has no manifest and reads as incomplete (a later
        run refuses it instead of mixing old and new parts).
        """
        for t in TABLES:
            for part in (self.stage / t).glob("*.parquet"):
                if f"{t}/{part.name}" not in parts:
                    part.unlink()
        final_manifest = self.folder / MANIFEST
        if self.mode == "overwrite":
            final_manifest.unlink(missing_ok=True)
            for t in TABLES:
                if (self.folder / t).exists():
                    os.replace(self.folder / t, self.stage / f".old-{t}")
        for t in TABLES:
            staged, dest = self.stage / t, self.folder / t
            if dest.exists():  # append: this run's parts join the earlier ones
                for part in sorted(staged.glob("*.parquet")):
                    os.replace(part, dest / part.name)
            else:
                os.replace(staged, dest)
        tmp = self.folder / f".{MANIFEST}.{self.run_id}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, final_manifest)
        shutil.rmtree(self.stage, ignore_errors=True)
        os.close(self._lock)

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)
        os.close(self._lock)


def _lock_folder(folder: Path) -> int:
    """An exclusive flock on the output folder itself (no lock file to leave behind; the
    kernel drops it when the process dies): two runs never write one folder at once."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AnnostreamError(f"{folder}: another annostream run is writing to this folder; "
                              "run again when it has finished") from None
    return fd
