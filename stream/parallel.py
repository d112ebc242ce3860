"""Conversion on all cores: big JSON arrays split into proven byte ranges, one worker per range.

One big export is one sequential stream for every JSON reader. To use more cores, candidate
element boundaries are picked at about equal byte offsets (the separator search of
stream/elements.py) and then proven before anything is converted: each range is scanned from
its candidate start, validating every element with msgspec (without building it), up to the
first element boundary at or past the next candidate. Range 0 starts at the true first element,
so its scan proves where range 1 really starts and how many tasks come before it; a range
whose candidate start is not the proven one (a separator inside a string) is scanned again
from the proven start, in order. Every range therefore starts at a true element boundary and
knows the global `position` of its first task.

Conversion then runs one job per range (or per group of small or unsplittable inputs, in input
order) in a forked worker, each into its own part files named `part-<prefix>-<job>-<k>.parquet`,
so the parts sort in input and position order and the output equals the single-worker output
row for row. Only uncompressed files that are JSON arrays are split: a compressed stream
cannot be entered in the middle.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import re
from dataclasses import dataclass
from typing import Callable

import ijson

from .elements import WS, Fallback, check, decode, elements, first_key, separator
from .errors import AnnostreamError, InputError
from .formats import BOM, WHITESPACE, FileStats, Readers, read_source, sniff
from .sources import MAGIC, Source, decompressed, iter_sources
from .writer import Buffers, Output

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

    def items(self, raw) -> "SpanItems":
        return SpanItems(self, raw)


class SpanItems:
    """The parsed elements of a span, with the byte offset of the current one (`offset`).

    The range scan proves the structure only; an element msgspec will not build (invalid
    UTF-8 in a string, ...) hands the rest of the span to ijson, which reads it, or reports
    the error, exactly as a sequential conversion does.
    """

    def __init__(self, span: Span, raw) -> None:
        raw.seek(span.start)
        self.offset = span.start
        self._span, self._raw = span, raw
        self._it = elements(raw.read, span.start, separator(span.key), decode, stop=span.end)
        self._rest = None  # ijson over the rest of the span, after a fallback

    def __iter__(self) -> "SpanItems":
        return self

    def __next__(self) -> object:
        if self._rest is not None:
            return next(self._rest)
        try:
            value, start, nxt = next(self._it)
        except Fallback as fb:
            self._rest = ijson.items(_Slice(self, fb.start), "item", use_float=True)
            return next(self._rest)
        self.offset = start
        if self._span.end is not None and nxt is not None and nxt > self._span.end:
            raise AnnostreamError(f"byte range {self._span.start}-{self._span.end} changed while "
                                  "converting: was the file modified?")
        return value


class _Slice:
    """`[` + the span's bytes from `start` on (its trailing separator cut) + `]`: the rest of
    the span as one JSON array, for ijson; keeps `items.offset` near the byte ijson is at."""

    def __init__(self, items: SpanItems, start: int) -> None:
        self._items, self._raw, self._end = items, items._raw, items._span.end
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


# Set in the parent before the workers are forked (sources hold open-callables, not paths).
_SOURCES: list[Source] = []
_SETTINGS: dict = {}


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
            target = first + (src.size - first) * k // ranges
            raw.seek(target)
            window = raw.read(WINDOW)
            m = (strict and strict.search(window)) or sep.search(window)
            if m and target + m.start(1) > out[-1]:
                out.append(target + m.start(1))
    finally:
        raw.close()
    return out


def _scan(args: tuple[int, int, int | None, bytes]) -> tuple[int | None, int] | None:
    """Validate the elements of one range: (proven end, element count), None if it cannot."""
    index, start, stop, key = args
    raw = _SOURCES[index].open()
    try:
        raw.seek(start)
        end, count = start, 0
        try:
            for _, _, end in elements(raw.read, start, separator(key), check, stop=stop):
                count += 1
        except Fallback:
            return None
        return end, count
    finally:
        raw.close()


def _prove(index: int, key: bytes, cands: list[int], scans: list) -> list[Span] | None:
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
            result = _scan((index, at, cands[i] if i < len(cands) else None, key))
        if result is None:
            return None
        end, count = result
        spans.append(Span(at, end, position, key))
        position += count
        at = end
    return spans


def _job(items: list[tuple[int, Span | None]]) -> tuple:
    """One job in a worker: its inputs (or byte ranges) into one part file per table."""
    s = _SETTINGS
    try:
        bufs = Buffers(s["stage"], f"{s['prefix']}-{s['job']}", s["batch_rows"])
        readers = Readers(bufs)
        files = [read_source(_SOURCES[i], readers, s["on_error"], None, span) for i, span in items]
        return "ok", files, bufs.close()
    except InputError as exc:  # its constructor takes parts, so it does not pickle as is
        return "input", (exc.file, exc.reason, exc.position, exc.offset)
    except AnnostreamError as exc:
        return "error", str(exc)


def _run(job: tuple[int, list]) -> tuple:
    _SETTINGS["job"] = f"{job[0]:06d}"
    return _job(job[1])


def _plan_jobs(pool, workers: int, range_bytes: int) -> list[list[tuple[int, Span | None]]]:
    """Jobs in input order: the proven ranges of each big array, and runs of other inputs
    grouped to about `range_bytes`."""
    splits: dict[int, tuple[bytes, list[int]]] = {}
    for i, src in enumerate(_SOURCES):
        if (src.size or 0) >= 2 * range_bytes:
            found = _array_key(src)
            if found:
                ranges = min(src.size // range_bytes, workers * RANGES_PER_WORKER)
                splits[i] = (found[0], _candidates(src, found[0], found[1], ranges))
    work = [(i, c, cands[k + 1] if k + 1 < len(cands) else None, key)
            for i, (key, cands) in splits.items() for k, c in enumerate(cands)]
    results = iter(pool.map(_scan, work, chunksize=1))
    jobs: list[list] = []
    group: list = []
    group_bytes = 0
    for i, src in enumerate(_SOURCES):
        spans = None
        if i in splits:
            key, cands = splits[i]
            spans = _prove(i, key, cands, [next(results) for _ in cands])
        if spans is None:
            group.append((i, None))
            group_bytes += src.size or 0
            if group_bytes >= range_bytes:
                jobs.append(group)
                group, group_bytes = [], 0
            continue
        if group:
            jobs.append(group)
            group, group_bytes = [], 0
        jobs += [[(i, span)] for span in spans]
    if group:
        jobs.append(group)
    return jobs


def convert_parallel(inputs: list[str], out: Output, on_error: str, batch_rows: int,
                     record: Callable[[FileStats, bool], None], workers: int,
                     range_bytes: int = RANGE_BYTES) -> dict[str, int] | None:
    """Convert on `workers` processes, handing each file's stats (or each byte range's, the
    first flagged) to `record` in input order; returns the rows per table, or None when there
    is nothing to share out (the caller converts sequentially)."""
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        return None
    sources = []  # the workers index them: one Source per file (see _SOURCES)
    for src in iter_sources(inputs):
        if src.path is None:  # a zip member shares the archive's file offset with every
            return None  # forked worker; standard input can be read once
        sources.append(src)
    if sum(s.size for s in sources) < 2 * range_bytes:
        return None
    _SOURCES[:] = sources
    del sources
    _SETTINGS.update(stage=out.stage, prefix=out.part_prefix(), batch_rows=batch_rows,
                     on_error=on_error)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            jobs = _plan_jobs(pool, workers, range_bytes)
            if len(jobs) < 2:
                return None
            rows: dict[str, int] = {}
            last = None  # the ranges of one file follow each other
            for result, items in zip(pool.imap(_run, enumerate(jobs)), jobs):
                if result[0] == "input":
                    raise InputError(*result[1])
                if result[0] == "error":
                    raise AnnostreamError(result[1])
                for (i, _), f in zip(items, result[1]):
                    record(f, i != last)
                    last = i
                for t, n in result[2].items():
                    rows[t] = rows.get(t, 0) + n
            return rows
    finally:
        _SOURCES.clear()
        _SETTINGS.clear()


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
