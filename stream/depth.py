"""The nesting-depth limit, enforced on bytes before any parser builds the nesting.

A JSON parser's memory can grow faster than the input with nesting: ijson keeps a prefix
string per open level (100,000 `[` cost gigabytes), msgspec and the json module recurse. So
the depth of every byte is counted before a parser sees it, and input deeper than the limit
(MAX_DEPTH, `--max-depth`) stops with one line naming the byte.

Counting ignores brackets inside strings. It is vectorised (escapes removed by one regex,
everything but quotes and brackets deleted by `bytes.translate`, then running sums in Arrow),
so it costs a fraction of parsing; the exact byte is found by a token loop only on failure.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

MAX_DEPTH = 512
# Above this the parsers and the json module recurse too deep for Python's default stack.
HIGHEST_DEPTH = 800

_ESCAPE = re.compile(rb"\\.", re.S)
_NOT_SYNTAX = bytes(b for b in range(256) if b not in b'[]{}"')  # deleted by translate
_STEP = bytes.maketrans(b'[{]}"', b"\x01\x01\xff\xff\x00")  # as int8: +1, -1, 0
_TOKENS = re.compile(rb'\\.|["\[\]{}]', re.S)


class TooDeep(Exception):
    """The input nests deeper than the limit at byte `offset` (of the stream)."""

    def __init__(self, offset: int, limit: int) -> None:
        super().__init__(f"nested deeper than {limit} levels (the limit; see --max-depth)")
        self.offset, self.limit = offset, limit


def check_limit(limit: int) -> int:
    if not 1 <= limit <= HIGHEST_DEPTH:
        raise ValueError(f"max_depth must be between 1 and {HIGHEST_DEPTH}, not {limit}")
    return limit


class Depth:
    """The nesting depth of a byte stream fed piece by piece (inside a string or not, and a
    pending backslash, carried between pieces)."""

    def __init__(self, limit: int = MAX_DEPTH, depth: int = 0) -> None:
        self.limit, self.depth, self.start = limit, depth, depth
        self.lowest: int | None = None  # the lowest depth after any byte fed so far
        self.in_string = self.escape = False

    def feed(self, data: bytes) -> int:
        """Index of the first byte of `data` that opens a level beyond the limit, or -1.
        The state moves past `data` (its value after a hit does not matter: input stops)."""
        start = 1 if self.escape and data else 0
        if start:
            self.escape = False
        body = data[start:] if start else data
        if b"\\" in body:
            body = _ESCAPE.sub(b"", body)  # a backslash and the byte it escapes
            if body.endswith(b"\\"):  # escapes the first byte of the next piece
                self.escape = True
        t = body.translate(None, _NOT_SYNTAX)
        if not t:
            return -1
        chars = pa.Array.from_buffers(pa.uint8(), len(t), [None, pa.py_buffer(t)])
        quotes = pc.cumulative_sum(pc.equal(chars, 34).cast(pa.int32()))
        if self.in_string:
            quotes = pc.add(quotes, 1)
        outside = pc.equal(pc.bit_wise_and(quotes, 1), 0)  # a quote itself counts as 0 anyway
        steps = pa.Array.from_buffers(pa.int8(), len(t), [None, pa.py_buffer(t.translate(_STEP))])
        steps = pc.if_else(outside, steps.cast(pa.int32()), 0)
        depths = pc.add(pc.cumulative_sum(steps), self.depth)
        if pc.max(depths).as_py() > self.limit:
            return self._locate(data, start)
        self.depth = depths[-1].as_py()
        low = pc.min(depths).as_py()
        self.lowest = low if self.lowest is None else min(self.lowest, low)
        self.in_string = quotes[-1].as_py() % 2 == 1
        return -1

    def closed(self) -> bool:
        """Whether the value fed from its first byte on has closed (back to the depth it
        started at, or below)."""
        return self.lowest is not None and self.lowest <= self.start

    def _locate(self, data: bytes, start: int) -> int:
        """The exact byte, by a loop over the syntax tokens of `data` (from the same state)."""
        depth, in_string = self.depth, self.in_string
        for m in _TOKENS.finditer(data, start):
            c = data[m.start()]
            if c == 0x5C:  # backslash: skip the escaped byte
                continue
            if c == 0x22:
                in_string = not in_string
            elif not in_string:
                depth += 1 if c in (0x5B, 0x7B) else -1
                if depth > self.limit:
                    return m.start()
        return len(data) - 1  # not reached: both counts agree


def too_deep(data: bytes, limit: int, depth: int = 0) -> int:
    """Index of the first byte of a whole value (or prefix) beyond `limit`, or -1."""
    return Depth(limit, depth).feed(data)


class Limited:
    """A read function whose bytes are depth-checked before the parser gets them.

    The bytes before the first too-deep one are handed out, so that a parser yields every
    value before it; the next read raises TooDeep (and so does every read after it).
    `offset` is the stream offset of the first byte this reader hands out.
    """

    def __init__(self, read: Callable[[int], bytes], limit: int = MAX_DEPTH, offset: int = 0,
                 depth: int = 0) -> None:
        self._read, self._depth, self._at = read, Depth(limit, depth), offset
        self._error: TooDeep | None = None

    @property
    def offset(self) -> int:
        """The stream offset after the bytes handed out so far (for error messages)."""
        return self._at

    def read(self, n: int = -1) -> bytes:
        if self._error is not None:
            raise self._error
        data = self._read(n)
        hit = self._depth.feed(data) if data else -1
        if hit >= 0:
            self._error = TooDeep(self._at + hit, self._depth.limit)
            data = data[:hit]
            if not data:  # an empty read would read as the end of the input
                raise self._error
        self._at += len(data)
        return data
