"""Format detection from the first bytes: a Label Studio task array whose first task starts
with an empty or nested list is not mistaken for the NER model format (docs/formats.md part C),
and the NER format is still recognised when its first document has no spans."""
from __future__ import annotations

import io
import json

import pytest
from helpers import read_tables

from stream import convert
from stream.formats import sniff
from stream.sources import InputStream

NER = {
    "spans_first": [{"d1": [[0, 5]], "d2": []}, {"d1": "Hello world", "d2": "x"}],
    "no_spans_first": [{"d1": [], "d2": [[0, 1], [2, 3]]}, {"d1": "a", "d2": "b c"}],
    "sample_shape": [{"doc_001": [[0, 17], [29, 49]], "doc_002": []},
                     {"doc_001": "Mette Frederiksen mødtes med Ursula von der Leyen.",
                      "doc_002": "Ingen."}],
}
NOT_NER = {
    "empty_predictions_first": [{"predictions": [], "data": {"text": "a"}}],
    "empty_annotations_first": [{"annotations": [], "data": {"text": "a"}},
                                {"annotations": [], "data": {"text": "b"}}],
    "drafts_of_lists": [{"drafts": [[1, 2]], "data": {"text": "a"}}],
    "data_is_a_list": [{"data": []}],
    "flat_import_with_a_list_of_string_lists": [{"tags": [["a", "b"]], "text": "t"}],
    "flat_import_with_triples": [{"boxes": [[1, 2, 3]], "image": "a.jpg"}],
    "flat_import_with_a_list_then_a_string": [{"ids": [], "text": "t"}],
}


def plan_of(obj) -> str:
    plan = sniff(InputStream(io.BytesIO(json.dumps(obj).encode())))
    return plan.platform


@pytest.mark.parametrize("name", NER)
def test_ner_model_files_are_detected(name):
    assert plan_of(NER[name]) == "ner"


@pytest.mark.parametrize("name", NOT_NER)
def test_task_arrays_starting_with_a_list_are_not_ner(name):
    assert plan_of(NOT_NER[name]) == "labelstudio"


def test_a_task_with_empty_predictions_first_converts_as_a_task(tmp_path):
    tasks = NOT_NER["empty_annotations_first"] + NOT_NER["empty_predictions_first"]
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(tasks))
    convert([path], tmp_path / "out", workers=1)
    got = read_tables(tmp_path / "out")["tasks"]
    assert got["container"].to_pylist() == ["array"] * len(tasks)
    assert [json.loads(d) for d in got["data"].to_pylist()] == [t["data"] for t in tasks]


def test_a_second_element_that_is_not_texts_means_label_studio(tmp_path, converted):
    """Found by the round-trip property test: a flat import object holding an empty list,
    followed by a task, is Label Studio, not the NER model file."""
    path = tmp_path / "tasks.json"
    path.write_text('[{"": []}, {"data": {}}]')
    tables = converted(path)
    assert tables["tasks"].column("form").to_pylist() == ["flat", "task"]


def test_a_lone_spans_like_object_is_a_flat_task(tmp_path, converted):
    path = tmp_path / "one.json"
    path.write_text('[{"": []}]')
    assert converted(path)["tasks"].column("form").to_pylist() == ["flat"]
