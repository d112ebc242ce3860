"""The files of an ingest's input arguments: listed (local folders, s3:// and gs://
prefixes, http(s) URLs), fingerprinted by content (sha256, streamed once; a remote file is
downloaded on the way, as convert() reads local files) and sniffed for their container."""
from __future__ import annotations

import base64
import hashlib
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from ..errors import AnnostreamError, InputError
from ..formats import sniff
from ..sources import CHUNK, decompressed, iter_sources
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
    local: str | None = None  # a local path convert() can read (the file or its download)
    container: str | None = None

    @property
    def local_path(self) -> str:
        """`local`, once the file is listed locally or downloaded by `fingerprint`."""
        if self.local is None:
            raise AssertionError(f"{self.name}: read before it was fingerprinted")
        return self.local

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


class _Hashing:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: Any) -> None:  # a pyarrow input stream or an HTTP response
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n >= 0 else CHUNK)
        self.sha.update(data)
        self.size += len(data)
        return data


def _open_url(url: str) -> Any:
    """An http(s) stream; `user:password@` in the URL becomes a Basic auth header."""
    p = urllib.parse.urlsplit(url)
    headers = {}
    if p.username is not None:
        token = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        url = urllib.parse.urlunsplit((p.scheme, p.netloc.rsplit("@", 1)[-1], p.path, p.query,
                                       p.fragment))
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)


def fingerprint(f: InputFile, download_to: Path) -> None:
    """Stream the file once: sha256 and size; a remote file is copied to `download_to` on
    the way (convert() reads local files), a local one is only read."""
    try:
        raw = _open_url(f.path) if f.fs is None else f.fs.open_input_stream(f.path)
    except OSError as exc:
        raise AnnostreamError(f"{f.name}: cannot read: {exc}") from exc
    h = _Hashing(raw)
    try:
        if f.local is not None:
            while h.read(CHUNK):
                pass
        else:
            download_to.parent.mkdir(parents=True, exist_ok=True)
            with open(download_to, "wb") as out:
                while chunk := h.read(CHUNK):
                    out.write(chunk)
            f.local = str(download_to)
    except OSError as exc:
        raise AnnostreamError(f"{f.name}: cannot read: {exc}") from exc
    finally:
        raw.close()
    f.sha256, f.size = h.sha.hexdigest(), h.size


def container(f: InputFile) -> str | None:
    """'array' for a whole export in one file, 'object' for per-task files ...; for a zip, the
    container of its members when they agree. None when it holds no JSON."""
    kinds = set()
    for src in iter_sources([f.local_path]):
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


