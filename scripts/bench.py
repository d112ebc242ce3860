#!/usr/bin/env python3
"""Throughput and memory of `annostream convert` next to its peers, on the same files, in one run.

    .venv/bin/python scripts/bench.py                      # 200MB and 1GB, 3 repeats
    .venv/bin/python scripts/bench.py --size 50MB --repeat 1 --dataloop-files 2000

Inputs are generated once under bench_data/ (gitignored) with scripts/generate_export.py
(seed 1) and reused. Every case runs as its own process and is measured from outside: wall
time, CPU time (user + system, its reaped children included) and peak RSS (the largest single
process: for a parallel conversion, the largest worker), from os.wait4. Cases run interleaved,
`--repeat` times; the table shows medians, and each ratio is the median of the per-repeat
ratios (pairs measured moments apart share the machine's noise).

Cases on each Label Studio export: `cat` (I/O floor), bare `ijson.items(f, "item",
use_float=True)` iteration (the parse ceiling of an ijson reader), `annostream convert` with
--workers 1, with the default (all cores: one worker per two cores with the compiled core, one
per core without it) and with one worker per core, both with the compiled core (core/, when
built) and with ANNOSTREAM_ENGINE=python (the pure-Python reader), DuckDB's results-level query written to Parquet
at its defaults, and the Label Studio SDK converter to JSON_MIN when `label_studio_sdk` is
importable. Once per run: a folder of Dataloop item files, and a file holding one big task.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench_data"
PY = sys.executable
ALL = "annostream all cores"  # the default --workers

IJSON = """
import sys, ijson
with open(sys.argv[1], "rb") as f:
    for _ in ijson.items(f, "item", use_float=True):
        pass
"""
DUCKDB = """
import sys, duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute(f'''COPY (
    SELECT t.id AS task_id, a.id AS annotation_id, r.id AS region_id, r.type, r.from_name,
           r.to_name, r.origin, r.value
    FROM read_json('{sys.argv[1]}', format = 'array') t, unnest(t.annotations) AS u(a),
         unnest(a.result) AS v(r)
) TO '{sys.argv[2]}' (FORMAT parquet)''')
"""
# The SDK needs the labeling config the results were made with: these are the controls
# scripts/generate_export.py uses.
SDK = """
import sys
from label_studio_sdk.converter import Converter
CONFIG = '''<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Road"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Nose"/></KeyPointLabels>
  <TextArea name="region_text" toName="image" perRegion="true"/>
  <Choices name="quality" toName="image"><Choice value="Good"/></Choices>
  <Text name="text" value="$text"/>
  <Labels name="label" toName="text"><Label value="PER"/></Labels>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/></Choices>
  <Choices name="topic" toName="text"><Choice value="Sports"/></Choices>
  <Taxonomy name="place" toName="text"><Choice value="Europe"/></Taxonomy>
  <Rating name="stars" toName="text"/>
  <Number name="confidence" toName="text"/>
  <TextArea name="comment" toName="text"/>
  <DateTime name="when" toName="text" only="date"/>
  <Video name="video" value="$video"/>
  <VideoRectangle name="box" toName="video"/>
</View>'''
Converter(config=CONFIG, project_dir=None, download_resources=False).convert_to_json_min(
    sys.argv[1], sys.argv[2], is_dir=False)
"""


def parse_size(text: str) -> int:
    units = {"KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9}
    for unit, factor in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def label(n: int) -> str:
    return f"{n / 1e9:g}GB" if n >= 1e9 else f"{n / 1e6:g}MB"


def generate(args: list[str], done: Path) -> None:
    """Run the project's generator unless its output is already there."""
    if done.exists():
        return
    print(f"generating {done.name} ...", file=sys.stderr, flush=True)
    subprocess.run([PY, str(ROOT / "scripts" / "generate_export.py"), *args], check=True)


