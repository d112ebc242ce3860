"""Replacing a file in one step: written under a temporary name next to it, then renamed.

Readers see the old file or the new one, never a part of it; a failure leaves the old one
and no temporary file. Used for the output folder's manifest, query results written with
--output, and the lake's metadata (ledger, lake.json, pending records).
"""
from __future__ import annotations

import ctypes
import errno
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


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE: a folder and a symlink
    too, which no rename can replace one with the other). Returns False, changing nothing,
    where the system or the file system cannot (the caller then takes two renames)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc >= 2.28: no such call
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))
