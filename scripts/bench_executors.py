#!/usr/bin/env python3
"""Wall time and CPU-seconds of one conversion on each executor, at 1 and 2 workers.

The same inputs (one big generated export, and a folder of several smaller ones) are
converted by `annostream convert` with `--executor local` (processes), `dask` (a scheduler
and N worker processes, 1 thread each) and `ray` (one node with N CPUs); the clusters run on
127.0.0.1 (scripts/local_clusters.py) and are started before the clock starts. CPU-seconds
are the driver's (with the local processes it reaped, from os.wait4) plus what every process
of the cluster used meanwhile (/proc/<pid>/stat, sampled: see ClusterCPU). Prints a Markdown
table.

    python scripts/bench_executors.py --size 1GB --exports 20 --export-size 10MB
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = _load("generate_export")
clusters = _load("local_clusters")
TICK = os.sysconf("SC_CLK_TCK")


def size_arg(text: str) -> int:
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9}
    for u, f in units.items():
        if text.upper().endswith(u):
            return int(float(text[:-2]) * f)
    return int(text)


def cpu_times(pids: set[int]) -> dict[int, float]:
    """CPU-seconds used so far by each of these processes and the children it reaped."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[pid] = sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
    return out


class ClusterCPU:
    """CPU-seconds a cluster's processes use during a run, sampled every `every` seconds:
    Ray starts worker processes for a job and ends them when its driver leaves, and their
    time is not always added to a parent's counters, so every process seen is followed
    from its first sample (a process new since the start counts from zero) to its last."""

    def __init__(self, cluster, every: float = 0.25) -> None:
        self.cluster, self.every = cluster, every
        self.first = cpu_times(cluster.group_pids()) if cluster else {}
        self.last = dict(self.first)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.cluster and not self.stop.wait(self.every):
            self.last.update(cpu_times(self.cluster.group_pids()))

    def seconds(self) -> float:
        self.stop.set()
        self.thread.join()
        if self.cluster:
            self.last.update(cpu_times(self.cluster.group_pids()))
        return sum(t - self.first.get(pid, 0.0) for pid, t in self.last.items())


def run(inputs: list[Path], out: Path, executor: str, address: str | None, workers: int,
        cluster) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "stream", "convert", *map(str, inputs), "-o", str(out), "-q",
           "--executor", executor, "--workers", str(workers)]
    if address:
        cmd += ["--address", address]
    cpu = ClusterCPU(cluster)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    driver = usage.ru_utime + usage.ru_stime
    workers_cpu = cpu.seconds()
    rows = json.loads((out / "_manifest.json").read_text())["rows"]
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "driver": driver, "cluster": workers_cpu, "tasks": rows["tasks"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=size_arg, default=size_arg("1GB"))
    ap.add_argument("--exports", type=int, default=20)
    ap.add_argument("--export-size", type=size_arg, default=size_arg("10MB"))
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "annostream-bench")
    ap.add_argument("--engines", default="local,dask,ray")
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    os.environ.update(clusters.RAY_ENV)
    args.data.mkdir(parents=True, exist_ok=True)
    big = args.data / f"export-{args.size}.json"
    if not big.exists():
        gen.generate(big, args.size, seed=1)
    folder = args.data / f"exports-{args.exports}x{args.export_size}"
    if not folder.exists():
        tmp = folder.with_suffix(".tmp")
        tmp.mkdir(exist_ok=True)
        for k in range(args.exports):
            gen.generate(tmp / f"project-{k:02d}.json", args.export_size, seed=100 + k)
        tmp.rename(folder)
    workloads = {f"1 export, {big.stat().st_size / 1e6:,.0f} MB": [big],
                 f"{args.exports} exports, {sum(p.stat().st_size for p in folder.iterdir()) / 1e6:,.0f} MB": [folder]}
    rows = []
    for engine in args.engines.split(","):
        for n in map(int, args.workers.split(",")):
            cluster = None
            if engine == "dask":
                cluster = clusters.start_dask(args.data / "dask", workers=n)
            elif engine == "ray":
                cluster = clusters.start_ray(args.data / "ray", cpus=n)
            try:
                for name, inputs in workloads.items():
                    r = run(inputs, args.data / "out", engine,
                            cluster.address if cluster else None, n, cluster)
                    rows.append((name, engine, n, r))
                    print(f"{name} | {engine} {n}: {r}", file=sys.stderr, flush=True)
            finally:
                if cluster:
                    cluster.stop()
    print("| workload | executor | workers | wall s | CPU s (driver + workers) | "
          "speed-up vs 1 worker |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, engine, n, r in sorted(rows, key=lambda x: (x[0], x[1], x[2])):
        one = next((o for w, e, k, o in rows if w == name and e == engine and k == 1), None)
        speed = f"{one['wall'] / r['wall']:.2f}" if one else "-"
        print(f"| {name} | {engine} | {n} | {r['wall']:.1f} | "
              f"{r['driver'] + r['cluster']:.1f} ({r['driver']:.1f} + {r['cluster']:.1f}) | "
              f"{speed} |")
    print("\nAmdahl fit from the 1- and 2-worker runs (t1 = s + p, t2 = s + p/2): serial s, "
          "parallel p, and the speed-up it predicts on N workers")
    print("| workload | executor | serial s | parallel s | N=4 | N=8 | N=16 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in workloads:
        for engine in args.engines.split(","):
            t = {k: r["wall"] for w, e, k, r in rows if w == name and e == engine}
            if 1 in t and 2 in t:
                par = max(0.0, 2 * (t[1] - t[2]))
                ser = max(0.0, t[1] - par)
                pred = [t[1] / (ser + par / n) for n in (4, 8, 16)]
                print(f"| {name} | {engine} | {ser:.1f} | {par:.1f} | "
                      + " | ".join(f"{x:.1f}" for x in pred) + " |")
    tasks = {(w, r["tasks"]) for w, _, _, r in rows}
    print(f"\n(same task count for every executor: {len(tasks) == len(workloads)})")


if __name__ == "__main__":
    main()
