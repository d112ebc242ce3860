"""The front door: every public function called through the package, twice (the second
call once failed: importing a submodule named like a function replaced the function)."""
from __future__ import annotations

import json

import stream


def test_every_public_function_works_twice_through_the_package(tmp_path):
    tasks = [{"id": i, "data": {"text": f"t{i}"}, "annotations": [
        {"id": 10 * i, "result": [{"id": "r", "type": "choices", "from_name": "c",
                                   "to_name": "t", "value": {"choices": ["A"]}}]}]}
             for i in (1, 2, 3)]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(tasks))
    for run in (1, 2):
        out = tmp_path / f"out{run}"
        manifest = stream.convert([src], out, workers=1)
        assert manifest["rows"]["tasks"] == len(tasks)
        con = stream.connect(out)
        assert con.sql("SELECT count(*) FROM results").fetchall() == [(len(tasks),)]
        done = stream.export(out, tmp_path / f"back{run}.json")
        assert json.loads((tmp_path / f"back{run}.json").read_text()) == tasks
        assert done.tasks == len(tasks)
        lake = tmp_path / "lake"
        report = stream.ingest([src], lake)
        assert len(report.ingested) == (1 if run == 1 else 0)
        assert stream.status(lake)["committed"] == 1
        assert stream.connect(lake).sql("SELECT count(*) FROM latest.tasks").fetchall() == [
            (len(tasks),)]
