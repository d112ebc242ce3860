"""The plan of a conversion: big JSON arrays split into proven byte ranges, other inputs grouped.

One big export is one sequential stream for every JSON reader. To use more cores, candidate
element boundaries are picked at about equal byte offsets (the separator search of
stream/elements.py) and then proven before anything is converted: each range is scanned from
its candidate start, validating every element with msgspec (without building it), up to the
first element boundary at or past the next candidate. Range 0 starts at the true first element,
so its scan proves where range 1 really starts and how many tasks come before it; a range
whose candidate start is not the proven one (a separator inside a string) is scanned again
from the proven start, in order. Every range therefore starts at a true element boundary and
knows the global `position` of its first task.

The plan is a list of jobs: one per range, or per group of small or unsplittable inputs (zip
members and compressed files included), in input order. An executor (stream/executors.py: this
process, local processes, Dask, Ray) runs them wherever it likes; each job writes its own part
files, `part-<prefix>-<job>-<attempt>-<k>.parquet`, so the parts sort in input and position
order and the output equals the single-worker output row for row. Only uncompressed files that
are JSON arrays are split: a compressed stream cannot be entered in the middle.
"""
from __future__ import annotations

import functools
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .buffers import TableBuffers
from .depth import HIGHEST_DEPTH, MAX_DEPTH, Limited, TooDeep
from .elements import WS, Fallback, check, elements, first_key, separator
from .errors import AnnostreamError, InputError
from .formats import BOM, WHITESPACE, FileStats, Readers, read_source, sniff
from .formats.core import CoreItems, Held
from .numbers import decode, items
from .progress import Progress
from .sources import MAGIC, Remote, Source, decompressed, open_path, remote_sources, reopen
from .tables import TABLES
from .writer import PartFiles

if TYPE_CHECKING:
    from .executors import Executor

RANGE_BYTES = 32 << 20  # target bytes per job: small enough to balance, large enough to matter
RANGES_PER_WORKER = 4
WINDOW = 1 << 20  # bytes searched for a candidate boundary after each split offset
# An object's opening up to its second key: `{"id": 1001, "data"` (first value a number or string).
SECOND = rb"\{" + WS + b"%s" + WS + b":" + WS + rb'(?:-?\d+|"(?:[^"\\]|\\.)*")' + WS + b"," + WS


@dataclass(frozen=True)
class Span:
    """A proven byte range of one array: elements from `start` up to `end` (None: to the end
    of the array), the first one at task position `position`."""

    start: int
    end: int | None
    position: int
    key: bytes

    def items(self, raw: BinaryIO, limit: int = MAX_DEPTH) -> SpanItems:
        return SpanItems(self, raw, limit)

    def core_items(self, raw: BinaryIO, file: str, container: str, platform: str, held: Held,
                   max_depth: int = MAX_DEPTH) -> CoreItems:
        """The span's tasks through the compiled core (stream/formats/core.py); what it
        cannot parse goes to ijson as in `SpanItems`."""
        raw.seek(self.start)
        found = CoreItems(raw.read, file, container, self.position, held, start=self.start,
                          first=False, limit=self.end, max_depth=max_depth,
                          platform=platform)
        found._fallback = lambda at, pending: items(
            Limited(_Slice(found, raw, self.end, at).read, max_depth, at - 1), "item")
        return found


