"""The same conversion on real clusters: a Dask scheduler with two worker processes and a
one-node Ray cluster (2 CPUs), both on 127.0.0.1, started once per session (conftest.py).

The expected side is always the single-worker conversion of the same input (`--workers 1`,
in this process), with task positions checked against the json module.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile

import pytest
from helpers import ROOT, load_script, read_tables, run_cli, staging_left

from stream import convert
from stream.errors import AnnostreamError
from stream.tables import TABLES

gen = load_script("generate_export")
clusters = load_script("local_clusters")

RANGE = 32_768  # bytes per range: a few hundred KB give a dozen ranges


def assert_same(expected, got):
    for t in TABLES:
        assert got[t].num_rows == expected[t].num_rows, t
        assert got[t].equals(expected[t]), f"{t} differs from --workers 1"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A generated export and a zip of small per-task files, with their --workers 1 tables."""
    d = tmp_path_factory.mktemp("inputs")
    gen.generate(d / "export.json", 600_000, seed=21)
    with zipfile.ZipFile(d / "tasks.zip", "w") as zf:
        for k in range(40):
            zf.writestr(f"t{k:02d}.json", json.dumps({"id": 10_000 + k, "data": {"k": k}}))
    inputs = [str(d / "export.json"), str(d / "tasks.zip")]
    convert(inputs, d / "expected", workers=1)
    return inputs, read_tables(d / "expected")


def part_count(out) -> int:
    return len(list((out / "tasks").glob("*.parquet")))


def test_dask_by_address_and_by_client_equals_one_worker(dask_cluster, export, tmp_path):
    from distributed import Client

    inputs, expected = export
    convert(inputs, tmp_path / "a", executor="dask", address=dask_cluster.address,
            range_bytes=RANGE)
    assert part_count(tmp_path / "a") >= 6, "the export was not split into ranges"
    assert_same(expected, read_tables(tmp_path / "a"))
    with Client(dask_cluster.address, set_as_default=False) as client:
        manifest = convert(inputs, tmp_path / "b", executor=client, range_bytes=RANGE).manifest
        assert client.status == "running"  # the caller's client is left open
    assert_same(expected, read_tables(tmp_path / "b"))
    tasks = json.loads(open(inputs[0], "rb").read())
    assert manifest["inputs"][0]["tasks"] == len(tasks) and manifest["inputs"][0]["files"] == 1
    assert manifest["inputs"][1]["files"] == 40


def test_dask_from_the_cli_with_relative_paths_and_the_env_address(dask_cluster, export,
                                                                  tmp_path, monkeypatch):
    """Workers run in other folders: the driver hands them absolute paths."""
    inputs, expected = export
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "in.json").symlink_to(inputs[0])
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_cluster.address)
    done = run_cli("convert", "in.json", "-o", "out", "--executor", "dask", "-q", cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    got = read_tables(work / "out")
    assert got["tasks"]["file"].to_pylist() == ["in.json"] * got["tasks"].num_rows
    n = json.loads((work / "out" / "_manifest.json").read_text())["rows"]["tasks"]
    assert n == len(json.loads(open(inputs[0], "rb").read()))


def test_dask_without_an_address_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    src = tmp_path / "a.json"
    src.write_text('[{"id": 1, "data": {}}]')
    done = run_cli("convert", str(src), "-o", str(tmp_path / "out"), "--executor", "dask")
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        "error: --executor dask needs the scheduler's address: --address tcp://host:8786 or "
        "DASK_SCHEDULER_ADDRESS"]
    assert not (tmp_path / "out" / "_manifest.json").exists()


@pytest.mark.slow
def test_ray_by_address_and_by_context_equals_one_worker(ray_cluster, export, tmp_path):
    import ray

    inputs, expected = export
    convert(inputs, tmp_path / "a", executor="ray", address=ray_cluster.address,
            range_bytes=RANGE)
    assert part_count(tmp_path / "a") >= 6
    assert_same(expected, read_tables(tmp_path / "a"))
    assert not ray.is_initialized()  # the connection convert opened is closed again
    ctx = ray.init(address=ray_cluster.address, _node_ip_address="127.0.0.1",
                   log_to_driver=False)
    try:
        convert(inputs, tmp_path / "b", executor=ctx, range_bytes=RANGE)
        # every Ray process, this driver's too, listens on loopback only
        pids = ray_cluster.group_pids() | {os.getpid()}
        assert clusters.not_on_loopback(pids) == []
    finally:
        ray.shutdown()
    assert_same(expected, read_tables(tmp_path / "b"))


