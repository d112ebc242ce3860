"""Shared test helpers: run the real converter and read the real Parquet it wrote."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream import convert
from stream.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"


def read_tables(out: Path) -> dict[str, pa.Table]:
    """Every table of a converted folder, read back from its Parquet parts."""
    return {t: pq.read_table(out / t) for t in TABLES}


def run_cli(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `annostream` command in a subprocess (python -m stream)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "stream", *args], input=input,
                          capture_output=True, cwd=cwd, env=env)


@pytest.fixture
def converted(tmp_path):
    """convert(inputs) -> tables, into a fresh folder per call."""
    counter = iter(range(1000))

    def run(*inputs, **kwargs) -> dict[str, pa.Table]:
        out = tmp_path / f"out{next(counter)}"
        convert([str(i) for i in inputs], out, **kwargs)
        return read_tables(out)

    return run


# -- real clusters on loopback, started once per session, stopped by their own process ids ----
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """A service in its own session: its pid is its process group, which holds every process
    it starts (Dask's nanny and worker, Ray's GCS, raylet and workers)."""
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, stdin=subprocess.DEVNULL)


def _stop(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM to each group we started, then SIGKILL to what is left of it."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _wait_for(check, what: str, log: Path, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start in {timeout:g}s:\n{log.read_text()[-3000:]}")


def listening_pids_not_on_loopback(pids: set[int]) -> list[str]:
    """Sockets that the given processes listen on, on an address other than loopback."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    bad = []
    for line in out.splitlines():
        local = line.split()[3]
        host = local.rsplit(":", 1)[0].strip("[]")
        if host in ("127.0.0.1", "::ffff:127.0.0.1", "::1"):
            continue
        if any(f"pid={pid}," in line for pid in pids):
            bad.append(line)
    return bad


def group_pids(leader: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return {int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == leader}


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory) -> Iterator[DaskCluster]:
    """A distributed scheduler and two worker processes (1 thread each), TCP on 127.0.0.1."""
    pytest.importorskip("distributed", reason="make test installs the dask extra")
    d = tmp_path_factory.mktemp("dask")
    log = d / "cluster.log"
    port = free_port()
    env = dict(os.environ, DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__GIL__ENABLED="False")
    procs = [_start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                     str(port), "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                     "--no-show"], log, env)]
    address = f"tcp://127.0.0.1:{port}"
    try:
        for i in range(2):
            procs.append(_start([str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                                 "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                 "--dashboard-address", "127.0.0.1:0",
                                 "--name", f"w{i}", "--local-directory", str(d / f"w{i}")],
                                log, env))
        cluster = DaskCluster(address, procs[0], procs[1:])
        with cluster.client() as client:
            _wait_for(lambda: len(client.nthreads()) == 2, "the Dask cluster", log)
        yield cluster
    finally:
        _stop(procs[::-1])


@dataclass
class RayCluster:
    address: str
    head: subprocess.Popen


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> Iterator[RayCluster]:
    """A one-node Ray cluster with 2 CPUs on 127.0.0.1: every port pinned, no dashboard, no
    usage stats. Ray swaps 127.0.0.1 for the machine's address unless it is told it is not
    clustering (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes it keep loopback)."""
    os.environ.update(RAY_ENV)  # before Ray is imported here: it reads them then
    pytest.importorskip("ray", reason="make test installs the ray extra")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    log = tmp_path_factory.mktemp("ray") / "cluster.log"
    ports = [free_port() for _ in range(8)]
    base = 20000 + os.getpid() % 20000  # worker ports: a range no other service uses here
    env = dict(os.environ, **RAY_ENV)
    head = _start([str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address",
                   "127.0.0.1", "--port", str(ports[0]), "--num-cpus", "2",
                   "--include-dashboard", "false", "--dashboard-host", "127.0.0.1",
                   "--disable-usage-stats", "--temp-dir", str(temp),
                   "--node-manager-port", str(ports[1]), "--object-manager-port", str(ports[2]),
                   "--dashboard-agent-listen-port", str(ports[3]),
                   "--dashboard-agent-grpc-port", str(ports[4]),
                   "--runtime-env-agent-port", str(ports[5]),
                   "--metrics-export-port", str(ports[6]),
                   "--min-worker-port", str(base), "--max-worker-port", str(base + 60),
                   "--object-store-memory", str(200 << 20)], log, env)
    address = f"127.0.0.1:{ports[0]}"
    try:
        _wait_for(lambda: "--block" in log.read_text() or head.poll() is not None,
                  "the Ray cluster", log)
        if head.poll() is not None:
            raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
        yield RayCluster(address, head)
    finally:
        _stop([head], grace=3)  # its leader waits long on a GCS that is gone
        shutil.rmtree(temp, ignore_errors=True)


# Ray in this process (the drivers tests start) and in the clusters: loopback, no usage stats
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
