"""Format detection and the shared read loop: one input stream into table rows.

The shape of an input is decided from its first bytes (after decompression), never from its
name. Each platform module supplies a reader class (the FormatReader protocol of reader.py:
`add(obj, file, position, container)` turns one parsed task or item into rows); the loop
here owns parsing, positions, byte offsets, error reporting and `--on-error skip`.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ijson

from ..buffers import TableBuffers
from ..depth import MAX_DEPTH, Limited, TooDeep, long_integer, too_deep
from ..elements import ArrayItems
from ..errors import InputError, TaskError
from ..numbers import items
from ..sources import InputStream, Source, decompressed
from . import core
from .dataloop import Dataloop, read_elements
from .labelstudio import LabelStudio
from .ner import read_ner
from .reader import FormatReader, ReaderFactory

log = logging.getLogger("annostream")

PEEK = 1 << 16
BOM = b"\xef\xbb\xbf"
WHITESPACE = b" \t\r\n"
SKIPPED_LISTED = 1000  # skipped tasks listed in the manifest; the rest are only counted

# Keys that only a Dataloop item has at its top level (docs/formats.md B2).
DATALOOP_KEYS = frozenset({"datasetId", "filename", "_id", "itemMetadata", "dir",
                           "annotationsCount"})
# Keys of a Dataloop V3 export manifest (it has `datasetId` too, so it is checked first).
MANIFEST_KEYS = frozenset({"manifestVersion", "exportId", "partitioning"})
# Keys only a Dataloop annotation has: an item whose `annotations` come first.
DATALOOP_ANNOTATION_KEYS = frozenset({"itemId", "coordinates"})
# Keys of a Label Studio task (docs/formats.md A): a first object with one is a task, never NER.
TASK_KEYS = frozenset({"data", "predictions", "annotations", "drafts", "completions", "id",
                       "meta", "created_at", "updated_at", "inner_id", "project",
                       "total_annotations", "cancelled_annotations", "total_predictions"})
# Keys after which the rest of the first object cannot change the plan (`datasetId` is not
# one: a manifest has it too; nor are the manifest's own keys: a task may have them).
DECISIVE_KEYS = (DATALOOP_KEYS - {"datasetId"}) | {"shebang", "data"}
# Keys that make an object with manifest keys a task or an item instead.
NOT_MANIFEST_KEYS = (DATALOOP_KEYS - {"datasetId"}) | TASK_KEYS | {"shebang"}


@dataclass
class Plan:
    """How to read one input: which platform, which ijson prefix, and the container shape."""

    platform: str  # 'labelstudio' | 'dataloop' | 'ner'
    container: str  # goes to tasks.container; Dataloop 'manifest' files hold no items
    prefix: str = "item"
    multiple: bool = False


@dataclass
class FileStats:
    name: str
    input: str
    size: int | None
    platform: str | None = None
    container: str | None = None
    tasks: int = 0
    skipped: list[dict] = field(default_factory=list)  # the first SKIPPED_LISTED of them
    skipped_count: int = 0
    core: int = 0  # tasks converted by the compiled core (the rest by the Python reader)


def _first_keys(head: bytes, prefix: str, limit: int = 64,
                stop: frozenset = frozenset()) -> list[tuple[str, str]]:
    """Top-level keys of the first object at `prefix` in `head`, each with the first event of
    its value; stops at the end of that object or of the peeked bytes, or after a key in
    `stop` (a key that already decides the format: many small files are sniffed one by one)."""
    keys: list[tuple[str, str]] = []
    pending, path = "", None  # the key whose value starts next, and that value's prefix
    try:
        for p, event, value in ijson.parse(io.BytesIO(head)):
            if p == path:
                keys.append((pending, event))
                if pending in stop:
                    break
                pending, path = "", None
            if p == prefix and event == "map_key":
                pending, path = value, f"{prefix}.{value}" if prefix else value
                if len(keys) >= limit:
                    break
            elif p == prefix and event == "end_map":
                break
    except (ijson.JSONError, UnicodeDecodeError, ArithmeticError):
        pass  # the peek ends mid-value, or the input is broken: the real parse reports it
    return keys


def _ner_like(head: bytes) -> bool:
    """docs/formats.md part C: `[{doc: [[start, end], ...]}, {doc: text}]`.

    Only the start can be peeked, and a task array can start the same way
    (`[{"predictions": [], "data": ...}]`): the first value must be empty or start with an
    [int, int] pair, every peeked value of the first object must be an array, and no key may
    be a Label Studio task key. Anything else is read as Label Studio tasks.
    """
    events = []
    try:
        for _, event, value in ijson.parse(io.BytesIO(head)):
            events.append(event if event != "number" or type(value) is not int else "int")
            if len(events) == 8:
                break
    except (ijson.JSONError, UnicodeDecodeError, ArithmeticError):
        pass
    if events[:4] != ["start_array", "start_map", "map_key", "start_array"] or not (
            events[4:5] == ["end_array"]
            or events[4:8] == ["start_array", "int", "int", "end_array"]):
        return False
    keys = _first_keys(head, "item")
    return (all(event == "start_array" and k not in TASK_KEYS for k, event in keys)
            and _texts_follow(head))


def _texts_follow(head: bytes) -> bool:
    """When the peek reaches past the spans object: the array holds exactly one more object,
    whose values are texts (strings), and nothing else."""
    elements = 0
    try:
        for prefix, event, _ in ijson.parse(io.BytesIO(head)):
            if prefix == "item" and event in ("start_map", "start_array", "string", "number",
                                              "boolean", "null"):
                elements += 1
                if elements > 2 or event != "start_map":
                    return False
            elif elements == 2 and prefix.startswith("item.") and prefix.count(".") == 1:
                if event != "string":
                    return False
            elif prefix == "" and event == "end_array":
                return elements == 2
    except (ijson.JSONError, UnicodeDecodeError, ArithmeticError):
        pass  # the peek ends inside the array: what it saw decides
    return True


def sniff(reader: InputStream, limit: int = MAX_DEPTH) -> Plan | None:
    """The plan for an input, from its first bytes; None when it is not JSON at all.

    The peek is cut before its first byte nested deeper than `limit` or its first integer
    too long to convert (stream/depth.py): the sniffing parsers never see what the real parse
    reports."""
    head = reader.peek(PEEK)
    if head.startswith(BOM):
        reader.read(len(BOM))
        head = head[len(BOM):]
    cut = [i for i in (too_deep(head, limit), long_integer(head)) if i >= 0]
    if cut:
        head = head[:min(cut)]
    first = head.lstrip(WHITESPACE)[:1]
    if first == b"[":
        item_keys = {k for k, _ in _first_keys(head, "item", stop=DECISIVE_KEYS)}
        if item_keys & DATALOOP_KEYS:
            return Plan("dataloop", "array")
        if _ner_like(head):
            return Plan("ner", "ner")
        return Plan("labelstudio", "array")
    if first == b"{":
        keys = _first_keys(head, "", stop=DECISIVE_KEYS)
        names = {k for k, _ in keys}
        if names & MANIFEST_KEYS and not names & NOT_MANIFEST_KEYS:
            return Plan("dataloop", "manifest", prefix="")
        if "shebang" in names and not names & DATALOOP_KEYS:
            return Plan("dataloop", "elements", prefix="")
        if names & DATALOOP_KEYS:
            return Plan("dataloop", "object", prefix="", multiple=True)
        if keys[:1] == [("annotations", "start_array")]:
            inner = {k for k, _ in _first_keys(head, "annotations.item")}
            if inner & DATALOOP_KEYS:  # the docs' wrapper {"annotations": [items]}
                return Plan("dataloop", "wrapper", prefix="annotations.item")
            if inner & DATALOOP_ANNOTATION_KEYS:  # an item that starts with its annotations
                return Plan("dataloop", "object", prefix="", multiple=True)
        return Plan("labelstudio", "object", prefix="", multiple=True)
    return None


PLATFORMS: dict[str, ReaderFactory] = {"labelstudio": LabelStudio, "dataloop": Dataloop}


class Readers:
    """One reader object per platform (the reader seam, formats/reader.py), made on first
    use, all writing into `out`, and the compiled core's converter (`core`: None without it)
    whose held rows go into `out` before any row a reader adds."""

    def __init__(self, out: TableBuffers) -> None:
        self.out = out
        self._made: dict[str, FormatReader] = {}
        self.core = core.Held() if core.enabled() else None

    def drain(self) -> None:
        """The rows the core holds into `out`, after those already there."""
        if self.core is not None:
            self.out.extend(self.core.take())

    def flush(self) -> None:
        """Every row to the sink (the end of a job)."""
        self.drain()
        self.out.flush()

    def get(self, platform: str, name: str) -> FormatReader:
        if platform not in self._made:
            if platform not in PLATFORMS:
                raise InputError(name, f"{platform} input is not supported yet")
            self._made[platform] = PLATFORMS[platform](self.out)
        return self._made[platform]


def read_source(src: Source, readers: Readers, on_error: str = "fail",
                tick: Callable[[int], None] | None = None, span: Any = None,
                max_depth: int = MAX_DEPTH) -> FileStats:
    """Read one input stream into the buffers; raises InputError naming file, task and byte.

    `span`: only one byte range of a big array, with its first task's position
    (a `parallel.Span`: `span.items(raw, max_depth)` iterates its tasks). No parser sees
    input nested deeper than `max_depth` (stream/depth.py).
    """
    stats = FileStats(src.name, src.input, src.size)
    raw = src.open()
    try:
        reader = decompressed(src.name, raw)
        plan = _plan(src, reader, max_depth)
        if plan is None:
            return stats
        stats.platform, stats.container = plan.platform, plan.container
        if plan.container == "manifest":
            _check_manifest(src.name, reader, max_depth)
            log.info("%s: Dataloop export manifest (it lists the partition files): "
                     "not items, skipped", src.name)
            return stats
        held = (readers.core if plan.container in core.PLATFORMS.get(plan.platform, ())
                or plan.platform == "ner" else None)  # None: the Python reader converts
        objs, add = _objects(plan, reader, src.name, readers, held, max_depth)
        out = readers.out
        position = first = 0 if span is None else span.position
        if span is not None:
            objs = (span.items(raw, max_depth) if held is None else
                    span.core_items(raw, src.name, plan.container, plan.platform, held, max_depth))
        # byte offsets for errors: the element's start in an array, else what was read
        where = objs if hasattr(objs, "offset") and plan.container != "object" else reader
        while True:
            try:
                obj = next(objs)
            except StopIteration:
                break
            except (ijson.JSONError, UnicodeDecodeError, ArithmeticError) as exc:
                error = InputError(src.name, _parse_message(exc), position, where.offset)
                if (on_error == "skip" and not src.explicit and plan.container == "object"
                        and position == first):  # one broken per-task file of a folder or zip
                    _skip(stats, src.name, position, f"unreadable file: {error.reason}")
                    position += 1
                    break
                raise error from exc
            except (TooDeep, RecursionError) as exc:  # (RecursionError: a safety net)
                raise _too_deep(src.name, exc, position, where.offset) from exc
            except InputError as exc:  # a corrupt compressed stream: say where it broke
                if exc.position is not None:
                    raise
                raise InputError(src.name, exc.reason, position, where.offset) from exc
            position += _take(obj, plan, add, readers, stats, src.name, position, on_error,
                              where.offset)
            out.maybe_flush()
            if tick is not None and reader.counter is not None:
                tick(reader.counter.count)
        stats.tasks = position - first - stats.skipped_count
        return stats
    finally:
        raw.close()


def _take(obj: Any, plan: Plan, add: Callable[[Any, str, int, str], None], readers: Readers,
          stats: FileStats, name: str, position: int, on_error: str, offset: int) -> int:
    """One parsed task into the buffers (rolled back and skipped or raised when it is bad),
    or a batch of tasks the compiled core converted; returns how many tasks it was."""
    out = readers.out
    if type(obj) is core.CoreBatch:
        out.extend(obj.tables())
        stats.core += obj.tasks
        return obj.tasks
    readers.drain()
    marks = out.mark()
    try:
        if plan.container == "object" and plan.platform == "labelstudio":
            _require_task(obj)
        add(obj, name, position, plan.container)
    except TaskError as exc:
        out.rollback(marks)
        if on_error != "skip":
            raise InputError(name, str(exc), position, offset) from exc
        _skip(stats, name, position, str(exc))
    except RecursionError as exc:
        raise InputError(name, "nested too deeply to convert", position, offset) from exc
    return 1


def _plan(src: Source, reader: InputStream, max_depth: int) -> Plan | None:
    """The input's plan; None for a file inside a folder or zip that is not JSON (skipped),
    an InputError for one the user named."""
    plan = sniff(reader, max_depth)
    if plan is None:
        if src.explicit:
            got = reader.peek(16).lstrip(WHITESPACE)[:8]
            raise InputError(src.name, "not a JSON export: it is empty" if not got else
                             f"not a JSON export: it starts with {got!r}", offset=0)
        log.warning("%s: not JSON, skipped", src.name)
    return plan


def _too_deep(name: str, exc: Exception, position: int, offset: int) -> InputError:
    if isinstance(exc, TooDeep):
        return InputError(name, str(exc), position, exc.offset)
    return InputError(name, "nested too deeply to parse", position, offset)


def _objects(plan: Plan, reader: InputStream, name: str, readers: Readers,
             held: core.Held | None, max_depth: int
             ) -> tuple[Iterator, Callable[[Any, str, int, str], None]]:
    """The parsed tasks or items of an input, and the `add` of the reader they go to;
    `held`: the compiled core parses them (the Python reader takes what it declines).
    What ijson reads is depth-checked (`limited`); the fast readers check each element."""
    limited = Limited(reader.read, max_depth)
    if plan.platform == "ner":  # tasks made from the documents: the core converts them
        tasks = read_ner(limited, name)
        return (tasks if held is None else core.objects(tasks, name, plan.container, held,
                                                         max_depth),
                readers.get("labelstudio", name).add)
    if plan.container == "elements":
        if held is not None:
            return (core.elements(reader.read, name, held,
                                  lambda read: read_elements(Limited(read, max_depth), name)),
                    readers.get("dataloop", name).add)
        return read_elements(limited, name), readers.get("dataloop", name).add
    add = readers.get(plan.platform, name).add
    if held is not None:
        return core.items(reader.read, name, plan.container, plan.platform, held, max_depth), add
    if plan.prefix in ("item", ""):  # the values ijson.items gives, parsed faster
        return ArrayItems(reader.read, max_depth, array=plan.prefix == "item"), add
    return items(limited, plan.prefix, multiple_values=plan.multiple), add


def _check_manifest(name: str, reader: InputStream, max_depth: int) -> None:
    """A Dataloop export manifest holds no items, but it must be whole JSON: a corrupt one
    means a broken download (the partitions it lists may be missing too)."""
    try:
        for _ in ijson.basic_parse(Limited(reader.read, max_depth)):
            pass
    except (ijson.JSONError, UnicodeDecodeError, ArithmeticError) as exc:
        raise InputError(name, f"corrupt export manifest: {_parse_message(exc)}",
                         offset=reader.offset) from exc
    except TooDeep as exc:
        raise InputError(name, f"corrupt export manifest: {exc}", offset=exc.offset) from exc


def _skip(stats: FileStats, name: str, position: int, error: str) -> None:
    """Count and log a skipped task; the manifest lists the first SKIPPED_LISTED of them."""
    log.warning("%s: task %d skipped: %s", name, position, error)
    stats.skipped_count += 1
    if len(stats.skipped) < SKIPPED_LISTED:
        stats.skipped.append({"file": name, "position": position, "error": error})


def _require_task(obj: object) -> None:
    """An object at the root of a file must be a task, not any JSON object."""
    if type(obj) is dict and "data" not in obj and not (
            type(obj.get("task")) is dict and "result" in obj):
        raise TaskError("not a Label Studio task: the object has no 'data' key "
                        "(a flat import object must be inside a JSON array)")


def _parse_message(exc: Exception) -> str:
    if isinstance(exc, ArithmeticError):  # a number token Decimal cannot read (ijson)
        return "invalid JSON: a malformed number"
    arg = exc.args[0] if exc.args else None  # yajl2_c gives bytes: show them as text
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(exc)
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if isinstance(exc, ijson.IncompleteJSONError) and "premature EOF" in text:
        return "truncated JSON (the file ends inside a value)"
    if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "utf-8" in text.lower():
        return f"invalid UTF-8: {text}"
    return f"invalid JSON: {text}"
