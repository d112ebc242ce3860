"""annostream: stream Label Studio and Dataloop exports into Parquet tables, query with DuckDB."""
from __future__ import annotations

__version__ = "0.1.0"

from .convert import convert  # noqa: E402
from .errors import AnnostreamError, InputError  # noqa: E402
from .tables import TABLES, SCHEMA_VERSION  # noqa: E402

__all__ = ["convert", "connect", "export", "AnnostreamError", "InputError", "TABLES", "SCHEMA_VERSION", "__version__"]


def __getattr__(name: str):
    """`stream.connect` and `stream.export` load DuckDB on first use, so a conversion (and
    each of its worker processes) does not pay for it."""
    if name == "connect":
        from .query import connect
        return connect
    if name == "export":
        from .export import export
        return export
    raise AttributeError(f"module 'stream' has no attribute {name!r}")
