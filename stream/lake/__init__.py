"""A data lake of ingested exports: `annostream ingest`, `lake status`, `lake vacuum`.

Layout (docs/lake.md explains the choices):

    <lake>/_lake/lake.json                 format (parquet | delta), created with which version
    <lake>/_lake/ledger.jsonl              one line per batch; rewritten whole, atomically
    <lake>/_lake/pending/<batch>.json      a batch being published (removed after its commit)
    <lake>/_lake/lock                      fcntl lock (local) or a lease object (object storage)
    <lake>/<table>/source=S/project_id=P/batch=B/part-0.parquet    (format parquet)
    <lake>/<table>/  a Delta table partitioned by source, project_id, batch  (format delta)

A batch is one input file (or, with `--full`, one input argument) converted by
`stream.convert` into a staging folder, split per (source, project) by DuckDB, published
under its batch folders and then committed by rewriting the ledger. Readers (the views of
`register`) read only the batches the ledger lists as committed, so a batch appears in one
step and a run killed at any moment leaves nothing visible; the next run removes what the
killed one left (`_lake/pending`) and ingests the input again.

Modules, one job each: `storage` (where objects live, the ledger, the lock, Delta tables),
`inputs` (listing and fingerprinting input files), `planning` (what is new, grouped into
batches), `writing` (converting and publishing a batch, the commit), `reading` (the views),
`maintenance` (status and vacuum); `failpoints` holds the test-only kill and pause points.
"""
from __future__ import annotations

from .failpoints import KILL_ENV, PAUSE_ENV
from .maintenance import LakeStatus, parse_duration, status, vacuum
from .planning import Batch, IngestReport
from .reading import LEDGER_SCHEMA, connect_lake, register
from .storage import Lake, LakeBusy, redact
from .writing import ingest

__all__ = ["KILL_ENV", "LEDGER_SCHEMA", "PAUSE_ENV", "Batch", "IngestReport", "Lake", "LakeBusy",
           "LakeStatus", "connect_lake", "ingest", "parse_duration", "redact", "register",
           "status", "vacuum"]
