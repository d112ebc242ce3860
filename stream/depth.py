"""The nesting-depth limit, enforced on bytes before any parser builds the nesting.

A JSON parser's memory can grow faster than the input with nesting: ijson keeps a prefix
string per open level (100,000 `[` cost gigabytes), msgspec and the json module recurse. So
the depth of every byte is counted before a parser sees it, and input deeper than the limit
(MAX_DEPTH, `--max-depth`) stops with one line naming the byte.

Counting ignores brackets inside strings. It is vectorised (escapes removed by one regex,
everything but quotes and brackets deleted by `bytes.translate`, then running sums in Arrow),
so it costs a fraction of parsing; the exact byte is found by a token loop only on failure.

The bytes ijson reads are also checked for integers longer than DIGITS: ijson's C backend
crashes the process (a segmentation fault) on an integer Python will not convert from text,
and converting one that long takes time quadratic in its digits. Such an integer is bad input.
So is a vertical tab or a form feed, which yajl alone takes for whitespace (the fast readers
reject them: the same input must not convert on one path and fail on another).
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

DIGITS = 4300  # Python's limit for int text (sys.get_int_max_str_digits() by default)
_DIGIT_CHARS = b"0123456789"
_AS_ONES = bytes(0x31 if b in _DIGIT_CHARS else 0x30 for b in range(256))  # digit: '1'
_LONG = b"1" * (DIGITS + 1)
_NOT_INTEGER = (b".", b"e", b"E", b"+")  # before digits: a fraction or an exponent


class TooDeep(Exception):
    """The input nests deeper than the limit at byte `offset` (of the stream)."""

    def __init__(self, offset: int, limit: int) -> None:
        super().__init__(f"nested deeper than {limit} levels (the limit; see --max-depth)")
        self.offset, self.limit = offset, limit


class Control(TooDeep):
    """A vertical tab or form feed at byte `offset`: never JSON (not whitespace, and not
    allowed unescaped in a string), yet ijson's yajl takes it for whitespace."""

    def __init__(self, offset: int, byte: int) -> None:
        Exception.__init__(self, f"invalid JSON: control character 0x{byte:02x} (neither "
                                 "JSON whitespace nor allowed unescaped in a string)")
        self.offset, self.limit = offset, 0


class TooLong(TooDeep):
    """An integer longer than DIGITS digits starts at byte `offset` (of the stream)."""

    def __init__(self, offset: int) -> None:
        Exception.__init__(self, f"an integer of more than {DIGITS} digits (the limit)")
        self.offset, self.limit = offset, DIGITS


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
    """Index of the first byte of a whole value (or prefix) beyond `limit`, or -1 (at once
    when `data` opens too few brackets to get there: a small file's head, sniffed one by
    one in a folder)."""
    if data.count(b"[") + data.count(b"{") + depth <= limit:
        return -1
    return Depth(limit, depth).feed(data)


