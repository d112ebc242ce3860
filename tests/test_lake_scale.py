"""Ingest at scale: twenty exports from a real S3 API server (moto on loopback) into an S3
Delta lake, converted on a real Dask cluster and on a real Ray cluster (conftest.py); the
Delta tables read back by deltalake, DuckDB (through pyarrow) and polars; two drivers at once;
a commit retried after a crash; an existing Parquet lake.

The expected side is the same inputs ingested in this process (one worker) into a local lake,
and row counts computed here from the JSON written by the test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid

import duckdb
import pytest
from helpers import ROOT, counts, expected_counts, run_cli, task, write

import stream
from stream import lake as lakemod
from stream.executors import InProcess
from stream.lake.storage import delta_schema, delta_uri, storage_options
from stream.tables import TABLES

pytestmark = pytest.mark.slow  # real clusters, a real S3 server, hundreds of Delta commits

N_EXPORTS = 20


def put_exports(client, prefix: str) -> list[list[dict]]:
    """Twenty daily exports of two projects under `prefix` of the bucket `exports`: full
    snapshots whose tasks change day by day."""
    days = []
    for k in range(N_EXPORTS):
        project = 7 if k % 2 else 8
        tasks = [task(100 * project + i, project=project,
                      updated=f"2026-01-{1 + k:02d}T00:00:00.000000Z",
                      labels=("A", "B")[: 1 + (i + k) % 2], annotations=1 + (i * k) % 3)
                 for i in range(3 + k % 4)]
        client.put_object(Bucket="exports", Key=f"{prefix}day-{k:02d}.json",
                          Body=json.dumps(tasks).encode())
        days.append(tasks)
    return days


def history(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    """Every row of a table but its batch id (which names the ingestion time), sorted."""
    return con.sql(f"SELECT * EXCLUDE (batch) FROM {table} ORDER BY ALL").fetchall()


def read_three_ways(lake: str) -> dict[str, int]:
    """Each Delta table as deltalake, DuckDB (over deltalake's pyarrow dataset) and polars
    read it, without annostream's views: the same rows all three ways; returns the counts."""
    import polars as pl
    from deltalake import DeltaTable

    lk = lakemod.Lake(lake)
    opts = storage_options(lk)
    got = {}
    for table in TABLES:
        uri = delta_uri(lk, table)
        dt = DeltaTable(uri, storage_options=opts)
        assert dt.metadata().partition_columns == ["source", "project_id", "batch"]
        by_deltalake = dt.to_pyarrow_table()
        con = duckdb.connect()
        con.register("dataset", dt.to_pyarrow_dataset())
        by_duckdb = con.sql("SELECT * FROM dataset").to_arrow_table()
        by_polars = pl.read_delta(uri, storage_options=opts).to_arrow()
        cols = ", ".join(f'"{n}"' for n in delta_schema(table).names)
        rows = []
        for t in (by_deltalake, by_duckdb, by_polars):
            con.register("t", t)
            rows.append(con.sql(f"SELECT {cols} FROM t ORDER BY ALL").fetchall())
        assert rows[0] == rows[1] == rows[2], table
        got[table] = len(rows[0])
    return got


@pytest.fixture
def lake_s3(s3, monkeypatch):
    """(the exports' URI prefix, their tasks, a prefix for lakes): moto keeps one store per
    process, so every test uses prefixes of its own."""
    monkeypatch.setattr(lakemod.storage._LeaseLock, "VERIFY_DELAY", 0.2)  # in-process calls
    client, _ = s3
    run = uuid.uuid4().hex[:8]
    return f"s3://exports/{run}/", put_exports(client, f"{run}/"), f"s3://lake/{run}"


def test_twenty_exports_from_s3_into_s3_delta_lakes_on_dask_and_on_ray(
        dask_cluster, ray_cluster, lake_s3, s3, tmp_path, monkeypatch):
    """The same twenty exports ingested by one worker in this process into a local lake, and
    on each cluster into an S3 lake: the same rows (but batch ids, which name the time).
    On a cluster the driver only plans and commits: its disk is not used."""
    src, days, lakes = lake_s3
    reference = tmp_path / "reference"
    assert len(lakemod.ingest([src], reference, executor=InProcess()).ingested) == N_EXPORTS
    expected = stream.connect(reference)
    everything = [t for tasks in days for t in tasks]
    latest = days[-2] + days[-1]  # the newest snapshot of each project
    # the driver's temporary folder cannot be written: had it downloaded an input or staged
    # a part file, the run would fail (the workers read S3 and write the lake themselves)
    driver_tmp = tmp_path / "driver-tmp"
    driver_tmp.mkdir(mode=0o500)
    monkeypatch.setattr(tempfile, "tempdir", str(driver_tmp))
    monkeypatch.setenv("TMPDIR", str(driver_tmp))
    for engine, cluster in (("dask", dask_cluster), ("ray", ray_cluster)):
        lake = f"{lakes}/{engine}/"
        report = lakemod.ingest([src], lake, executor=engine, address=cluster.address)
        assert list(driver_tmp.iterdir()) == []
        # every part file the workers wrote is in the lake, and is one the ledger lists
        client = s3[0]
        prefix = lake.removeprefix("s3://lake/")
        keys = {o["Key"][len(prefix):] for page in client.get_paginator("list_objects_v2")
                .paginate(Bucket="lake", Prefix=prefix) for o in page.get("Contents", [])}
        listed = {f"{t}/{rel}" for e in report.ingested for t, rels in e["parts"].items()
                  for rel in rels}
        assert {k for k in keys if k.endswith(".parquet")} == listed
        assert [e["input"] for e in report.ingested] == [f"{src}day-{k:02d}.json"
                                                         for k in range(N_EXPORTS)]
        assert lakemod.status(lake).format == "delta"
        con = stream.connect(lake)
        assert counts(con) == expected_counts(everything)
        assert counts(con, "latest") == expected_counts(latest)
        for table in TABLES:
            assert history(con, table) == history(expected, table), (engine, table)
        assert read_three_ways(lake) == expected_counts(everything)
        assert lakemod.ingest([src], lake, executor=engine,
                              address=cluster.address).nothing_to_do


def test_two_drivers_at_once_land_each_batch_once(lake_s3, tmp_path):
    """Two `annostream ingest` processes started together on one S3 Delta lake: the lease
    makes them take turns (the second waits, then finds every input ingested)."""
    src, days, lakes = lake_s3
    lake = f"{lakes}/two/"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "stream", "ingest", src, "--lake", lake, "--wait", "120"]
    drivers = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    errs = [d.communicate(timeout=300)[1].decode() for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], errs
    assert sorted(e.count("ingested s3://") for e in errs) == [0, N_EXPORTS]
    assert sum("nothing to do" in e for e in errs) == 1
    entries = lakemod.Lake(lake).ledger()
    assert len(entries) == len({e["fingerprint"] for e in entries}) == N_EXPORTS
    assert read_three_ways(lake) == expected_counts([t for tasks in days for t in tasks])


