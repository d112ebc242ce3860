"""Parquet output: part files per table, and the output folder written atomically.

`PartFiles` writes the batches a reader's column buffers (stream/buffers.py) hand it into
part files per table. `OutputFolder` stages every table under a hidden folder and moves the
parts into place only when the whole run succeeded, so a failed run never leaves output that
looks complete.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import write_atomic
from .errors import AnnostreamError
from .layout import MANIFEST
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
        return pq.ParquetWriter(path, self.table.schema, compression="zstd")

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

    def paths(self) -> list[Path]:
        """Every part file written."""
        return [p for w in self.writers.values() for p in w.paths]


class OutputFolder:
    """An output folder written atomically: staged under a hidden folder, moved in on commit.

    mode 'new' refuses a folder that already holds a conversion, 'overwrite' replaces it,
    'append' adds this run's parts next to the existing ones.
    """

    def __init__(self, folder: str | os.PathLike, mode: str = "new") -> None:
        self.folder = Path(folder)
        self.mode = mode
        self._lock = _lock_folder(self.folder)
        try:
            self._check()
        except BaseException:
            os.close(self._lock)
            raise
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        # absolute: workers on other processes or machines do not share our working folder
        self.stage = self.folder.absolute() / f".annostream-tmp-{self.run_id}"
        for t in TABLES:
            (self.stage / t).mkdir(parents=True)

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

    def part_prefix(self) -> str:
        """Part names sort after existing ones, so a glob reads runs in order: '0' for a new
        folder, then the run number (6 digits; '.' sorts before digits) and the run id, as
        run ids started within the same second do not sort in run order."""
        if self.mode != "append":
            return "0"
        return f"{len((self.previous or {}).get('runs', [])):06d}-{self.run_id}"

    def commit(self, manifest: dict, parts: set[str]) -> None:
        """Move the staged `parts` (paths relative to the stage) into place, then write the
        manifest (the completion mark). Other staged files (a dead worker's) are dropped.

        Whole table folders are renamed, so the window between the old and the new state is a
        few renames; during it the folder has no manifest and reads as incomplete (a later
        run refuses it instead of mixing old and new parts).
        """
        for t in TABLES:
            for part in (self.stage / t).glob("*.parquet"):
                if f"{t}/{part.name}" not in parts:
                    part.unlink()
        final_manifest = self.folder / MANIFEST
        if self.mode == "overwrite":
            final_manifest.unlink(missing_ok=True)
            for t in TABLES:
                if (self.folder / t).exists():
                    os.replace(self.folder / t, self.stage / f".old-{t}")
        for t in TABLES:
            staged, dest = self.stage / t, self.folder / t
            if dest.exists():  # append: this run's parts join the earlier ones
                for part in sorted(staged.glob("*.parquet")):
                    os.replace(part, dest / part.name)
            else:
                os.replace(staged, dest)
        write_atomic(final_manifest, (json.dumps(manifest, indent=2, ensure_ascii=False)
                                      + "\n").encode())
        shutil.rmtree(self.stage, ignore_errors=True)
        os.close(self._lock)

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)
        os.close(self._lock)


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
