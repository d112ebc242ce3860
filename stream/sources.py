"""Inputs as named byte streams: files, folders, zips, compressed files and stdin.

Compression and zips are recognised by their magic bytes, never by the file name, and every
stream is read in chunks: nothing here holds a whole input.
"""
from __future__ import annotations

import base64
import bz2
import functools
import gzip
import lzma
import os
import stat
import sys
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

import pyarrow as pa

from .errors import InputError

CHUNK = 1 << 16
MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}
ZIP_MAGIC = b"PK\x03\x04"
SERVER = "labelstudio+"  # a Label Studio server's URI (stream/labelstudio_api.py)


@dataclass(slots=True)
class Source:
    """One input stream: `name` is what errors and the `file` column show."""

    name: str
    size: int | None
    open: Callable[[], BinaryIO]
    input: str  # the argument it came from (a file, folder or zip the user named)
    explicit: bool = True  # named by the user (not found inside a folder or zip)
    path: str | None = None  # a regular file (or the zip holding `member`): any process may
    member: str | None = None  # open it on its own (stream/parallel.py `Item`)
    remote: Remote | None = None  # a file on object storage or a web server (read by workers)


@dataclass(frozen=True)
class Remote:
    """A file where it is: `fs` (a pyarrow filesystem: S3, GCS, a shared disk) and its path,
    or `fs` None and `path` an http(s) URL. Picklable: a worker on another machine reads the
    file from there itself (credentials from its own environment, as the engines expect)."""

    fs: Any
    path: str

    def open(self) -> BinaryIO:
        """A stream of the file's bytes, read in chunks."""
        if self.fs is None:
            return cast(BinaryIO, open_url(self.path))
        return cast(BinaryIO, self.fs.open_input_stream(self.path))

    def copy_to(self, dest: Path, sink: Callable[[bytes], object] | None = None) -> int:
        """Copy the file to `dest` (the reading worker's own disk: zips and byte offsets need
        a seekable file); `sink` also sees every chunk (a hash). Returns its size."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        raw = self.open()
        try:
            with open(dest, "wb") as out:
                while chunk := raw.read(CHUNK):
                    out.write(chunk)
                    if sink is not None:
                        sink(chunk)
                    size += len(chunk)
        finally:
            raw.close()
        return size


def open_url(url: str) -> Any:
    """An http(s) stream; `user:password@` in the URL becomes a Basic auth header."""
    p = urllib.parse.urlsplit(url)
    headers = {}
    if p.username is not None:
        token = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        url = urllib.parse.urlunsplit((p.scheme, p.netloc.rsplit("@", 1)[-1], p.path, p.query,
                                       p.fragment))
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)


def remote_sources(name: str, remote: Remote, scratch: Path) -> Iterator[Source]:
    """The streams of a remote file, named `name` (its URI, redacted): the file copied to
    `scratch` (the worker's disk), then read as a local file would be (a zip's members...)."""
    local = scratch / f"in-{uuid.uuid4().hex}"
    try:
        try:
            remote.copy_to(local)
        except OSError as exc:
            raise InputError(name, f"cannot read: {exc}") from exc
        yield from _path_sources(local, name, name, explicit=True)
    finally:  # read: the copy goes (a job's remote files never pile up on the worker)
        local.unlink(missing_ok=True)


class ByteStream(Protocol):
    """What an InputStream reads from: a file, a decompressor, a byte counter."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class InputStream:
    """A read-only byte stream with a peek buffer and a count of bytes handed out.

    `offset` is the position in the (decompressed) stream a parser has consumed up to, which
    is what an error message reports; `counter.count` counts bytes read from disk for progress.
    """

    def __init__(self, raw: ByteStream, counter: Counter | None = None) -> None:
        self._raw = raw
        self._buf = b""
        self.offset = 0
        self.counter = counter

    def peek(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._raw.read(max(n - len(self._buf), CHUNK))
            if not chunk:
                break
            self._buf += chunk
        return self._buf[:n]

    def read(self, n: int = -1) -> bytes:
        if self._buf:
            if n < 0 or n >= len(self._buf):
                data, self._buf = self._buf, b""
            else:
                data, self._buf = self._buf[:n], self._buf[n:]
        else:
            data = self._raw.read(n if n >= 0 else CHUNK)  # bounded: one chunk at a time
        self.offset += len(data)
        return data

    def close(self) -> None:
        self._raw.close()


class Counter:
    """Wraps a raw file to count the bytes read from disk (progress over compressed input)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw: Any = raw  # any binary file object: gzip and friends call its readinto
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # gzip/bz2/lzma read this way
        k = self._raw.readinto(b)
        self.count += k or 0
        return k

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self) -> None:
        self._raw.close()


def decompressed(name: str, raw: BinaryIO) -> InputStream:
    """Open `raw` as an InputStream over its decompressed bytes, whatever the compression."""
    counter = Counter(raw)
    head = InputStream(counter, counter)
    magic = head.peek(6)
    codec = next((c for m, c in MAGIC.items() if magic.startswith(m)), None)
    if codec is None:
        reader = head
    else:
        buffered = _Replay(head)
        try:
            if codec == "gzip":
                stream: ByteStream = gzip.GzipFile(fileobj=cast(BinaryIO, buffered))
            elif codec == "bz2":
                stream = bz2.BZ2File(cast(BinaryIO, buffered))
            elif codec == "xz":
                stream = lzma.LZMAFile(cast(BinaryIO, buffered))
            else:
                stream = pa.CompressedInputStream(pa.PythonFile(buffered, mode="r"), "zstd")
        except Exception as exc:  # pragma: no cover - the codecs open lazily
            raise InputError(name, f"cannot open {codec} stream: {exc}") from exc
        reader = InputStream(_Guard(stream, name, codec), counter)
    return reader


class _Replay:
    """File-like over an InputStream, for decompressors that want `read`/`readinto`."""

    def __init__(self, reader: InputStream) -> None:
        self._r = reader
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        return self._r.read(n if n >= 0 else CHUNK)

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self._r.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class _Guard:
    """Turns a decompressor's failure into an InputError that names the file."""

    def __init__(self, stream: ByteStream, name: str, codec: str) -> None:
        self._s, self._name, self._codec = stream, name, codec

    def read(self, n: int = -1) -> bytes:
        try:
            return self._s.read(n)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
                pa.ArrowException) as exc:
            raise InputError(self._name, f"corrupt or truncated {self._codec} data: {exc}") from exc

    def close(self) -> None:
        self._s.close()


