"""The `annostream` command: a thin click layer over the library."""
from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import IO, Any

import click

from ._version import __version__
from .convert import convert as convert_exports
from .depth import HIGHEST_DEPTH, MAX_DEPTH
from .errors import AnnostreamError
from .executors import EXECUTORS
from .modes import ConvertMode, ExportFormat, LakeFormat, OnError, Snapshot, choices
from .row_output import emit, row_options
from .tables import TABLES, schema_markdown


def _errors(fn: Callable) -> Callable:
    """Our errors become one line on stderr and the error's exit code (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return fn(*args, **kwargs)
        except AnnostreamError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def executor_options(fn: Callable) -> Callable:
    """`--executor` and `--address`: who runs the jobs (stream/executors.py)."""
    fn = click.option("--address", help="The cluster: tcp://host:8786 (Dask; default "
                      "DASK_SCHEDULER_ADDRESS), auto or ray://host:10001 (Ray; default "
                      "RAY_ADDRESS).")(fn)
    return click.option("--executor", type=click.Choice(EXECUTORS), default="local",
                        show_default=True,
                        help="Run the jobs on local processes (--workers), a Dask cluster or a "
                             "Ray cluster; inputs and output must be on storage its workers "
                             "see.")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="annostream")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Stream Label Studio and Dataloop exports into Parquet tables and query them with DuckDB."""
    logging.basicConfig(format="annostream: %(message)s", level=logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retries are ours to report


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder to write <table>/*.parquet and _manifest.json into.")
@click.option("--overwrite", "mode", flag_value="overwrite",
              help="Replace a conversion already in the output folder.")
@click.option("--append", "mode", flag_value="append",
              help="Add to a conversion already in the output folder.")
@click.option("--on-error", type=click.Choice(choices(OnError)), default="fail", show_default=True,
              help="On a malformed task: stop with an error, or skip it (logged, counted in the "
                   "manifest).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=65536, show_default=True,
              help="Rows buffered per table before a Parquet row group is written (bounds memory).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes to use [default: one per core, or per two cores with the "
                   "compiled core, whose workers keep two threads busy]. Big uncompressed JSON "
                   "arrays are split into byte ranges; the output is the same as with 1.")
@executor_options
@click.option("--max-depth", type=click.IntRange(1, HIGHEST_DEPTH), default=MAX_DEPTH,
              show_default=True, help="Input nested deeper than this many levels is bad input "
                                      "(it would cost memory beyond the value itself).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@_errors
def convert(inputs: tuple[str, ...], output: str, mode: ConvertMode | None, on_error: OnError,
            batch_rows: int, workers: int | None, executor: str, address: str | None,
            max_depth: int, quiet: bool) -> None:
    """Convert exports (files, folders, zips, .gz/.bz2/.xz/.zst, '-' for stdin) into Parquet.

    \b
    Example:
      annostream convert export.json more.json.gz tasks_dir/ -o out/
    """
    result = convert_exports(list(inputs), output, mode=mode or "new", on_error=on_error,
                             batch_rows=batch_rows, progress=not quiet and sys.stderr.isatty(),
                             workers=workers, executor=executor, address=address,
                             max_depth=max_depth)
    if not quiet:
        run = result.run
        size = sum(i["size"] for i in run["inputs"])
        rows = ", ".join(f"{t} {n:,}" for t, n in run["rows"].items())
        click.echo(f"converted {len(run['inputs'])} input(s), {size / 1e6:,.1f} MB in "
                   f"{run['seconds']:.1f}s: {rows} -> {output}", err=True)
        if run["skipped_count"]:
            click.echo(f"skipped {run['skipped_count']} bad task(s); see "
                       f"{output}/_manifest.json", err=True)


@main.command()
@click.option("--table", "table", type=click.Choice(list(TABLES)), help="Only this table.")
def schema(table: str | None) -> None:
    """Print the documented schema, table by table, column by column.

    \b
    Example:
      annostream schema --table results
    """
    if table is None:
        click.echo(schema_markdown())
        return
    t = TABLES[table]
    click.echo(f"{t.name}: {t.doc}")
    for c in t.columns:
        click.echo(f"  {c.name:<22} {str(c.type):<28} {c.doc}")


@main.command()
@click.argument("folder")  # a local folder or a lake's URI (s3://, gs://, file://)
@click.argument("sql", required=False)
@click.option("--file", "sql_file", type=click.File("r", encoding="utf-8"),
              help="Run the SQL script in FILE ('-' for stdin); the last statement's rows print.")
@click.option("--write", is_flag=True,
              help="Also run statements that write files or databases or load extensions "
                   "(COPY, EXPORT, ATTACH, INSTALL, LOAD); without it they are refused.")
@click.option("--safe", is_flag=True,
              help="For SQL from people you do not trust: DuckDB may read only FOLDER (no "
                   "other file, no extension, no ATTACH) and cannot be reconfigured.")
@row_options
@_errors
def query(folder: str, sql: str | None, sql_file: IO[str] | None, write: bool, safe: bool,
          fmt: str | None, output: str | None) -> None:
    """Run SQL over a converted folder: every table and view is registered in DuckDB.

    \b
    Examples:
      annostream query out/ "SELECT type, count(*) FROM results GROUP BY type ORDER BY 2 DESC"
      annostream query out/ --format json "SELECT * FROM regions LIMIT 5"
      annostream query out/ --output boxes.parquet "SELECT * FROM results WHERE x IS NOT NULL"
      annostream query out/ --file report.sql
    """
    if (sql is None) == (sql_file is None):
        raise click.UsageError("give the SQL either as an argument or with --file (exactly one)")
    if safe and write:
        raise click.UsageError("--safe runs no statement that writes: drop --write")
    from .api import connect
    from .query import allowed_roots, lock_down
    from .query import run as run_sql
    from .row_output import staging_for

    script = sql_file.read() if sql_file is not None else sql or ""  # bounded: a SQL script
    con = connect(folder)
    with staging_for(output if safe else None) as staging:
        if safe:  # our own COPY of --output writes into a fresh folder, then renames
            lock_down(con, allowed_roots(folder) + ([str(staging) + "/"] if staging else []))
        rel = run_sql(con, script, write=write)
        if rel is not None:
            _report(emit(con, rel, fmt, output, staging=staging), output)


@main.command()
@click.argument("folder")  # a local folder or a lake's URI (s3://, gs://, file://)
@click.option("--columns", is_flag=True, help="One row per column, with its type and meaning.")
@click.option("--no-view-counts", is_flag=True,
              help="Leave view row counts empty (counting `frames` or `regions` runs the view).")
@row_options
@_errors
def tables(folder: str, columns: bool, no_view_counts: bool, fmt: str | None,
           output: str | None) -> None:
    """List the tables and views of a converted folder with row counts and columns.

    \b
    Examples:
      annostream tables out/
      annostream tables out/ --columns --format markdown
    """
    from .api import connect
    from .query import catalog

    con = connect(folder)
    _report(emit(con, catalog(con, columns=columns, view_counts=not no_view_counts), fmt, output),
            output)


def _report(rows: int | None, output: str | None) -> None:
    if output:
        click.echo(f"wrote {rows:,} rows to {output}", err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--lake", "lake_uri", required=True,
              help="The lake: a folder, file://, s3:// or gs:// URI (created on first use).")
@click.option("--format", "fmt", type=click.Choice(choices(LakeFormat)),
              help="Storage of a new lake: Delta Lake tables (default: Spark, Trino, DuckDB "
                   "and polars read exactly the committed batches) or Hive-partitioned "
                   "Parquet with our ledger. An existing lake keeps its format.")
@click.option("--partial", "snapshot", flag_value="partial",
              help="Every input is a partial export (a diff, per-task files): tasks are "
                   "upserted into the latest view by updated_at.")
@click.option("--full", "snapshot", flag_value="full",
              help="Each input argument as a whole (a folder or prefix of per-task or per-item "
                   "files) is one full snapshot: tasks missing from it leave the latest view.")
@click.option("--on-error", type=click.Choice(choices(OnError)), default="fail",
              show_default=True, help="On a malformed task: stop, or skip it (as in convert).")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for another ingest or vacuum of the lake to finish.")
@executor_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@_errors
def ingest(inputs: tuple[str, ...], lake_uri: str, fmt: LakeFormat | None,
           snapshot: Snapshot | None, on_error: OnError, wait: float, executor: str,
           address: str | None, quiet: bool) -> None:
    """Add new exports to a lake, each as one atomic batch; inputs already there are skipped.

    \b
    Examples:
      annostream ingest exports/2026-11-22/*.json --lake lake/
      annostream ingest s3://bucket/label-studio/project-7/ --lake s3://bucket/lake/
      annostream query lake/ "SELECT count(*) FROM latest.results"
    """
    from .lake import ingest as ingest_inputs

    echo = None if quiet else (lambda line: click.echo(line, err=True))
    ingest_inputs(list(inputs), lake_uri, snapshot=snapshot or "auto", format=fmt,
                  on_error=on_error, wait=wait, progress=not quiet and sys.stderr.isatty(),
                  echo=echo, executor=executor, address=address)


@main.group()
def lake() -> None:
    """Inspect and maintain a lake written by `annostream ingest`."""


@lake.command("status")
@click.argument("lake_uri", metavar="LAKE")
@row_options
@_errors
def lake_status(lake_uri: str, fmt: str | None, output: str | None) -> None:
    """Batches (one row each: input, rows per table, schema version, times, status), with a
    summary on stderr: format, schema versions, totals, last run.

    \b
    Examples:
      annostream lake status lake/
      annostream lake status s3://bucket/lake/ --format json
    """
    import duckdb
    import pyarrow as pa

    from .lake import LEDGER_SCHEMA, status

    st = status(lake_uri)
    last = st.last_run or {}
    rows = ", ".join(f"{t} {n:,}" for t, n in st.rows.items())
    click.echo(f"{st.lake}: {st.format} lake, {st.committed} committed batch(es), "
               f"{st.failed} failed; schema version(s) {st.schema_versions or '-'} "
               f"(this annostream: {st.tool_schema_version}); rows: {rows}; last run "
               f"{last.get('finished_at', 'never')} ({len(last.get('batches', []))} batch(es) "
               "ingested)", err=True)
    con = duckdb.connect()
    con.register("batches", pa.Table.from_pylist(st.batches, schema=LEDGER_SCHEMA))
    _report(emit(con, con.sql("SELECT * FROM batches"), fmt, output), output)


@lake.command("vacuum")
@click.argument("lake_uri", metavar="LAKE")
@click.option("--keep", required=True, help="Keep batches newer than this: 30d, 12h, 2w.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for a running ingest to finish.")
@_errors
def lake_vacuum(lake_uri: str, keep: str, dry_run: bool, wait: float) -> None:
    """Remove snapshots older than --keep (files and ledger entries); the newest snapshot of
    every project, and partial batches after it, always stay.

    \b
    Example:
      annostream lake vacuum lake/ --keep 30d
    """
    from .lake import parse_duration, vacuum

    removed = vacuum(lake_uri, parse_duration(keep), dry_run=dry_run, wait=wait)
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        click.echo(f"{verb} batch {e['batch']} ({e['status']}, {e['input']}, finished "
                   f"{e.get('finished_at')})", err=True)
    click.echo(f"{verb} {len(removed)} batch(es)", err=True)



@main.command("export")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True,
              help="Output file; a folder (existing, or ending in '/') when several inputs are "
                   "rebuilt: one file per input, named as the input below their common folder.")
@click.option("--where", help="SQL predicate on tasks selecting what to export; other tables "
                              "work in subqueries.")
@click.option("--file", "files", multiple=True,
              help="Only this input (tasks.file, or a folder or zip it came from); repeatable.")
@click.option("--format", "fmt", type=click.Choice(choices(ExportFormat)),
              default="auto", show_default=True,
              help="auto: each input in its own shape; labelstudio: Label Studio inputs only, NER "
                   "model files as task arrays; dataloop: Dataloop items only, one JSON per item "
                   "(<filename>.json) under the -o folder.")
@click.option("--as-predictions", is_flag=True,
              help="Label Studio import shape: data + the annotations as predictions, one file.")
@click.option("--model-version", help="model_version of the predictions (--as-predictions).")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
@_errors
def export_command(folder: str, output: str, where: str | None, files: tuple[str, ...],
                   fmt: ExportFormat, as_predictions: bool, model_version: str | None,
                   quiet: bool) -> None:
    """Rebuild exports from a converted folder, streaming (the way back from `convert`).

    \b
    Examples:
      annostream export out/ -o rebuilt.json
      annostream export out/ --where "task_id IN (SELECT task_id FROM results
          WHERE type = 'labels' AND list_contains(labels, 'PER'))" -o subset.json
      annostream export out/ --as-predictions --model-version v3 -o import_me.json
      annostream export out/ --format dataloop -o items/
    """
    from .rebuild import export

    done = export(folder, output, where=where, files=files, fmt=fmt,
                  as_predictions=as_predictions, model_version=model_version)
    if not quiet:
        click.echo(f"exported {done.tasks:,} task(s) into {len(done.outputs)} file(s) -> {output}",
                   err=True)


def reference_markdown() -> str:
    """docs/cli.md: every command's help as click prints it (100 columns wide), so that the
    reference cannot drift from the commands (`make docs` writes it, a test compares)."""
    parts = ["# Command-line reference", "",
             "Every `annostream` command's `--help`, generated from the commands themselves "
             "(`make docs` rewrites this file; tests/test_docs.py fails when it is stale).", ""]

    def visit(cmd: click.Command, ctx: click.Context) -> None:
        parts.extend([f"## `{ctx.command_path}`", "", "```", cmd.get_help(ctx), "```", ""])
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:  # its context inherits the widths and help options
                    visit(sub, click.Context(sub, info_name=name, parent=ctx))

    visit(main, click.Context(main, info_name="annostream", terminal_width=100,
                              max_content_width=100, **main.context_settings))
    return "\n".join(parts)
