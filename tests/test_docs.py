"""The README documents every command, and its CLI reference is current with --help."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from skinimg.cli import cli, update_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_cli_reference_is_current():
    assert not update_readme(README, check=True), "README CLI reference is stale: run `make docs`"


def test_every_command_documented_and_has_help():
    text = README.read_text(encoding="utf-8")
    for name, cmd in cli.commands.items():
        assert f"### `skinimg {name}`" in text, name
        r = CliRunner().invoke(cli, [name, "--help"], prog_name="skinimg")
        assert r.exit_code == 0 and "Usage: skinimg" in r.output


def test_readme_shows_the_two_commands_first():
    text = README.read_text(encoding="utf-8")
    assert text.index("make demo") < text.index("## CLI reference")
    assert text.index("make test") < text.index("## CLI reference")