def dataloop_folder(files: int) -> Path:
    """A folder of `files` one-item Dataloop JSON files, as an unpacked export zip."""
    folder = DATA / f"dataloop_{files}"
    if (folder / ".complete").exists():
        return folder
    spec = importlib.util.spec_from_file_location(
        "samples", ROOT / "scripts" / "make_dataloop_samples.py")
    samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(samples)
    shutil.rmtree(folder, ignore_errors=True)
    for k in range(files):
        item = samples.simple_image(k, f"set_{k % 50:02d}")
        path = folder / "json" / f"set_{k % 50:02d}" / f"img_{k:06d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(item))
    (folder / ".complete").touch()
    return folder


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.json"))


def measure(cmd: list[str], scratch: Path) -> dict:
    """One run of `cmd` in its own process: wall and CPU seconds, peak RSS in MB."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        return {"error": err.decode(errors="replace").strip().splitlines()[-1:]}
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def sdk_available() -> bool:
    return subprocess.run([PY, "-c", "import label_studio_sdk.converter"],
                          capture_output=True).returncode == 0


def cases(path: Path, scratch: Path, sdk: bool) -> dict[str, list[str]]:
    out = str(scratch / "out")
    convert = [PY, "-m", "stream", "convert", str(path), "-o", out, "-q"]
    python = ["env", "ANNOSTREAM_ENGINE=python"] + convert
    found = {
        "cat": ["cat", str(path)],
        "ijson": [PY, "-c", IJSON, str(path)],
        "annostream 1 worker": convert + ["--workers", "1"],
        ALL: convert,
        f"annostream {os.cpu_count()} workers": convert + ["--workers", str(os.cpu_count())],
        "annostream 1 worker, python engine": python + ["--workers", "1"],
        f"{ALL}, python engine": python,
        "duckdb results": [PY, "-c", DUCKDB, str(path), str(scratch / "duck.parquet")],
    }
    if sdk:
        found["ls-sdk json_min"] = [PY, "-c", SDK, str(path), str(scratch / "min.json")]
    return found


def run(named: dict[str, tuple[list[str], int]], repeat: int, scratch: Path) -> dict[str, list]:
    """Every case `repeat` times, interleaved; per case the list of runs (None when failed)."""
    runs: dict[str, list] = {name: [] for name in named}
    for r in range(repeat):
        for name, (cmd, size) in named.items():
            m = measure(cmd, scratch)
            if "error" in m:
                print(f"  {name}: failed: {m['error']}", file=sys.stderr)
                runs[name].append(None)
                continue
            m["size"] = size
            runs[name].append(m)
            print(f"  [{r + 1}/{repeat}] {name}: {size / 1e6 / m['wall']:.1f} MB/s, "
                  f"{m['cpu']:.1f} CPU s, {m['rss']:.0f} MB", file=sys.stderr, flush=True)
    return runs


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def row(group: str, name: str, ms: list) -> list[str]:
    ok = [m for m in ms if m]
    if not ok:
        return [group, name, "failed", "", ""]
    mbs = median([m["size"] / 1e6 / m["wall"] for m in ok])
    cpu = median([m["size"] / 1e6 / m["cpu"] for m in ok if m["cpu"] > 0])
    rss = max(m["rss"] for m in ok)
    return [group, name, f"{mbs:,.1f}", f"{cpu:,.1f}" if cpu else "", f"{rss:,.0f}"]


def ratio(runs: dict, a: str, b: str) -> float | None:
    """Median over repeats of throughput(a) / throughput(b), pair by pair."""
    pairs = [(x, y) for x, y in zip(runs.get(a, []), runs.get(b, [])) if x and y]
    return median([y["wall"] / x["wall"] for x, y in pairs])


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", action="append", type=parse_size,
                   help="export size to measure (repeatable; default 200MB and 1GB; 0: none, "
                        "e.g. to measure only --big-task)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dataloop-files", type=int, default=10_000, help="0 to skip")
    p.add_argument("--big-task", type=float, default=100, metavar="MB", help="0 to skip")
    p.add_argument("--no-sdk", action="store_true", help="leave out the Label Studio SDK")
    p.add_argument("--case", action="append", metavar="NAME",
                   help="measure only the export cases of this name, as the table prints it "
                        "(repeatable; e.g. --case ijson --case 'duckdb results')")
    args = p.parse_args(argv)
    sizes = [s for s in args.size or [200 * 10 ** 6, 10 ** 9] if s]
    DATA.mkdir(exist_ok=True)
    scratch = DATA / "scratch"
    sdk = not args.no_sdk and sdk_available()
    table: list[list[str]] = []
    ratios: list[list[str]] = []
    for size in sizes:
        path = DATA / f"labelstudio_{label(size)}.json"
        generate(["--size", str(size), "--seed", "1", "-o", str(path)], path)
        actual = path.stat().st_size
        print(f"{path.name} ({actual / 1e6:,.0f} MB)", file=sys.stderr)
        named = {n: (c, actual) for n, c in cases(path, scratch, sdk).items()
                 if not args.case or n in args.case}
        runs = run(named, args.repeat, scratch)
        table += [row(label(size), name, ms) for name, ms in runs.items()]
        targets = [("annostream 1 worker / ijson", "annostream 1 worker", "ijson", 1.5),
                   ("annostream all cores / DuckDB", ALL, "duckdb results", 2.0),
                   ("core / python engine, 1 worker", "annostream 1 worker",
                    "annostream 1 worker, python engine", None),
                   ("python engine 1 worker / ijson", "annostream 1 worker, python engine",
                    "ijson", None),
                   ("annostream all cores / SDK JSON_MIN", ALL, "ls-sdk json_min", 5.0),
                   ("annostream 1 worker / SDK JSON_MIN", "annostream 1 worker",
                    "ls-sdk json_min", None)]
        for what, a, b, target in targets:
            r = ratio(runs, a, b)
            met = "" if target is None or r is None else ("met" if r >= target else "NOT met")
            ratios.append([label(size), what, "n/a" if r is None else f"{r:.2f}",
                           "" if target is None else f">= {target}", met])
    if args.dataloop_files:
        folder = dataloop_folder(args.dataloop_files)
        size = folder_size(folder)
        convert = [PY, "-m", "stream", "convert", str(folder), "-o", str(scratch / "out"), "-q"]
        files = f"annostream, {args.dataloop_files:,} Dataloop files"
        named = {f"{files}, 1 worker": (convert + ["--workers", "1"], size),
                 f"{files}, all cores": (convert, size),
                 f"{files}, 1 worker, python engine":
                 (["env", "ANNOSTREAM_ENGINE=python"] + convert + ["--workers", "1"], size)}
        print(f"{folder.name} ({size / 1e6:,.1f} MB)", file=sys.stderr)
        runs = run(named, args.repeat, scratch)
        table += [row(f"{size / 1e6:.1f}MB", name, ms) for name, ms in runs.items()]
        r = ratio(runs, f"{files}, 1 worker", f"{files}, 1 worker, python engine")
        ratios.append([f"{size / 1e6:.1f}MB", "Dataloop files: core / python engine, 1 worker",
                       "n/a" if r is None else f"{r:.2f}", "", ""])
    if args.big_task:
        path = DATA / f"big_task_{args.big_task:g}MB.json"
        generate(["--big-task", str(args.big_task), "--seed", "1", "-o", str(path)], path)
        size = path.stat().st_size
        named = {"annostream, one big task, 1 worker":
                 ([PY, "-m", "stream", "convert", str(path), "-o", str(scratch / "out"), "-q",
                   "--workers", "1"], size),
                 "ijson, one big task": ([PY, "-c", IJSON, str(path)], size)}
        print(f"{path.name} ({size / 1e6:,.1f} MB)", file=sys.stderr)
        runs = run(named, 1, scratch)
        table += [row(label(size), name, ms) for name, ms in runs.items()]
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{'SDK ' + ('found' if sdk else 'not installed')}; {args.repeat} repeats, medians\n")
    print(markdown(["input", "case", "MB/s", "MB per CPU-s", "peak RSS MB"], table))
    print()
    print(markdown(["input", "ratio (throughput)", "measured", "target", ""], ratios))


if __name__ == "__main__":
    main()
