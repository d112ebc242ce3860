"""The five output tables: the one place a column is defined.

Every reader fills these columns, the writer builds Arrow arrays from them, the query layer
registers views over them and `docs/schema.md` is generated from them, so a column exists
(with its type and meaning) exactly once.

Restoring rule (what makes conversion lossless): a key of an input object that has a typed
column is stored in that column when the value has the column's JSON type; when it does not
(null, type drift such as "2" for 2, an int beyond 2**53) the original stays in `extra` under
its key instead, and
when the column can only hold a view of it (a user object reduced to its id, a timestamp
spelled unusually, an id whose int/str spelling the column cannot tell) the original is kept
in `extra` as well. `extra[key]` therefore always wins over the typed column when rebuilding.
A typed column filled although its key was absent from the input (a synthetic id, pre-1.0
`skipped` read as `was_cancelled`) is listed in the reserved `extra` key "~absent". An
annotation read from pre-1.0 `completions` of a task that also has `annotations` carries the
reserved `extra` key "~list": "completions" (both lists give kind 'annotation'). An input key
that is itself named "~absent", "~list" or "~escaped" is kept under the reserved `extra` key
"~escaped" (`{"~absent": <the input's value>}`), so the reserved keys are always the
converter's own and the input's key comes back as it was.
A task row is identified by (`file`, `position`) within a conversion (ids may repeat: two
snapshots of one project converted together); every child row (annotations, results,
relations, keyframes) carries its task's `file` and `task_position`, which link it to exactly
one task row; results, relations and keyframes also carry `annotation_position`, so they
belong to the annotation of that task with their (`kind`, `annotation_position`,
`annotation_id`) even where annotation ids repeat.
Columns that copy parts of a JSON column (`results.labels`, `x`, ... from `value`) are
conveniences: the JSON column stays whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

SCHEMA_VERSION = 1

JSON = pa.string()  # JSON text; DuckDB reads it with ->, ->> and json_extract
TS = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(pa.string())
POINTS = pa.list_(pa.list_(pa.float64()))


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    json: bool = False  # JSON text (pa.string() too, so the type cannot tell)


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @cached_property  # checked against every batch the compiled core returns
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def plain(self) -> list[str]:
        """The columns that are not JSON text."""
        return [c.name for c in self.columns if not c.json]

    @property
    def dictionary(self) -> list[str]:
        """The columns Parquet dictionary-encodes: text and lists of text, whose values repeat
        (ids, names, labels). Numbers and JSON rarely repeat: hashing them costs a fifth of
        the write and the dictionary is dropped anyway."""
        return [c.name for c in self.columns if not c.json and _textual(c.type)]


def _textual(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or (pa.types.is_list(t) and pa.types.is_string(t.value_type))


def _c(name: str, type_: pa.DataType, doc: str) -> Column:
    return Column(name, type_, doc)


def _j(name: str, doc: str) -> Column:
    """A JSON column: Parquet keeps no min/max statistics and no dictionary for it (one value
    may be a whole RLE mask: both would copy it while writing)."""
    return Column(name, JSON, doc, json=True)


SOURCE = _c("source", pa.string(), "Platform the row came from: 'labelstudio' or 'dataloop'.")
TASK_ID = _c(
    "task_id", pa.string(),
    "Task (Label Studio) or item (Dataloop) id as text. Ids missing in the input get a stable "
    "synthetic id starting with '~' (input name and position).",
)
ANNOTATION_POSITION = _c(
    "annotation_position", pa.int64(),
    "`position` of the row's annotation in `annotations`: with (file, task_position, kind) it "
    "links the row to one annotation even where annotation ids repeat within a task.",
)
KIND = _c(
    "kind", pa.string(),
    "'annotation', 'prediction' or 'draft' (Label Studio); Dataloop annotations are 'annotation'.",
)
ANNOTATION_ID = _c(
    "annotation_id", pa.string(),
    "Id of the annotation, prediction or draft as text; '~<task_id>/<kind letter><position>' "
    "when the input has none. Unique per (file, task_position, kind) when the input's ids are; "
    "repeats across snapshots of one project.",
)
REGION_ID = _c(
    "region_id", pa.string(),
    "Region id: Label Studio result `id` (results sharing it form one region), Dataloop "
    "`metadata.system.objectId` or else the annotation id; '~<position>' when missing.",
)
FILE_LINK = _c(
    "file", pa.string(),
    "Input name of the row's task (`tasks.file`); with `task_position` it links the row to "
    "its task row.",
)
TASK_POSITION = _c(
    "task_position", pa.int64(),
    "`tasks.position` of the row's task: (`file`, `task_position`) is its task's key, also "
    "where task ids repeat.",
)
EXTRA = _j(
    "extra",
    "JSON object of every key of the input object that has no typed column, plus originals "
    "that a typed column cannot restore exactly (see the restoring rule). NULL only for rows "
    "made from a bare id.",
)
GEOMETRY = (
    _c("x", pa.float64(), "Left (box, Label Studio rectangle before rotation) or centre "
       "(ellipse) or point x, in `unit`."),
    _c("y", pa.float64(), "Top or centre or point y, in `unit`."),
    _c("width", pa.float64(), "Box width in `unit` (keypoint: point size, % of image width)."),
    _c("height", pa.float64(), "Box height in `unit`."),
    _c("rotation", pa.float64(), "Rotation in degrees (Label Studio: about the top-left corner)."),
)

TASKS = Table(
    "tasks",
    "One row per Label Studio task or Dataloop item. `task_id` may repeat (two snapshots of "
    "one project converted together); (file, position) identifies the row within a "
    "conversion (`convert --append` of one input twice repeats it).",
    ("file", "position"),
    (
        SOURCE,
        TASK_ID,
        _c("project_id", pa.string(), "Label Studio `project` or Dataloop `datasetId`, as text."),
        _c("position", pa.int64(), "0-based place of the task in its input file (unique per file, "
           "increasing in input order)."),
        _c("file", pa.string(), "Input name: the path given, or `<zip or folder>/<member>`."),
        _c("container", pa.string(), "Shape of the input file: 'array' (a JSON array of tasks), "
           "'object' (one object per file, or newline-delimited objects), 'ner' "
           "(docs/formats.md C), "
           "'wrapper' (Dataloop docs' `{\"annotations\": [items]}`), 'elements' (Dataloop "
           "text-classification JSON)."),
        _c("form", pa.string(), "Shape of the task object: 'task' (Label Studio task), 'flat' "
           "(import object with no `data` key: the object is the data), 'storage-annotation' "
           "(legacy target-storage file: an annotation with the task under `task`), "
           "'item' (Dataloop item), 'element' (annotatable Dataloop text element), 'context' "
           "(non-annotatable text element, kept as a row so nothing is lost). NER documents "
           "are 'task'."),
        _j("data", "The task's input data (`data`) as JSON; Dataloop: filename, dir, name, "
           "url, stream, thumbnail."),
        _j("meta", "Label Studio `meta`; Dataloop item metadata minus promoted keys."),
        _c("created_at", TS, "Creation time, UTC."),
        _c("updated_at", TS, "Last update time, UTC."),
        _c("total_annotations", pa.int64(), "Label Studio counter (leaves out cancelled ones)."),
        _c("cancelled_annotations", pa.int64(), "Label Studio counter of cancelled annotations."),
        _c("total_predictions", pa.int64(), "Label Studio counter of predictions."),
        _c("media_name", pa.string(), "Media file name (Dataloop `name`)."),
        _c("mimetype", pa.string(), "Media type, e.g. 'image/jpeg', 'video/mp4'."),
        _c("width", pa.int64(), "Media width in pixels."),
        _c("height", pa.int64(), "Media height in pixels."),
        _c("fps", pa.float64(), "Video frames per second."),
        _c("duration", pa.float64(), "Video or audio duration in seconds."),
        _c("list_keys", STRINGS, "Keys of the task object whose lists became child rows "
           "(e.g. annotations, predictions, drafts; completions in pre-1.0 exports), in input "
           "order."),
        EXTRA,
    ),
)

ANNOTATIONS = Table(
    "annotations",
    "One row per annotation, prediction and draft (Label Studio) or annotation (Dataloop).",
    ("file", "task_position", "kind", "annotation_id"),
    (
        SOURCE,
        TASK_ID,
        FILE_LINK,
        TASK_POSITION,
        KIND,
        _c("position", pa.int64(), "0-based place in its list (`annotations`, `predictions`, "
           "`drafts`, `completions`); -1 for the annotation that is itself the file in the "
           "legacy target-storage form (tasks.form 'storage-annotation')."),
        ANNOTATION_ID,
        _c("form", pa.string(), "'object', or 'id' when the input gave only the id "
           "(id-only predictions and drafts)."),
        _c("completed_by", pa.string(), "Annotator: user id as text (from an int or a user "
           "object); Dataloop `creator`. A draft's `user` stays in `extra`."),
        _c("completed_by_email", pa.string(), "Annotator email when the input has it."),
        _c("was_cancelled", pa.bool_(), "Skipped/cancelled (`was_cancelled`, pre-1.0 `skipped`)."),
        _c("ground_truth", pa.bool_(), "Marked as ground truth."),
        _c("lead_time", pa.float64(), "Seconds spent annotating."),
        _c("model_version", pa.string(), "Prediction model version."),
        _c("score", pa.float64(), "Prediction score."),
        _c("created_at", TS, "Creation time, UTC."),
        _c("updated_at", TS, "Last update time, UTC."),
        _c("updated_by", pa.string(), "Last editor: user id (Label Studio) or email (Dataloop)."),
        _c("automated", pa.bool_(), "Dataloop `metadata.system.automated`."),
        _c("origin", pa.string(), "Dataloop annotation `source`: 'ui', 'sdk', ..."),
        _c("result_count", pa.int64(), "Label Studio `result_count` as exported."),
        _c("list_keys", STRINGS, "Keys of the annotation object whose lists became child rows "
           "(`result`)."),
        EXTRA,
    ),
)

RESULTS = Table(
    "results",
    "One row per result item (region part) that is not a relation; Dataloop: one per annotation.",
    ("file", "task_position", "kind", "annotation_position", "position"),
    (
        SOURCE,
        TASK_ID,
        FILE_LINK,
        TASK_POSITION,
        KIND,
        ANNOTATION_ID,
        ANNOTATION_POSITION,
        _c("position", pa.int64(), "0-based place in the annotation's `result` list (relations "
           "count too)."),
        REGION_ID,
        _c("from_name", pa.string(), "Control tag name (Label Studio)."),
        _c("to_name", pa.string(), "Object tag name (Label Studio)."),
        _c("type", pa.string(), "Result type: 'rectanglelabels', 'choices', ... or the Dataloop "
           "type ('box', 'segment', 'point', 'class', ...)."),
        _c("origin", pa.string(), "'manual', 'prediction', 'prediction-changed' (Label Studio)."),
        _c("score", pa.float64(), "Per-result score."),
        _c("parent_id", pa.string(), "Parent region id (`parentID`; Dataloop `parentId`)."),
        _c("readonly", pa.bool_(), "Region is read-only."),
        _c("original_width", pa.int64(), "Image width in pixels the result was made on."),
        _c("original_height", pa.int64(), "Image height in pixels."),
        _c("image_rotation", pa.float64(), "Image rotation in degrees."),
        _c("labels", STRINGS, "Label list: `value.<type>` of any `*labels` type, `value.labels`, "
           "or Dataloop `[label]`."),
        _c("choices", STRINGS, "Choices or taxonomy paths; a nested path is joined with ' > ' "
           "(the exact form stays in `value`)."),
        _c("texts", STRINGS, "Textarea texts (`value.text` when a list)."),
        _c("text", pa.string(), "Span text (`value.text` when a string)."),
        *GEOMETRY,
        _c("unit", pa.string(), "Unit of x, y, width, height and points: 'percent' (Label Studio, "
           "of original_width/height) or 'pixel' (Dataloop)."),
        _c("points", POINTS, "Polygon/polyline vertices as [x, y] pairs in `unit`."),
        _c("span_start", pa.int64(), "Span start, character offset (text labels; hypertext "
           "`globalOffsets.start`; Dataloop text_mark)."),
        _c("span_end", pa.int64(), "Span end, character offset, exclusive."),
        _c("time_start", pa.float64(), "Start in seconds (audio, time series, subtitles)."),
        _c("time_end", pa.float64(), "End in seconds."),
        _c("number", pa.float64(), "Rating or number value."),
        _c("frame_start", pa.int64(), "First frame of a video track (Label Studio: first "
           "keyframe, 1-based; Dataloop: `frame`, 0-based)."),
        _c("frame_end", pa.int64(), "Last frame of a video track, inclusive (Label Studio: last "
           "disabled keyframe or `framesCount`; Dataloop `endFrame`)."),
        _j("attributes", "Dataloop attributes (v1 list or v2 dict) as JSON; NULL for "
           "Label Studio."),
        _j("value", "The full `value` object (Dataloop: raw `coordinates`) as JSON, minus "
           "what moved to a child table (a video `sequence` lives in `keyframes`)."),
        EXTRA,
    ),
)

RELATIONS = Table(
    "relations",
    "One row per relation result (type 'relation').",
    ("file", "task_position", "kind", "annotation_position", "position"),
    (
        SOURCE,
        TASK_ID,
        FILE_LINK,
        TASK_POSITION,
        KIND,
        ANNOTATION_ID,
        ANNOTATION_POSITION,
        _c("position", pa.int64(), "0-based place in the annotation's `result` list."),
        _c("from_id", pa.string(),
           "Region id the relation starts at (may be missing from results)."),
        _c("to_id", pa.string(), "Region id the relation points to."),
        _c("direction", pa.string(), "'right', 'left' or 'bi'."),
        _c("labels", STRINGS, "Relation labels."),
        EXTRA,
    ),
)

KEYFRAMES = Table(
    "keyframes",
    "One row per stored video keyframe: Label Studio `videorectangle` sequence entries, "
    "Dataloop track start states and `snapshots_`.",
    ("file", "task_position", "kind", "annotation_position", "result_position", "position"),
    (
        SOURCE,
        TASK_ID,
        FILE_LINK,
        TASK_POSITION,
        KIND,
        ANNOTATION_ID,
        ANNOTATION_POSITION,
        REGION_ID,
        _c("result_position", pa.int64(), "`position` of the owning row in `results`."),
        _c("position", pa.int64(), "0-based place in the sequence (Dataloop: 0 is the track's "
           "start state, snapshots follow)."),
        _c("frame", pa.int64(), "Frame number (Label Studio 1-based, Dataloop 0-based)."),
        _c("time", pa.float64(), "Seconds from the start of the video."),
        _c("enabled", pa.bool_(), "Object visible from this frame on (Label Studio `enabled`, "
           "Dataloop `objectVisible`)."),
        *GEOMETRY,
        _c("points", POINTS, "Polygon vertices at this frame, in the track's unit."),
        _c("auto", pa.bool_(), "Frame generated by Label Studio's export-time interpolation."),
        _c("label", pa.string(), "Label at this frame (Dataloop)."),
        _j("attributes", "Attributes at this frame (Dataloop), JSON."),
        _c("fixed", pa.bool_(), "User-set keyframe (Dataloop `fixed`)."),
        _c("type", pa.string(), "Snapshot type as written (Dataloop)."),
        EXTRA,
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (TASKS, ANNOTATIONS, RESULTS, RELATIONS, KEYFRAMES)}


def schema_markdown() -> str:
    """The column reference, as in docs/schema.md and `annostream schema`."""
    out = [
        "# Table schema",
        "",
        f"Schema version {SCHEMA_VERSION}. Generated from `stream/tables.py` "
        "(`annostream schema > docs/schema.md`); a test fails if the two drift.",
        "",
        (__doc__ or "").split("\n\n", 2)[2].strip() if __doc__ else "",
        "",
    ]
    for t in TABLES.values():
        out += [f"## {t.name}", "", t.doc, "", f"Key: ({', '.join(t.key)})", "",
                "| column | type | meaning |", "| --- | --- | --- |"]
        out += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in t.columns]
        out.append("")
    return "\n".join(out)