class Integers:
    """Finds an integer longer than DIGITS in a byte stream fed piece by piece (digits in
    strings, fractions and exponents are not integers). Linear: a translate and a search per
    piece; the string state at a long run is found by a token loop only when there is one."""

    def __init__(self) -> None:
        self.run = 0  # digits the bytes fed so far end with
        self.integer = False  # whether that run is an integer (outside strings, no fraction)
        self.tail = b""  # the two bytes before it

    def feed(self, data: bytes, in_string: bool, start: int, end_in_string: bool | None
             ) -> int | None:
        """Index in `data` of the first digit of a too long integer (negative: it began in
        an earlier piece), or None. `in_string`, `start`: the string state at `data`'s start
        and its first byte not escaped (see Depth); `end_in_string`: the state at its end
        (None: a run to the end of `data` is judged as it stands, as at the end of input)."""
        lead = len(data) - len(data.lstrip(_DIGIT_CHARS))
        if self.run:  # the run the last piece ended with goes on
            if lead == len(data) and end_in_string is not None:
                self.run += lead
                return None
            if self.integer and self.run + lead > DIGITS and (
                    data[lead:lead + 1] not in (b".", b"e", b"E")):
                return -self.run
        t = data.translate(_AS_ONES)
        i = t.find(_LONG, lead if self.run else 0)
        scan = start
        while i >= 0:
            end = t.find(b"0", i)
            end = len(data) if end < 0 else end
            for m in _TOKENS.finditer(data, scan, i):
                if data[m.start()] == 0x22:
                    in_string = not in_string
            scan = i
            if not in_string and _integer(self._before(data, i)) and (
                    end == len(data) and end_in_string is None
                    or data[end:end + 1] not in (b"", b".", b"e", b"E")):
                return i
            i = t.find(_LONG, end)
        self._ended(data, lead, end_in_string)
        return None

    def at_end(self) -> int | None:
        """At the end of the input: minus the length of a too long integer it ends with."""
        return -self.run if self.integer and self.run > DIGITS else None

    def _ended(self, data: bytes, lead: int, end_in_string: bool | None) -> None:
        """The run `data` ends with, carried to the next piece."""
        trail = len(data) - len(data.rstrip(_DIGIT_CHARS))
        if trail == len(data) and self.run:
            self.run += trail
            return
        before = self._before(data, len(data) - trail)
        self.run, self.tail = trail, self._before(data, len(data))
        self.integer = bool(trail) and end_in_string is False and _integer(before)

    def _before(self, data: bytes, i: int) -> bytes:
        """The two bytes before `data[i]` (from the pieces before it too)."""
        return data[i - 2:i] if i >= 2 else (self.tail + data[:i])[-2:]


def _integer(before: bytes) -> bool:
    """Whether digits after `before` (the two bytes before them) start an integer."""
    return before[-1:] not in _NOT_INTEGER and not (
        before[-1:] == b"-" and before[-2:-1] in (b"e", b"E"))


def long_integer(data: bytes) -> int:
    """Index of the first digit of an integer longer than DIGITS in a whole value or a
    prefix (one running to its end counts), or -1."""
    hit = Integers().feed(data, False, 0, None)
    return -1 if hit is None else hit


class Limited:
    """A read function whose bytes are depth-checked before the parser gets them.

    The bytes before the first too-deep one are handed out, so that a parser yields every
    value before it; the next read raises TooDeep (and so does every read after it). So for
    an integer longer than DIGITS (TooLong), once its end is seen, and a vertical tab or form
    feed (Control).
    `offset` is the stream offset of the first byte this reader hands out.
    """

    def __init__(self, read: Callable[[int], bytes], limit: int = MAX_DEPTH, offset: int = 0,
                 depth: int = 0) -> None:
        self._read, self._depth, self._at = read, Depth(limit, depth), offset
        self._integers = Integers()
        self._error: TooDeep | None = None

    @property
    def offset(self) -> int:
        """The stream offset after the bytes handed out so far (for error messages)."""
        return self._at

    def read(self, n: int = -1) -> bytes:
        if self._error is not None:
            raise self._error
        data = self._read(n)
        if not data:  # a parser would convert an integer it ends with now
            long = self._integers.at_end()
            if long is not None:
                self._error = TooLong(self._at + long)
                raise self._error
            return data
        in_string, start = self._depth.in_string, int(self._depth.escape)
        hits: list[tuple[int, TooDeep]] = []
        hit = self._depth.feed(data)
        if hit >= 0:
            hits.append((hit, TooDeep(self._at + hit, self._depth.limit)))
        long = self._integers.feed(data, in_string, start, self._depth.in_string)
        if long is not None:
            hits.append((max(long, 0), TooLong(self._at + long)))
        for c in (0x0B, 0x0C):
            if (at := data.find(c)) >= 0:
                hits.append((at, Control(self._at + at, c)))
        if hits:
            hit, self._error = min(hits, key=lambda h: h[0])
            data = data[:hit]
            if not data:  # an empty read would read as the end of the input
                raise self._error
        self._at += len(data)
        return data
