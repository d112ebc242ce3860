"""Exceptions a user can act on; the CLI turns them into one line and an exit code."""
from __future__ import annotations


class AnnostreamError(Exception):
    """Anything the tool reports to the user without a traceback (exit code 1)."""

    exit_code = 1


class InputError(AnnostreamError):
    """The input is not what we can read: names the file, task position and byte offset (exit 2)."""

    exit_code = 2

    def __init__(self, file: str, message: str, position: int | None = None,
                 offset: int | None = None) -> None:
        self.file, self.position, self.offset, self.reason = file, position, offset, message
        where = file
        if position is not None:
            where += f": task {position}"
        if offset is not None:
            where += f" (near byte {offset})"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple:
        """Pickled by its parts (an error raised in a worker process comes back whole)."""
        return type(self), (self.file, self.reason, self.position, self.offset)


class OutputError(AnnostreamError):
    """The output cannot be written (disk full, no permission, a file where a folder must
    be): exit code 3; the previous conversion in the folder is unchanged."""

    exit_code = 3


class TaskError(ValueError):
    """One task or item is malformed; the reader loop adds file, position and offset."""
