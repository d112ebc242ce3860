"""Names on disk that several modules must agree on: what marks a converted folder (its
manifest, its generations: see writer.OutputFolder) and what marks a lake (its
`_lake/lake.json`). Deciding which of the two a path
is needs only these names, not the (heavier) modules that read them."""
from __future__ import annotations

import os
from pathlib import Path

MANIFEST = "_manifest.json"  # a converted folder's completion mark and run summary
LAKE_META = "_lake"  # a lake's own folder: metadata, ledger, lock, staging
LAKE_JSON = f"{LAKE_META}/lake.json"  # what makes a folder or URI a lake (annostream ingest)
STATE = ".annostream"  # inside an output folder: its generations and the `current` link
CURRENT = "current"
GENERATION = "gen-"


def current(folder: str | os.PathLike) -> Path | None:
    """The generation folder an output folder's tables are read from now (resolved once:
    a reader that reads every table from it sees one conversion), the folder itself for one
    written before generations, None when it holds no conversion."""
    folder = Path(folder)
    link = folder / STATE / CURRENT
    if link.is_symlink():
        return link.resolve()
    return folder if (folder / MANIFEST).exists() else None


def is_lake(folder_or_lake: str | os.PathLike) -> bool:
    """A URI (s3://, gs://, file://) is always a lake; a local folder when it has LAKE_JSON."""
    target = os.fspath(folder_or_lake)
    return "://" in target or (Path(target) / LAKE_JSON).is_file()
