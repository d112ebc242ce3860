"""Parquet output: part files per table, and the output folder written atomically.

`PartFiles` writes the batches a reader's column buffers (stream/buffers.py) hand it into
part files per table. `OutputFolder` stages every table under a hidden folder and moves the
parts into place only when the whole run succeeded, so a failed run never leaves output that
looks complete.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import exchange, write_atomic
from .errors import AnnostreamError, OutputError
from .layout import CURRENT, GENERATION, MANIFEST, STATE, current
from .tables import TABLES, Table

ROLL_GROUPS = 64  # row groups per part file (see PartWriter)


class PartWriter:
    """The part files of one table for one writer, one row group per flushed batch.

    A ParquetWriter keeps the metadata of every row group it wrote until it closes (some
    18 KB each), so one file per run would grow with the export: the writer moves on to a new
    file every `ROLL_GROUPS` row groups. Files are named `<stem>-<k:05d>.parquet`, which sort
    in write order, after the parts of earlier writers ('-' sorts before digits) and before
    those of later ones.
    """

    def __init__(self, stem: Path, table: Table) -> None:
        self.stem, self.table = stem, table  # its folder exists (OutputFolder made it): a job still
        self.rows = self._groups = 0  # running after its run was aborted cannot write
        self.paths: list[Path] = []
        self._w = self._open()  # a table without rows still gets one (empty) file

    def _open(self) -> pq.ParquetWriter:
        path = self.stem.with_name(f"{self.stem.name}-{len(self.paths):05d}.parquet")
        self.paths.append(path)
        self._groups = 0
        # JSON text gets neither statistics nor a dictionary (stream/tables.py _j)
        return pq.ParquetWriter(path, self.table.schema, compression="zstd",
                                write_statistics=self.table.plain,
                                use_dictionary=self.table.dictionary)

    def write(self, t: pa.Table) -> None:
        if t.num_rows:
            if self._groups >= ROLL_GROUPS:
                self._w.close()
                self._w = self._open()
            self._w.write_table(t)
            self._groups += 1
            self.rows += t.num_rows

    def close(self) -> None:
        self._w.close()

    def discard(self) -> None:
        """Close after a failure, quietly: a file that cannot be finished (disk full) must not
        report again when the writer is collected. The run's generation is dropped anyway."""
        try:
            self._w.close()
        except (OSError, pa.ArrowException):
            self._w.is_open = False


class PartFiles:
    """The part files of one writer (a job), one PartWriter per table: the sink of its
    column buffers."""

    def __init__(self, folder: Path, part: str) -> None:
        self.writers = {name: PartWriter(folder / name / f"part-{part}", t)
                        for name, t in TABLES.items()}

    def write(self, table: str, rows: pa.Table) -> None:
        self.writers[table].write(rows)

    def close(self) -> dict[str, int]:
        """Close the part files; returns rows written per table."""
        for w in self.writers.values():
            w.close()
        return {name: w.rows for name, w in self.writers.items()}

    def discard(self) -> None:
        """Close every part file after a failed job (see PartWriter.discard)."""
        for w in self.writers.values():
            w.discard()

    def paths(self) -> list[Path]:
        """Every part file written."""
        return [p for w in self.writers.values() for p in w.paths]