def test_a_commit_retried_after_a_crash_is_a_no_op(tmp_path, monkeypatch):
    """Killed after every Delta table committed the batch but before the ledger: the next run
    finds the batch's application transaction id in every table and only completes the
    ledger; the Delta tables get no second commit."""
    from deltalake import DeltaTable

    lake = tmp_path / "lake"
    tasks = [task(1), task(2, annotations=2)]
    src = write(tmp_path / "a.json", tasks)
    monkeypatch.setenv(lakemod.KILL_ENV, "before-commit")
    assert run_cli("ingest", str(src), "--lake", str(lake)).returncode == -9
    monkeypatch.delenv(lakemod.KILL_ENV)
    versions = {t: DeltaTable(str(lake / t)).version() for t in TABLES}
    rerun = run_cli("ingest", str(src), "--lake", str(lake))
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert b"already ingested" in rerun.stderr
    assert {t: DeltaTable(str(lake / t)).version() for t in TABLES} == versions
    assert counts(stream.connect(lake)) == expected_counts(tasks)
    assert read_three_ways(str(lake)) == expected_counts(tasks)
    assert not list((lake / "_lake" / "pending").glob("*"))


def test_an_existing_parquet_lake_keeps_its_format(tmp_path):
    lake = tmp_path / "lake"
    a, b = write(tmp_path / "a.json", [task(1)]), write(tmp_path / "b.json", [task(2)])
    assert run_cli("ingest", str(a), "--lake", str(lake), "--format", "parquet").returncode == 0
    done = run_cli("ingest", str(b), "--lake", str(lake))  # no --format: detected
    assert done.returncode == 0, done.stderr.decode()
    assert lakemod.status(lake).format == "parquet"
    assert not (lake / "tasks" / "_delta_log").exists()
    assert counts(stream.connect(lake)) == expected_counts([task(1), task(2)])
    fresh = tmp_path / "fresh"
    assert run_cli("ingest", str(a), "--lake", str(fresh)).returncode == 0
    assert lakemod.status(fresh).format == "delta"
    assert (fresh / "tasks" / "_delta_log").is_dir()


