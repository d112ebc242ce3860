#!/usr/bin/env python3
"""Peak RSS of queries over converted datasets of growing size: it should stay flat.

For each size, a seeded export is generated (scripts/generate_export.py) and converted, then
each query below runs as its own `annostream query` process, whose peak RSS is read with
os.wait4 (the child's own rusage, not the maximum over all children):

  csv      SELECT region_id, x FROM results            printed as CSV to /dev/null (streamed)
  parquet  the same, --output to a Parquet file        (DuckDB COPY, no rows in Python)
  count    SELECT type, count(*) FROM results GROUP BY type   (an aggregate, for reference)

    python scripts/bench_query.py --sizes 200MB 2GB --replicate 10 --workdir /tmp/bq

--replicate N adds a dataset whose `results` are the largest one's part file hard-linked N
times: N times the rows for DuckDB to scan, without generating and converting N times the
export (the other tables stay as they are). Datasets are cached in --workdir by size and seed,
so a rerun only measures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
QUERIES = {
    "csv": ("--format", "csv", "SELECT region_id, x FROM results"),
    "parquet": ("--output", "{tmp}/subset.parquet", "SELECT region_id, x FROM results"),
    "count": ("--format", "csv", "SELECT type, count(*) FROM results GROUP BY type"),
}


def dataset(workdir: Path, size: str, seed: int) -> Path:
    """Generate and convert an export of `size` once; returns the converted folder."""
    out = workdir / f"out-{size}-{seed}"
    if (out / "_manifest.json").exists():
        return out
    export = workdir / f"export-{size}-{seed}.json"
    subprocess.run([PYTHON, str(ROOT / "scripts" / "generate_export.py"), "--size", size,
                    "--seed", str(seed), "-o", str(export)], check=True)
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([PYTHON, "-m", "stream", "convert", "-q", str(export), "-o", str(out)],
                   check=True, cwd=ROOT)
    export.unlink()
    return out


def replicate(out: Path, n: int) -> Path:
    """`out` with its results parts hard-linked n times (a dataset n times as long)."""
    rep = out.with_name(f"{out.name}-x{n}")
    if not rep.exists():
        for table in out.iterdir():
            if table.is_dir() and not table.name.startswith("."):
                (rep / table.name).mkdir(parents=True)
                for i in range(n if table.name == "results" else 1):
                    for part in table.glob("*.parquet"):
                        os.link(part, rep / table.name / f"{i}-{part.name}")
        manifest = json.loads((out / "_manifest.json").read_text())
        manifest["rows"]["results"] *= n
        (rep / "_manifest.json").write_text(json.dumps(manifest))
    return rep


def measure(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one command, stdout discarded."""
    t0 = time.monotonic()
    with open(os.devnull, "wb") as devnull:
        p = subprocess.Popen(args, stdout=devnull, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}")
    return time.monotonic() - t0, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["100MB", "1GB"],
                    help="Export sizes to generate (generate_export.py --size).")
    ap.add_argument("--replicate", type=int, metavar="N",
                    help="Also measure the largest dataset with its results linked N times.")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, help="Where datasets are built (default: a temp dir).")
    ap.add_argument("--keep", action="store_true", help="Keep the datasets for a rerun.")
    a = ap.parse_args()
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="bench-query-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        print(f"{'export':>10} {'parquet MB':>10} {'results rows':>13} {'query':>8} "
              f"{'seconds':>8} {'peak RSS MB':>11}")
        runs = [(size, dataset(workdir, size, a.seed)) for size in a.sizes]
        if a.replicate:
            runs.append((f"{a.sizes[-1]}x{a.replicate}", replicate(runs[-1][1], a.replicate)))
        for size, out in runs:
            rows = json.loads((out / "_manifest.json").read_text())["rows"]["results"]
            mb = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1e6
            for name, q in QUERIES.items():
                argv = [PYTHON, "-m", "stream", "query", str(out),
                        *(x.format(tmp=workdir) for x in q)]
                secs, rss = measure(argv)
                print(f"{size:>10} {mb:>10,.0f} {rows:>13,} {name:>8} {secs:>8.1f} {rss:>11,.0f}",
                      flush=True)
            (workdir / "subset.parquet").unlink(missing_ok=True)
    finally:
        if a.workdir is None and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif a.workdir is None:
            print(f"datasets kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
