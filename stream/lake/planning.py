"""Planning an ingest: which input files are new (by name, size and mtime, else by content)
and how they group into batches: a whole export in one file is a full snapshot of its
project, the new per-task files of one argument form one partial batch (docs/lake.md)."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..executors import Executor
from ..parallel import raise_failure
from .inputs import InputFile, expand, fingerprint
from .storage import now, redact

log = logging.getLogger("annostream")

FULL_CONTAINERS = frozenset({"array", "ner"})  # a whole export in one file: a full snapshot


@dataclass
class Batch:
    arg: str
    kind: str  # 'full' | 'partial'
    files: list[InputFile]
    fingerprint: str = ""
    id: str = ""
    extra: dict = field(default_factory=dict)  # more keys of its ledger entry (a pull's)

    def __post_init__(self) -> None:
        if len(self.files) == 1:
            self.fingerprint = self.files[0].sha256 or ""
        else:
            listing = "".join(f"{f.rel}\t{f.sha256}\n" for f in self.files)
            self.fingerprint = hashlib.sha256(listing.encode()).hexdigest()


@dataclass
class IngestReport:
    """What one ingest run did, for the CLI and for schedulers calling the Python API."""

    lake: str
    ingested: list[dict] = field(default_factory=list)  # the ledger entries committed
    skipped: list[dict] = field(default_factory=list)  # {name, reason}

    @property
    def nothing_to_do(self) -> bool:
        return not self.ingested



def plan_batches(args: list[str], snapshot: str, committed: list[dict], ex: Executor,
                 report: IngestReport, say: Callable[[str], None]) -> list[Batch]:
    """Which new content to ingest, grouped into batches; records what is skipped and why.
    The files not known by name, size and mtime are fingerprinted on the executor, all at
    once: the driver lists and decides, the workers read."""
    by_stat = {(f["name"], f["size"], f["mtime"]): e["batch"]
               for e in committed for f in e["files"]}
    by_sha = {f["sha256"]: e["batch"] for e in committed for f in e["files"]}
    by_batch = {e["fingerprint"]: e["batch"] for e in committed}
    listed = [(arg, expand(arg)) for arg in args]
    known = {id(f): by_stat.get((f.name, f.size, f.mtime)) if snapshot != "full" else None
             for _, files in listed for f in files}
    todo = [f for _, files in listed for f in files if known[id(f)] is None]
    for f, result in zip(todo, ex.map(fingerprint, todo)):
        _, f.sha256, f.size, f.container = raise_failure(result)
    seen: dict[str, str] = {}  # sha256 -> name, within this run
    batches: list[Batch] = []
    for arg, files in listed:
        fresh: list[InputFile] = []
        for f in files:
            hit = known[id(f)]
            if hit is None and snapshot != "full":
                hit = by_sha.get(f.digest) or (f"this run ({seen[f.digest]})"
                                               if f.digest in seen else None)
            if hit is not None:
                report.skipped.append({"name": f.name, "reason": f"already ingested in {hit}"})
                say(f"already ingested: {f.name} (batch {hit})")
                continue
            seen[f.digest] = f.name
            if f.container is None and f.rel:
                log.warning("%s: not JSON, skipped", f.name)
                continue
            fresh.append(f)
        if not fresh:
            continue
        if snapshot == "full":
            batch = Batch(redact(arg), "full", fresh)
            if batch.fingerprint in by_batch:  # (or given twice in this run)
                report.skipped.append({"name": batch.arg, "reason": "already ingested in "
                                       f"{by_batch[batch.fingerprint]}"})
                say(f"already ingested: {batch.arg} (batch {by_batch[batch.fingerprint]})")
                continue
            by_batch[batch.fingerprint] = f"this run ({batch.arg})"
            batches.append(batch)
            continue
        rest = []
        for f in fresh:
            if snapshot == "auto" and f.container in FULL_CONTAINERS:
                batches.append(Batch(f.name, "full", [f]))
            else:
                rest.append(f)
        if rest:
            batches.append(Batch(rest[0].name if len(rest) == 1 else redact(arg), "partial",
                                 rest))
    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    for b in batches:
        b.id = f"{stamp}-{b.fingerprint[:12]}"
    return batches


