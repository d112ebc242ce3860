"""The front door: every public function called through the package, twice (the second
call once failed: importing a submodule named like a function replaced the function), each
returning its typed result."""
from __future__ import annotations

import json

import duckdb
import pytest

import stream


def test_every_public_function_works_twice_through_the_package(tmp_path):
    tasks = [{"id": i, "data": {"text": f"t{i}"}, "annotations": [
        {"id": 10 * i, "result": [{"id": "r", "type": "choices", "from_name": "c",
                                   "to_name": "t", "value": {"choices": ["A"]}}]}]}
             for i in (1, 2, 3)]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(tasks))
    lake = tmp_path / "lake"
    for run in (1, 2):
        out = tmp_path / f"out{run}"
        result = stream.convert([src], out, workers=1)
        assert isinstance(result, stream.ConversionResult) and result.output == out
        assert result.rows["tasks"] == result.run["rows"]["tasks"] == len(tasks)
        assert result.manifest == json.loads((out / "_manifest.json").read_text())
        con = stream.connect(out)
        assert isinstance(con, duckdb.DuckDBPyConnection)
        assert con.sql("SELECT count(*) FROM results").fetchall() == [(len(tasks),)]
        done = stream.export(out, tmp_path / f"back{run}.json")
        assert isinstance(done, stream.ExportSummary) and done.tasks == len(tasks)
        assert json.loads((tmp_path / f"back{run}.json").read_text()) == tasks
        report = stream.ingest([src], lake)
        assert isinstance(report, stream.IngestReport)
        assert len(report.ingested) == (1 if run == 1 else 0)
        st = stream.status(lake)
        assert isinstance(st, stream.LakeStatus)
        assert (st.committed, st.rows["tasks"]) == (1, len(tasks))
        assert stream.connect(lake).sql("SELECT count(*) FROM latest.tasks").fetchall() == [
            (len(tasks),)]


def test_a_mode_outside_its_literal_type_is_refused(tmp_path):
    with pytest.raises(ValueError, match="on_error must be 'fail' or 'skip', not 'ignore'"):
        stream.convert([tmp_path], tmp_path / "out", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="snapshot must be 'auto', 'partial' or 'full'"):
        stream.ingest([tmp_path], tmp_path / "lake", snapshot="some")  # type: ignore[arg-type]
