"""Peak RSS of a conversion stays flat when the export grows (issue 2), in the spirit of
ijson's memory tests: the same conversion of a generated export of S MB and of 4*S MB, each in
a fresh process, must peak within a small margin of each other.

S defaults to 8 MB for CI; set ANNOSTREAM_MEMTEST_MB (e.g. 50) for a manual run at scale.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

SIZE_MB = int(os.environ.get("ANNOSTREAM_MEMTEST_MB", "8"))
BATCH_ROWS = 500  # small, so that batches do not dominate the peak; and every table fills
# whole batches already at 8 MB, so that filling them does not pass for growth
MARGIN_MB = 25.0
MARGIN_RATIO = 0.15

# Runs argv as its only child and prints that child's peak RSS (Linux: KiB). A wrapper per
# measurement, because RUSAGE_CHILDREN keeps the maximum over every child ever waited for.
MEASURE = ("import resource, subprocess, sys; "
           "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

pytestmark = [pytest.mark.slow,  # fresh processes converting generated exports
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="ru_maxrss is in KiB on Linux only")]


def peak_rss_mb(*argv: str) -> float:
    """Peak RSS in MB of `argv` run in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True,
                          text=True, env=env, check=True)
    return int(done.stdout.split()[-1]) / 1024


def generated(folder: Path, mb: int) -> Path:
    path = folder / f"export_{mb}mb.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_export.py"),
                    "--size", f"{mb}MB", "--seed", "11", "-o", str(path)],
                   check=True, capture_output=True)
    return path


def within_margin(small: float, large: float) -> bool:
    return large <= small + max(MARGIN_MB, MARGIN_RATIO * small)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("memtest")
    return generated(folder, SIZE_MB), generated(folder, 4 * SIZE_MB)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_peak_rss_is_flat_in_export_size(exports, tmp_path, workers):
    """With 2 workers the peak is the largest process's: each worker's must stay flat too."""
    small, large = exports
    rss = [peak_rss_mb(sys.executable, "-m", "stream", "convert", str(path), "-o",
                       str(tmp_path / path.stem), "-q", "--batch-rows", str(BATCH_ROWS),
                       "--workers", workers)
           for path in (small, large)]
    assert all((tmp_path / p.stem / "_manifest.json").exists() for p in (small, large))
    print(f"workers={workers}: peak RSS converting {SIZE_MB} MB: {rss[0]:.1f} MB; "
          f"{4 * SIZE_MB} MB: {rss[1]:.1f} MB")
    assert within_margin(*rss), (
        f"peak RSS grew with export size: {rss[0]:.1f} MB for {SIZE_MB} MB of input, "
        f"{rss[1]:.1f} MB for {4 * SIZE_MB} MB (margin {MARGIN_MB} MB or {MARGIN_RATIO:.0%})")


def test_the_measure_sees_memory_that_grows(tmp_path):
    """Control: loading a whole export (what the converter must never do) fails the check.

    Fixed small sizes, so that a manual run with a big knob does not json.load gigabytes.
    """
    load = "import json, sys; json.load(open(sys.argv[1], encoding='utf-8'))"
    rss = [peak_rss_mb(sys.executable, "-c", load, str(generated(tmp_path, mb))) for mb in (3, 12)]
    print(f"peak RSS of json.load: {rss[0]:.1f} MB vs {rss[1]:.1f} MB")
    assert not within_margin(*rss), f"json.load peaks {rss[0]:.1f} MB vs {rss[1]:.1f} MB"
