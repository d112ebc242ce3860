"""The compiled core (`core/`, Rust) at the reader seam of Label Studio and Dataloop.

`annostream_core.convert` turns a run of array elements into the five tables' Arrow batches
in one call, several MB at a time, so Python does per-chunk rather than per-task work. It
declines every task it is not sure about (a reserved `extra` key, an unusual timestamp, an
int beyond 64 bits, ...): that task's bytes are parsed here and go to its platform reader's
`add` like any task, and a stretch the core cannot parse (a syntax error, a lone surrogate)
is handed to ijson from its element start, exactly as `ArrayItems` does, so errors,
positions, byte offsets and `--on-error skip` stay those of the Python reader, which remains
the specification. Without the built extension, or with ANNOSTREAM_ENGINE=python, the Python
reader converts everything.
"""
from __future__ import annotations

import io
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pyarrow as pa

from ..depth import MAX_DEPTH, Limited, TooDeep, too_deep
from ..elements import ERRORS, WHITESPACE, ArrayItems, first_key
from ..errors import AnnostreamError
from ..numbers import decode
from ..numbers import items as exact_items
from ..tables import TABLES

try:  # built by `make` (pip install ./core); the Python reader runs without it
    import annostream_core
except ImportError:  # pragma: no cover - depends on the machine
    annostream_core = None

ENGINE = "ANNOSTREAM_ENGINE"
# whose tasks or items the core converts, from inputs of which containers (sniff's Plan)
PLATFORMS = {"labelstudio": ("array", "object"),
             "dataloop": ("array", "object", "wrapper", "elements")}
