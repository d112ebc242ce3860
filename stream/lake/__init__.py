"""A data lake of ingested exports: `annostream ingest`, `lake status`, `lake vacuum`.

Layout (docs/lake.md explains the choices):

    <lake>/_lake/lake.json                 format (parquet | delta), created with which version
    <lake>/_lake/ledger.jsonl              one line per batch; rewritten whole, atomically
    <lake>/_lake/pending/<batch>.json      a batch being converted or published (removed after
                                           its commit)
    <lake>/_lake/staging/<run>/            a local lake's job folders while a run converts
    <lake>/_lake/lock                      fcntl lock (local) or a lease object (object storage)
    <lake>/<table>/source=S/project_id=P/batch=B/part-<job>.parquet   (format parquet)
    <lake>/<table>/  a Delta table partitioned by source, project_id, batch  (format delta)

A batch is one input file (or, with `--full`, one input argument). Its jobs, planned as
`stream.convert` plans a conversion, run on the executor with every other batch's: each reads
its inputs where they are, converts them and writes part files per (source, project) into
the batch folders; the driver then commits the batches in order (Delta transactions, the
ledger). Readers (the views of `register`, Delta readers) read only committed batches, so a
batch appears in one step and a run killed at any moment leaves nothing visible; the next run
removes what the killed one left (`_lake/pending`) and ingests the input again.

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
