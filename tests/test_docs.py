"""The CLI reference docs/cli.md documents every command and is current with --help (`make docs` writes it)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from skinimg.cli import cli, write_cli_reference

CLI_MD = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_reference_is_current():
    assert not write_cli_reference(CLI_MD, check=True), "docs/cli.md is stale: run `make docs`"


def test_every_command_documented_and_has_help():
    text = CLI_MD.read_text(encoding="utf-8")
    assert text.count("### `skinimg ") == len(cli.commands)
    for name, cmd in cli.commands.items():
        assert f"### `skinimg {name}`" in text, name
        r = CliRunner().invoke(cli, [name, "--help"], prog_name="skinimg")
        assert r.exit_code == 0 and "Usage: skinimg" in r.output


#: What a measured figure looks like in a help text: a time, a memory size, or an accuracy with a value.
MEASURED = re.compile(r"\d[\d.,]*\s*(ms|s|seconds?|minutes?|hours?|GB|MB)\b|\b(F1|IoU|accuracy)\b[^.\n]{0,25}\d\.\d"
                      r"|\d+ of [\d ]+\b")


def test_help_texts_carry_no_measured_figures():
    """Figures change with every retrain and benchmark run: they live in the documentation, not in --help."""
    found = [f"skinimg {name}: {m.group(0)!r}" for name, cmd in cli.commands.items()
             for m in MEASURED.finditer(CliRunner().invoke(cli, [name, "--help"], prog_name="skinimg").output)]
    assert not found, found
