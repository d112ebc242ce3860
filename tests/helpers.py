"""Shared test helpers, the one module tests import from (tests never import each other):
paths, the real converter and CLI, and the source side computed with the json module."""
from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import lzma
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from stream.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"


def read_tables(out: Path) -> dict[str, pa.Table]:
    """Every table of a converted folder, read back from its Parquet parts."""
    return {t: pq.read_table(out / t) for t in TABLES}


def run_cli(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `annostream` command in a subprocess (python -m stream)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "stream", *args], input=input,
                          capture_output=True, cwd=cwd, env=env)


def load_script(name: str) -> Any:
    """A module of scripts/ (they are not a package), loaded once and registered in
    sys.modules (dataclasses look their module up there)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- Label Studio samples, read with the json module ------------------------------------------
LS = SAMPLES / "labelstudio"
TASK_FILES = ["image_regions.json", "ner_text.json", "video_tracks.json", "video_interpolated.json",
              "classification.json", "pre1_completions.json", "import_predictions.json",
              "single_task.json", "storage_tasks", "hypertext_paragraphs_timeseries.json"]
NER_FILE = "ner_model_predictions.json"
LISTS = {"annotations": "annotation", "completions": "annotation", "predictions": "prediction",
         "drafts": "draft"}


# -- the source side, read with the json module ---------------------------------------------
def source_files(path: Path) -> list[Path]:
    return sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()) \
        if path.is_dir() else [path]


def source_tasks(path: Path) -> list[tuple[Path, int, dict]]:
    """(file, position, object) for every task object of a sample file or folder."""
    out = []
    for f in source_files(path):
        root = json.loads(f.read_text(encoding="utf-8"))
        for pos, obj in enumerate(root if isinstance(root, list) else [root]):
            out.append((f, pos, obj))
    return out


def is_storage_annotation(obj: dict) -> bool:
    return "data" not in obj and isinstance(obj.get("task"), dict)


def source_annotations(obj: dict) -> list[tuple[str, int, object]]:
    """(kind, position, annotation object or bare id) of one task object."""
    if is_storage_annotation(obj):
        return [("annotation", -1, obj)]
    if "data" not in obj:
        return []  # a flat import object: all of it is data
    return [(LISTS[key], p, a) for key in LISTS for p, a in enumerate(obj.get(key) or [])]


def task_id_of(file: Path, pos: int, obj: dict) -> str:
    """The task's id as text; a synthetic '~<file>#<position>' for a task without one."""
    task = obj["task"] if is_storage_annotation(obj) else obj
    return str(task["id"]) if "data" in task and "id" in task else f"~{file}#{pos}"


def ann_id_of(task_id: str, kind: str, pos: int, ann: dict) -> str:
    """The annotation's id as text; '~<task_id>/<kind letter><position>' when it has none."""
    return str(ann["id"]) if "id" in ann else f"~{task_id}/{kind[0]}{pos}"


# -- small hand-written Label Studio exports ------------------------------------------------
def task(tid: int, project: int | None = 7, updated: str = "2026-01-01T00:00:00.000000Z",
         labels: tuple[str, ...] = ("A",), annotations: int = 1) -> dict:
    """A task with `annotations` annotations, each a choices result per label + a relation."""
    t = {"id": tid, "data": {"text": f"task {tid}"}, "updated_at": updated,
         "created_at": "2025-12-01T00:00:00.000000Z",
         "annotations": [
             {"id": tid * 100 + a, "completed_by": 1, "updated_at": updated,
              "result": [{"id": f"r{tid}-{a}-{i}", "type": "choices", "from_name": "c",
                          "to_name": "t", "value": {"choices": [label]}}
                         for i, label in enumerate(labels)]
              + [{"type": "relation", "from_id": f"r{tid}-{a}-0", "to_id": f"r{tid}-{a}-0",
                  "direction": "right"}]}
             for a in range(annotations)]}
    if project is not None:
        t["project"] = project
    return t


def ts(text: str) -> datetime:
    """An ISO-8601 timestamp as the platforms write it ('Z' for UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- comparing JSON values --------------------------------------------------------------------
NUMBERS = (int, float)


def json_diff(a, b, path: str = "$") -> str | None:
    """The first path where two parsed JSON values differ, or None when they are equal.

    Numbers compare as numbers (1 == 1.0) but never equal a boolean; object key order is free.
    """
    ta, tb = type(a), type(b)
    if ta in NUMBERS and tb in NUMBERS:
        return None if a == b else f"{path}: {a!r} != {b!r}"
    if ta is not tb:
        return f"{path}: {ta.__name__} {a!r:.60} != {tb.__name__} {b!r:.60}"
    if ta is dict:
        for k in a.keys() | b.keys():
            if k not in b:
                return f"{path}.{k}: missing from the rebuilt value"
            if k not in a:
                return f"{path}.{k}: not in the original"
        for k in a:
            found = json_diff(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if ta is list:
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = json_diff(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r:.60} != {b!r:.60}"


def json_values(path: Path) -> list:
    """Every JSON value in a file (one for a document, several for NDJSON), decompressed."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:3] == b"BZh":
        raw = bz2.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        raw = lzma.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = pa.CompressedInputStream(pa.BufferReader(raw), "zstd").read()
    text, values, i = raw.decode("utf-8-sig"), [], 0
    decoder = json.JSONDecoder()
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i == len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)
