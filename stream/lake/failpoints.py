"""Test-only failpoints (docs/lake.md): named points of an ingest where a test can kill the
process or make it wait, to prove that a run killed anywhere leaves the lake as it was and
that a second run waits for (or reports) the first one's lock."""
from __future__ import annotations

import os
import signal
import time

KILL_ENV = "ANNOSTREAM_LAKE_KILL_AT"  # '<point>': SIGKILL ourselves there
PAUSE_ENV = "ANNOSTREAM_LAKE_PAUSE_AT"  # '<point>:<seconds>': sleep there


def failpoint(name: str) -> None:
    """ANNOSTREAM_LAKE_KILL_AT=<name> makes the process SIGKILL itself here (a deterministic
    'killed after its first part file'); ANNOSTREAM_LAKE_PAUSE_AT=<name>:<seconds> makes it
    sleep here (a run holding the lock). Without either variable this does nothing."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, seconds = os.environ.get(PAUSE_ENV, "").partition(":")
    if point == name:
        time.sleep(float(seconds))
