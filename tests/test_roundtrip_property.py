"""Property: any valid Label Studio export converts and exports back to the same JSON values.

Hypothesis writes random tasks (every object kind, unknown result types, unknown keys at
every level, empty and null values, type drift in typed keys, deep nesting in data and meta,
unicode), runs the real converter into Parquet and the real export, and compares.
"""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import (
    deep,
    drift,
    export_shape,
    floats,
    ids,
    json_diff,
    json_values,
    json_values_st,
    small_ints,
    with_unknown,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import convert, export


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.slow
@given(tasks=export_shape, ndjson=st.booleans())
def test_any_label_studio_export_round_trips(tasks, ndjson):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "export.json"
        if ndjson:
            tasks = [t for t in tasks if "data" in t or "task" in t]  # flat objects need an array
            src.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks))
        else:
            src.write_text(json.dumps(tasks, ensure_ascii=False, indent=1))
        if not tasks:
            return
        convert([str(src)], Path(tmp) / "tables")
        rebuilt = Path(tmp) / "rebuilt.json"
        export(Path(tmp) / "tables", rebuilt)
        found = json_diff(json_values(src), json_values(rebuilt))
        assert found is None, found


# -- Dataloop items ----------------------------------------------------------------------------

def _dl_ts(d: datetime, style: int) -> str:
    return [d.isoformat(timespec="milliseconds").replace("+00:00", "Z"), d.isoformat()][style]


dl_timestamps = drift(st.builds(_dl_ts, st.datetimes(min_value=datetime(1970, 1, 1),
                                                     max_value=datetime(2100, 1, 1),
                                                     timezones=st.just(timezone.utc)),
                                st.integers(0, 1)))
point = st.fixed_dictionaries({"x": floats | small_ints, "y": floats | small_ints},
                              optional={"z": small_ints})
coordinates = drift(st.lists(point, min_size=2, max_size=3) | point
                    | st.lists(st.lists(point, max_size=3), max_size=2)
                    | st.fixed_dictionaries({"center": point, "rx": floats, "ry": floats},
                                            optional={"angle": floats}))
DL_TYPES = ["box", "segment", "polyline", "point", "ellipse", "class", "text_mark", "subtitle",
            "note", "cube", "binary", "brandnew"]
snapshot = with_unknown({"frame": drift(small_ints), "fixed": drift(st.booleans()),
                         "objectVisible": drift(st.booleans()), "label": drift(st.text(max_size=4)),
                         "type": drift(st.sampled_from(["box", "LINEAR"])), "data": coordinates,
                         "attributes": json_values_st, "namedAttributes": json_values_st},
                        frozenset())
system = with_unknown({"objectId": ids, "parentId": drift(st.text(max_size=4)),
                       "frame": drift(small_ints), "endFrame": drift(small_ints),
                       "startTime": drift(floats), "endTime": drift(floats),
                       "automated": drift(st.booleans()), "attributes": json_values_st,
                       "snapshots_": drift(st.lists(snapshot, max_size=3))}, frozenset())
dl_annotation = with_unknown(
    {"id": drift(st.text(max_size=6)), "_id": st.text(max_size=6),
     # a list or object `type` crashes the Dataloop reader (reported on issue 6)
     "type": st.sampled_from(DL_TYPES) | st.text(max_size=4) | st.none() | small_ints,
     "label": drift(st.text(max_size=5)),
     "coordinates": coordinates, "attributes": json_values_st, "creator": drift(st.text(max_size=5)),
     "updatedBy": drift(st.text(max_size=5)), "source": drift(st.text(max_size=3)),
     "createdAt": dl_timestamps, "updatedAt": dl_timestamps, "description": json_values_st,
     "labelSuggestions": json_values_st,
     "metadata": drift(st.fixed_dictionaries({}, optional={"system": drift(system), "user": deep}))},
    frozenset())
media = st.sampled_from(["image/jpeg", "video/mp4", "audio/wav", "text/plain"])
item_meta = st.fixed_dictionaries({}, optional={
    "fps": drift(small_ints), "system": with_unknown(
        {"mimetype": drift(media), "fps": drift(floats), "width": drift(small_ints),
         "height": drift(small_ints), "duration": drift(floats)}, frozenset()), "user": deep})
item = with_unknown(
    {"id": drift(st.text(min_size=1, max_size=8)), "_id": st.text(max_size=8), "datasetId": ids,
     "createdAt": dl_timestamps, "updatedAt": dl_timestamps, "dir": drift(st.text(max_size=5)),
     "name": drift(st.text(max_size=5)), "url": st.text(max_size=5), "metadata": drift(item_meta),
     "itemMetadata": item_meta,
     "annotations": st.lists(dl_annotation, max_size=3) | st.text(max_size=8) | st.none()},
    frozenset({"filename", "shebang", "annotationsCount", "manifestVersion", "exportId",
               "partitioning", "elements"})
).flatmap(lambda i: st.builds(lambda f: {"filename": f, **i}, drift(st.text(max_size=8))))


@settings(deadline=None)  # no wall-clock limit: a loaded CI machine is not a failure
@pytest.mark.slow
@given(items=st.lists(item, min_size=1, max_size=3))
def test_any_dataloop_export_round_trips(items):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dataset.json"
        src.write_text(json.dumps(items, ensure_ascii=False))
        convert([str(src)], Path(tmp) / "tables")
        rebuilt = Path(tmp) / "rebuilt.json"
        export(Path(tmp) / "tables", rebuilt)
        found = json_diff(json_values(src), json_values(rebuilt))
        assert found is None, found
