"""The files of an ingest's input arguments: listed (local folders, s3:// and gs://
prefixes, http(s) URLs), fingerprinted by content (sha256) and sniffed for their container,
on the executor: the driver lists, the workers read (a remote file where it is)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import pyarrow.fs as pafs

from ..errors import InputError
from ..formats import sniff
from ..sources import CHUNK, Remote, decompressed, iter_sources
from .storage import filesystem, redact


@dataclass
class InputFile:
    """One file of an input argument: where to read it and what to call it."""

    name: str  # as stored and shown: the local path as given, or the redacted URI
    rel: str  # path relative to the argument ('' for a single file)
    size: int | None
    mtime: str | None
    fs: pafs.FileSystem | None  # None: an https:// URL
    path: str
    sha256: str | None = None
    local: str | None = None  # a local path (or a shared filesystem's): read as it is
    container: str | None = None

    @property
    def remote(self) -> Remote:
        """Where a worker reads a file that is not local: object storage or a URL."""
        return Remote(self.fs, self.path)

    @property
    def digest(self) -> str:
        """`sha256`, once `fingerprint` computed it."""
        if self.sha256 is None:
            raise AssertionError(f"{self.name}: used before it was fingerprinted")
        return self.sha256


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def expand(arg: str) -> list[InputFile]:
    """The files of one input argument, in sorted order (folders and prefixes recursively,
    hidden files skipped, as `convert` does)."""
    if arg == "-":
        raise InputError("-", "ingest needs files it can fingerprint; standard input is not "
                              "supported (save it to a file first)")
    if arg.startswith(("http://", "https://")):
        return [InputFile(redact(arg), "", None, None, None, arg)]
    fs, path = filesystem(arg)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(redact(arg), "no such file, folder or prefix")
    local = isinstance(fs, pafs.LocalFileSystem)
    shown = arg if local and "://" not in arg else redact(arg)
    if info.type == pafs.FileType.File:
        return [_input_file(arg, shown, "", info, fs)]
    files = []
    for fi in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        rel = fi.path[len(path):].lstrip("/")
        if fi.type == pafs.FileType.File and not _hidden(rel):
            files.append(_input_file(arg, f"{shown.rstrip('/')}/{rel}", rel, fi, fs))
    return sorted(files, key=lambda f: f.rel)


def _input_file(arg: str, name: str, rel: str, info: pafs.FileInfo,
                fs: pafs.FileSystem) -> InputFile:
    mtime = info.mtime.astimezone(timezone.utc).isoformat() if info.mtime else None
    f = InputFile(name, rel, info.size, mtime, fs, info.path)
    if isinstance(fs, pafs.LocalFileSystem):
        f.local = name if "://" not in arg else info.path
    return f


def fingerprint(f: InputFile) -> tuple:
    """('ok', sha256, size, container) of one file, read where it is (run on the executor:
    a remote file is copied to the worker's disk on the way, as zips need a seekable file),
    or ('input' | 'error', ...) as `stream.parallel.raise_failure` takes it."""
    sha = hashlib.sha256()
    try:
        with tempfile.TemporaryDirectory(prefix="annostream-fp-") as scratch:
            if f.local is not None:
                local, size = f.local, 0
                with open(local, "rb") as raw:
                    while chunk := raw.read(CHUNK):
                        sha.update(chunk)
                        size += len(chunk)
            else:
                local = os.path.join(scratch, "input")
                size = f.remote.copy_to(Path(local), sha.update)
            return "ok", sha.hexdigest(), size, _container(local)
    except InputError as exc:
        return "input", (f.name, exc.reason, exc.position, exc.offset)
    except OSError as exc:
        return "error", f"{f.name}: cannot read: {exc}"


def _container(local: str) -> str | None:
    """'array' for a whole export in one file, 'object' for per-task files ...; for a zip, the
    container of its members when they agree. None when it holds no JSON."""
    kinds = set()
    for src in iter_sources([local]):
        raw = src.open()
        try:
            plan = sniff(decompressed(src.name, raw))
        finally:
            raw.close()
        if plan is not None:
            kinds.add(plan.container)
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"
