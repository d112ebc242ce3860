"""Value rules shared by the platform readers (see the restoring rule in stream/tables.py).

Each `*_fit` function answers, for one input value, what its typed column holds and whether
the original must also stay in `extra`: `(column_value, keep_original)`. A value of the
wrong JSON type gives `(None, True)`: never coerced, always kept. The `restore_*` functions
and the row helpers at the end are the way back, used by each platform's rebuilder (export).
"""
from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeGuard

from ..depth import DIGITS
from ..numbers import dumps as dumps  # the readers' JSON text
from ..numbers import loads

ABSENT = "~absent"  # extra key listing typed keys filled although absent from the input
LISTED = "~list"  # annotation extra key: its task list when the kind alone cannot tell it
ESCAPED = "~escaped"  # extra key holding the input's own keys that are named like these three
RESERVED = frozenset({ABSENT, LISTED, ESCAPED})

# JSON types a typed column accepts (see `fill_plain`).
STR, INT, NUM, BOOL = frozenset({str}), frozenset({int}), frozenset({int, float}), frozenset({bool})
NONE = frozenset({type(None)})


def extra_of(obj: dict, known: frozenset) -> dict:
    """The keys of `obj` without a typed column, for its `extra`. An input key named like a
    reserved key moves under extra["~escaped"], so the reserved keys at the top of `extra`
    are always the converter's own and the input's value comes back as it was."""
    extra = {k: v for k, v in obj.items() if k not in known}
    if extra and not RESERVED.isdisjoint(extra):
        extra[ESCAPED] = {k: extra.pop(k) for k in [k for k in extra if k in RESERVED]}
    return extra


def fill_plain(obj: dict, plain: tuple, cols: dict, i: int, extra: dict) -> None:
    """Typed keys into their columns, `plain` being (input key, column, accepted JSON types)
    triples; a value of another JSON type (or an int too large for the column to hold
    exactly) goes to `extra` as is."""
    for key, col, ok in plain:
        if key in obj:
            v = obj[key]
            if type(v) in ok and (type(v) is not int or -EXACT_INT <= v <= EXACT_INT):
                cols[col][i] = v
            else:
                extra[key] = v


def jtype(v: Any) -> str:
    """JSON type name of a parsed value, for error messages."""
    if v is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


def is_num(v: Any) -> TypeGuard[int | float]:
    t = type(v)
    return t is float or t is int


def id_fit(v: Any, int_default: bool) -> tuple[str | None, bool]:
    """Ids are text in every table. `int_default`: the platform's ids are ints (Label Studio),
    so a text id that reads as a canonical int keeps its original; Dataloop ids are strings,
    so an int id keeps its original."""
    t = type(v)
    if t is str:
        return v, int_default and _canonical_int(v)
    if t is int:
        return str(v), not int_default
    return None, True


_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")


def _canonical_int(s: str) -> bool:
    """Whether `s` is an int as JSON writes it ("-0" is not: it reads back as 0), short
    enough for Python to convert (DIGITS)."""
    return (len(s) - s.startswith("-") <= DIGITS and s != "-0"
            and _CANONICAL_INT.fullmatch(s) is not None)


def restore_id(text: str, int_default: bool) -> Any:
    """Inverse of `id_fit` for a value that needed no original in `extra`."""
    return int(text) if int_default and _canonical_int(text) else text


def _fromisoformat_z(v: str) -> datetime:
    """`datetime.fromisoformat` that reads the trailing 'Z' both platforms write, which
    Python 3.10's does not (3.11 reads it, and more spellings: on 3.10 those stay null in the
    column, their text kept in `extra`)."""
    return datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)


fromisoformat = datetime.fromisoformat if sys.version_info >= (3, 11) else _fromisoformat_z


def ts_fit(v: Any, digits: int) -> tuple[datetime | None, bool]:
    """ISO-8601 text to a UTC timestamp. Exact when spelled as the platform writes it
    (`digits` fraction digits and a 'Z'), else the original is kept too."""
    if type(v) is not str:
        return None, True
    try:
        d = fromisoformat(v)
    except ValueError:
        return None, True
    if d.tzinfo is None:
        return d.replace(tzinfo=timezone.utc), True
    if d.utcoffset():
        return d.astimezone(timezone.utc), True
    if _canonical(digits).fullmatch(v):  # as the platform writes it: restore_ts gives it back
        return d, False
    return d, restore_ts(d, digits) != v  # exact: other spellings (week dates, ...) keep theirs


@functools.cache
def _canonical(digits: int) -> re.Pattern:
    """The platform's own spelling (years from 1000: strftime does not pad smaller ones);
    matching it is ~10x cheaper than formatting to compare."""
    return re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{"
                      + str(digits) + "}Z")


def restore_ts(d: datetime, digits: int) -> str:
    """Inverse of `ts_fit` for a canonical spelling."""
    s = d.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return s[: 20 + digits] + "Z"


EXACT_INT = 2 ** 53  # larger ints do not survive an int64 or float64 column exactly: kept in extra


