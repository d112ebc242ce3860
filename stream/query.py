"""SQL over a converted folder: every table a DuckDB view over its Parquet parts, plus views.

`connect_folder(folder)` (what `stream.connect` calls for a converted folder) gives an
in-memory DuckDB connection; nothing is loaded. Each table is a view
over `read_parquet('<folder>/<table>/*.parquet')`, so DuckDB reads only the columns and row
groups a query needs (projection and filter pushdown), and the dataset is never written to.
A table with no parts (no `keyframes` in an image-only export) is an empty view with the
schema's columns, so queries and the convenience views keep working.

The convenience views (`regions`, `frames`, `latest_annotations`) are plain SQL over those
views; docs/query.md explains each with examples.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from .errors import AnnostreamError
from .layout import MANIFEST, current
from .sql import literal
from .tables import TABLES, TS


class QueryError(AnnostreamError):
    """A SQL statement failed: DuckDB's message on one line, with its position (exit 1)."""


@dataclass(frozen=True)
class View:
    name: str
    doc: str
    sql: str
    columns: dict[str, str]  # column -> meaning, documented in docs/query.md


_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE",
              pa.bool_(): "BOOLEAN", TS: "TIMESTAMPTZ"}


def sql_type(t: pa.DataType) -> str:
    """DuckDB type of a schema column (for the empty view of a missing table)."""
    if pa.types.is_list(t):
        return sql_type(t.value_type) + "[]"
    return _SQL_TYPES[t]


def _table_sql(folder: Path, name: str) -> str:
    parts = folder / name
    if any(parts.glob("*.parquet")):
        # union_by_name: parts appended by another tool version may differ in columns.
        return (f"SELECT * FROM read_parquet({literal(str(parts / '*.parquet'))}, "
                "union_by_name = true)")
    cols = ", ".join(f"CAST(NULL AS {sql_type(c.type)}) AS {c.name}" for c in TABLES[name].columns)
    return f"SELECT {cols} WHERE false"


_GEOMETRY = ("x", "y", "width", "height", "rotation", "unit", "points")
_FIRST = ("to_name", "text", "number", "span_start", "span_end", "time_start", "time_end",
          "frame_start", "frame_end", "origin", "score", "parent_id", "readonly",
          "original_width", "original_height", "image_rotation", "attributes")
_LISTS = ("labels", "choices", "texts")

# A task is (file, task_position): ids repeat when snapshots of one project are converted
# together, so the views group and join on the link as well as on the ids (task_id is kept
# in partitions and joins: constant per task, it lets a filter on it reach every scan).
REGIONS = View(
    "regions",
    "One row per region: the results sharing region_id within an annotation, merged.",
    f"""
    SELECT source, task_id, file, task_position, kind, annotation_id, region_id, result_count,
           positions, types,
           from_names, {', '.join(_LISTS)}, {', '.join(f'geo.{g} AS {g}' for g in _GEOMETRY)},
           {', '.join(_FIRST)}
    FROM (
        SELECT source, task_id, file, task_position, kind, annotation_id, region_id,
               count(*) AS result_count,
               list(position ORDER BY position) AS positions,
               list(type ORDER BY position) AS types,
               list(from_name ORDER BY position) AS from_names,
               {', '.join(f'flatten(list({c} ORDER BY position) '
                          f'FILTER (WHERE {c} IS NOT NULL)) AS {c}' for c in _LISTS)},
               arg_min({{{', '.join(f"'{g}': {g}" for g in _GEOMETRY)}}}, position)
                   FILTER (WHERE x IS NOT NULL OR points IS NOT NULL) AS geo,
               {', '.join(f'arg_min({c}, position) FILTER (WHERE {c} IS NOT NULL) AS {c}'
                          for c in _FIRST)}
        FROM results
        GROUP BY source, task_id, file, task_position, kind, annotation_id, region_id
    )""",
    {
        "source": "As in `results`.",
        "task_id": "As in `results`.",
        "file": "As in `results`: with `task_position`, the region's task.",
        "task_position": "As in `results`.",
        "kind": "As in `results`.",
        "annotation_id": "As in `results`.",
        "region_id": "The shared region id.",
        "result_count": "Number of results merged into the region.",
        "positions": "Their `results.position` values, in order.",
        "types": "Their types in position order, e.g. ['rectangle', 'labels', 'textarea'].",
        "from_names": "Their control tag names in position order.",
        "labels": "All labels of all merged results, in position order (NULL when none).",
        "choices": "All choices, in position order (NULL when none).",
        "texts": "All textarea texts, in position order (NULL when none).",
        "x": "Geometry of the lowest-position result that has any (x or points): left/centre x.",
        "y": "Geometry: y.",
        "width": "Geometry: width.",
        "height": "Geometry: height.",
        "rotation": "Geometry: rotation in degrees.",
        "unit": "Unit of the geometry: 'percent' or 'pixel'.",
        "points": "Geometry: polygon vertices.",
        **{c: f"First non-null `{c}` in position order." for c in _FIRST},
    },
)