class _Opener:
    """Opens a regular file; the first call hands out the handle the zip check opened (one
    open per file, not two), later calls open it anew."""

    __slots__ = ("path", "_handle")

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self._handle: BinaryIO | None = handle

    def __call__(self) -> BinaryIO:
        handle, self._handle = self._handle, None
        if handle is None:
            return open(self.path, "rb")
        handle.seek(0)
        return handle

    def release(self) -> None:
        """Close the handle if nobody took it (sources listed rather than read one by one)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _open_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo | str, name: str) -> BinaryIO:
    """A zip member whose bad CRC or deflate stream is an InputError naming it (read and
    close are all a member's readers call); so is a corrupt local header, an unknown
    compression method or an encrypted member, found when it is opened."""
    try:
        return cast(BinaryIO, _Guard(zf.open(member), name, "zip"))
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
            ValueError, zlib.error) as exc:
        raise InputError(name, f"corrupt zip member: {str(exc)[:100]}") from exc


def _safe_member(zip_name: str, member: str) -> str:
    p = PurePosixPath(member.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise InputError(zip_name, f"refusing zip member with an unsafe path: {member!r}")
    return str(p)


def _zip_sources(handle: BinaryIO, path: Path, name: str, given: str) -> Iterator[Source]:
    try:
        zf = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(name, f"corrupt or truncated zip file: {exc}") from exc
    infos = [i for i in zf.infolist() if not i.is_dir()]
    seen: set[str] = set()
    for info in infos:  # refuse the whole archive before reading any member
        member = _safe_member(name, info.filename)
        if member in seen:  # the (file, position) keys and export would mix the two
            raise InputError(name, f"two zip members are named {member!r}")
        seen.add(member)
    for info in sorted(infos, key=lambda i: i.filename):
        member = _safe_member(name, info.filename)
        if PurePosixPath(member).name.startswith(".") or member.startswith("__MACOSX/"):
            continue
        full = f"{name}/{member}"
        yield Source(full, info.file_size,  # a bad CRC or deflate stream names the member
                     functools.partial(_open_member, zf, info, full), given,
                     explicit=False, path=str(path), member=info.filename)


def _open_file(path: Path | str, name: str) -> BinaryIO:
    """A file opened for reading; a dangling symlink, a symlink loop or a file that cannot be
    read is bad input naming it."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(name, f"cannot read: {exc.strerror or exc}") from exc


def _path_sources(path: Path, name: str, given: str, explicit: bool) -> Iterator[Source]:
    """A file as one source, or a zip's members: told apart by the magic bytes, with the
    handle opened for that check reused to read the file.

    Anything but a regular file (a FIFO, a device) is opened once, when it is read, as a
    stream like standard input: it cannot be a zip, nor split. Inside a folder it is bad
    input (opening a FIFO nobody writes to would wait forever)."""
    try:
        st = path.stat()
    except OSError as exc:  # a dangling symlink or a symlink loop
        raise InputError(name, f"cannot read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        if not explicit:
            raise InputError(name, "not a regular file (a FIFO, socket or device in a folder)")
        yield Source(name, None, lambda: _open_file(path, name), given, explicit, str(path))
        return
    handle = _open_file(path, name)
    try:
        is_zip = handle.read(4) == ZIP_MAGIC
    except OSError as exc:
        handle.close()
        raise InputError(name, f"cannot read: {exc.strerror or exc}") from exc
    except BaseException:
        handle.close()
        raise
    if is_zip:
        yield from _zip_sources(handle, path, name, given)
        return
    opener = _Opener(path, handle)
    try:
        yield Source(name, st.st_size, opener, given, explicit, str(path))
    finally:
        opener.release()


def _is_dir(e: os.DirEntry) -> bool:
    """A folder to descend into; a symlink loop is a file here (reading it names it)."""
    try:
        return e.is_dir()
    except OSError:
        return False


def _walk(folder: Path) -> Iterator[Path]:
    """The files below `folder` (hidden ones and symlinked folders skipped, as os.walk does),
    in the order of their relative POSIX paths, one folder listing held at a time: a folder
    sorts by its name + '/', which is where its files fall in that order."""
    try:
        with os.scandir(folder) as it:
            entries = [(e.name + "/" if _is_dir(e) else e.name, e) for e in it
                       if not e.name.startswith(".")]
    except OSError as exc:
        raise InputError(str(folder), f"cannot list the folder: {exc.strerror or exc}") from exc
    for key, e in sorted(entries, key=lambda k: k[0]):
        if not key.endswith("/"):
            yield Path(e.path)
        elif not e.is_symlink():
            yield from _walk(Path(e.path))


def iter_sources(inputs: list[str]) -> Iterator[Source]:
    """Expand the user's inputs into streams, in a deterministic order.

    A folder yields its files recursively in sorted path order (hidden files skipped); a zip
    yields its members the same way; '-' is standard input; a `labelstudio+http(s)://` URI
    yields one stream per project it names (stream/labelstudio_api.py). Lazy: a folder of a million
    files is never listed whole.
    """
    for given in inputs:
        if given == "-":
            yield Source("<stdin>", None, lambda: sys.stdin.buffer, given)
            continue
        if given.startswith(SERVER):  # a Label Studio server: its projects' tasks
            from .labelstudio_api import projects
            for name, open_project in projects(given):
                yield Source(name, None, open_project, given)
            continue
        path = Path(given)
        if not path.exists():
            why = "a dangling symlink" if path.is_symlink() else "no such file or folder"
            raise InputError(given, why)
        if path.is_dir():
            for f in _walk(path):
                rel = f"{given.rstrip('/')}/{f.relative_to(path).as_posix()}"
                yield from _path_sources(f, rel, given, explicit=False)
        else:
            yield from _path_sources(path, given, given, explicit=True)


def named_sources(path: str, name: str) -> Iterator[Source]:
    """The streams of one regular file (a zip: its members) under the name the user knows it
    by (an ingest's input URI for a file:// argument or a pulled page file)."""
    yield from _path_sources(Path(path), name, name, explicit=True)


def open_path(path: str) -> BinaryIO:
    """A seekable stream of a file named by its absolute path: what a worker process (here or
    on another machine that sees the same path) opens on its own."""
    return open(path, "rb")


def reopen(name: str, input: str, size: int | None, explicit: bool, path: str | None,
           member: str | None, archives: dict[str, zipfile.ZipFile]) -> Source:
    """The Source `iter_sources` found, rebuilt from its description in another process; the
    zips of a job are opened once each (`archives`, closed by the caller)."""
    if path is None and name.startswith(SERVER):
        from .labelstudio_api import opener
        return Source(name, size, opener(name, input), input, explicit)
    if path is None:
        raise InputError(name, "standard input can only be read by the local executor")
    if member is None:
        return Source(name, size, lambda: _open_file(path, name), input, explicit, path)
    if path not in archives:
        try:
            archives[path] = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(name, f"corrupt or truncated zip file: {exc}") from exc
    zf = archives[path]
    return Source(name, size, functools.partial(_open_member, zf, member, name), input, explicit,
                  path, member)
