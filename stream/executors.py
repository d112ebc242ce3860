"""Who runs a conversion's jobs: this process, local processes, a Dask or a Ray cluster.

A conversion is planned once (stream/parallel.py) and its jobs handed to one executor, which
only maps a module-level function over picklable jobs and gives the results back in order.
One worker in this process is an executor like the others, so there is one path; adding an
engine (Spark, ...) is one more small class here.

Workers read the inputs where they are (paths the driver resolved to absolute ones) and write
their part files under the output's staging folder: on a cluster both must be on storage
every machine sees. The driver commits once, keeping only the files of the attempts whose
results it received, so a worker that dies and is retried by its engine leaves nothing.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import AnnostreamError
from .formats import core

EXECUTORS = ("local", "dask", "ray")
RETRIES = 3  # engine-level reruns of a job whose worker died


class Executor:
    """Runs `fn` over items, results in item order. `parallelism`: how many jobs run at once
    (the plan splits big files for it); `ships`: items are pickled to other processes."""

    parallelism = 1
    ships = False

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        return map(fn, items)

    def close(self) -> None:
        """Release what this executor started (pools, connections it opened)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(Executor):
    """One worker: the jobs run here, one after the other (standard input can be read)."""


class Processes(Executor):
    """Local worker processes (forked where the platform can). A worker that dies (killed,
    out of memory) or a result that cannot come back ends the run with a clear error: the
    pool sees it (concurrent.futures marks itself broken), where multiprocessing.Pool
    waited forever for the lost task."""

    ships = True

    def __init__(self, workers: int) -> None:
        self.parallelism = workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        items = list(items)
        if len(items) < 2:  # nothing to share out: no pool to start
            return map(fn, items)
        if self._pool is None:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.parallelism, mp.get_context(method),
                                             _die_with_parent, (os.getpid(),))
        return self._results([self._pool.submit(fn, item) for item in items])

    def _results(self, futures: list[Future]) -> Iterator:
        try:
            for f in futures:
                yield f.result()
        except BrokenProcessPool as exc:
            self._pool = None  # a broken pool takes no more work
            raise AnnostreamError(f"a worker process died (killed, or out of memory?): {exc}; "
                                  "nothing of this run was committed") from exc
        finally:  # a failed job ends the run: the jobs not started need not start
            for f in futures:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()  # jobs still running after a failure are not waited for
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _die_with_parent(parent: int) -> None:
    """A local worker is killed when its parent dies (a SIGKILL included), instead of
    converting on into a stage nobody will commit and failing on a broken pipe."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Dask(Executor):
    """Tasks on a Dask distributed cluster; a worker that dies has its tasks rerun elsewhere
    by the scheduler (its `allowed-failures`)."""

    ships = True

    def __init__(self, client: Any, own: bool = False) -> None:
        self.client, self._own = client, own
        self.parallelism = max(1, sum(client.nthreads().values()))

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        futures = self.client.map(fn, list(items), pure=False)
        done = 0
        try:
            for f in futures:
                yield f.result()
                done += 1
        finally:  # a failed job ends the run: the others need not go on
            if done < len(futures):
                self.client.cancel(futures[done:])

    def close(self) -> None:
        if self._own:
            self.client.close()


class Ray(Executor):
    """Ray tasks; a task whose worker dies is retried by Ray (`max_retries`)."""

    ships = True

    def __init__(self, own: bool = False) -> None:
        import ray

        self.ray, self._own = ray, own
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        remote = self.ray.remote(fn).options(max_retries=RETRIES, num_cpus=1)
        refs = [remote.remote(item) for item in items]
        done = 0
        try:
            for ref in refs:
                result = self.ray.get(ref)
                done += 1  # before the yield: a consumer that stops there (zip does) closes
                yield result  # the generator at it, and this task has finished
        finally:  # only tasks not finished: cancelling a finished one crashes Ray's driver
            # (a RAY_CHECK in its task manager: "Tried to complete task that was not pending")
            for ref in refs[done:]:
                self.ray.cancel(ref)

    def close(self) -> None:
        if self._own:
            self.ray.shutdown()


def default_workers() -> int:
    """Worker processes for the cores this process may use: one per core, or one per two
    with the compiled core, whose workers keep two threads busy (one parses, the other
    writes what was parsed before: stream/formats/core.py). On 2 cores, 2 such workers
    converted 1 GB in 5.1 s, one in 4.1 s."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // 2) if core.enabled() else cores


def executor_for(executor: Any = None, address: str | None = None,
                 workers: int | None = None) -> Executor:
    """An Executor from what the caller has: an Executor, a `distributed.Client`, a Ray
    context (what `ray.init()` returned), or a name: 'local' (`workers` processes, default
    `default_workers()`; one runs in this process), 'dask' (`address` or
    DASK_SCHEDULER_ADDRESS), 'ray' (`address` or RAY_ADDRESS: 'auto', host:port,
    ray://host:10001)."""
    if isinstance(executor, Executor):
        return executor
    kind = type(executor).__module__.split(".")[0]
    if kind == "distributed":
        return Dask(executor)
    if kind == "ray":
        return Ray()
    if executor in (None, "local"):
        n = default_workers() if workers is None else workers
        return InProcess() if n < 2 else Processes(n)
    if executor == "dask":
        return _dask(address or os.environ.get("DASK_SCHEDULER_ADDRESS"))
    if executor == "ray":
        return _ray(address or os.environ.get("RAY_ADDRESS"))
    raise AnnostreamError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}, "
                          "an Executor, a distributed.Client or a Ray context")


def _dask(address: str | None) -> Dask:
    try:
        from distributed import Client
    except ImportError:
        raise AnnostreamError("--executor dask needs Dask: "
                              "pip install 'annostream[dask]'") from None
    if not address:
        raise AnnostreamError("--executor dask needs the scheduler's address: --address "
                              "tcp://host:8786 or DASK_SCHEDULER_ADDRESS")
    try:
        return Dask(Client(address, timeout=30, set_as_default=False), own=True)
    except (OSError, TimeoutError) as exc:
        raise AnnostreamError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc


def _ray(address: str | None) -> Ray:
    host = urllib.parse.urlsplit(address if address and "://" in address
                                 else f"//{address}").hostname
    if host in ("127.0.0.1", "localhost") and "ray" not in sys.modules:
        # a cluster on this machine's loopback: Ray would swap 127.0.0.1 for the machine's
        # address (read when Ray is imported) unless told it is not clustering
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise AnnostreamError("--executor ray needs Ray: pip install 'annostream[ray]'") from None
    if not address:
        raise AnnostreamError("--executor ray needs the cluster's address: --address "
                              "auto|host:6379|ray://host:10001 or RAY_ADDRESS")
    kwargs: dict = {"log_to_driver": False, "configure_logging": False}
    if host in ("127.0.0.1", "localhost"):  # else Ray picks the machine's address for us
        kwargs["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise AnnostreamError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    return Ray(own=True)
