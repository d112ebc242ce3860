"""Planning an ingest: which input files are new (by name, size and mtime, else by content)
and how they group into batches: a whole export in one file is a full snapshot of its
project, the new per-task files of one argument form one partial batch (docs/lake.md)."""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .inputs import InputFile, container, expand, fingerprint
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



def plan_batches(args: list[str], snapshot: str, committed: list[dict], run_dir: Path,
                 report: IngestReport, say: Callable[[str], None]) -> list[Batch]:
    """Which new content to ingest, grouped into batches; records what is skipped and why."""
    by_stat = {(f["name"], f["size"], f["mtime"]): e["batch"]
               for e in committed for f in e["files"]}
    by_sha = {f["sha256"]: e["batch"] for e in committed for f in e["files"]}
    by_batch = {e["fingerprint"]: e["batch"] for e in committed}
    seen: dict[str, str] = {}  # sha256 -> name, within this run
    batches: list[Batch] = []
    for k, arg in enumerate(args):
        files = expand(arg)
        fresh: list[InputFile] = []
        for f in files:
            known = by_stat.get((f.name, f.size, f.mtime)) if snapshot != "full" else None
            if known is None:
                fingerprint(f, run_dir / "in" / str(k) / (f.rel or "input"))
                known = by_sha.get(f.sha256) if snapshot != "full" else None
            if known is None and f.sha256 in seen and snapshot != "full":
                known = f"this run ({seen[f.sha256]})"
            if known is not None:
                if f.local and f.local.startswith(str(run_dir)):
                    os.unlink(f.local)  # a download we do not need
                report.skipped.append({"name": f.name, "reason": f"already ingested in {known}"})
                say(f"already ingested: {f.name} (batch {known})")
                continue
            seen[f.digest] = f.name
            f.container = container(f)
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


