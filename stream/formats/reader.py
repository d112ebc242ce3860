"""The reader seam: what a platform reader is, for the read loop and for the compiled core.

Data flows source -> format reader -> column buffers -> part writer. A format reader takes
one parsed task or item at a time and writes its rows into the `TableBuffers` it was made
with; it never sees files, so it is tested with buffers alone (tests/test_reader_seam.py).
The Python readers (`labelstudio.LabelStudio`, `dataloop.Dataloop`) are the specification;
the compiled core plugs in here and must give the same rows.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..buffers import TableBuffers


class FormatReader(Protocol):
    """One task or item in, rows out."""

    source: str  # the `source` column of its rows: 'labelstudio' or 'dataloop'

    def add(self, obj: Any, file: str, position: int, container: str) -> None:
        """The rows of one parsed task (or item) at `position` of input `file`, read from a
        `container` shape (tasks.container). A malformed one raises TaskError; the read
        loop then rolls the buffers back to their mark before it."""
        ...


ReaderFactory = Callable[[TableBuffers], FormatReader]  # a platform's reader class
