"""`annostream ingest` and the lake: idempotent, atomic under SIGKILL, locked, latest views,
object storage through a real S3 server (moto over loopback), Delta output, old schemas.

Every expected number is computed here from the JSON written by the test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from helpers import ROOT, counts, expected_counts, run_cli, task, write

import stream
from stream import lake as lakemod
from stream.errors import AnnostreamError
from stream.tables import SCHEMA_VERSION, TABLES


def assert_children_link(con: duckdb.DuckDBPyConnection, schema: str = "main") -> None:
    """Every child row names a task row of its batch by (file, task_position), and carries
    that task's project_id (the lake looks it up through this link)."""
    for table in TABLES:
        if table == "tasks":
            continue
        orphans = con.sql(f"""SELECT count(*) FROM {schema}.{table} c ANTI JOIN {schema}.tasks t
            ON c.batch = t.batch AND c.file = t.file AND c.task_position = t.position
            AND c.project_id IS NOT DISTINCT FROM t.project_id""").fetchall()[0][0]
        assert orphans == 0, table


def lake_files(lake: Path) -> set[str]:
    """Every Parquet file under the table folders (what a raw glob would read)."""
    return {str(p.relative_to(lake)) for t in TABLES for p in (lake / t).rglob("*.parquet")}


def ledger(lake: Path) -> list[dict]:
    path = lake / "_lake" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ingest_cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli("ingest", *[str(a) for a in args])


# -- idempotency, raw readability, history ---------------------------------------------------
@pytest.mark.slow
def test_double_ingest_is_a_noop_and_raw_duckdb_reads_the_hive_layout(tmp_path):
    tasks = [task(1), task(2, labels=("A", "B")), task(3, annotations=2)]
    export = write(tmp_path / "exports" / "2026-11-22.json", tasks)
    lake = tmp_path / "lake"
    first = ingest_cli(export, "--lake", lake)
    assert first.returncode == 0, first.stderr.decode()
    assert b"ingested" in first.stderr
    files, ledger_bytes = lake_files(lake), (lake / "_lake" / "ledger.jsonl").read_bytes()

    second = ingest_cli(export, "--lake", lake)
    assert second.returncode == 0, second.stderr.decode()
    assert b"already ingested" in second.stderr and b"nothing to do" in second.stderr
    assert lake_files(lake) == files
    assert (lake / "_lake" / "ledger.jsonl").read_bytes() == ledger_bytes

    # the same content under another name is recognised by its fingerprint
    copy = write(tmp_path / "elsewhere.json", tasks)
    assert lakemod.ingest([copy], lake).nothing_to_do

    want = expected_counts(tasks)
    assert counts(stream.connect(lake)) == want
    assert counts(stream.connect(lake), "latest") == want
    entry, = ledger(lake)
    assert entry["status"] == "committed" and entry["rows"] == want
    assert entry["files"][0]["sha256"] == __import__("hashlib").sha256(
        export.read_bytes()).hexdigest()
    # readable without us: DuckDB over the Hive layout, partition values from the path
    raw = duckdb.sql(f"SELECT source, project_id, batch, count(*) FROM read_parquet("
                     f"'{lake}/results/**/*.parquet', hive_partitioning = true) GROUP BY ALL"
                     ).fetchall()
    assert raw == [("labelstudio", 7, entry["batch"], want["results"])]
    import pyarrow.dataset as pads  # and pyarrow's Hive discovery (as Spark reads it)

    assert pads.dataset(lake / "tasks", partitioning="hive").count_rows() == want["tasks"]
    assert (lake / "results" / "source=labelstudio" / "project_id=7" /
            f"batch={entry['batch']}" / "part-00000.parquet").exists()