class SpanItems:
    """The parsed elements of a span, with the byte offset of the current one (`offset`).

    The range scan proves the structure only; an element msgspec will not build (invalid
    UTF-8 in a string, ...) hands the rest of the span to ijson, which reads it, or reports
    the error, exactly as a sequential conversion does.
    """

    def __init__(self, span: Span, raw: BinaryIO, limit: int = MAX_DEPTH) -> None:
        raw.seek(span.start)
        self.offset = span.start
        self._span, self._raw, self._limit = span, raw, limit
        self._it = elements(raw.read, span.start, separator(span.key), decode, stop=span.end,
                            limit=limit)
        self._rest: Iterator[object] | None = None  # ijson over the rest, after a fallback

    def __iter__(self) -> SpanItems:
        return self

    def __next__(self) -> object:
        if self._rest is not None:
            return next(self._rest)
        try:
            value, start, nxt = next(self._it)
        except Fallback as fb:
            rest = Limited(_Slice(self, self._raw, self._span.end, fb.start).read, self._limit,
                           fb.start - 1)  # `[` first
            self._rest = items(rest, "item")
            return next(self._rest)
        self.offset = start
        if self._span.end is not None and nxt is not None and nxt > self._span.end:
            raise AnnostreamError(f"byte range {self._span.start}-{self._span.end} changed while "
                                  "converting: was the file modified?")
        return value


class _Slice:
    """`[` + the span's bytes from `start` on (its trailing separator cut) + `]`: the rest of
    the span as one JSON array, for ijson; keeps `items.offset` near the byte ijson is at."""

    def __init__(self, items: SpanItems | CoreItems, raw: BinaryIO, end: int | None,
                 start: int) -> None:
        self._items, self._raw, self._end = items, raw, end
        self._raw.seek(start)
        self._at = start
        self._parts = [b"["]
        items.offset = start

    def read(self, n: int) -> bytes:
        if n == 0:  # ijson probes the stream type with read(0)
            return b""
        if self._parts:
            return self._parts.pop()
        if self._end is None:
            data = self._raw.read(n)
        elif self._at >= self._end:
            return b""
        else:
            data = self._raw.read(min(n, self._end - self._at))
            if self._at + len(data) >= self._end:  # the last piece: `,` before the next range
                data = data.rstrip(WHITESPACE)
                data = (data[:-1] if data.endswith(b",") else data) + b"]"
        self._at += len(data)
        self._items.offset = self._at
        return data


def _array_key(src: Source) -> tuple[bytes, int] | None:
    """(first key, offset of the first element) when `src` is an uncompressed seekable file
    holding a JSON array of objects; None otherwise."""
    raw = src.open()
    try:
        head = raw.read(WINDOW)
        if any(head.startswith(m) for m in MAGIC):
            return None
        raw.seek(0)
        plan = sniff(decompressed(src.name, raw))
        if plan is None or plan.container != "array" or plan.prefix != "item":
            return None
        at = len(BOM) if head.startswith(BOM) else 0
        at += len(head[at:]) - len(head[at:].lstrip(WHITESPACE))
        if head[at:at + 1] != b"[":
            return None
        at += 1
        at += len(head[at:]) - len(head[at:].lstrip(WHITESPACE))
        key = first_key(head, at)
        return (key, at) if key else None
    finally:
        raw.close()


def _candidates(src: Source, key: bytes, first: int, ranges: int) -> list[int]:
    """Candidate range starts: the first element, then the first separator after each of
    `ranges - 1` equally spaced offsets. A separator whose object also has the first
    element's second key is preferred: nested objects often open like a task (`{"id":` of
    an annotation) but rarely go on like one, and every wrong candidate costs a rescan."""
    sep, out = separator(key), [first]
    raw = src.open()
    try:
        head = raw.read(WINDOW)
        m = re.compile(SECOND % re.escape(key) + rb'("(?:[^"\\]|\\.)*")').match(head, first)
        strict = m and re.compile(rb"\}" + WS + b"," + WS + rb"(" + SECOND % re.escape(key)
                                  + re.escape(m.group(1)) + WS + b":)")
        for k in range(1, ranges):
            target = first + ((src.size or 0) - first) * k // ranges
            raw.seek(target)
            window = raw.read(WINDOW)
            m = (strict and strict.search(window)) or sep.search(window)
            if m and target + m.start(1) > out[-1]:
                out.append(target + m.start(1))
    finally:
        raw.close()
    return out


