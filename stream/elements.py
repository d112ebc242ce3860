"""The elements of a top-level JSON array, each parsed in one call at a proven boundary.

ijson builds every element event by event in Python; finding where an element ends and
parsing it whole with msgspec is several times faster. Element ends are found by a cheap
search for the separator between two tasks (`}`, `,`, then `{` and the key the first element
starts with) and a bracket count that ignores strings; neither is trusted. A candidate end is
accepted only when the bytes from the element's start parse as exactly one JSON value: JSON
values are self-delimiting, so from a true element start that proves the end (and the start of
the next element). A wrong candidate (a separator inside a string) just fails to parse.

The same search splits one big file into byte ranges for parallel workers (stream/parallel.py).
Anything the fast path does not handle (an element that is not an object, a value msgspec
rejects, no proven end within MAX_PENDING bytes) hands the rest of the stream, from the
current element on, to ijson: the reader the converter always used, with its error messages.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import msgspec

from .depth import MAX_DEPTH, Depth, Limited, TooDeep, too_deep
from .numbers import decode, items

WS = rb"[ \t\r\n]*"
CHUNK = 1 << 22
MAX_PENDING = 1 << 26  # bytes of one element without a proven end before its depth is tracked
MAX_TRIES = 64  # failed parses of one element before ijson takes over
RESCAN = 4096  # bytes before the end of the buffer searched again after reading more
OPENING = re.compile(WS + rb'\{' + WS + rb'("(?:[^"\\]|\\.)*")' + WS + b":")
WHITESPACE = b" \t\r\n"

# invalid UTF-8 too; RecursionError: msgspec nests no deeper than Python's stack allows
ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


class _Skip(msgspec.Struct):
    """An object whose keys are all skipped: parsing into it validates without building."""


check = msgspec.json.Decoder(_Skip).decode


class Fallback(Exception):
    """The fast path cannot prove where the element at `start` ends."""

    def __init__(self, start: int, pending: bytes) -> None:
        super().__init__(f"no proven element end after byte {start}")
        self.start, self.pending = start, pending


def separator(key: bytes, array: bool = True) -> re.Pattern:
    """Candidate ends: `}` `,` and the next element's opening up to its first key's colon
    (no `,` between the top-level values of a stream of objects)."""
    comma = WS + b"," if array else b""
    return re.compile(rb"\}" + comma + WS + rb"(\{" + WS + re.escape(key) + WS + b":)")


def first_key(head: bytes, at: int) -> bytes | None:
    """The first key (JSON text, quotes included) of the object starting at `at` in `head`."""
    m = OPENING.match(head, at)
    return m.group(1) if m else None


def elements(read: Callable[[int], bytes], offset: int, sep: re.Pattern, parse: Callable,
             stop: int | None = None, limit: int = MAX_DEPTH, array: bool = True
             ) -> Iterator[tuple[object, int, int | None]]:
    """(value, start, next start) for each element, from a stream positioned at an element
    start (stream offset `offset`); next start is None after the last element of the array
    (`array` False: the last top-level value of a stream of objects). With `stop`, ends after
    the first element whose next start is at or past `stop`. Raises Fallback when it cannot
    prove an end, TooDeep when an element nests deeper than `limit` (see _Big, _last)."""
    buf, base, s, eof = bytearray(), offset, 0, False
    while True:
        scan, dpos, depth, opens, tries = s, s, 0, 0, 0
        big: _Big | None = None
        while True:
            m = sep.search(buf, scan)
            if m is None:
                if eof:
                    value = _last(buf, s, base, parse, limit, array)
                    del buf[:]  # the value is built: its bytes are not needed while it is used
                    yield value, base + s, None
                    return
                big = _Big.watch(big, buf, s, base, limit, array)
                chunk = read(CHUNK)
                eof = not chunk
                scan = max(scan, len(buf) - RESCAN)
                if s:  # one move per read, not per element (the buffer grows in place)
                    del buf[:s]
                    base, scan, dpos, s = base + s, scan - s, dpos - s, 0
                buf += chunk
                continue
            end = m.start() + 1
            o = buf.count(b"{", dpos, end) + buf.count(b"[", dpos, end)
            opens += o
            depth += o - buf.count(b"}", dpos, end) - buf.count(b"]", dpos, end)
            dpos = scan = end
            try:
                if depth != 0:  # nested (an annotation opens like a task), or unbalanced
                    if tries >= MAX_TRIES:  # brackets in a string: a cheap check first
                        continue
                    tries += 1
                    _parse(check, buf, s, end)
                value = _parse(parse, buf, s, end)
            except ERRORS:
                if depth == 0:
                    tries += 1
                    if tries > MAX_TRIES:
                        raise Fallback(base + s, bytes(buf[s:])) from None
                continue
            _limit(buf, s, end, base, opens, limit, array)
            nxt = m.start(1)
            start = base + s
            if nxt > CHUNK:  # a big element: its bytes go before it is used (one move)
                del buf[:nxt]
                base, nxt = base + nxt, 0
            yield value, start, base + nxt
            s = nxt
            if stop is not None and base + s >= stop:
                return
            break


class _Big:
    """An element past MAX_PENDING bytes without a proven end: its depth is tracked, so that
    bytes which close it (broken input) or nest too deep go to ijson, which says why, instead
    of being buffered to the end of the file."""

    def __init__(self, limit: int, array: bool, start: int) -> None:
        self.depth, self.array, self.fed, self.after = Depth(limit, int(array)), array, start, b""

    @classmethod
    def watch(cls, big: _Big | None, buf: bytearray, s: int, base: int, limit: int,
              array: bool) -> _Big | None:
        """`big` (made once the element passes MAX_PENDING bytes), checked up to the end of
        `buf`, or None for an element still small."""
        if big is None and len(buf) - s > MAX_PENDING:
            big = cls(limit, array, base + s)
        if big is not None:
            big.check(buf, s, base)
        return big

    def check(self, buf: bytearray, s: int, base: int) -> None:
        """`fed` is a stream offset: the buffer may move under it."""
        new, self.fed = bytes(buf[self.fed - base:]), base + len(buf)
        if not self.depth.closed():
            if self.depth.feed(new) < 0:
                return
        else:  # closed earlier: only the end of the input may follow
            self.after += new.strip(WHITESPACE)
            if self.after in (b"", b"]"[:self.array]):
                return
        raise Fallback(base + s, bytes(buf[s:]))


def _last(buf: bytearray, s: int, base: int, parse: Callable, limit: int,
          array: bool) -> object:
    """The last element, buf[s:] up to the end of the input (and the array's `]`)."""
    end = len(buf)
    while end > s and buf[end - 1] in WHITESPACE:
        end -= 1
    if array and buf[end - 1:end] != b"]":
        raise Fallback(base + s, bytes(buf[s:]))
    end -= array
    try:
        value = _parse(parse, buf, s, end)
    except ERRORS:
        raise Fallback(base + s, bytes(buf[s:])) from None
    _limit(buf, s, end, base, buf.count(b"{", s, end) + buf.count(b"[", s, end), limit, array)
    return value


def _parse(parse: Callable, buf: bytearray, start: int, end: int) -> object:
    """parse(buf[start:end]) without copying the bytes (an element may be gigabytes)."""
    with memoryview(buf) as mv, mv[start:end] as part:
        return parse(part)


def _limit(buf: bytearray, s: int, end: int, base: int, opens: int, limit: int,
           array: bool) -> None:
    """Raise TooDeep if the parsed element buf[s:end] nests deeper than `limit` (counted only
    when it has more opening brackets than that: most elements cannot be too deep)."""
    if opens + array > limit:  # an array's elements start at depth 1
        hit = too_deep(bytes(buf[s:end]), limit, int(array))
        if hit >= 0:
            raise TooDeep(base + s + hit, limit)


class ArrayItems:
    """Iterator over the elements of a stream holding one JSON array, like
    `ijson.items(stream, "item", use_float=True)`, or (`array` False) over the top-level
    values of a stream of objects (a per-task file, NDJSON), like `ijson.items(stream, "",
    multiple_values=True)`; `offset` is the byte offset of the current element (near it once
    ijson has taken over). Either way no parser sees more than `limit` levels of nesting."""

    _item, _opening = "item", b"["  # the elements' ijson prefix, and what opens their array

    def __init__(self, read: Callable[[int], bytes], limit: int = MAX_DEPTH,
                 array: bool = True) -> None:
        self._read, self._max_depth, self._array = read, limit, array
        self.offset = 0
        self._given = 0  # bytes handed to ijson after a fallback
        self._ijson_base: int | None = None
        self._it = self._items()

    def __iter__(self) -> ArrayItems:
        return self

    def __next__(self) -> object:
        return next(self._it)

    def _items(self) -> Iterator[object]:
        head = self._read(CHUNK)
        at = len(head) - len(head.lstrip(WHITESPACE))
        key = None
        if not self._array:
            key = first_key(head, at)
        elif head[at:at + 1] == b"[":
            at += 1
            key = first_key(head, at)
        if key is None:  # not an array of objects, or an odd first element: ijson reads it all
            yield from self._ijson(0, head, b"")
            return
        at += len(head[at:]) - len(head[at:].lstrip(WHITESPACE))
        pending = [head[at:]]

        def read(n: int) -> bytes:
            return pending.pop() if pending else self._read(n)

        try:
            for value, start, _ in elements(read, at, separator(key, self._array), decode,
                                            limit=self._max_depth, array=self._array):
                self.offset = start
                yield value
        except Fallback as fb:
            yield from self._ijson(fb.start, fb.pending, b"[" if self._array else b"")

    def _ijson(self, start: int, pending: bytes, prefix: bytes) -> Iterator[object]:
        """The rest of the stream, from `start` (an element start, or the stream start with
        no prefix), parsed by ijson exactly as a plain conversion would."""
        parts = [memoryview(pending), memoryview(prefix)] if prefix else [memoryview(pending)]
        base = self._ijson_base = start - len(prefix)

        class Rest:
            def read(_, n: int) -> bytes:
                """At most n bytes at a time, also from the buffered data, so that `offset`
                stays within one ijson buffer of the byte ijson is parsing."""
                if n == 0:  # ijson probes the stream type with read(0)
                    return b""
                if parts:
                    data = bytes(parts[-1][:n])
                    parts[-1] = parts[-1][n:]
                    if not parts[-1]:
                        parts.pop()
                else:
                    data = self._read(n)
                self._given += len(data)
                self.offset = base + self._given
                return data

        rest = Limited(Rest().read, self._max_depth, self._ijson_base)
        if self._array:
            yield from items(rest, self._item)
        else:
            yield from items(rest, "", multiple_values=True)