def test_lake_status_lists_batches_with_the_shared_output_options(tmp_path):
    tasks = [task(1), task(2)]
    lake = tmp_path / "lake"
    assert ingest_cli(write(tmp_path / "a.json", tasks), "--lake", lake, "-q").returncode == 0
    st = run_cli("lake", "status", str(lake), "--format", "json")
    assert st.returncode == 0, st.stderr.decode()
    rows = json.loads(st.stdout)
    assert [(r["input"], r["tasks"], r["results"], r["schema_version"], r["status"])
            for r in rows] == [(str(tmp_path / "a.json"), 2, 2, SCHEMA_VERSION, "committed")]
    assert b"1 committed batch" in st.stderr and b"last run" in st.stderr


def test_bad_input_exits_2_and_leaves_no_rows(tmp_path):
    lake = tmp_path / "lake"
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1, "data": {}}, {"id": 2, "da')
    r = ingest_cli(bad, "--lake", lake)
    assert r.returncode == 2
    assert b"bad.json" in r.stderr and b"truncated" in r.stderr
    assert counts(stream.connect(lake)) == dict.fromkeys(TABLES, 0)
    assert [e["status"] for e in ledger(lake)] == ["failed"]
    assert lake_files(lake) == set()
    assert ingest_cli(tmp_path / "missing.json", "--lake", lake).returncode == 2


# -- atomicity under SIGKILL -----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["delta", "parquet"])
@pytest.mark.parametrize("point", ["staged", "first-part", "before-commit", "committed"])
def test_sigkill_at_any_point_leaves_the_lake_as_before_and_the_rerun_ingests_once(
        tmp_path, monkeypatch, point, fmt):
    """Killed before its commit, a batch is invisible and the rerun ingests it; a Delta
    batch killed after every table committed it (before-commit) is completed by the next
    run from its pending record, without a second Delta commit (test_lake_scale.py)."""
    lake = tmp_path / "lake"
    old = [task(1), task(2)]
    new = [task(1, updated="2026-02-01T00:00:00.000000Z", labels=("B", "C")), task(2), task(3)]
    lakemod.ingest([write(tmp_path / "day1.json", old)], lake, format=fmt)
    before = counts(stream.connect(lake), "latest")

    monkeypatch.setenv(lakemod.KILL_ENV, point)
    killed = ingest_cli(write(tmp_path / "day2.json", new), "--lake", lake)
    assert killed.returncode == -9, killed.stderr.decode()
    if point == "first-part":  # the kill came after a part file was in a table folder
        assert len(lake_files(lake)) > len(ledger(lake)[0]["parts"]["tasks"]) * len(TABLES)
    visible = counts(stream.connect(lake), "latest")
    assert visible == (before if point != "committed" else expected_counts(new))
    if fmt == "delta" and point in ("staged", "first-part"):  # written, never registered
        from deltalake import DeltaTable
        assert {t: DeltaTable(str(lake / t)).to_pyarrow_table().num_rows
                for t in TABLES} == expected_counts(old)
    if point != "committed":  # the dead run's job folder is still there
        assert list((lake / "_lake" / "staging").iterdir())

    monkeypatch.delenv(lakemod.KILL_ENV)
    rerun = lakemod.ingest([tmp_path / "day2.json"], lake)
    completed = point == "committed" or (fmt, point) == ("delta", "before-commit")
    assert rerun.nothing_to_do == completed
    con = stream.connect(lake)
    assert counts(con, "latest") == expected_counts(new)
    assert counts(con) == {t: expected_counts(old)[t] + expected_counts(new)[t] for t in TABLES}
    committed = [e for e in ledger(lake) if e["status"] == "committed"]
    assert len(committed) == 2
    # nothing left over: the files on disk are exactly the committed batches' parts
    assert lake_files(lake) == {f"{t}/{rel}" for e in committed for t, rels in e["parts"].items()
                                for rel in rels}
    assert not list((lake / "_lake" / "pending").iterdir())
    assert not (lake / "_lake" / "staging").exists()  # the dead run's, and the rerun's own


# -- concurrency -----------------------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_runs_second_fails_clearly_or_waits(tmp_path):
    lake = tmp_path / "lake"
    a = write(tmp_path / "a.json", [task(1), task(2)])
    b = write(tmp_path / "b.json", [task(10, project=8)])
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{lakemod.PAUSE_ENV: "staged:4"})
    first = subprocess.Popen([sys.executable, "-m", "stream", "ingest", str(a), "--lake",
                              str(lake)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not any((lake / "_lake" / "pending").glob("*.json")):  # it holds the lock now
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = ingest_cli(b, "--lake", lake)
        assert second.returncode == 1
        assert b"is locked by ingest (pid " + str(first.pid).encode() in second.stderr
        third = ingest_cli(b, "--lake", lake, "--wait", "60")
        assert first.poll() == 0  # the third waited for the first to finish
        assert third.returncode == 0, third.stderr.decode()
    finally:
        first.kill()
        first.wait()
    con = stream.connect(lake)
    assert con.sql("SELECT project_id, count(*) FROM latest.tasks GROUP BY ALL ORDER BY 1"
                   ).fetchall() == [("7", 2), ("8", 1)]
    assert [e["input"] for e in ledger(lake)] == [str(a), str(b)]


# -- history and latest ----------------------------------------------------------------------
@pytest.mark.slow
def test_latest_views_after_three_snapshots_and_a_partial_export(tmp_path):
    """Snapshots: tasks added, changed and deleted; then per-task files (partial): a newer
    version of one task wins, an older version of another loses, a new task is added."""
    s1 = [task(1), task(2), task(3)]
    s2 = [task(1), task(2, updated="2026-02-01T00:00:00.000000Z", labels=("B",)), task(3),
          task(4)]
    s3 = [task(2, updated="2026-02-01T00:00:00.000000Z", labels=("B",)),
          task(3, updated="2026-03-01T00:00:00.000000Z", labels=("C", "D"), annotations=2),
          task(4), task(5)]
    other = [task(100, project=9)]  # another project's snapshot is untouched by project 7's
    lake = tmp_path / "lake"
    for i, snap in enumerate([s1, other, s2]):
        lakemod.ingest([write(tmp_path / f"snap{i}.json", snap)], lake)
    r = ingest_cli(write(tmp_path / "snap3.json", s3), "--lake", lake, "-q")
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()  # --quiet

    partial = [task(3, updated="2026-04-01T00:00:00.000000Z", labels=("E",)),
               task(4, updated="2025-01-01T00:00:00.000000Z", labels=("OLD",)),
               task(6)]
    folder = tmp_path / "storage"
    for t in partial:
        write(folder / str(t["id"]), t)  # cloud target storage: one object per task
    r = ingest_cli(folder, "--lake", lake)
    assert r.returncode == 0 and b"partial snapshot" in r.stderr, r.stderr.decode()

    # expected: project 7's newest full snapshot, upserted by updated_at; project 9 as is
    newest: dict[int, dict] = {t["id"]: t for t in s3}
    for t in partial:
        if t["id"] not in newest or t["updated_at"] > newest[t["id"]]["updated_at"]:
            newest[t["id"]] = t
    want_tasks = list(newest.values()) + other
    con = stream.connect(lake)
    assert counts(con, "latest") == expected_counts(want_tasks)
    got = con.sql("SELECT task_id, list(choices[1] ORDER BY annotation_id, position) "
                  "FROM latest.results GROUP BY 1 ORDER BY 1").fetchall()
    want = sorted((str(t["id"]), [r["value"]["choices"][0] for a in t["annotations"]
                                  for r in a["result"] if r["type"] == "choices"])
                  for t in want_tasks)
    assert got == want
    # the query command reads a lake; convenience views follow the latest snapshot
    q = run_cli("query", str(lake), "--format", "csv",
                "SELECT (SELECT count(*) FROM latest.results), (SELECT count(*) FROM regions)")
    assert q.returncode == 0, q.stderr.decode()
    distinct_regions = {(a["id"], r["id"]) for t in want_tasks for a in t["annotations"]
                        for r in a["result"] if r["type"] != "relation"}
    assert q.stdout.decode().splitlines()[1] == (
        f"{expected_counts(want_tasks)['results']},{len(distinct_regions)}")
    # history: every snapshot's rows, each with its batch
    everything = s1 + other + s2 + s3 + partial
    assert counts(con) == expected_counts(everything)
    assert con.sql("SELECT count(DISTINCT batch) FROM tasks").fetchall()[0][0] == 5
    # a new folder object is one more partial batch; re-ingesting the folder adds nothing
    write(folder / "7", task(7))
    r = lakemod.ingest([folder], lake)
    assert len(r.ingested) == 1 and len(r.skipped) == 3
    assert counts(stream.connect(lake), "latest")["tasks"] == len(want_tasks) + 1


def test_latest_children_follow_the_winning_file_when_files_share_a_task_id(tmp_path):
    """Two per-task files holding versions of one task in one partial batch (and again in a
    later batch): latest.* has the newest version's task row and only its children."""
    lake = tmp_path / "lake"
    batches = [
        {"a/1.json": task(1, updated="2026-02-01T00:00:00.000000Z", labels=("NEW", "N2")),
         "b/1.json": task(1, updated="2026-01-01T00:00:00.000000Z", labels=("OLD",),
                          annotations=2),
         "b/2.json": task(2, labels=("TWO",))},
        {"c/2.json": task(2, updated="2025-06-01T00:00:00.000000Z", labels=("OLDER",)),
         "d/2.json": task(2, updated="2026-03-01T00:00:00.000000Z", labels=("NEWEST",))},
    ]
    for i, files in enumerate(batches):
        folder = tmp_path / f"storage{i}"
        for name, t in files.items():
            write(folder / name, t)
        report = lakemod.ingest([folder], lake)
        assert [e["kind"] for e in report.ingested] == ["partial"]

    newest: dict[int, tuple[str, dict]] = {}
    for i, files in enumerate(batches):
        for name, t in files.items():
            if t["id"] not in newest or t["updated_at"] > newest[t["id"]][1]["updated_at"]:
                newest[t["id"]] = (str(tmp_path / f"storage{i}" / name), t)
    winners = [t for _, t in newest.values()]
    con = stream.connect(lake)
    assert counts(con, "latest") == expected_counts(winners)
    assert sorted(con.sql("SELECT task_id, file FROM latest.tasks").fetchall()) == sorted(
        (str(tid), name) for tid, (name, _) in newest.items())
    got = con.sql("SELECT task_id, file, list(choices[1] ORDER BY annotation_id, position) "
                  "FROM latest.results GROUP BY ALL ORDER BY 1").fetchall()
    assert got == sorted((str(t["id"]), name, [r["value"]["choices"][0] for a in t["annotations"]
                                               for r in a["result"] if r["type"] == "choices"])
                         for name, t in newest.values())
    assert_children_link(con, "latest")


def test_one_export_with_two_projects_is_partitioned_per_project(tmp_path):
    tasks = [task(1, project=7), task(2, project=8, annotations=2), task(3, project=None)]
    lake = tmp_path / "lake"
    assert ingest_cli(write(tmp_path / "mixed.json", tasks), "--lake", lake).returncode == 0
    con = stream.connect(lake)
    got = con.sql("SELECT project_id, count(*) FROM latest.results GROUP BY 1 ORDER BY 1"
                  ).fetchall()
    want = [((None if t.get("project") is None else str(t["project"])),
             expected_counts([t])["results"]) for t in tasks]
    assert sorted(got, key=str) == sorted(want, key=str)
    assert (lake / "annotations" / "source=labelstudio" / "project_id=8").is_dir()
    assert (lake / "annotations" / "source=labelstudio" /
            "project_id=__HIVE_DEFAULT_PARTITION__").is_dir()
    # project-less tasks of another file add up instead of replacing the first file's
    lakemod.ingest([write(tmp_path / "more.json", [task(4, project=None)])], lake)
    got = stream.connect(lake).sql("SELECT task_id FROM latest.tasks WHERE project_id IS NULL "
                                    "ORDER BY 1").fetchall()
    assert got == [("3",), ("4",)]


def test_full_flag_makes_a_folder_one_snapshot_that_deletes_missing_tasks(tmp_path):
    lake = tmp_path / "lake"
    first, second = tmp_path / "dump1", tmp_path / "dump2"
    for t in (task(1), task(2), task(3)):
        write(first / f"{t['id']}.json", t)
    for t in (task(1), task(3)):  # task 2 deleted; the other files are byte-identical
        write(second / f"{t['id']}.json", t)
    lakemod.ingest([first], lake, snapshot="full")
    r = ingest_cli(second, "--lake", lake, "--full")
    assert r.returncode == 0 and b"full snapshot" in r.stderr, r.stderr.decode()
    assert b"nothing to do" in ingest_cli(second, "--lake", lake, "--full").stderr
    con = stream.connect(lake)
    assert con.sql("SELECT task_id FROM latest.tasks ORDER BY 1").fetchall() == [("1",), ("3",)]


# -- vacuum ----------------------------------------------------------------------------------
def test_vacuum_removes_old_snapshots_but_never_the_newest(tmp_path):
    lake = tmp_path / "lake"
    snaps = [[task(1)], [task(1), task(2)], [task(2), task(3), task(4)]]
    for i, snap in enumerate(snaps):
        lakemod.ingest([write(tmp_path / f"s{i}.json", snap)], lake)
    assert lakemod.vacuum(lake, lakemod.parse_duration("30d")) == []
    newest = ledger(lake)[-1]
    gone = run_cli("lake", "vacuum", str(lake), "--keep", "0s")
    assert gone.returncode == 0 and b"removed 2 batch" in gone.stderr, gone.stderr.decode()
    assert ledger(lake) == [newest]
    assert lake_files(lake) == {f"{t}/{rel}" for t, rels in newest["parts"].items()
                                for rel in rels}
    con = stream.connect(lake)
    assert counts(con) == counts(con, "latest") == expected_counts(snaps[-1])
    assert run_cli("lake", "vacuum", str(lake), "--keep", "soon").returncode == 1


# -- schema versions -------------------------------------------------------------------------
def test_a_lake_of_an_older_schema_version_reads_new_columns_as_null(tmp_path):
    """Child rows written before they carried (file, task_position) follow their task by
    task id within the batch (a Parquet lake, whose files are rewritten here as an older
    annostream wrote them)."""
    lake = tmp_path / "lake"
    tasks = [task(1), task(2, annotations=2)]
    lakemod.ingest([write(tmp_path / "a.json", tasks)], lake, format="parquet")
    entries = ledger(lake)
    # make it what an older annostream wrote: tasks files without the newest columns
    for rel in entries[0]["parts"]["tasks"]:
        path = lake / "tasks" / rel
        pq.write_table(pq.read_table(path).drop_columns(["list_keys", "form"]), path)
    for table in TABLES:
        for rel in entries[0]["parts"][table] if table != "tasks" else []:
            path = lake / table / rel
            pq.write_table(pq.read_table(path).drop_columns(["file", "task_position"]), path)
    entries[0]["schema_version"] = SCHEMA_VERSION - 1
    (lake / "_lake" / "ledger.jsonl").write_text(json.dumps(entries[0]) + "\n")
    con = stream.connect(lake)
    assert con.sql("SELECT count(*), count(list_keys), count(form), count(data) FROM "
                   "latest.tasks").fetchall()[0] == (2, 0, 0, 2)
    assert counts(con, "latest") == expected_counts(tasks)
    assert con.sql("SELECT count(file), count(task_position) FROM latest.results"
                   ).fetchall() == [(0, 0)]
    # a newer annostream's lake is refused, naming the command that fixes it
    entries[0]["schema_version"] = SCHEMA_VERSION + 1
    (lake / "_lake" / "ledger.jsonl").write_text(json.dumps(entries[0]) + "\n")
    with pytest.raises(AnnostreamError, match="pip install -U annostream"):
        stream.connect(lake)
    r = ingest_cli(write(tmp_path / "b.json", [task(3)]), "--lake", lake)
    assert r.returncode == 1 and b"newer than this annostream" in r.stderr


# -- Delta Lake ------------------------------------------------------------------------------
@pytest.mark.slow
def test_delta_format_reads_back_the_same_rows_and_survives_sigkill(tmp_path, monkeypatch):
    from deltalake import DeltaTable

    lake = tmp_path / "delta"
    s1 = [task(1), task(2, annotations=2)]
    s2 = [task(2, updated="2026-02-01T00:00:00.000000Z"), task(3)]
    lakemod.ingest([write(tmp_path / "s1.json", s1)], lake, format="delta")
    monkeypatch.setenv(lakemod.KILL_ENV, "first-part")
    assert ingest_cli(write(tmp_path / "s2.json", s2), "--lake", lake).returncode == -9
    monkeypatch.delenv(lakemod.KILL_ENV)
    assert counts(stream.connect(lake)) == expected_counts(s1)
    assert len(lakemod.ingest([tmp_path / "s2.json"], lake).ingested) == 1
    assert lakemod.ingest([tmp_path / "s2.json"], lake).nothing_to_do

    con = stream.connect(lake)
    assert counts(con) == expected_counts(s1 + s2)
    assert counts(con, "latest") == expected_counts(s2)
    for table, n in expected_counts(s1 + s2).items():  # what Spark or Trino would read
        dt = DeltaTable(str(lake / table))
        assert dt.to_pyarrow_table().num_rows == n, table
        assert dt.metadata().partition_columns == ["source", "project_id", "batch"]
    q = run_cli("query", str(lake), "--format", "csv", "SELECT count(*) FROM latest.results")
    assert q.returncode == 0 and q.stdout.split() == [b"count_star()", str(
        expected_counts(s2)["results"]).encode()], q.stderr.decode()
    assert run_cli("ingest", str(tmp_path / "s1.json"), "--lake", str(lake), "--format",
                   "parquet").returncode == 1


@pytest.mark.slow
def test_ingest_from_and_into_s3(s3, tmp_path, monkeypatch):
    client, secret = s3
    monkeypatch.setattr(lakemod.storage._LeaseLock, "VERIFY_DELAY", 0.2)  # in-process calls only
    days = {"2026-11-20.json": [task(1), task(2)],
            "2026-11-21.json": [task(2, updated="2026-02-01T00:00:00.000000Z"), task(3)]}
    for name, tasks in days.items():
        client.put_object(Bucket="exports", Key=f"label-studio/project-7/{name}",
                          Body=json.dumps(tasks).encode())
    src, lake = "s3://exports/label-studio/project-7/", "s3://lake/lk/"
    r = ingest_cli(src, "--lake", lake)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr.count(b"ingested s3://exports/label-studio/project-7/") == 2
    assert secret.encode() not in r.stdout + r.stderr

    con = stream.connect(lake)
    everything = [t for tasks in days.values() for t in tasks]
    assert counts(con) == expected_counts(everything)
    assert counts(con, "latest") == expected_counts(days["2026-11-21.json"])
    assert sorted(r[0] for r in con.sql("SELECT DISTINCT file FROM tasks").fetchall()) == [
        f"{src}{name}" for name in sorted(days)]
    assert_children_link(con)  # child rows name the input's URI, not its download
    assert_children_link(con, "latest")
    linked = con.sql("SELECT count(*) FROM latest.results r JOIN latest.tasks t "
                     "ON r.file = t.file AND r.task_position = t.position").fetchall()[0][0]
    assert linked == expected_counts(days["2026-11-21.json"])["results"] > 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="lake")["Contents"]}
    assert "lk/_lake/ledger.jsonl" in keys and "lk/_lake/lock.json" not in keys
    assert any(k.startswith("lk/results/source=labelstudio/project_id=7/batch=") for k in keys)

    assert lakemod.ingest([src], lake).nothing_to_do
    with lakemod.Lake(lake).lock():  # the lease object: a second run fails clearly
        busy = ingest_cli(src, "--lake", lake)
    assert busy.returncode == 1 and b"s3://lake/lk/ is locked by ingest (pid" in busy.stderr
    client.put_object(Bucket="exports", Key="label-studio/project-7/2026-11-22.json",
                      Body=json.dumps([task(3)]).encode())
    report = lakemod.ingest([src], lake)
    assert [e["input"] for e in report.ingested] == [f"{src}2026-11-22.json"]
    assert len(report.skipped) == 2
    assert counts(stream.connect(lake), "latest") == expected_counts([task(3)])
    assert lakemod.status(lake).committed == 3


