"""annostream: stream Label Studio and Dataloop exports into Parquet tables, query with DuckDB.

The front door: `convert`, `connect`, `export`, `ingest` and `status`, the functions the CLI
calls, returning typed results (`ConversionResult`, a DuckDB connection, `ExportSummary`,
`IngestReport`, `LakeStatus`); their modes are the Literal types of stream/modes.py.
`export`, `ingest` and `status` load DuckDB (and the lake's readers) on first use, so a
conversion and each of its worker processes do not pay for them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .api import connect
from .convert import ConversionResult, convert
from .errors import AnnostreamError, InputError
from .tables import SCHEMA_VERSION, TABLES

if TYPE_CHECKING:
    from .lake import IngestReport, LakeStatus, ingest, status
    from .rebuild import ExportSummary, export

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "AnnostreamError",
    "ConversionResult",
    "ExportSummary",
    "IngestReport",
    "InputError",
    "LakeStatus",
    "__version__",
    "connect",
    "convert",
    "export",
    "ingest",
    "status",
]

# name -> the submodule defining it; no submodule has one of these names, so importing the
# submodule never replaces the function on the package (it did with a module `export.py`)
_LAZY = {"export": "rebuild", "ExportSummary": "rebuild", "ingest": "lake", "status": "lake",
         "IngestReport": "lake", "LakeStatus": "lake"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'stream' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value
