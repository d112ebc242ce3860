"""Per-file overhead of converting a folder of many small Dataloop item files.

    .venv/bin/python scripts/bench_dataloop_files.py --files 10000 [--profile]

Writes N one-item JSON files (json/<dir>/<item>.json, as an unpacked export zip) into a temp
folder, converts it in a child process and prints files/s and the child's peak RSS, so runs
with different N show whether memory grows with the number of files.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("samples", ROOT / "scripts" / "make_dataloop_samples.py")
samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(samples)

CHILD = """
import sys, time, resource
from stream import convert
t0 = time.perf_counter()
m = convert([sys.argv[1]], sys.argv[2], batch_rows=int(sys.argv[3]))
dt = time.perf_counter() - t0
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, m["rows"]["tasks"])
"""


def write_items(folder: Path, n: int) -> int:
    """n item files in 100 dataset folders; returns their total size in bytes."""
    size = 0
    for k in range(n):
        obj = samples.simple_image(k, f"set_{k % 100:02d}")
        path = folder / "json" / f"set_{k % 100:02d}" / f"img_{k:06d}.jpg.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(obj, indent=2)
        path.write_text(text)
        size += len(text)
    return size


def run(folder: Path, out: Path, batch_rows: int, profile: bool) -> tuple[float, int, int]:
    cmd = [sys.executable, "-c", CHILD, str(folder), str(out), str(batch_rows)]
    if profile:
        cmd = [sys.executable, "-c", "import cProfile, sys; sys.argv = sys.argv[1:]; "
               f"cProfile.run({CHILD!r}, sort='tottime')", "x", str(folder), str(out), str(batch_rows)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    if profile:
        print("\n".join(proc.stdout.splitlines()[1:40]))
    seconds, rss_kb, tasks = proc.stdout.split("\n")[0].split()
    return float(seconds), int(rss_kb), int(tasks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--batch-rows", type=int, default=65536)
    ap.add_argument("--profile", action="store_true", help="print the child's top functions")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "export")
        t0 = time.perf_counter()
        size = write_items(folder, args.files)
        print(f"wrote {args.files} files, {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f}s")
        seconds, rss_kb, tasks = run(folder, Path(tmp, "out"), args.batch_rows, args.profile)
        assert tasks == args.files, (tasks, args.files)
        print(f"converted {tasks} files in {seconds:.2f}s: {tasks / seconds:,.0f} files/s, "
              f"{seconds / tasks * 1e6:.0f} us/file, peak RSS {rss_kb / 1024:.0f} MB")


if __name__ == "__main__":
    main()
