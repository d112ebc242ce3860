"""Third-party NER model-prediction JSON (docs/formats.md part C) as Label Studio tasks.

`[{doc_id: [[start, end], ...]}, {doc_id: text}]`: every document becomes a task whose one
prediction holds a `labels` result per span, with `text[start:end]` as the span text. The
spans side is held in memory (it is small next to the texts); texts are streamed one by one.
"""
from __future__ import annotations

from collections.abc import Iterator

from ..depth import Limited
from ..errors import InputError
from ..numbers import kvitems


def _document(doc_id: str, spans: list | None, text: str | None) -> dict:
    """A task; a document missing from the spans object gets no prediction (not an empty one),
    so that the export can tell the two apart."""
    results = []
    for span in spans or ():
        if (type(span) is list and len(span) == 2 and type(span[0]) is int
                and type(span[1]) is int):
            value: dict = {"start": span[0], "end": span[1], "labels": []}
            if text is not None:
                value["text"] = text[span[0]:span[1]]
        else:
            value = {"span": span}
        results.append({"from_name": "label", "to_name": "text", "type": "labels", "value": value})
    data = {} if text is None else {"text": text}
    return {"id": doc_id, "data": data,
            "predictions": [] if spans is None else [{"result": results}]}


def read_ner(reader: Limited, name: str) -> Iterator[dict]:
    """Yield one task object per document, in the order of the texts object."""
    spans: dict[str, list] = {}
    for doc_id, value in kvitems(reader, "item"):
        if type(value) is str:
            yield _document(doc_id, spans.pop(doc_id, None), value)
        elif type(value) is list:
            spans[doc_id] = value
        else:
            raise InputError(name, f"NER document {doc_id!r}: expected spans or text, got "
                                   f"{type(value).__name__}", offset=reader.offset)
    for doc_id, doc_spans in spans.items():  # spans whose document has no text
        yield _document(doc_id, doc_spans, None)
