"""Keeping a lake: its status at a glance, and vacuum (old snapshots' files and ledger
entries removed, the newest snapshot of every project always kept)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

from ..errors import AnnostreamError
from ..tables import SCHEMA_VERSION, TABLES
from .reading import ledger_row, live_batches
from .storage import (
    LAST_RUN,
    Lake,
    committed_entries,
    drop_batches,
    iso,
    now,
    open_delta,
    recover,
    redact,
    storage_errors,
)


@dataclass(frozen=True)
class LakeStatus:
    """The lake at a glance (`annostream lake status`)."""

    lake: str  # its URI, redacted
    format: str  # 'parquet' or 'delta'
    schema_versions: list[int]  # of its committed batches
    tool_schema_version: int  # of this annostream
    batches: list[dict]  # every ledger entry as a row of LEDGER_SCHEMA, committed or failed
    committed: int
    failed: int
    rows: dict[str, int]  # per table, over the committed batches
    live_batches: list[str]  # the batches `latest.*` reads
    last_run: dict | None  # what the last ingest did


def status(uri: str | os.PathLike) -> LakeStatus:
    """The lake at a glance: format, schema versions, batches (as ledger rows), last run."""
    with storage_errors(uri):
        return _status(Lake(uri))


def _status(lk: Lake) -> LakeStatus:
    meta = lk.existing_meta()
    entries = lk.ledger()
    committed = committed_entries(entries)
    return LakeStatus(
        lake=redact(lk.uri), format=meta["format"],
        schema_versions=sorted({e["schema_version"] for e in committed}),
        tool_schema_version=SCHEMA_VERSION, batches=[ledger_row(e) for e in entries],
        committed=len(committed), failed=len(entries) - len(committed),
        rows={t: sum((e.get("rows") or {}).get(t, 0) for e in committed) for t in TABLES},
        live_batches=sorted({b for _, _, b, _ in live_batches(committed)}),
        last_run=lk.read_json(LAST_RUN))


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '2w', '90m', '45s' as a timedelta."""
    m = _DURATION.match(text.strip())
    if not m:
        raise AnnostreamError(f"--keep {text!r}: expected a number and a unit, e.g. 30d, 12h, 2w")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def vacuum(uri: str | os.PathLike, keep: timedelta, *, dry_run: bool = False,
           wait: float = 0.0) -> list[dict]:
    """Remove batches finished more than `keep` ago, except every batch `latest.*` reads
    (the newest snapshot per source and project, and partial batches after it); returns the
    ledger entries removed. The ledger is rewritten first, so readers stop seeing a batch
    before its files go."""
    with storage_errors(uri):
        return _vacuum(Lake(uri), keep, dry_run, wait)


def _vacuum(lk: Lake, keep: timedelta, dry_run: bool, wait: float) -> list[dict]:
    meta = lk.existing_meta()
    cutoff = iso(now() - keep)
    with lk.lock(wait, "vacuum"):
        recover(lk)
        entries = lk.ledger()
        live = {b for _, _, b, _ in live_batches(committed_entries(entries))}
        old = [e for e in entries
               if e["batch"] not in live and (e.get("finished_at") or e["started_at"]) < cutoff]
        if dry_run or not old:
            return old
        gone = {e["batch"] for e in old}
        lk.write_ledger([e for e in entries if e["batch"] not in gone])
        dropped = [e for e in old if e["status"] == "committed"]
        if dropped and meta["format"] == "delta":
            drop_batches(lk, "delta", [e["batch"] for e in dropped], None)
            _vacuum_delta(lk)
        for e in dropped if meta["format"] != "delta" else []:
            drop_batches(lk, "parquet", [e["batch"]],
                          [f"{t}/{rel}" for t, rels in e["parts"].items() for rel in rels])
        return old


def _vacuum_delta(lk: Lake) -> None:
    """Delete the files of the removed rows now (Delta would otherwise keep them for time
    travel); older table versions then no longer read."""
    for table in TABLES:
        dt = open_delta(lk, table)
        if dt is not None:
            dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