WRAPPER = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"annotations"[ \t\r\n]*:[ \t\r\n]*\[')
FEED = 1 << 20  # bytes of elements handed to the core per call (more for one big element): a
# few MB make the per-call Python work negligible; the memory a call needs grows with it


AHEAD = 4  # converted feeds the parsing thread may hold while the consuming thread writes: a
# Parquet row group takes some 15 feeds' rows at once, and with one the core stood still
# meanwhile (1 GB, one worker: 5.1-5.5 s; with 4: 4.35 s and 6 MB more at the peak; with 8:
# 4.2 s, but 13 MB more, which small inputs do not reach: memory that grows with input size
# up to 8 feeds, as tests/test_memory.py sees it)
BIG = 256 << 20  # an element this long is not parsed by the core (core/src/lib.rs MAX_ELEMENT:
# its JSON text must fit an Arrow string column): from it on, ijson reads as the Python path does


def enabled() -> bool:
    """The core converts unless absent or ANNOSTREAM_ENGINE=python."""
    return annostream_core is not None and os.environ.get(ENGINE, "").lower() != "python"


class CoreBatch:
    """`tasks` consecutive tasks converted by the core, and the rows it returned, as its
    Arrow PyCapsules (None: it holds them, `Held`); `tables()` imports them (one Arrow table
    per table) in the consuming thread, not in the one that runs the core, the slower one."""

    __slots__ = ("batches", "tasks")

    def __init__(self, batches: list | None, tasks: int) -> None:
        self.batches, self.tasks = batches, tasks

    def tables(self) -> dict[str, pa.Table]:
        return {} if self.batches is None else _tables(self.batches)


class Held:
    """The core's converter for one job, and whether it holds rows. The rows of a stream
    converted in one call (a one-task file) stay in the core across streams, up to a MB of
    input (core/src/lib.rs HOLD), so that a folder of small files makes a few batches, not
    a set of five per file; they are taken (`take`) before any row the Python reader adds
    and at the end of the job, so rows keep their input order. Only one thread uses the
    converter at a time: calls made by `CoreItems`' parsing thread never hold rows."""

    def __init__(self) -> None:
        self.converter = annostream_core.Converter()
        self.pending = False

    def take(self) -> dict[str, pa.Table]:
        """The rows the core holds (none: {})."""
        if not self.pending:
            return {}
        self.pending = False
        return CoreBatch(self.converter.take(), 0).tables()


_CHECKED: set[str] = set()  # tables whose columns from the core matched stream/tables.py


def _tables(batches: list) -> dict[str, pa.Table]:
    """The core's batches as Arrow tables (None: a table without rows). The first batch of
    each table is checked against stream/tables.py: the core's columns are compiled in, so
    one check per process finds a stale build."""
    out = {}
    for (name, table), capsules in zip(TABLES.items(), batches):
        if capsules is None:
            continue
        batch = pa.RecordBatch._import_from_c_capsule(*capsules)
        if name not in _CHECKED:
            if not batch.schema.equals(table.schema):
                raise AnnostreamError(f"the compiled core's {name} columns differ from "
                                      "stream/tables.py: rebuild it (make), or set "
                                      f"{ENGINE}=python")
            _CHECKED.add(name)
        out[name] = pa.Table.from_batches([batch])
    return out


class CoreItems(ArrayItems):
    """The elements of a JSON array like `ArrayItems`, but runs of converted tasks come as
    `CoreBatch`es; a declined task comes as its parsed object, with `offset` at its start.

    `held`: the job's converter; `platform`: whose tasks or items ('labelstudio', 'dataloop');
    `array`: a JSON array (else
    whitespace-separated objects: NDJSON, a per-task file);
    `start`: stream offset of the first byte `read` gives; `first`: the stream is the whole
    array (its `[` still to come); `limit`: stop at the element starting there (a span).
    `fallback(start, pending)`: the rest of the elements from the element at `start`, parsed
    by ijson (`pending`: the bytes from there already read).
    """

    def __init__(self, read: Callable[[int], bytes], file: str, container: str, position: int,
                 held: Held, array: bool = True, start: int = 0, first: bool = True,
                 limit: int | None = None, max_depth: int = MAX_DEPTH,
                 platform: str = "labelstudio") -> None:
        super().__init__(read, max_depth)
        self._file, self._container, self._position = file, container, position
        self._platform, self._held, self._keep = platform, held, True
        self._array, self._start, self._first, self._limit = array, start, first, limit
        self._wrapper = container == "wrapper"
        if self._wrapper:  # the Dataloop docs' {"annotations": [items]}: one level further in
            self._item, self._opening = "annotations.item", b'{"annotations":['
        self._fallback: Callable[[int, bytes], Iterator[object]] = (
            (lambda at, pending: self._ijson(at, pending, self._opening)) if array
            else self._values)
        self.offset = start

    def _items(self) -> Iterator[object]:
        """The steps of `_steps`, the later ones computed by a thread up to AHEAD steps
        ahead (the core releases the GIL while it parses, so parsing overlaps writing the
        previous batches); a stream done in one step (a per-task file) starts no thread."""
        steps = self._steps()
        step = next(steps, None)
        if step is None:
            return
        kind, value, offset, last = step
        if kind == "rest":
            yield from value
            return
        self.offset = offset
        yield value
        if last:
            return
        self._keep = False  # the thread's calls return their rows (Held)
        q: queue.Queue = queue.Queue(maxsize=AHEAD)
        stop = threading.Event()

        def put(item: tuple) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    pass
            return False

        def produce() -> None:
            try:
                for step in steps:
                    if not put(step) or step[0] == "rest":
                        return
            except BaseException as exc:  # raised where the Python reader would raise it
                put(("raise", exc, None, True))
            else:
                put(("done", None, None, True))

        thread = threading.Thread(target=produce, name="annostream-core", daemon=True)
        thread.start()
        try:
            while True:
                kind, value, offset, _ = q.get()
                if kind == "raise":
                    raise value
                if kind == "done":
                    return
                if kind == "rest":
                    yield from value
                    return
                self.offset = offset
                yield value
        finally:
            stop.set()
            thread.join()

    def _steps(self) -> Iterator[tuple]:
        """(kind, value, offset, last): ('item', a CoreBatch or a declined task's object,
        the offset of what follows or of the task), or ('rest', the rest of the elements
        from ijson) as the last step."""
        buf, base, eof, first = b"", self._start, False, self._first and self._array
        if first:
            head = self._read(FEED)
            at = self._opened(head)
            if at is None or first_key(head, at) is None:
                # not an array of objects: ijson reads it all, as ArrayItems does
                yield "rest", self._ijson(0, head, b""), None, True
                return
            buf, base = head[at:], at
        position, held = self._position, self._held
        convert = held.converter.convert
        more, gathered = not buf, False
        while True:
            if more and not eof:  # converts what it has first: a read may raise (corrupt gzip)
                buf, eof, gathered = self._more(buf, gathered)
            limit = None if self._limit is None else self._limit - base
            try:
                status, used, tasks, declined, batches, held.pending = convert(
                    buf, self._file, position, self._container, self._array, eof, first, limit,
                    self._platform, self._keep)
            except RuntimeError as exc:
                raise AnnostreamError(f"{exc}; set {ENGINE}=python to convert without it") from exc
            garbage = None  # bytes after the closing bracket of a whole array, ijson says why
            if status == "end" and self._limit is None and self._array:
                garbage = self._trailing(buf[used:], base + used, eof)
            end = status == "end" and garbage is None
            if batches is not None or tasks:
                batch = CoreBatch(batches, tasks)
                if declined is None and status != "error":  # let the input go before its
                    buf, base, used = buf[used:], base + used, 0  # rows are written
                yield "item", batch, base + used, end and declined is None
                position += tasks
            if used or declined or tasks:
                first = False
            if declined is not None:
                s, e = declined
                try:
                    obj = self._declined(buf, s, e, base)
                except ERRORS:
                    yield "rest", self._fallback(base + s, buf[s:]), None, True
                    return
                yield "item", obj, base + s, end
                position += 1
            if status == "error":
                yield "rest", self._fallback(base + used, buf[used:]), None, True
                return
            buf, base = buf[used:], base + used
            if status == "end":
                if garbage is not None:
                    yield "rest", garbage, None, True
                return
            more, gathered = status == "more", gathered and status == "more"
            if more and len(buf) > BIG:  # one huge task: the rest goes to ijson, as in
                yield "rest", self._fallback(base, buf), None, True  # ArrayItems
                return

    def _opened(self, head: bytes) -> int | None:
        """Where the elements start in `head`, the stream's first bytes: after the array's
        `[` (a wrapper's `{"annotations": [`), or None when it does not open so."""
        if self._wrapper:
            found = WRAPPER.match(head)
            return found.end() if found else None
        at = len(head) - len(head.lstrip(WHITESPACE))
        return at + 1 if head[at:at + 1] == b"[" else None

    def _more(self, buf: bytes, gathered: bool) -> tuple[bytes, bool, bool]:
        """`buf`, an incomplete element at its start, with more bytes; whether the stream
        ended; whether the element was read to its end. A feed; an element longer than a
        feed is read to its end (`_gather`) once, then doubled (the bracket count and the
        parser disagree only on odd input)."""
        if len(buf) >= FEED and not gathered:
            return *self._gather(buf), True
        want = max(FEED, len(buf))
        chunk = self._read(want)
        if 0 < len(chunk) < want:  # a short read is often the end (a one-task file): the
            # next read says so now, rather than after the core parsed the element for nothing
            rest = self._read(want - len(chunk))
            return buf + chunk + rest, not rest, gathered
        return buf + chunk, not chunk, gathered

    def _gather(self, buf: bytes) -> tuple[bytes, bool]:
        """`buf` and the rest of the element it starts with (up to a feed beyond its end, or
        BIG), and whether the stream ended: read a feed at a time, its end found by the core's
        bracket count, joined once. The element is then parsed once, and the bytes held are
        about its own (rather than parsed after each doubling of a buffer twice its size)."""
        at = len(buf) - len(buf.lstrip(WHITESPACE))
        if buf[at:at + 1] not in (b"{", b"["):
            return buf, False
        done, state = annostream_core.scan(buf[at:])
        parts, size, eof = [buf], len(buf), False
        while not done and not eof and size <= BIG:
            chunk = self._read(FEED)
            eof = not chunk
            parts.append(chunk)
            size += len(chunk)
            done, state = annostream_core.scan(chunk, state)
        return b"".join(parts), eof

    def _trailing(self, tail: bytes, at: int, eof: bool) -> Iterator[object] | None:
        """What follows the closing bracket of a whole array (`tail`, at byte `at`): None
        when it is only whitespace to the end (read to the end first, as ArrayItems does
        before its last element), else ijson over it, which says why it is wrong. The rest
        of a wrapper object always goes to ijson (a few bytes: its closing brace)."""
        if self._wrapper:
            return self._ijson(at - 1, b"]" + tail, self._opening)
        while not tail.lstrip(WHITESPACE) and not eof:
            chunk = self._read(FEED)
            eof = not chunk
            if chunk:
                at, tail = at + len(tail), chunk
        if tail.lstrip(WHITESPACE):
            return self._ijson(at - 1, b"]" + tail, b"[")
        return None

    def _declined(self, buf: bytes, s: int, e: int, base: int) -> object:
        """A task the core declined, parsed here; TooDeep when it nests beyond the limit
        (the core declines what it nests too deep to convert)."""
        element = buf[s:e]
        obj = decode(element)
        outer = 2 if self._wrapper else int(self._array)  # the levels around an element
        hit = too_deep(element, self._max_depth, outer)
        if hit >= 0:
            raise TooDeep(base + s + hit, self._max_depth)
        return obj

    def _values(self, start: int, pending: bytes) -> Iterator[object]:
        """The rest of a stream of objects from `start` on, read by ijson as the Python
        reader reads the whole stream."""
        parts, read = [pending], self._read

        class Rest:
            def read(_, n: int) -> bytes:
                return parts.pop() if parts and n else read(n)

        self.offset = start
        yield from exact_items(Limited(Rest().read, self._max_depth, start), "",
                               multiple_values=True)


def items(read: Callable[[int], bytes], file: str, container: str, platform: str, held: Held,
          max_depth: int = MAX_DEPTH) -> CoreItems:
    """The tasks or items of a whole stream: one JSON array, or objects (NDJSON, a per-task
    file)."""
    return CoreItems(read, file, container, 0, held, array=container in ("array", "wrapper"),
                     max_depth=max_depth, platform=platform)


NESTING = 8  # levels a task made in Python may add above an input value it holds (a NER
# span sits 6 deep in its task, 3 deep in the input, which the depth limit already checked)


def objects(objs: Iterator[Any], file: str, container: str, held: Held,
            max_depth: int = MAX_DEPTH) -> Iterator[object]:
    """Task objects made in Python (formats/ner.py makes one per NER document), converted by
    the core a feed at a time: each run is serialised (orjson) and read back by `CoreItems`
    as a stream of objects, with the positions it would have had, so the core builds the
    rows; an object orjson refuses (an int beyond 64 bits, a lone surrogate, a BigNumber)
    and any the core declines go to the Python reader as they are. Memory: one feed of
    serialised objects. An error of the input itself (raised by `objs`, at the offset its
    own reader names) comes after the rows of every object before it, as without the core.
    """
    run: list[bytes] = []
    size = position = 0

    def convert() -> Iterator[object]:
        nonlocal run, size, position
        if not run:
            return
        payload = b"\n".join(run)  # bounded: one feed of objects (or one big object)
        run, size = [], 0
        for item in CoreItems(io.BytesIO(payload).read, file, container, position, held,
                              array=False, max_depth=max_depth + NESTING,
                              platform="labelstudio"):
            position += item.tasks if type(item) is CoreBatch else 1
            yield item

    while True:
        try:
            obj = next(objs)
        except StopIteration:
            break
        except Exception:
            yield from convert()
            raise
        try:
            text = orjson.dumps(obj)
        except TypeError:  # orjson.JSONEncodeError is one: the Python reader takes it
            yield from convert()
            position += 1
            yield obj
            continue
        run.append(text)
        size += len(text)
        if size >= FEED:
            yield from convert()
    yield from convert()


def elements(read: Callable[[int], bytes], file: str, held: Held,
             python: Callable[[Callable[[int], bytes]], Iterator[object]]) -> Iterator[object]:
    """The tasks of a Dataloop text-classification document (container 'elements') in one
    call: the Python reader holds the document whole too (one item's content). A document the
    core declines or cannot parse adds no rows there and goes to `python` (the Python reader
    over the same bytes), which converts it or says why it is wrong."""
    data = b"".join(iter(lambda: read(FEED), b""))  # bounded: one item's content
    try:
        status, _, tasks, declined, batches, held.pending = held.converter.convert(
            data, file, 0, "elements", False, True, False, None, "dataloop", True)
    except RuntimeError as exc:
        raise AnnostreamError(f"{exc}; set {ENGINE}=python to convert without it") from exc
    if batches is not None or tasks:  # (rows held before this document come first)
        yield CoreBatch(batches, tasks)
    if status != "end" or declined is not None:
        yield from python(io.BytesIO(data).read)
