"""Property: any valid Label Studio export converts and exports back to the same JSON values.

Hypothesis writes random tasks (every object kind, unknown result types, unknown keys at
every level, empty and null values, type drift in typed keys, deep nesting in data and meta,
unicode), runs the real converter into Parquet and the real export, and compares.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from helpers import dataloop_item, export_shape, json_diff, json_values
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

@settings(deadline=None)  # no wall-clock limit: a loaded CI machine is not a failure
@pytest.mark.slow
@given(items=st.lists(dataloop_item, min_size=1, max_size=3))
def test_any_dataloop_export_round_trips(items):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dataset.json"
        src.write_text(json.dumps(items, ensure_ascii=False))
        convert([str(src)], Path(tmp) / "tables")
        rebuilt = Path(tmp) / "rebuilt.json"
        export(Path(tmp) / "tables", rebuilt)
        found = json_diff(json_values(src), json_values(rebuilt))
        assert found is None, found