def test_ingest_from_an_http_url_stores_no_credentials(tmp_path):
    """https:// inputs are streamed with urllib; a loopback http server stands in for one.
    The export holds two projects, so child rows find their project through their task
    while their download name is mapped back to the URL (Parquet and Delta lakes)."""
    import functools
    import http.server
    import threading

    served = tmp_path / "www"
    tasks = [task(1), task(2, annotations=2), task(3, project=8)]
    write(served / "export.json", tasks)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        url = f"http://user:pa55@127.0.0.1:{port}/export.json?X-Amz-Signature=s3cr3t"
        r = ingest_cli(url, "--lake", tmp_path / "lake")
        assert r.returncode == 0, r.stderr.decode()
        assert b"pa55" not in r.stderr and b"s3cr3t" not in r.stderr
        lake_text = "".join(p.read_text() for p in (tmp_path / "lake" / "_lake").glob("*.json*"))
        assert "pa55" not in lake_text and "s3cr3t" not in lake_text
        con = stream.connect(tmp_path / "lake")
        assert counts(con) == expected_counts(tasks)
        assert con.sql("SELECT DISTINCT file FROM tasks").fetchall() == [
            (f"http://127.0.0.1:{port}/export.json",)]
        assert_children_link(con)
        assert b"nothing to do" in ingest_cli(url, "--lake", tmp_path / "lake").stderr
        lakemod.ingest([url], tmp_path / "delta", format="delta")
        con = stream.connect(tmp_path / "delta")
        assert counts(con, "latest") == expected_counts(tasks)
        assert_children_link(con, "latest")
    finally:
        server.shutdown()
        server.server_close()


