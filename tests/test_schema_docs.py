"""The schema module and docs/schema.md never drift; every column is documented."""
from helpers import ROOT

from stream.tables import TABLES, schema_markdown


def test_docs_schema_is_generated_from_the_schema_module():
    assert (ROOT / "docs" / "schema.md").read_text() == schema_markdown() + "\n", (
        "docs/schema.md is stale: run `annostream schema > docs/schema.md`")


def test_every_column_has_a_meaning():
    for table in TABLES.values():
        for column in table.columns:
            assert len(column.doc) > 10, f"{table.name}.{column.name} is undocumented"
        assert len(set(table.names)) == len(table.names), f"{table.name} repeats a column"
