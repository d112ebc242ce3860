"""Every command is documented: help text in the CLI and an example in the README."""
import click
from conftest import ROOT

from stream.cli import main


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