def test_the_clusters_listen_on_loopback_only(dask_cluster, ray_cluster):
    pids = ray_cluster.group_pids() | dask_cluster.group_pids()
    assert len(pids) >= 5
    assert clusters.not_on_loopback(pids) == []


def test_a_dask_worker_killed_mid_job(dask_cluster, tmp_path):
    """SIGKILL one worker process as soon as the first part file appears: the scheduler
    reruns its jobs on the other worker (or the run fails cleanly); nothing partial is ever
    visible, the dead attempt's files are dropped, a rerun commits once."""
    from distributed import Client

    path = tmp_path / "export.json"
    gen.generate(path, 6_000_000, seed=22)
    convert([path], tmp_path / "expected", workers=1)
    expected = read_tables(tmp_path / "expected")
    with Client(dask_cluster.address, set_as_default=False) as client:
        victim = next(iter(client.run(os.getpid).values()))
    out = tmp_path / "out"
    killed = threading.Event()

    def kill_when_parts_appear() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if list(out.glob(".annostream/gen-*/tasks/*.parquet")):  # the run's stage
                os.kill(victim, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_parts_appear)
    killer.start()
    try:
        convert([path], out, executor="dask", address=dask_cluster.address,
                range_bytes=256 << 10)
    except AnnostreamError:  # failed cleanly: nothing visible, the rerun converts it all
        assert not (out / "_manifest.json").exists() and not list(out.glob("*/*.parquet"))
        convert([path], out, executor="dask", address=dask_cluster.address)
    finally:
        killer.join()
    assert killed.is_set()
    assert_same(expected, read_tables(out))
    manifest = json.loads((out / "_manifest.json").read_text())
    assert len(manifest["runs"]) == 1
    assert staging_left(out) == []
    with Client(dask_cluster.address, set_as_default=False) as client:
        clusters.wait_for(lambda: len(client.nthreads()) == 2, "the restarted worker")


# -- local processes: a failure in a worker never hangs the driver ---------------------------
POOL_SCRIPT = """
import os, signal, sys
from stream.errors import AnnostreamError, InputError
from stream.executors import Processes

def scan(k):  # a planning job that finds bad input (InputError: several constructor args)
    if k == 3:
        raise InputError("big.json", "truncated", 3, 4096)
    return k

def job(k):
    if k == 2 and sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # out of memory, or killed by an operator
    return k

def jobs(ex):  # as stream.parallel.plan: the jobs of each file planned by a nested map
    for f in range(3):
        yield from (10 * f + k for k in ex.map(scan if sys.argv[1] == "scan" else job, range(4)))

ex = Processes(2)
try:
    print(list(ex.map(job, jobs(ex))))
except AnnostreamError as exc:
    print(type(exc).__name__, exc)
finally:
    ex.close()
"""


@pytest.mark.parametrize("case", ["scan", "kill"])
def test_local_processes_report_a_worker_error_or_death_instead_of_hanging(case):
    """An InputError raised in a worker inside the nested planning map comes back whole; a
    worker process killed mid-job ends the run with one clear error. (multiprocessing.Pool
    hung on both: the error could not be unpickled, the killed job never returned.)"""
    r = subprocess.run([sys.executable, "-c", POOL_SCRIPT, case], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    if case == "scan":
        assert r.stdout.strip() == "InputError big.json: task 3 (near byte 4096): truncated"
    else:
        assert r.stdout.startswith("AnnostreamError a worker process died"), r.stdout


# -- a driver that dies takes its work with it -----------------------------------------------
DRIVER_SCRIPT = """
import sys
import stream
stream.convert([sys.argv[1]], sys.argv[2], executor=sys.argv[3], address=sys.argv[4],
               range_bytes=1)  # one job per file
"""


def stage_files(out) -> set[str]:
    return {str(p) for p in out.glob(".annostream/gen-*/*/*.parquet")}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_a_driver_killed_mid_job_stops_its_tasks(engine, dask_cluster, ray_cluster, tmp_path):
    """SIGKILL a `convert` driver while its cluster jobs run (one per file, far more than the
    workers): the engine drops the work of a client or driver that is gone, so within a few
    seconds no job writes a part file any more, most jobs never ran, and the cluster takes
    the next run as before."""
    cluster = dask_cluster if engine == "dask" else ray_cluster
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(120):
        gen.generate(folder / f"export-{k:03d}.json", 60_000, seed=300 + k)
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER_SCRIPT, str(folder), str(out),
                               engine, cluster.address], stderr=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    clusters.wait_for(lambda: len(stage_files(out)) >= 10 or driver.poll() is not None,
                      "the first jobs' parts")
    assert driver.poll() is None, driver.stderr.read().decode()
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 60
    settled, seen = time.monotonic(), stage_files(out)
    while time.monotonic() - settled < 8:  # 8 s without a new part file: nothing runs
        assert time.monotonic() < deadline, "jobs still write 60 s after their driver died"
        time.sleep(0.5)
        now = stage_files(out)
        if now != seen:
            settled, seen = time.monotonic(), now
    jobs = len(seen) // len(TABLES)
    assert jobs < 60, f"{jobs} of 120 jobs ran after their driver died"
    done = run_cli("convert", str(folder / "export-000.json"), "-o", str(tmp_path / "next"),
                   "--executor", engine, "--address", cluster.address)
    assert done.returncode == 0, done.stderr.decode()


