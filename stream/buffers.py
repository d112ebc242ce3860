"""Column buffers: the rows of the five tables under construction, in memory.

A format reader appends values to per-column Python lists (dense columns) or sets them by row
index (sparse columns, mostly empty); `Buffer.take` turns each column into one Arrow array
per batch. The buffers know nothing of files: between tasks, full batches go to a `sink`
(in a conversion, the part files of stream/writer.py); without one they stay in memory, which
is how a reader is tested without files.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .tables import TABLES, Table

DEFAULT_BATCH_ROWS = 65536
COMPACT_ROWS = 4096  # rows per table held as Python objects before they become Arrow arrays
BATCH_BYTES = 8 << 20  # a batch of wide rows (long texts, big values) is written earlier
CHUNKS = 64  # Arrow tables a buffer holds before it joins them into one (Buffer.extend)

Sink = Callable[[str, pa.Table], None]  # (table name, a batch of its rows)


def to_array(values: list, type_: pa.DataType) -> pa.Array:
    """One Arrow array from Python values; a value that does not fit becomes null.

    Only derived columns reach the slow path (their source stays whole in a JSON column), so
    nulling a misfit loses nothing. A number beyond double range (a BigNumber: JSON has no
    infinity, so an infinite float is one) does not fit a float column.
    """
    try:
        arr = pa.array(values, type=type_)
        if not _infinite(arr):
            return arr
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError):
        pass
    fixed = []
    for v in values:
        try:
            fixed.append(None if _infinite(pa.array([v], type=type_)) else v)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError):
            fixed.append(None)
    return pa.array(fixed, type=type_)


def _infinite(arr: pa.Array) -> bool:
    """Whether a float array (or a list of them, at any depth) holds an infinity."""
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        arr = arr.flatten()
    return pa.types.is_floating(arr.type) and pc.any(pc.is_inf(arr)).as_py() is True


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
        self._fresh = 0  # tables extended since the last join (Buffer.extend)
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

    def extend(self, t: pa.Table) -> None:
        """Rows already built as Arrow (by the compiled core), after the buffered ones.

        Every CHUNKS small tables become one, since each costs some KB of Arrow objects while
        it is held and its own pass in the Parquet writer (10,000 held tables, one per file
        of a folder, took 1.1 GB and 9 s to write). The core now holds the rows of one-task
        files itself (formats/core.py Held), but a folder whose files alternate between the
        core and the Python reader still gives one small table per core file. A row is
        copied once; a batch holds at most 1/CHUNKS as many tables as it has rows.
        """
        if t.num_rows:
            self.compact()
            self._done.append(t)
            self._fresh += 1
            if self._fresh == CHUNKS:
                self._done[-CHUNKS:] = [pa.concat_tables(self._done[-CHUNKS:]).combine_chunks()]
                self._fresh = 0
            self.done_bytes += t.get_total_buffer_size()  # whole arrays: nbytes would walk
            # the offsets to tell slices apart, a tenth of a millisecond per table
            self.n += t.num_rows
            self.base = self.n

    def take(self) -> pa.Table:
        """The buffered rows as an Arrow table; the buffer is emptied in place."""
        tables = self._done + [self._window()]
        self._done, self.n, self.base, self.done_bytes, self._fresh = [], 0, 0, 0, 0
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


def _constant_tiling(runs: Sequence[tuple[int, int, list | None, Any]], first: int,
                     end: int) -> bool:
    """Runs of constants that cover rows first..end-1 in order, as keyframe sequences do."""
    at = first
    for start, k, run, _ in runs:
        if run is not None or start != at:
            return False
        at += k
    return at == end > first


class TableBuffers:
    """The five table buffers one reader writes into; full batches go to `sink` between
    tasks (none: everything stays here until `take`)."""

    def __init__(self, batch_rows: int = DEFAULT_BATCH_ROWS, sink: Sink | None = None) -> None:
        self.batch_rows = batch_rows
        self.sink = sink
        self.tables = {name: Buffer(t) for name, t in TABLES.items()}

    def __getitem__(self, name: str) -> Buffer:
        return self.tables[name]

    def columns(self, name: str) -> dict[str, dict[int, Any]]:
        """Every column of a table as its sparse map: a reader sets `map[row] = value`."""
        b = self.tables[name]
        return {c: b.at(c) for c in b.table.names}

    def extend(self, tables: dict[str, pa.Table]) -> None:
        """Whole tasks' rows built elsewhere (the compiled core), one table per table."""
        for name, t in tables.items():
            self.tables[name].extend(t)

    def mark(self) -> dict[str, int]:
        return {name: b.n for name, b in self.tables.items()}

    def rollback(self, marks: dict[str, int]) -> None:
        for name, n in marks.items():
            self.tables[name].rollback(n)

    def maybe_flush(self) -> None:
        """Between tasks: full batches to the sink, the newest rows of the others to Arrow."""
        for name, b in self.tables.items():
            if self.sink is not None and (b.n >= self.batch_rows
                                          or b.done_bytes >= BATCH_BYTES):
                self._emit(name, b.take())
            elif b.n - b.base >= COMPACT_ROWS:
                b.compact()

    def flush(self) -> None:
        """Every buffered row to the sink (the end of a job)."""
        if self.sink is not None:
            for name, b in self.tables.items():
                self._emit(name, b.take())

    def _emit(self, name: str, t: pa.Table) -> None:
        """Batches of about `batch_rows` rows, also from a run of many tasks that came whole
        from the compiled core."""
        assert self.sink is not None
        step = self.batch_rows
        if t.num_rows < 2 * step:
            self.sink(name, t)
        else:
            for at in range(0, t.num_rows, step):
                self.sink(name, t.slice(at, step))

    def take(self) -> dict[str, pa.Table]:
        """Every table's buffered rows as Arrow tables; the buffers are emptied."""
        return {name: b.take() for name, b in self.tables.items()}
