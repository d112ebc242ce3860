"""Every command is documented: help text in the CLI, an example in the README, and
docs/cli.md generated from the commands; the README's Python examples run as written; the
code's citations of docs/formats.md name sections that exist."""
import re

import click
from helpers import ROOT, SAMPLES

import stream
from stream.cli import main, reference_markdown


def _commands(group: click.Group, prefix: str = "annostream") -> dict[str, click.Command]:
    found = {}
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}"
        found[path] = cmd
        if isinstance(cmd, click.Group):
            found.update(_commands(cmd, path))
    return found


def test_every_command_has_help_and_a_readme_example():
    readme = (ROOT / "README.md").read_text()
    commands = _commands(main)
    assert {"annostream convert", "annostream query", "annostream export", "annostream ingest"} <= set(commands)
    for path, cmd in commands.items():
        assert cmd.help and len(cmd.help.strip()) > 20, f"{path} has no help text"
        assert path in readme, f"{path} has no example in README.md"


def test_readme_starts_with_the_two_newcomer_commands():
    readme = (ROOT / "README.md").read_text()
    start = readme.split("## Start here", 1)[1].split("##", 1)[0]
    assert "make demo" in start and "make test" in start


def test_docs_cli_is_generated_from_the_commands():
    assert (ROOT / "docs" / "cli.md").read_text() == reference_markdown(), (
        "docs/cli.md is stale: run `make docs`")


def test_the_readme_python_examples_run_as_written(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    stream.convert([SAMPLES], "out/", workers=1)  # what the README's `annostream convert` made
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
        assert "stream" in namespace


def test_citations_of_docs_formats_name_existing_sections():
    text = (ROOT / "docs" / "formats.md").read_text()
    sections = set(re.findall(r"^### ([A-C]\d+)\.", text, re.M))
    sections |= {f"part {p}" for p in re.findall(r"^## Part ([A-C]):", text, re.M)}
    sections |= {p for p in re.findall(r"^## Part ([A-C]):", text, re.M)}
    cited = set()
    for path in list((ROOT / "stream").rglob("*.py")) + list((ROOT / "docs").glob("*.md")):
        for ref in re.findall(r"docs/formats\.md (part [A-C]|[A-C]\d*)", path.read_text()):
            cited.add(ref)
    assert cited and cited <= sections, sorted(cited - sections)
