#!/usr/bin/env python3
"""Real Dask and Ray clusters on this machine's loopback, for the tests and the benchmarks.

Each service runs in its own session, so its pid is its process group, which holds every
process it starts (Dask's nanny and worker, Ray's GCS, raylet and workers): it is stopped by
that id alone, never by name (`ray stop` would stop every Ray cluster on the machine).
Every port is pinned to 127.0.0.1; `not_on_loopback` checks it with `ss`.

    python scripts/local_clusters.py   # start both, print their addresses, stop on Enter
"""
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
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
# Ray reads these when it is imported (in every process of a cluster and in a driver): no
# usage stats, and keep 127.0.0.1 as the node's address (Ray otherwise swaps it for the
# machine's address, and listens there).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1 (held open together while picked)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def cluster_pids(leaders: set[int]) -> set[int]:
    """Every process of a cluster now: the members of its process groups (led by `leaders`)
    and their descendants (Ray's raylet starts its workers in sessions of their own)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid="], capture_output=True,
                         text=True).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines()]
    found = {pid for pid, _, pgid in rows if pgid in leaders}
    while True:
        more = {pid for pid, ppid, _ in rows if ppid in found} - found
        if not more:
            return found
        found |= more


# The watchdog of a cluster: a small process that kills the cluster (every process of its
# groups and their descendants) when the process that started the cluster dies, even by
# SIGKILL (a pytest run or a benchmark killed, or interrupted before its cleanup). It reads
# the group leaders' pids from its standard input and polls its parent; stopped by its pid.
WATCHDOG = """
import os, signal, sys, threading, time
sys.path.insert(0, sys.argv[2])
from local_clusters import cluster_pids
parent, leaders = int(sys.argv[1]), set()
def read():
    for line in sys.stdin:
        leaders.add(int(line))
threading.Thread(target=read, daemon=True).start()
while os.getppid() == parent:
    time.sleep(0.5)
for pid in cluster_pids(leaders):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


@dataclass
class Cluster:
    """A running cluster: its address and the process groups that make it up, guarded by a
    watchdog (WATCHDOG) that kills them if the process that started them dies first."""

    address: str
    procs: list[subprocess.Popen]
    log: Path
    temp: Path | None = None
    grace: float = 10.0
    pids: set[int] = field(default_factory=set)
    watchdog: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(Path(__file__).parent)],
            stdin=subprocess.PIPE, text=True, start_new_session=True)
        for p in self.procs:
            self.guard(p)

    def guard(self, proc: subprocess.Popen) -> None:
        """Tell the watchdog about a process group of the cluster."""
        assert self.watchdog is not None and self.watchdog.stdin is not None
        self.watchdog.stdin.write(f"{proc.pid}\n")
        self.watchdog.stdin.flush()

    def group_pids(self) -> set[int]:
        """Every process of the cluster now (see cluster_pids)."""
        return cluster_pids({p.pid for p in self.procs})

    def stop(self) -> None:
        """SIGTERM to each group, then SIGKILL to what is left of it after `grace` seconds;
        then the watchdog, by its pid."""
        for p in self.procs[::-1]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for p in self.procs[::-1]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog.stdin.close()
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, stdin=subprocess.DEVNULL)


def wait_for(check, what: str, log: Path | None = None, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} did not start in {timeout:g}s\n{tail}")


def start_dask(folder: Path, workers: int = 2, env: dict | None = None) -> Cluster:
    """A distributed scheduler and `workers` worker processes (one thread each), TCP on
    127.0.0.1, dashboards off (their HTTP servers pinned to loopback too); `env`: more
    environment for its processes (the workers' object-storage credentials)."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "dask.log"
    port, = free_ports(1)
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, **(env or {}))
    procs = [_start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--no-show"],
                    log, env)]
    cluster = Cluster(address, procs, log)
    try:
        for i in range(workers):
            procs.append(_start([str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                                 "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                 "--dashboard-address", "127.0.0.1:0", "--name", f"w{i}",
                                 "--local-directory", str(folder / f"w{i}")], log, env))
            cluster.guard(procs[-1])
        with Client(address, timeout=60, set_as_default=False) as client:
            wait_for(lambda: len(client.nthreads()) == workers, "the Dask cluster", log)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_ray(folder: Path, cpus: int = 2, env: dict | None = None) -> Cluster:
    """A one-node Ray cluster with `cpus` CPUs on 127.0.0.1: every port pinned, no dashboard,
    no usage stats; `env` as for `start_dask`."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "ray.log"
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    ports = free_ports(7)
    # worker ports: below the kernel's ephemeral range (where free_port picks) and above
    # Ray's default 10002-19999 (another cluster on the machine may use those)
    base = 20000 + (os.getpid() % 150) * 64
    env = dict(os.environ, **RAY_ENV, **(env or {}))
    head = _start([str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address",
                   "127.0.0.1", "--port", str(ports[0]), "--num-cpus", str(cpus),
                   "--include-dashboard", "false", "--dashboard-host", "127.0.0.1",
                   "--disable-usage-stats", "--temp-dir", str(temp),
                   "--node-manager-port", str(ports[1]), "--object-manager-port", str(ports[2]),
                   "--dashboard-agent-listen-port", str(ports[3]),
                   "--dashboard-agent-grpc-port", str(ports[4]),
                   "--runtime-env-agent-port", str(ports[5]),
                   "--metrics-export-port", str(ports[6]),
                   "--min-worker-port", str(base), "--max-worker-port", str(base + 60),
                   "--object-store-memory", str(200 << 20)], log, env)
    # its leader waits long on a GCS that is gone when stopped: little grace
    cluster = Cluster(f"127.0.0.1:{ports[0]}", [head], log, temp, grace=3.0)
    try:
        wait_for(lambda: "--block" in log.read_text() or head.poll() is not None,
                 "the Ray cluster", log)
        if head.poll() is not None:
            raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def not_on_loopback(pids: set[int]) -> list[str]:
    """`ss` lines of sockets the given processes listen on at a non-loopback address."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    bad = []
    for line in out.splitlines():
        host = line.split()[3].rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "::ffff:127.0.0.1", "::1") and any(
                f"pid={pid}," in line for pid in pids):
            bad.append(line)
    return bad


if __name__ == "__main__":
    os.environ.update(RAY_ENV)
    root = Path(tempfile.mkdtemp(prefix="annostream-clusters-"))
    dask, ray = start_dask(root), start_ray(root)
    try:
        print(f"DASK_SCHEDULER_ADDRESS={dask.address}\nRAY_ADDRESS={ray.address}")
        input("Enter stops both clusters ")
    finally:
        dask.stop()
        ray.stop()