def _scan(args: tuple[str, int, int | None, bytes]) -> tuple[int | None, int] | None:
    """Validate the elements of one range: (proven end, element count), None if it cannot.
    Runs on the executor: the file is named by its path."""
    path, start, stop, key = args
    raw = open_path(path)
    try:
        raw.seek(start)
        end: int | None = start
        count = 0
        try:
            # the last element's end, read after the loop, is where the range ends
            for _, _, end in elements(raw.read, start, separator(key), check,  # noqa: B007
                                      stop=stop, limit=HIGHEST_DEPTH):
                count += 1
        except (Fallback, TooDeep):  # the conversion of the unsplit file reports what it is
            return None
        return end, count
    finally:
        raw.close()


def _prove(path: str, key: bytes, cands: list[int], scans: list) -> list[Span] | None:
    """Proven spans of one file from the candidate scans, rescanning (here, in order) any
    range whose candidate start was wrong; None if some range cannot be proven."""
    spans: list[Span] = []
    at, position, i = cands[0], 0, 0
    while at is not None:
        while i < len(cands) and cands[i] < at:
            i += 1
        if i < len(cands) and cands[i] == at:
            result = scans[i]
            i += 1
        else:  # `at` is a true boundary but not a candidate: this range is scanned alone
            result = _scan((path, at, cands[i] if i < len(cands) else None, key))
        if result is None:
            return None
        end, count = result
        spans.append(Span(at, end, position, key))
        position += count
        at = end
    return spans


@dataclass
class Item:
    """One input stream of a job, described so that another process (or a machine that sees
    the same paths) can open it. In the planning process the Source found while planning is
    read as it is (`found`: a file is opened once; standard input can be read)."""

    name: str
    input: str
    size: int | None
    explicit: bool
    path: str | None  # absolute: workers do not share the driver's working directory
    member: str | None = None
    span: Span | None = None
    found: Source | None = None
    remote: Remote | None = None

    @classmethod
    def of(cls, src: Source, span: Span | None = None) -> Item:
        return cls(src.name, src.input, src.size, src.explicit,
                   src.path and os.path.abspath(src.path), src.member, span, src, src.remote)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "found": None}  # open-callables stay in their process

    def sources(self, archives: dict, scratch: Callable[[], Path]) -> Iterator[Source]:
        """The item's streams: itself, or a remote file's (a zip: its members), copied to
        `scratch()` (the worker's disk) first."""
        if self.remote is not None:
            yield from remote_sources(self.name, self.remote, scratch())
        elif self.found is not None:
            yield self.found
        else:
            yield reopen(self.name, self.input, self.size, self.explicit, self.path,
                         self.member, archives)


@dataclass
class Job:
    """Inputs (or byte ranges) converted by one worker into its own part files,
    `part-<prefix>-<number>-<attempt>-<k>.parquet` under `stage`; the attempt is new on every
    run of the job, so an engine's retry never writes into the files of a dead attempt and
    the driver keeps exactly the files of the attempt whose result it got.

    `stage` '' is a temporary folder of the worker's own; `finish` (a picklable function of
    the stage and the job's part files) then does something with the parts before that
    folder goes, its return value is `Done.finished` (a lake job: split and place them in
    the lake, stream/lake/writing.py)."""

    number: int
    items: Iterable[Item]  # a lazy iterable only for the one job of a single in-process worker
    stage: str
    prefix: str
    batch_rows: int
    on_error: str
    max_depth: int = MAX_DEPTH
    finish: Callable[[Path, list[Path], int], Any] | None = None

    def shipped(self) -> Job:
        """The job with its items listed, to be pickled to another process."""
        return replace(self, items=list(self.items))


@dataclass
class Done:
    """A job's result: each item's stats (`whole`: a file or its first range, whose size and
    file count the manifest counts once), rows per table, the part files written."""

    files: list[tuple[FileStats, bool]]
    rows: dict[str, int]
    parts: list[str]  # relative to the stage: <table>/part-....parquet
    finished: Any = None  # what the job's `finish` returned