# Label Studio tracks (docs/formats.md A7): from an enabled keyframe to the next keyframe the shape
# is interpolated linearly; a disabled keyframe is visible itself and ends the span; after the
# last keyframe, if enabled, the shape holds up to framesCount. Dataloop tracks (B5): the state
# of the latest snapshot holds (no interpolation) up to endFrame, nothing while not visible.
# Stored `auto` frames of an interpolated export are anchors like any keyframe, but derived.
# Of keyframes sharing a frame the last in the sequence wins (and duplicates never double).
FRAMES = View(
    "frames",
    "One row per (track, frame) where the object is visible, expanded from keyframes.",
    """
    WITH tracks AS (  -- DISTINCT ON: an input converted twice (--append) stays one track
        SELECT DISTINCT ON (source, file, task_position, task_id, kind, annotation_id, region_id,
                            position)
               source, file, task_position, task_id, kind, annotation_id, region_id,
               position AS result_position, unit,
               CASE WHEN source = 'labelstudio'
                    THEN coalesce(TRY_CAST(json_extract_string(value, '$.framesCount') AS BIGINT),
                                  TRY_CAST(json_extract_string(value, '$.frameCount') AS BIGINT),
                                  frame_end)
                    ELSE frame_end END AS last_frame,
               TRY_CAST(json_extract_string(value, '$.duration') AS DOUBLE) AS duration
        FROM results
        WHERE frame_start IS NOT NULL OR frame_end IS NOT NULL
    ),
    track_labels AS (  -- a track's labels may sit in a sibling `labels` result (same region)
        SELECT source, file, task_position, task_id, kind, annotation_id, region_id,
               flatten(list(labels ORDER BY position)) AS labels
        FROM (SELECT DISTINCT ON (source, file, task_position, task_id, kind, annotation_id,
                                  position)
                     source, file, task_position, task_id, kind, annotation_id, region_id,
                     position, labels
              FROM results SEMI JOIN tracks
                  USING (source, file, task_position, task_id, kind, annotation_id, region_id)
              WHERE labels IS NOT NULL)
        GROUP BY source, file, task_position, task_id, kind, annotation_id, region_id
    ),
    track_info AS (
        SELECT t.*, l.labels, d.fps
        FROM tracks t
        LEFT JOIN track_labels l
            USING (source, file, task_position, task_id, kind, annotation_id, region_id)
        LEFT JOIN (SELECT source, file, position AS task_position, task_id, fps FROM tasks
                   WHERE source = 'dataloop') d
            USING (source, file, task_position, task_id)
    ),
    anchors AS (
        SELECT k.*,
               lead(k.frame) OVER w AS next_frame, lead(k.time) OVER w AS next_time,
               lead(k.x) OVER w AS next_x, lead(k.y) OVER w AS next_y,
               lead(k.width) OVER w AS next_width, lead(k.height) OVER w AS next_height,
               lead(k.rotation) OVER w AS next_rotation
        FROM keyframes k
        WHERE k.frame IS NOT NULL
        -- task_id and region_id are constant per track: partitioning on them lets filters
        -- on them reach the Parquet scan
        WINDOW w AS (PARTITION BY k.source, k.file, k.task_position, k.task_id, k.kind,
                                  k.annotation_id, k.region_id, k.result_position
                     ORDER BY k.frame, k.position)
    ),
    spans AS (
        SELECT a.*, t.labels AS track_labels, t.unit AS track_unit, t.last_frame, t.duration,
               t.fps,
               a.source = 'labelstudio' AND a.enabled IS TRUE AND a.next_frame IS NOT NULL
                   AS interpolates,
               CASE WHEN a.source = 'labelstudio' THEN
                        CASE WHEN a.next_frame IS NOT NULL AND a.enabled IS NOT TRUE
                                 THEN least(a.frame, a.next_frame - 1)
                             WHEN a.enabled IS NOT TRUE THEN a.frame
                             WHEN a.next_frame IS NOT NULL THEN a.next_frame - 1
                             ELSE greatest(a.frame, t.last_frame) END
                    WHEN a.enabled IS FALSE THEN a.frame - 1
                    ELSE least(coalesce(a.next_frame - 1, t.last_frame),
                               coalesce(t.last_frame, a.frame)) END AS span_end
        FROM anchors a
        LEFT JOIN track_info t USING (source, file, task_position, task_id, kind, annotation_id,
                                      region_id, result_position)
    ),
    expanded AS (
        SELECT *, unnest(generate_series(frame, span_end)) AS at_frame FROM spans
    )
    SELECT source, task_id, file, task_position, kind, annotation_id, region_id, result_position,
           at_frame AS frame,
           at_frame = frame AND auto IS NOT TRUE AS is_keyframe,
           position AS keyframe_position,
           CASE WHEN at_frame = frame THEN time
                WHEN interpolates THEN time + (next_time - time) * t
                WHEN source = 'labelstudio' AND last_frame > frame
                    THEN time + (duration - time) * (at_frame - frame) / (last_frame - frame)
                WHEN source = 'dataloop' THEN at_frame / fps
                END AS time,
           x + CASE WHEN interpolates THEN coalesce(next_x - x, 0) * t ELSE 0 END AS x,
           y + CASE WHEN interpolates THEN coalesce(next_y - y, 0) * t ELSE 0 END AS y,
           width + CASE WHEN interpolates THEN coalesce(next_width - width, 0) * t ELSE 0 END
               AS width,
           height + CASE WHEN interpolates THEN coalesce(next_height - height, 0) * t ELSE 0 END
               AS height,
           rotation + CASE WHEN interpolates
                           THEN coalesce(next_rotation - rotation, 0) * t ELSE 0 END AS rotation,
           points,
           coalesce(track_unit, CASE source WHEN 'labelstudio' THEN 'percent' ELSE 'pixel' END)
               AS unit,
           CASE WHEN label IS NOT NULL THEN [label] ELSE track_labels END AS labels,
           attributes
    FROM (SELECT *, (at_frame - frame) / (next_frame - frame) AS t FROM expanded)
    """,
    {
        "source": "As in `keyframes`.",
        "task_id": "As in `keyframes`.",
        "file": "As in `keyframes`: with `task_position`, the track's task.",
        "task_position": "As in `keyframes`.",
        "kind": "As in `keyframes`.",
        "annotation_id": "As in `keyframes`.",
        "region_id": "As in `keyframes`.",
        "result_position": "The track: `results.position` of the video result.",
        "frame": "Frame number (Label Studio 1-based, Dataloop 0-based).",
        "is_keyframe": "True on a stored keyframe (Label Studio `auto` frames count as derived).",
        "keyframe_position": "`keyframes.position` of the keyframe the row is derived from.",
        "time": "Seconds: the keyframe's `time`; Label Studio derived frames interpolate it (after "
                "the last keyframe towards `duration` at `framesCount`), Dataloop ones are "
                "frame / `tasks.fps`; NULL where unknown.",
        "x": "Interpolated (Label Studio) or held (Dataloop) x, in `unit`.",
        "y": "Interpolated or held y.",
        "width": "Interpolated or held width.",
        "height": "Interpolated or held height.",
        "rotation": "Interpolated or held rotation in degrees.",
        "points": "Held polygon vertices (Dataloop).",
        "unit": "'percent' (Label Studio, of the frame) or 'pixel' (Dataloop).",
        "labels": "Dataloop: the frame's label; else the labels of the track's region (its own "
                  "`value.labels` and those of results sharing its region_id).",
        "attributes": "Dataloop: the frame's attributes (JSON), held like the geometry.",
    },
)