class OutputFolder:
    """An output folder that switches from the old conversion to the new one in one step.

    Every run writes a new generation, `<folder>/.annostream/gen-<run id>/<table>/*.parquet`
    and its `_manifest.json`; `.annostream/current` is a symlink to the current generation,
    and `<folder>/<table>` and `<folder>/_manifest.json` are fixed symlinks through it. The
    commit is one rename of a new `current` link over the old one, so a reader sees the old
    conversion or the new one, whichever the link named when it resolved the path (a glob
    like `out/results/*.parquet` included: part names are never reused for other content, so
    a glob listed before the switch reads the old files or fails, never mixes). Append links
    the previous generation's parts into the new one (hard links: no copy).

    The previous generation stays for readers that resolved it (removed by the next run);
    generations of dead runs (no manifest: the run holding the folder's lock is this one)
    are removed when a run starts. A folder written before generations is first moved into
    one, the old conversion readable under every name at every instant (`_migrate`).
    mode 'new' refuses a folder that already holds a
    conversion, 'overwrite' replaces it, 'append' adds this run's parts to it.
    """

    def __init__(self, folder: str | os.PathLike, mode: str = "new") -> None:
        self.folder = Path(folder)
        self.mode = mode
        self._created = _first_missing(self.folder.absolute())
        self._lock: int | None = None
        try:
            self._lock = _lock_folder(self.folder)
        except OSError as exc:
            self._remove_created()
            raise OutputError(f"{self.folder}: cannot create or lock the output folder: "
                              f"{exc.strerror or exc}") from exc
        try:
            self._check()
            self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
            # absolute: workers on other processes or machines do not share our working folder
            self.state = self.folder.absolute() / STATE
            self.stage = self.state / f"{GENERATION}{self.run_id}"
            self._clean(keep=set())
            for t in TABLES:
                (self.stage / t).mkdir(parents=True)
        except OSError as exc:
            self._release()
            raise OutputError(f"{self.folder}: cannot write the output folder: "
                              f"{exc.strerror or exc}") from exc
        except BaseException:
            self._release()
            raise

    def _check(self) -> None:
        mode = self.mode
        manifest = self.folder / MANIFEST
        if manifest.exists() and mode == "new":
            raise AnnostreamError(
                f"{self.folder} already holds a conversion; use --overwrite to replace it "
                "or --append to add to it")
        if not manifest.exists() and any((self.folder / t).exists() for t in TABLES):
            raise AnnostreamError(f"{self.folder} has table folders but no {MANIFEST}; "
                                  "remove them or choose another output folder")
        self.previous = json.loads(manifest.read_text()) if (  # bounded: our small manifest
            mode == "append" and manifest.exists()) else None
        self.current = current(self.folder) if manifest.exists() else None

    def part_prefix(self) -> str:
        """Part names sort after existing ones, so a glob reads runs in order: '0' for a new
        folder, then the run number (6 digits; '.' sorts before digits) and the run id, as
        run ids started within the same second do not sort in run order."""
        if self.mode != "append":
            return "0"
        return f"{len((self.previous or {}).get('runs', [])):06d}-{self.run_id}"

    def commit(self, manifest: dict, parts: set[str]) -> None:
        """Complete the new generation with the staged `parts` (paths relative to the stage;
        other staged files, a dead worker's, are dropped), the previous parts when appending,
        and the manifest; then make it current in one rename."""
        try:
            self._commit(manifest, parts)
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot write the output folder: "
                              f"{exc.strerror or exc}; the previous conversion is unchanged"
                              ) from exc
        self._release()

    def _commit(self, manifest: dict, parts: set[str]) -> None:
        failpoint("commit:start")
        for t in TABLES:
            for part in (self.stage / t).glob("*.parquet"):
                if f"{t}/{part.name}" not in parts:
                    part.unlink()
        self._migrate()
        if self.mode == "append" and self.current is not None:
            for t in TABLES:
                for part in sorted((self.current / t).glob("*.parquet")):
                    _link(part, self.stage / t / part.name)
                    failpoint("commit:linking")
        write_atomic(self.stage / MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=False)
                                             + "\n").encode(), durable=True)
        failpoint("commit:manifest")
        for name in (*TABLES, MANIFEST):  # fixed links through `current` (made once)
            link = self.folder / name
            if not link.is_symlink():
                _symlink(f"{STATE}/{CURRENT}/{name}", link)
                failpoint("commit:links")
        _symlink(self.stage.name, self.state / CURRENT)  # the switch
        _fsync_dir(self.state)
        failpoint("commit:switched")
        self._clean(keep={self.stage.name} | ({self.current.name} if self.current else set()))
        failpoint("commit:cleaned")

    def _migrate(self) -> None:
        """A folder written before generations (real table folders and manifest) becomes one
        whose names are links through `current`, its content the old conversion at every
        instant: the files are hard-linked into a generation of their own, `current` is made
        to name it, then each real folder is swapped for its link in one step and removed,
        the manifest last. A kill at any step leaves the old conversion under every name, and
        the rerun goes on from there (`current` already names the complete generation)."""
        legacy = [n for n in (*TABLES, MANIFEST) if (self.folder / n).exists()
                  and not (self.folder / n).is_symlink()]
        if not legacy:
            return
        link = self.state / CURRENT
        gen = link.resolve() if link.is_symlink() else self._legacy_generation()
        for name in legacy:
            target = f"{STATE}/{CURRENT}/{name}"
            if name == MANIFEST:
                _symlink(target, self.folder / name)  # a file: one rename replaces it
            else:
                _swap_for_link(self.folder / name, target)
            failpoint("migrate:table")
        self.current = gen

    def _legacy_generation(self) -> Path:
        """A generation holding the legacy folder's files (hard links), made current."""
        gen = self.state / f"{GENERATION}legacy-{self.run_id}"
        for t in TABLES:
            (gen / t).mkdir(parents=True)
            if (self.folder / t).is_dir():
                for f in sorted((self.folder / t).iterdir()):  # parts, and anything else
                    if f.is_dir():
                        shutil.copytree(f, gen / t / f.name, copy_function=_link)
                    else:
                        _link(f, gen / t / f.name)
        _link(self.folder / MANIFEST, gen / MANIFEST)  # last: the generation is complete
        failpoint("migrate:generation")
        _symlink(gen.name, self.state / CURRENT)
        _fsync_dir(self.state)
        failpoint("migrate:current")
        return gen

    def _clean(self, keep: set[str]) -> None:
        """Remove the generations not in `keep` that no reader can be using: all but the
        current one at commit (and the one it replaced), dead runs' at the start."""
        if not self.state.is_dir():
            return
        cur = current(self.folder)
        for d in self.state.iterdir():
            if not d.name.startswith(GENERATION) or d.name in keep or (
                    cur is not None and d.name == cur.name):
                continue
            if keep or not (d / MANIFEST).exists():
                shutil.rmtree(d, ignore_errors=True)
        for d in self.folder.glob(".annostream-tmp-*"):  # stages of older versions
            shutil.rmtree(d, ignore_errors=True)
        for name in (*TABLES, MANIFEST):  # a link not yet renamed into place, a legacy folder
            for d in self.folder.glob(f".{name}.*"):  # swapped out (see _swap_for_link)
                if d.is_dir() and not d.is_symlink():
                    shutil.rmtree(d, ignore_errors=True)
                else:
                    d.unlink(missing_ok=True)
        for f in self.state.glob(f".{CURRENT}.*"):  # a switch that died before its rename
            f.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop this run's generation (and the output folder, if this run created it)."""
        shutil.rmtree(self.stage, ignore_errors=True)
        self._release()
        self._remove_created()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _remove_created(self) -> None:
        if self._created is not None:
            shutil.rmtree(self._created, ignore_errors=True)
            self._created = None