def test_batches_convert_together_and_commit_in_order(tmp_path):
    """Three exports in one run on two local processes, the driver held for 5 s before its
    first batch's Delta commit and killed after it: by then the lake holds part files of
    every batch (the jobs of all batches run at once, not batch after batch), and only the
    first batch is in the Delta tables; the rerun completes it and commits the other two,
    in input order, each once."""
    lake = tmp_path / "lake"
    days = [[task(1)], [task(2, project=8)], [task(1, updated="2026-02-01T00:00:00.000000Z")]]
    files = [write(tmp_path / f"day-{k}.json", tasks) for k, tasks in enumerate(days)]
    code = ("import sys, stream.executors as ex, stream.lake as lk; "
            "lk.ingest(sys.argv[2:], sys.argv[1], executor=ex.Processes(2))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{lakemod.PAUSE_ENV: "staged:5",
                                                    lakemod.KILL_ENV: "before-commit"})
    killed = subprocess.run([sys.executable, "-c", code, str(lake), *map(str, files)],
                            env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    assert len({p.name for p in (lake / "tasks").rglob("batch=*")}) == 3
    assert counts(stream.connect(lake)) == dict.fromkeys(TABLES, 0)
    report = lakemod.ingest(files, lake)
    assert [e["input"] for e in report.ingested] == [str(f) for f in files[1:]]
    assert [e["input"] for e in ledger(lake)] == [str(f) for f in files]
    con = stream.connect(lake)
    assert counts(con) == expected_counts(days[0] + days[1] + days[2])
    assert counts(con, "latest") == expected_counts(days[1] + days[2])
    assert lake_files(lake) == {f"{t}/{rel}" for e in ledger(lake)
                                for t, rels in e["parts"].items() for rel in rels}
