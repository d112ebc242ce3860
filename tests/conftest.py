"""Shared test helpers: run the real converter and read the real Parquet it wrote."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream import convert
from stream.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"


def staging_left(out: Path) -> list[str]:
    """What a run left in an output folder besides its generations (writer.OutputFolder): a
    generation without a manifest (a dead run's stage), a temporary file, an old-style stage."""
    left = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".annostream"]
    state = out / ".annostream"
    if state.is_dir():
        left += [p.name for p in state.iterdir() if p.name != "current"
                 and not (p / "_manifest.json").is_file()]
    return left


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


# -- real clusters on loopback, started once per session (scripts/local_clusters.py) ---------
def load_script(name: str):
    """A module of scripts/ (they are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


clusters = load_script("local_clusters")


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory) -> Iterator:
    """A distributed scheduler and two worker processes (1 thread each) on 127.0.0.1."""
    pytest.importorskip("distributed", reason="make test installs the dask extra")
    cluster = clusters.start_dask(tmp_path_factory.mktemp("dask"), workers=2)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> Iterator:
    """A one-node Ray cluster with 2 CPUs on 127.0.0.1, dashboard and usage stats off."""
    os.environ.update(clusters.RAY_ENV)  # before Ray is imported here: it reads them then
    pytest.importorskip("ray", reason="make test installs the ray extra")
    cluster = clusters.start_ray(tmp_path_factory.mktemp("ray"), cpus=2)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """One real Label Studio server for the whole session (tests/labelstudio_server.py)."""
    from labelstudio_server import start, stop

    server, proc = start(tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        stop(proc)
