"""The front door's one decision: `stream.connect` opens a converted folder or a lake.

A URI (s3://, gs://, file://) or a folder holding `_lake/lake.json` is a lake, anything else
a converted folder. The lake's reader (pyarrow.dataset, Delta) and DuckDB load only here,
on first use, so `import stream` and a conversion's workers stay light.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .layout import is_lake

if TYPE_CHECKING:
    import duckdb


def connect(folder_or_lake: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every table and convenience view of a converted
    folder or of a lake (its tables, `latest.*` and `ledger` too).

    Example: `stream.connect("out/").sql("SELECT type, count(*) FROM results GROUP BY 1").pl()`
    """
    if is_lake(folder_or_lake):
        from .lake import connect_lake

        return connect_lake(folder_or_lake)
    from .query import connect_folder

    return connect_folder(folder_or_lake)