GUARD_SCRIPT = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import local_clusters as c
os.environ.update(c.RAY_ENV)
cluster = (c.start_dask if sys.argv[2] == "dask" else c.start_ray)(Path(sys.argv[3]), 1)
print(" ".join(map(str, cluster.group_pids() | {cluster.watchdog.pid})), flush=True)
time.sleep(600)
"""


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":  # a zombie has stopped (its parent reaps it)
            out.add(pid)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_a_test_cluster_dies_with_the_process_that_started_it(engine, tmp_path):
    """scripts/local_clusters.py: the process that started a cluster SIGKILLed (a pytest run
    killed before its fixtures stop anything), the cluster's watchdog kills every process
    of it within seconds, and then exits itself."""
    starter = subprocess.Popen([sys.executable, "-c", GUARD_SCRIPT, str(ROOT / "scripts"),
                                engine, str(tmp_path / engine)], stdout=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    pids = set()
    try:
        pids = {int(p) for p in starter.stdout.readline().split()}
        assert len(pids) >= 3 and alive(pids) == pids
        starter.kill()
        starter.wait()
        clusters.wait_for(lambda: not alive(pids), "the cluster's end", timeout=60)
    finally:
        starter.kill()
        for pid in alive(pids):  # only if the watchdog failed: these are this test's
            os.kill(pid, signal.SIGKILL)


def test_the_default_is_one_worker_per_core_or_per_two_with_the_compiled_core(monkeypatch):
    """A worker of the compiled core keeps two threads busy (parsing, writing): on 2 cores two
    such workers were slower than one."""
    from stream.executors import default_workers
    from stream.formats import core
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv(core.ENGINE, "python")
    assert default_workers() == cores
    monkeypatch.delenv(core.ENGINE)
    assert default_workers() == (max(1, cores // 2) if core.annostream_core else cores)


THP_GET, THP_SET = 42, 41  # prctl: PR_GET_THP_DISABLE, PR_SET_THP_DISABLE


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
@pytest.mark.parametrize("disabled_before", [0, 1])
def test_huge_pages_are_off_while_converting_and_as_before_after(tmp_path, disabled_before):
    """The core's allocator asks for transparent huge pages, which fault in 2 MB at a time:
    a conversion turns them off for its process (and the workers it forks), then restores
    the caller's setting."""
    import ctypes

    from stream.executors import InProcess
    prctl = ctypes.CDLL(None).prctl
    seen = []

    class Watching(InProcess):  # the real in-process executor, noting the setting it ran with
        def map(self, fn, items):
            seen.append(prctl(THP_GET, 0, 0, 0, 0))
            return super().map(fn, items)

    old = prctl(THP_GET, 0, 0, 0, 0)
    try:
        assert prctl(THP_SET, disabled_before, 0, 0, 0) == 0
        convert([str(ROOT / "sample_data" / "labelstudio" / "single_task.json")],
                tmp_path / "out", executor=Watching())
        assert seen == [1]
        assert prctl(THP_GET, 0, 0, 0, 0) == disabled_before
    finally:
        prctl(THP_SET, old, 0, 0, 0)
