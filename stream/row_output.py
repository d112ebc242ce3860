"""Row output shared by every command that prints rows: one set of options, one code path.

`--format table|csv|tsv|json|ndjson|markdown` streams a DuckDB result to stdout in Arrow
batches of BATCH_ROWS rows, so a result of any size is never held whole; DuckDB does the
value conversion (nested values to JSON, everything else to its SQL text form), Python only
writes the strings. `--output FILE` goes through DuckDB's COPY (no rows in Python at all),
written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import functools
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from .atomic import replacing
from .errors import AnnostreamError
from .sql import identifier, literal

if TYPE_CHECKING:  # duckdb loads with the first printed row, not with every command
    import duckdb

FORMATS = ("table", "csv", "tsv", "json", "ndjson", "markdown")
BATCH_ROWS = 10_000
TABLE_CELL = 80  # the table format cuts longer cells (with '…'); other formats never cut
RESULT_VIEW = "__annostream_result"
_NESTED = frozenset({"list", "struct", "map", "array", "union"})
_NUMERIC = frozenset({"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint",
                      "usmallint", "uinteger", "ubigint", "uhugeint", "float", "double",
                      "decimal"})
# extension -> (COPY options, whether the file gets the same text form as stdout)
FILE_FORMATS = {
    ".parquet": ("FORMAT parquet, COMPRESSION zstd", False),
    ".csv": ("FORMAT csv, HEADER true", True),
    ".tsv": ("FORMAT csv, HEADER true, DELIMITER '\t'", True),
    ".json": ("FORMAT json, ARRAY true", False),
    ".ndjson": ("FORMAT json", False),
    ".jsonl": ("FORMAT json", False),
}


def row_options(fn: Callable) -> Callable:
    """Adds `--format` and `--output` to a click command (as `fmt` and `output`)."""

    @click.option("--format", "fmt", type=click.Choice(FORMATS),
                  help="How rows are printed: 'table' on a terminal, else 'csv' by default.")
    @click.option("-o", "--output", type=click.Path(dir_okay=False),
                  help="Write the rows to FILE instead (.parquet, .csv, .tsv, .json, .ndjson) "
                       "through DuckDB's COPY; the extension chooses the format.")
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("fmt") and kwargs.get("output"):
            raise click.UsageError("--format is for printed rows; with --output the file's "
                                   "extension chooses the format")
        return fn(*args, **kwargs)

    return wrapper


def emit(con: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation, fmt: str | None = None,
         output: str | None = None, out: TextIO | None = None,
         staging: Path | None = None) -> int | None:
    """Print `rel` in `fmt` to `out` (stdout), or COPY it to `output` (through `staging`, a
    fresh folder, when given: see `staging_for`); returns rows written to a file. DuckDB
    errors (also those raised mid-stream) become one-line QueryErrors."""
    import duckdb

    from .query import sql_error

    out = out or sys.stdout
    try:
        if not _locked(con):  # (a locked connection has it off already: query.lock_down)
            con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout
        try:
            rel.create_view(RESULT_VIEW, replace=True)
        except duckdb.InvalidInputException:  # the rows of a statement that ran already
            # (PRAGMA, EXPLAIN, COPY's count, SET): held by DuckDB, small
            con.register(RESULT_VIEW, rel.to_arrow_table())
        view = con.sql(f"SELECT * FROM {RESULT_VIEW}")  # duplicate names made unique here
        if output:
            return _copy(con, view, output, staging)
        fmt = fmt or ("table" if out.isatty() else "csv")
        try:
            WRITERS[fmt](con, view, out)
            out.flush()
        except BrokenPipeError:  # `| head`: the reader has gone; stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return None
    except duckdb.Error as exc:
        raise sql_error(exc) from exc


def _text_select(view: duckdb.DuckDBPyRelation) -> str:
    """Each column as text: nested values as JSON, the rest in DuckDB's own text form."""
    cols = []
    for name, t in zip(view.columns, view.types):
        q = identifier(name)
        expr = (f"CAST(to_json({q}) AS VARCHAR)" if t.id in _NESTED
                else q if t.id == "varchar" else f"CAST({q} AS VARCHAR)")
        cols.append(f"{expr} AS {q}")
    return f"SELECT {', '.join(cols) or '*'} FROM {RESULT_VIEW}"


