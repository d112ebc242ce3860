"""The output containers of an export: each input file rebuilt in its own shape, streamed
one task at a time ('array': a JSON array, 'object': one object per line, 'ner': the
two-object NER file, 'wrapper': the Dataloop docs' `{"annotations": [...]}`, 'elements': a
Dataloop text-classification JSON), compressed by the name's extension (.gz, .bz2, .xz,
.zst), under a staging folder until the whole export succeeded."""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from ..formats.common import dumps


def open_compressed(path: Path) -> BinaryIO:
    """A binary stream compressing by the name's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext == ".gz":
        return gzip.open(path, "wb")  # type: ignore[return-value]
    if ext == ".bz2":
        return bz2.open(path, "wb")  # type: ignore[return-value]
    if ext == ".xz":
        return lzma.open(path, "wb")  # type: ignore[return-value]
    if ext == ".zst":
        return pa.output_stream(str(path), compression="zstd")
    return open(path, "wb")


class JsonArray:
    """A JSON array written one element at a time, between `head` and `tail`."""

    head, tail = "[", "]"

    def __init__(self, path: Path) -> None:
        self.f = open_compressed(path)
        self.n = 0

    def add(self, obj: Any) -> None:
        self.f.write((",\n" if self.n else self.head + "\n").encode() + dumps(obj).encode())
        self.n += 1

    def close(self) -> None:
        end = f"\n{self.tail}\n" if self.n else f"{self.head}{self.tail}\n"
        self.f.write(end.encode())
        self.f.close()


class JsonLines(JsonArray):
    """One JSON object per line: a single-object file, or newline-delimited JSON."""

    def add(self, obj: Any) -> None:
        self.f.write(dumps(obj).encode() + b"\n")
        self.n += 1

    def close(self) -> None:
        self.f.close()


class WrapperArray(JsonArray):
    """The Dataloop docs' `{"annotations": [items]}`."""

    head, tail = '{"annotations": [', "]}"


class ElementsDocument(JsonArray):
    """A Dataloop text-classification JSON: the document's keys, then `elements`."""

    def add(self, obj: Any) -> None:
        doc, element = obj
        if not self.n:
            head = dumps(doc)[:-1] + ("," if doc else "")
            self.f.write((head + '"elements":[\n').encode())
        else:
            self.f.write(b",\n")
        self.f.write(dumps(element).encode())
        self.n += 1

    def close(self) -> None:
        self.f.write(b"]}\n" if self.n else b'{"elements":[]}\n')
        self.f.close()


class NerPair:
    """The NER model file (docs/formats.md part C), `[{doc: spans}, {doc: text}]`: the spans
    object is written as tasks come, the texts object to a side file appended at the end
    (both streamed)."""

    def __init__(self, path: Path) -> None:
        self.f = open_compressed(path)
        self.f.write(b"[{")
        self.texts = tempfile.TemporaryFile(dir=path.parent)
        self.n_spans = self.n_texts = 0

    def add(self, obj: Any) -> None:
        doc = dumps(obj["id"]).encode()
        preds = obj.get("predictions") or []
        if preds:
            spans = [v["span"] if "span" in v else [v["start"], v["end"]]
                     for v in (r["value"] for r in preds[0]["result"])]
            self.f.write((b", " if self.n_spans else b"") + doc + b": " + dumps(spans).encode())
            self.n_spans += 1
        if "text" in obj["data"]:
            self.texts.write((b",\n" if self.n_texts else b"") + doc + b": "
                             + dumps(obj["data"]["text"]).encode())
            self.n_texts += 1

    def close(self) -> None:
        self.f.write(b"},\n{")
        self.texts.seek(0)
        shutil.copyfileobj(self.texts, self.f)
        self.texts.close()
        self.f.write(b"}]\n")
        self.f.close()


CONTAINERS = {"array": JsonArray, "object": JsonLines, "ner": NerPair, "wrapper": WrapperArray,
              "elements": ElementsDocument}


class Staging:
    """Outputs written under a hidden staging folder, moved to their final names on commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / f".annostream-tmp-{uuid.uuid4().hex[:12]}"
        self.dir.mkdir(parents=True)
        self.files: list[str] = []

    def path(self, rel: str) -> Path:
        self.files.append(rel)
        return self.dir / rel

    def commit(self, single: Path | None = None) -> list[Path]:
        done = []
        for rel in self.files:
            dest = single if single is not None else self.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / rel, dest)
            done.append(dest)
        shutil.rmtree(self.dir, ignore_errors=True)
        return done

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
