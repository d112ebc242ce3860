"""A one-line progress display on stderr: bytes read of total, tasks per second."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


class Progress:
    """Redrawn at most every `every` seconds; silent unless enabled (a terminal, no --quiet)."""

    def __init__(self, total: int | None, enabled: bool, stream: TextIO = sys.stderr,
                 every: float = 0.25) -> None:
        self.total, self.enabled, self.stream, self.every = total, enabled, stream, every
        self.start = self._last = time.monotonic()
        self.done_before = 0  # bytes of inputs already finished
        self.tasks = 0

    def tick(self, current: int) -> None:
        """Called once per task with the bytes read so far of the current input."""
        self.tasks += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        done = self.done_before + current
        rate = self.tasks / max(now - self.start, 1e-9)
        of = f" of {_mb(self.total)} ({100 * done / self.total:.0f}%)" if self.total else ""
        self.stream.write(f"\r{_mb(done)}{of}, {self.tasks:,} tasks, {rate:,.0f} tasks/s ")
        self.stream.flush()

    def next_input(self, size: int | None) -> None:
        self.done_before += size or 0

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
