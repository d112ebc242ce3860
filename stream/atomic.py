"""Replacing a file in one step: written under a temporary name next to it, then renamed.

Readers see the old file or the new one, never a part of it; a failure leaves the old one
and no temporary file. Used for the output folder's manifest, query results written with
--output, and the lake's metadata (ledger, lake.json, pending records).
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(target: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """A temporary path in `target`'s folder for the block to write; renamed onto `target`
    when the block succeeds, removed when it fails. `durable`: the file and the rename are
    flushed to disk (fsync) before returning, so a power cut cannot undo them."""
    path = Path(target)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent, os.O_RDONLY)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: str | os.PathLike, data: bytes, durable: bool = False) -> None:
    """`target` replaced by `data` in one step (see `replacing`)."""
    with replacing(target, durable) as tmp:
        tmp.write_bytes(data)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