@pytest.mark.parametrize("point", ["first-part", "staged", "before-commit"])
def test_ingest_killed_into_an_s3_lake_leaves_nothing_readable_and_nothing_behind(
        s3, point, tmp_path, monkeypatch):
    """Two exports into an S3 Delta lake, the ingest SIGKILLed at a failpoint of its first
    batch: Delta readers see no row of it (its parts are in the table folders, not in the
    logs), and the next run (once the dead run's lease lapsed) removes or completes what
    was left, then ingests exactly once: the lake holds only the files the ledger lists."""
    from deltalake import DeltaTable

    client, _ = s3
    monkeypatch.setattr(lakemod.storage._LeaseLock, "VERIFY_DELAY", 0.2)  # in-process calls
    run = uuid.uuid4().hex[:8]
    days = [[task(1), task(2, annotations=2)], [task(1, updated="2026-02-01T00:00:00.000000Z"),
                                                 task(3, project=8)]]
    for k, tasks in enumerate(days):
        client.put_object(Bucket="exports", Key=f"{run}/day-{k}.json",
                          Body=json.dumps(tasks).encode())
    src, lake = f"s3://exports/{run}/", f"s3://lake/{run}/"
    monkeypatch.setenv(lakemod.KILL_ENV, point)
    code = ("import stream.executors as ex, stream.lake as lk; "
            f"lk.ingest([{src!r}], {lake!r}, executor=ex.InProcess())")  # killed: this process
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert killed.returncode == -9, killed.stderr.decode()
    monkeypatch.delenv(lakemod.KILL_ENV)
    keys = lambda: {o["Key"][len(run) + 1:] for o in client.list_objects_v2(  # noqa: E731
        Bucket="lake", Prefix=f"{run}/").get("Contents", [])}
    assert any(k.endswith(".parquet") for k in keys())  # a part was written
    lk = lakemod.Lake(lake)
    if point != "before-commit":
        for table in TABLES:
            dt = lakemod.storage.open_delta(lk, table)
            assert dt is None or dt.to_pyarrow_table().num_rows == 0
    lk.delete(lakemod.storage._LeaseLock.REL)  # what 120 s without a renewal amount to
    report = lakemod.ingest([src], lake)
    assert len(report.ingested) == (1 if point == "before-commit" else 2)
    entries = lk.ledger()
    assert [e["status"] for e in entries] == ["committed", "committed"]
    parts = {f"{t}/{rel}" for e in entries for t, rels in e["parts"].items() for rel in rels}
    assert {k for k in keys() if k.endswith(".parquet")} == parts
    assert not [k for k in keys() if k.startswith("_lake/pending/") and k[-1] != "/"]
    everything = days[0] + days[1]
    assert read_three_ways(lake) == expected_counts(everything)
    assert {t: DeltaTable(f"{lake}{t}", storage_options=lakemod.storage.storage_options(lk))
            .version() for t in TABLES} == dict.fromkeys(TABLES, 1)  # two commits each
