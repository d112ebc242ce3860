"""annostream: stream Label Studio and Dataloop exports into Parquet tables, query with DuckDB."""
from __future__ import annotations

__version__ = "0.1.0"

from .convert import convert  # noqa: E402
from .errors import AnnostreamError, InputError  # noqa: E402
from .export import export  # noqa: E402
from .query import connect  # noqa: E402
from .tables import TABLES, SCHEMA_VERSION  # noqa: E402

__all__ = ["convert", "connect", "export", "AnnostreamError", "InputError", "TABLES", "SCHEMA_VERSION", "__version__"]
