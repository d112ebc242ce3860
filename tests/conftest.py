"""Shared test helpers: run the real converter and read the real Parquet it wrote."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
