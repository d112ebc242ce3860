"""JSON numbers that a double cannot hold, kept exactly: parsing and writing JSON text.

JSON has no range limit: `1e999` and 30-digit integers are valid. Integers of any size are
Python ints already. A number beyond double range becomes a `BigNumber`: a float (infinite)
that remembers its text. It is not an int or a float to the readers (`type(v) is float` is
false), so no typed column takes it: it stays whole in a JSON column, and `dumps` writes its
text back. Parsing takes the fast path (msgspec) and only re-reads a value with a hook when
msgspec finds a number out of range.
"""
from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ijson
import msgspec
import orjson

_fast = msgspec.json.Decoder().decode


class BigNumber(float):
    """A JSON number outside double range, with its exact text."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> BigNumber:
        obj = super().__new__(cls, float(text))
        obj.text = text
        return obj

    def __repr__(self) -> str:
        return self.text


def number(text: str) -> float:
    """A float from JSON number text; a BigNumber when a double cannot hold it."""
    f = float(text)
    return f if math.isfinite(f) else BigNumber(text)


_exact = msgspec.json.Decoder(float_hook=number).decode


def decode(data: bytes | bytearray | memoryview) -> Any:
    """One JSON value; numbers beyond double range as BigNumbers (not an error)."""
    try:
        return _fast(data)
    except msgspec.DecodeError as exc:
        if "out of range" not in str(exc):
            raise
        return _exact(data)


def loads(text: str) -> Any:
    """A JSON cell written by `dumps`, read back with its numbers exact."""
    try:
        return decode(text.encode())
    except (msgspec.DecodeError, UnicodeEncodeError):  # lone surrogates: the json module
        return json.loads(text, parse_float=number)  # bounded: one cell


def exact(v: Any) -> Any:
    """A value parsed by ijson without use_float (its non-integers are Decimals: yajl stops at
    numbers beyond double range otherwise) with each Decimal made a float or a BigNumber.
    Recursive: callers get at most the depth limit's levels (stream/depth.py)."""
    t = type(v)
    if t is Decimal:
        return number(str(v))
    if t is dict:
        for k, x in v.items():
            if type(x) in _NESTED:
                v[k] = exact(x)
    elif t is list:
        for i, x in enumerate(v):
            if type(x) in _NESTED:
                v[i] = exact(x)
    return v


_NESTED = frozenset({dict, list, Decimal})


def items(source: Any, prefix: str, **kwargs: Any) -> Iterator[Any]:
    """`ijson.items` with every number exact (see `exact`)."""
    for v in ijson.items(source, prefix, use_float=False, **kwargs):
        yield exact(v)


def kvitems(source: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """`ijson.kvitems` with every number exact (see `exact`)."""
    for k, v in ijson.kvitems(source, prefix, use_float=False):
        yield k, exact(v)


def _floatstr(o: float) -> str:
    if type(o) is BigNumber:
        return o.text
    return float.__repr__(o)


_iterencode = json.encoder._make_iterencode(  # type: ignore[attr-defined]  # json's own, but floats
    None, lambda o: _unknown(o), json.encoder.encode_basestring, None, _floatstr, ":", ",",
    False, False, True)


def _unknown(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(v: Any) -> str:
    """Compact JSON text of a parsed value, for the JSON columns.

    orjson is about 7x faster than the json module here, which is a fifth of a conversion; its
    text differs only in how some floats are spelled (7.8e-7 for 7.8e-07): the same numbers.
    What orjson refuses (ints beyond 64 bits, BigNumbers, lone surrogates, nesting beyond 255)
    goes through the json module's encoder, with BigNumbers written as their text.
    """
    try:
        return orjson.dumps(v).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        pass
    text = _encode(v)  # C speed; only a BigNumber (or a string) can write Infinity
    return text if "Infinity" not in text else "".join(_iterencode(v, 0))


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
