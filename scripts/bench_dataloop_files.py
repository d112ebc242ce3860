"""Dataloop conversion speed and peak memory: many small files, or one big NDJSON.

    .venv/bin/python scripts/bench_dataloop_files.py --files 10000 [--profile]
    .venv/bin/python scripts/bench_dataloop_files.py --ndjson-mb 2000

--files: N one-item JSON files (json/<dir>/<item>.json, as an unpacked export zip) in a temp
folder; prints files/s (the per-file overhead) and the child's peak RSS, so runs with
different N show whether memory grows with the number of files.
--ndjson-mb: one gzip NDJSON partition of about that many MB (uncompressed) of the sample
image and video items (the item id varied per line), written as a stream; prints MB/s and
peak RSS, so runs at different sizes show whether memory grows with the export.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
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
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, m.rows["tasks"])
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


def write_ndjson(path: Path, mb: int) -> tuple[int, int]:
    """About `mb` MB of item lines, gzip-compressed; returns (lines, uncompressed bytes)."""
    templates = [json.dumps(t(), separators=(",", ":")) for t in (samples.image_item, samples.video_item)]
    ids = [json.loads(t)["id"] for t in templates]
    lines = size = 0
    with gzip.open(path, "wt", compresslevel=1) as f:
        while size < mb * 1_000_000:
            k = lines % 2
            line = templates[k].replace(ids[k], f"{lines:024x}") + "\n"
            f.write(line)
            lines, size = lines + 1, size + len(line)
    return lines, size


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
    ap.add_argument("--ndjson-mb", type=int, help="bench one NDJSON partition of this size instead")
    ap.add_argument("--batch-rows", type=int, default=65536)
    ap.add_argument("--profile", action="store_true", help="print the child's top functions")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.ndjson_mb:
            path = Path(tmp, "part-00000.ndjson.gz")
            lines, size = write_ndjson(path, args.ndjson_mb)
            seconds, rss_kb, tasks = run(path, Path(tmp, "out"), args.batch_rows, args.profile)
            assert tasks == lines, (tasks, lines)
            print(f"converted {lines:,} items, {size / 1e6:,.0f} MB ({path.stat().st_size / 1e6:,.0f} MB "
                  f"gzip) in {seconds:.1f}s: {size / 1e6 / seconds:.1f} MB/s, peak RSS {rss_kb / 1024:.0f} MB")
            return
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