LATEST_ANNOTATIONS = View(
    "latest_annotations",
    "Per Label Studio task row (file, task_position: a task of each snapshot converted "
    "together), the most recent non-cancelled annotation (kind 'annotation').",
    """
    SELECT * FROM annotations
    WHERE source = 'labelstudio' AND kind = 'annotation' AND was_cancelled IS NOT TRUE
    QUALIFY row_number() OVER (
        PARTITION BY source, file, task_position, task_id
        ORDER BY coalesce(updated_at, created_at) DESC NULLS LAST, created_at DESC NULLS LAST,
                 position DESC) = 1
    """,
    {"*": "The columns of `annotations`."},
)

VIEWS: dict[str, View] = {v.name: v for v in (REGIONS, FRAMES, LATEST_ANNOTATIONS)}


def connect_folder(folder: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every table and convenience view of the converted
    `folder` (`stream.connect` decides between a folder and a lake)."""
    root = Path(folder)
    if not root.is_dir():
        why = "" if root.exists() else ": it does not exist"
        raise AnnostreamError(f"{root}: not a folder{why} (expected the output of "
                              "`annostream convert`, or a lake)")
    if not (root / MANIFEST).exists() and not any((root / t).is_dir() for t in TABLES):
        raise AnnostreamError(f"{root}: no {MANIFEST} and no table folders; "
                              "is it the output of `annostream convert`?")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # timestamps print in UTC, as stored
    base = current(root) or root.resolve()  # one generation for every table (see OutputFolder)
    for name in TABLES:
        con.execute(f"CREATE VIEW {name} AS {_table_sql(base, name)}")
    for view in VIEWS.values():
        con.execute(f"CREATE VIEW {view.name} AS {view.sql}")
    return con


# Statements that act outside the in-memory session: they write files or databases, or
# load code. `query` runs them only when asked (--write), never in safe mode.
WRITES = frozenset({"COPY", "COPY_DATABASE", "EXPORT", "ATTACH", "DETACH", "LOAD", "EXTENSION",
                    "VACUUM"})


def run(con: duckdb.DuckDBPyConnection, script: str,
        write: bool = False) -> duckdb.DuckDBPyRelation | None:
    """Execute every statement of `script`; the last one's rows as a lazy relation (or None).

    Statements are split by DuckDB, so an error's line and column refer to the whole script.
    Nothing runs when one of them is a WRITES statement and `write` is false.
    """
    try:
        statements = con.extract_statements(script)
    except duckdb.Error as exc:
        raise sql_error(exc, script) from exc
    if not statements:
        raise QueryError("no SQL statement given")
    for i, st in enumerate(statements, 1):
        if st.type.name in WRITES and not write:
            raise QueryError(f"statement {i} is {st.type.name.replace('_', ' ')}: it writes "
                             "files or databases or loads extensions, which query does only "
                             "with --write (see docs/query.md, trust model)")
    rel, offset = None, 0
    for st in statements:
        start = script.find(st.query, offset)
        offset = start + len(st.query) if start >= 0 else offset
        try:
            rel = con.sql(st)
        except duckdb.Error as exc:
            raise sql_error(exc, script, max(start, 0)) from exc
    return rel


def one_expression(text: str, what: str = "--where") -> str:
    """`text` as exactly one SQL expression, parenthesised on lines of its own (a trailing
    `--` comment cannot swallow the parenthesis); a QueryError for anything else: several
    statements, a FROM, a set operation, an unbalanced parenthesis or comment. DuckDB's own
    parser decides, on `SELECT (<text>)`."""
    import json

    sql = f"SELECT (\n{text}\n)"
    con = duckdb.connect()
    try:
        statements = con.extract_statements(sql)
        serialized = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
        tree = json.loads(serialized)  # bounded: the parse tree of the user's SQL text
    except duckdb.Error as exc:
        raise QueryError(f"{what}: not one SQL expression: "
                         f"{str(exc).strip().splitlines()[0]}") from exc
    finally:
        con.close()
    node = tree["statements"][0]["node"] if not tree.get("error") and tree["statements"] else {}
    if (len(statements) != 1 or node.get("type") != "SELECT_NODE"
            or len(node["select_list"]) != 1 or node["from_table"]["type"] != "EMPTY"
            or any(node.get(k) for k in ("where_clause", "group_expressions", "having",
                                          "qualify", "modifiers", "sample"))
            or node["cte_map"]["map"]):
        why = tree.get("error_message") or "it is more than one expression"
        raise QueryError(f"{what}: not one SQL expression ({why}): {text!r}")
    return f"(\n{text}\n)"


def lock_down(con: duckdb.DuckDBPyConnection, allowed: list[str]) -> None:
    """Safe mode for SQL from people who may not read the machine: DuckDB reaches only the
    `allowed` folders (the conversion or lake being queried), loads no extension, writes no
    persistent secret, and no statement can change that (the configuration is locked)."""
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET allowed_directories = [{', '.join(literal(a) for a in allowed)}]")
    for setting in ("autoinstall_known_extensions", "autoload_known_extensions",
                    "allow_community_extensions", "allow_persistent_secrets",
                    "enable_external_access"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")


def allowed_roots(folder_or_lake: str | os.PathLike) -> list[str]:
    """What a safe-mode connection may read: the folder (its real path, with a trailing
    separator: a prefix of every file in it) or the lake's URI prefix."""
    target = os.fspath(folder_or_lake)
    if "://" in target and not target.startswith("file://"):
        return [target.rstrip("/") + "/"]
    path = Path(target.removeprefix("file://")).resolve()
    return [str(path) + os.sep]


_CONTEXT = re.compile(r"\n*LINE (\d+): (.*)\n( *)\^+")


def sql_error(exc: duckdb.Error, script: str | None = None, start: int = 0) -> QueryError:
    """DuckDB's message on one line; its 'LINE n: ... ^' context becomes (line, column).

    `start` is where the failing statement begins in `script` (DuckDB counts from there).
    Without `script` (an error while fetching, where the context may point into SQL that
    annostream wrapped around the user's) the context is dropped.
    """
    msg = str(exc)
    m = _CONTEXT.search(msg)
    pos = ""
    if m and script is not None:
        line_no, snippet, caret = int(m.group(1)), m.group(2), len(m.group(3))
        col = caret - len(f"LINE {line_no}: ")
        stmt_lines = script[start:].split("\n")
        if 0 < line_no <= len(stmt_lines):
            text = stmt_lines[line_no - 1]
            if snippet.startswith("..."):  # DuckDB cut the line: find the shown part in it
                shown = snippet[3:].removesuffix("...")
                at = text.find(shown)
                col = col - 3 + (at if at >= 0 else 0)
            before = script[:start]
            line = before.count("\n") + line_no
            if line_no == 1:
                col += len(before) - (before.rfind("\n") + 1)
            pos = f" (line {line}, column {col + 1})"
    if m:
        msg = msg[:m.start()] + msg[m.end():]
    text = " ".join(part.strip() for part in msg.splitlines() if part.strip())
    return QueryError(text + pos)


def catalog(con: duckdb.DuckDBPyConnection, columns: bool = False,
            view_counts: bool = True) -> duckdb.DuckDBPyRelation:
    """The tables and views of `stream.connect()` with their row counts and columns, as rows.

    columns=True gives one row per column with its type and meaning instead. Table counts
    come from Parquet metadata; a view count runs the view (skip with view_counts=False).
    """
    objs = [(t.name, "table", t.doc) for t in TABLES.values()]
    objs += [(v.name, "view", v.doc) for v in VIEWS.values()]
    values = ", ".join(f"({literal(n)}, {literal(k)}, {i}, {literal(d)})"
                       for i, (n, k, d) in enumerate(objs))
    base = (f"WITH objs(name, kind, ord, description) AS (VALUES {values}), "
            "cols AS (SELECT table_name AS name, column_name, data_type, column_index "
            "FROM duckdb_columns() WHERE schema_name = 'main' AND database_name = 'memory')")
    if columns:
        docs = [(t.name, c.name, c.doc) for t in TABLES.values() for c in t.columns]
        for v in VIEWS.values():
            source = v.columns if "*" not in v.columns else {c.name: c.doc for c in
                                                             TABLES["annotations"].columns}
            docs += [(v.name, c, d) for c, d in source.items()]
        doc_values = ", ".join(f"({literal(n)}, {literal(c)}, {literal(d)})" for n, c, d in docs)
        return con.sql(
            f"{base}, docs(name, column_name, meaning) AS (VALUES {doc_values}) "
            "SELECT o.name, o.kind, c.column_name AS \"column\", c.data_type AS type, d.meaning "
            "FROM objs o JOIN cols c USING (name) LEFT JOIN docs d USING (name, column_name) "
            "ORDER BY o.ord, c.column_index")
    counted = [n for n, k, _ in objs if k == "table" or view_counts]
    counts = " UNION ALL ".join(f"SELECT {literal(n)} AS name, count(*) AS n FROM {n}"
                                for n in counted)
    return con.sql(
        f"{base}, counts AS ({counts}) "
        "SELECT o.name, o.kind, counts.n AS \"rows\", "
        "string_agg(c.column_name, ', ' ORDER BY c.column_index) AS \"columns\", o.description "
        "FROM objs o JOIN cols c USING (name) LEFT JOIN counts USING (name) "
        "GROUP BY o.name, o.kind, o.ord, counts.n, o.description ORDER BY o.ord")