def run_job(job: Job, progress: Progress | None = None) -> Done | tuple:
    """Run one job (in whichever process the executor chose); bad input comes back as a
    tuple (`raise_failure` turns it into the exception), as InputError does not pickle."""
    with ExitStack() as cleanup:
        archives: dict = {}
        cleanup.callback(lambda: [zf.close() for zf in archives.values()])
        stage = Path(job.stage or _own_stage(cleanup))
        scratch = functools.cache(lambda: Path(cleanup.enter_context(
            tempfile.TemporaryDirectory(prefix="annostream-in-"))))
        parts = None
        done = False
        try:
            parts = PartFiles(stage, f"{job.prefix}-{job.number:06d}-{uuid.uuid4().hex[:6]}")
            bufs = TableBuffers(job.batch_rows, parts.write)
            readers = Readers(bufs)
            files = []
            for item in job.items:
                for src in item.sources(archives, scratch):
                    stats = read_source(src, readers, job.on_error,
                                        progress.tick if progress else None, item.span,
                                        job.max_depth)
                    files.append((stats, item.span is None or item.span.position == 0))
                if progress:
                    progress.next_input(item.size)
            readers.flush()
            rows = parts.close()
            done = True
            finished = job.finish(stage, parts.paths(), job.number) if job.finish else None
            return Done(files, rows, [p.relative_to(stage).as_posix() for p in parts.paths()],
                        finished)
        except InputError as exc:  # its constructor takes parts, so it does not pickle as is
            return "input", (exc.file, exc.reason, exc.position, exc.offset)
        except AnnostreamError as exc:
            return "error", str(exc)
        finally:
            if parts is not None and not done:
                parts.discard()


def _own_stage(cleanup: ExitStack) -> Path:
    """A temporary stage of this worker's own (removed after the job), with the table
    folders a shared stage gets from its run."""
    stage = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="annostream-job-")))
    for table in TABLES:
        (stage / table).mkdir()
    return stage


def raise_failure(result: Any) -> Any:
    """A job's result, or the exception its failure tuple stands for."""
    if isinstance(result, tuple) and result[0] == "input":
        raise InputError(*result[1])
    if isinstance(result, tuple) and result[0] == "error":
        raise AnnostreamError(result[1])
    return result


def plan(sources: Iterable[Source], executor: Executor, range_bytes: int,
         **settings: Any) -> Iterator[Job]:
    """The jobs of a conversion, in input order: with one worker, one job of every input
    (lazily, nothing listed); else the proven ranges of each big uncompressed array (their
    scans run on the executor) and runs of other inputs grouped to about `range_bytes`."""
    if executor.parallelism < 2:
        yield Job(0, (Item.of(src) for src in sources), **settings)
        return
    number = 0
    group: list[Item] = []
    group_bytes = 0
    for src in sources:
        spans = None
        if src.path is not None and src.member is None and (src.size or 0) >= 2 * range_bytes:
            spans = _split(src, executor, range_bytes)
        if spans is None:
            group.append(Item.of(src))
            group_bytes += src.size or 0
            if group_bytes < range_bytes:
                continue
            spans = []
        if group:
            yield Job(number, group, **settings)
            number, group, group_bytes = number + 1, [], 0
        for span in spans:
            yield Job(number, [Item.of(src, span)], **settings)
            number += 1
    if group:
        yield Job(number, group, **settings)


def _split(src: Source, executor: Executor, range_bytes: int) -> list[Span] | None:
    """The proven byte ranges of one big array (None: not an array of objects, or a range
    that cannot be proven)."""
    found = _array_key(src)
    if not found or src.size is None or src.path is None:
        return None
    key, first = found
    ranges = min(src.size // range_bytes, executor.parallelism * RANGES_PER_WORKER)
    cands = _candidates(src, key, first, ranges)
    path = os.path.abspath(src.path)
    work = [(path, c, cands[k + 1] if k + 1 < len(cands) else None, key)
            for k, c in enumerate(cands)]
    return _prove(path, key, cands, list(executor.map(_scan, work)))
