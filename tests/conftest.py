"""Shared fixtures: the real converter into a fresh folder, a real S3 API server, and real
Dask and Ray clusters on loopback."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pyarrow as pa
import pytest
from helpers import load_script, read_tables

from stream import convert


@pytest.fixture
def converted(tmp_path):
    """convert(inputs) -> tables, into a fresh folder per call."""
    counter = iter(range(1000))

    def run(*inputs, **kwargs) -> dict[str, pa.Table]:
        out = tmp_path / f"out{next(counter)}"
        convert([str(i) for i in inputs], out, **kwargs)
        return read_tables(out)

    return run





@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server on 127.0.0.1 (a free port), credentials in the usual env vars."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        secret = "s3cr3t-never-printed"
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": secret,
                     "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(k, v)
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint)
        for bucket in ("exports", "lake"):
            client.create_bucket(Bucket=bucket)
        yield client, secret
    finally:
        server.stop()


# -- real clusters on loopback, started once per session (scripts/local_clusters.py) ---------
clusters = load_script("local_clusters")
# the workers' own S3 credentials, as a real cluster's workers have theirs (the server is
# named by the job, stream/sources.py Remote); moto takes any key, and AWS's SDK must not
# look for an instance role (a request to a link-local address)
WORKER_ENV = {"AWS_ACCESS_KEY_ID": "worker", "AWS_SECRET_ACCESS_KEY": "worker-secret",
              "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
              "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory) -> Iterator:
    """A distributed scheduler and two worker processes (1 thread each) on 127.0.0.1."""
    pytest.importorskip("distributed", reason="make test installs the dask extra")
    cluster = clusters.start_dask(tmp_path_factory.mktemp("dask"), workers=2,
                                  env=WORKER_ENV)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> Iterator:
    """A one-node Ray cluster with 2 CPUs on 127.0.0.1, dashboard and usage stats off."""
    os.environ.update(clusters.RAY_ENV)  # before Ray is imported here: it reads them then
    pytest.importorskip("ray", reason="make test installs the ray extra")
    cluster = clusters.start_ray(tmp_path_factory.mktemp("ray"), cpus=2, env=WORKER_ENV)
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