def failpoint(name: str) -> None:
    """Tests kill the process at a named step (ANNOSTREAM_FAILPOINT) to prove that every
    step leaves the output readable as the old or the new conversion."""
    if os.environ.get("ANNOSTREAM_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _symlink(target: str, link: Path) -> None:
    """`link` -> `target`, replacing what is there in one rename."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    try:
        failpoint("symlink:made")  # a kill here leaves `tmp`: the next run removes it
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _swap_for_link(folder: Path, target: str) -> None:
    """A real folder replaced by a symlink to `target`: in one step where the system can
    swap two names (renameat2), else by two renames (between them the name is missing for an
    instant: a reader fails, never mixes); the old folder is then removed."""
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    if not exchange(tmp, folder):
        old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
        os.replace(folder, old)
        os.replace(tmp, folder)
        tmp = old
    failpoint("migrate:swapped")
    shutil.rmtree(tmp)


def _link(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """A hard link (a copy where the file system has none)."""
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, dest)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of `folder`'s path that does not exist yet (what a run that
    fails must remove again), or None."""
    missing = None
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            break
        missing = p
    return missing


def _lock_folder(folder: Path) -> int:
    """An exclusive flock on the output folder itself (no lock file to leave behind; the
    kernel drops it when the process dies): two runs never write one folder at once."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AnnostreamError(f"{folder}: another annostream run is writing to this folder; "
                              "run again when it has finished") from None
    return fd