def _batches(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[list[tuple]]:
    """Rows of `sql` as tuples, one bounded batch at a time."""
    for batch in con.sql(sql).to_arrow_reader(BATCH_ROWS):
        yield list(zip(*(col.to_pylist() for col in batch.columns)))


def _csv(delimiter: str) -> Callable:
    def write(con: duckdb.DuckDBPyConnection, view: duckdb.DuckDBPyRelation, out: TextIO) -> None:
        w = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        w.writerow(view.columns)
        for rows in _batches(con, _text_select(view)):
            w.writerows(rows)
    return write


def _json_lines(con: duckdb.DuckDBPyConnection) -> Iterator[str]:
    sql = f"SELECT CAST(to_json(r) AS VARCHAR) FROM {RESULT_VIEW} AS r"
    for rows in _batches(con, sql):
        for (line,) in rows:
            yield line


def _ndjson(con: duckdb.DuckDBPyConnection, view: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    for line in _json_lines(con):
        out.write(line + "\n")


def _json(con: duckdb.DuckDBPyConnection, view: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    sep = "[\n"
    for line in _json_lines(con):
        out.write(sep + line)
        sep = ",\n"
    out.write("[]\n" if sep == "[\n" else "\n]\n")


def _markdown(con: duckdb.DuckDBPyConnection, view: duckdb.DuckDBPyRelation,
              out: TextIO) -> None:
    def cell(v: str | None) -> str:
        return "" if v is None else v.replace("|", "\\|").replace("\n", "<br>")

    out.write("| " + " | ".join(cell(c) for c in view.columns) + " |\n")
    out.write("|" + "|".join(" ---: " if t.id in _NUMERIC else " --- " for t in view.types)
              + "|\n")
    for rows in _batches(con, _text_select(view)):
        out.writelines("| " + " | ".join(cell(v) for v in row) + " |\n" for row in rows)


def _table(con: duckdb.DuckDBPyConnection, view: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    """Aligned columns; widths come from the header and the first batch (later rows that are
    wider just push their line out), so output starts before the result is complete."""
    def cell(v: str | None) -> str:
        if v is None:
            return "NULL"
        v = v.replace("\n", "\\n").replace("\t", " ")
        return v if len(v) <= TABLE_CELL else v[:TABLE_CELL - 1] + "…"

    right = [t.id in _NUMERIC for t in view.types]
    widths: list[int] | None = None
    for rows in _batches(con, _text_select(view)):
        cells = [[cell(v) for v in row] for row in rows]
        if widths is None:
            widths = [max([len(c)] + [len(r[i]) for r in cells])
                      for i, c in enumerate(view.columns)]
            _table_line(out, view.columns, widths, right)
            _table_line(out, ["-" * w for w in widths], widths, right)
        for r in cells:
            _table_line(out, r, widths, right)
    if widths is None:  # no rows: the header alone
        widths = [len(c) for c in view.columns]
        _table_line(out, view.columns, widths, right)
        _table_line(out, ["-" * w for w in widths], widths, right)


def _table_line(out: TextIO, cells: list[str], widths: list[int], right: list[bool]) -> None:
    out.write("  ".join(c.rjust(w) if r else c.ljust(w)
                        for c, w, r in zip(cells, widths, right)).rstrip() + "\n")


WRITERS: dict[str, Callable] = {"table": _table, "csv": _csv(","), "tsv": _csv("\t"),
                                "json": _json, "ndjson": _ndjson, "markdown": _markdown}


def _copy(con: duckdb.DuckDBPyConnection, view: duckdb.DuckDBPyRelation, output: str,
          staging: Path | None = None) -> int:
    """COPY the result to `output` under a temporary name (in `staging` when given); renamed
    only when complete."""
    path = Path(output)
    ext = path.suffix.lower()
    if ext not in FILE_FORMATS:
        raise AnnostreamError(f"{output}: unknown output extension {ext or '(none)'!r}; "
                              f"use one of {', '.join(FILE_FORMATS)}")
    options, as_text = FILE_FORMATS[ext]
    select = _text_select(view) if as_text else f"SELECT * FROM {RESULT_VIEW}"
    if staging is not None:
        tmp = staging / path.name
        rows = con.execute(f"COPY ({select}) TO {literal(str(tmp))} ({options})").fetchone()
        os.replace(tmp, path)
        return rows[0] if rows else 0
    with replacing(path) as tmp:
        rows = con.execute(f"COPY ({select}) TO {literal(str(tmp))} ({options})").fetchone()
    return rows[0] if rows else 0


def _locked(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute("SELECT current_setting('lock_configuration')").fetchall()
    return bool(rows and rows[0][0])


@contextmanager
def staging_for(output: str | None) -> Iterator[Path | None]:
    """A fresh empty folder next to `output` (None without one), removed afterwards: the one
    place a locked-down connection may write (`query --safe --output`)."""
    if output is None:
        yield None
        return
    path = Path(output).absolute()
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.d")
    try:
        staging.mkdir()
    except OSError as exc:
        raise AnnostreamError(f"{output}: cannot write there: {exc.strerror or exc}") from exc
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
