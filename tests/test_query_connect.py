"""`connect`, `query` and `tables` on what they may be given: a converted folder (without
importing the lake module and its pyarrow.dataset/pandas), a lake's URI on a real S3 server
(moto over loopback), and a folder that does not exist (one clear line)."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

from helpers import ROOT, run_cli, task

from stream import convert
from stream import lake as lakemod

HEAVY = ("stream.lake", "pyarrow.dataset", "pandas")


def test_a_converted_folder_is_queried_without_importing_the_lake(tmp_path):
    tasks = [task(1), task(2)]
    (tmp_path / "in.json").write_text(json.dumps(tasks))
    convert([tmp_path / "in.json"], tmp_path / "out", workers=1)
    code = ("import sys; from stream import connect; "
            "n = connect(sys.argv[1]).sql('SELECT count(*) FROM tasks').fetchall()[0][0]; "
            f"print(n, [m for m in {HEAVY!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert done.stdout.split(" ", 1) == [str(len(tasks)), "[]\n"]


def test_query_and_tables_accept_a_lake_uri(s3, tmp_path):  # noqa: F811
    tasks = [task(1), task(2, labels=("A", "B")), task(3)]
    (tmp_path / "in.json").write_text(json.dumps(tasks))
    lake = f"s3://lake/{uuid.uuid4().hex}/"  # moto keeps buckets across its servers
    lakemod.ingest([str(tmp_path / "in.json")], lake)
    r = run_cli("query", lake, "--format", "csv",
                "SELECT count(*) AS n FROM results")
    assert r.returncode == 0, r.stderr.decode()
    n = sum(1 for t in tasks for a in t["annotations"] for x in a["result"]
            if x["type"] != "relation")
    assert r.stdout.decode().split() == ["n", str(n)]
    r = run_cli("tables", lake, "--format", "csv", "--no-view-counts")
    assert r.returncode == 0, r.stderr.decode()
    assert f"tasks,table,{len(tasks)}" in r.stdout.decode()


def test_a_missing_folder_is_one_clear_line(tmp_path):
    for command in ("query", "tables"):
        args = [command, str(tmp_path / "nope")] + (["SELECT 1"] if command == "query" else [])
        r = run_cli(*args)
        assert r.returncode == 1
        assert r.stderr.decode().strip() == (
            f"error: {tmp_path / 'nope'}: not a folder: it does not exist "
            "(expected the output of `annostream convert`, or a lake)")