def num_fit(v: Any) -> int | float | None:
    """A number for a float column derived from a JSON value (a box's x, a span's start) as
    is; None for any other type (a boolean, which pyarrow would make 1.0 or 0.0, a string, a
    list) and for an int a double cannot hold exactly: the typed column stays null and the
    value stays whole in its JSON column, as `str_list` and `point_rows` do for lists."""
    t = type(v)
    if t is float or t is int and -EXACT_INT <= v <= EXACT_INT:
        return v
    return None


def str_list(v: Any, nulls: bool = False) -> list[str | None] | None:
    """A list of strings (with `nulls`, null items too) as is; None for any other shape (a
    string, which pyarrow would split into its characters, a number, an object, a list
    holding one): the caller keeps the original, a typed column stays null and the value
    stays whole in its JSON column."""
    if type(v) is list and all(type(x) is str or nulls and x is None for x in v):
        return v
    return None


def point_rows(v: Any) -> list[list[float]] | None:
    """A list of lists of numbers (points) as is, for a points column; None for any other
    shape (booleans, which pyarrow would make 1.0 and 0.0, and ints a double cannot hold
    included), as `str_list`."""
    if type(v) is not list:
        return None
    for row in v:
        if type(row) is not list or not all(
                type(x) is float or type(x) is int and -EXACT_INT <= x <= EXACT_INT for x in row):
            return None
    return v


def child_list(obj: dict, key: str, cols: dict, i: int, extra: dict) -> list | None:
    """The list under `key` whose items become child rows (noted in `list_keys`); any other
    value stays in `extra` as it is."""
    value = obj.get(key)
    if type(value) is list:
        cols["list_keys"][i] = [key]
        return value
    cols["list_keys"][i] = []
    if key in obj:
        extra[key] = value
    return None


# The link columns of a child row, in the order `set_link` takes them: its task's, then (for
# result, relation and keyframe rows) its annotation's (stream/tables.py explains the link).
TASK_LINK = ("source", "task_id", "file", "task_position", "kind")
ANNOTATION_LINK = TASK_LINK + ("annotation_id", "annotation_position")


def set_link(c: dict, i: int, link: tuple) -> None:
    """Row i's link columns from `link`: the TASK_LINK values of an annotations row, the
    ANNOTATION_LINK values of a result, relation or keyframe row (unrolled: per row)."""
    c["source"][i] = link[0]
    c["task_id"][i] = link[1]
    c["file"][i] = link[2]
    c["task_position"][i] = link[3]
    c["kind"][i] = link[4]
    if len(link) > 5:
        c["annotation_id"][i] = link[5]
        c["annotation_position"][i] = link[6]


def fill_ts(obj: dict, key: str, col: dict, i: int, extra: dict, digits: int) -> None:
    """A timestamp key into its column (see `ts_fit`); an unusual spelling stays in `extra`."""
    if key in obj:
        d, keep = ts_fit(obj[key], digits)
        if d is not None:
            col[i] = d
        if keep:
            extra[key] = obj[key]


# -- the way back: objects rebuilt from rows (stream/rebuild walks the rows) -------------------

@dataclass
class AnnotationRows:
    """An annotations row with its result, relation and keyframe rows, in write order."""

    row: dict
    results: list[dict] = field(default_factory=list)
    relations: list[dict] = field(default_factory=list)
    keyframes: list[dict] = field(default_factory=list)


@dataclass
class TaskRows:
    """A tasks row with its annotations; `selected`: whether the export writes it."""

    row: dict
    annotations: list[AnnotationRows]
    selected: bool


def load_cell(text: str) -> Any:
    """One JSON cell of one row parsed back (a task's data, a result's value, an extra)."""
    return loads(text)  # bounded: one cell of one row, never an export


def row_extra(row: dict) -> dict:
    """The row's `extra` object, parsed once (a copy is what rebuilding modifies)."""
    x = row.get("_x")
    if x is None:
        text = row.get("extra")
        x = row["_x"] = load_cell(text) if text else {}
    return x


def restore_plain(obj: dict, row: dict, plain: tuple) -> None:
    """Inverse of `fill_plain`: the typed keys that have a value back into `obj`."""
    for key, col, _ in plain:
        v = row.get(col)
        if v is not None:
            obj[key] = v


def plain_object(row: dict, plain: tuple) -> dict:
    """A new object holding the typed keys of `row` (a keyframe, a snapshot)."""
    obj: dict = {}
    restore_plain(obj, row, plain)
    return obj


def restore_times(obj: dict, row: dict, keys: tuple, digits: int) -> None:
    """Inverse of `fill_ts` for (input key, column) pairs, spelled as the platform does."""
    for key, col in keys:
        if row.get(col) is not None:
            obj[key] = restore_ts(row[col], digits)


def finish(obj: dict, row: dict) -> dict:
    """Drop keys filled although absent, then lay `extra` over the object (it wins), the
    input's own keys named like reserved ones last."""
    extra = dict(row_extra(row))
    for key in extra.pop(ABSENT, ()):
        obj.pop(key, None)
    extra.pop(LISTED, None)
    escaped = extra.pop(ESCAPED, None)
    obj.update(extra)
    if escaped:
        obj.update(escaped)
    return obj
