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


# --- README and docs/: one short README, every relative link and anchor resolves -------------------------

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = [README] + sorted((ROOT / "docs").glob("*.md"))


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: link text only, lower case, punctuation dropped, spaces -> '-'."""
    import unicodedata

    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.replace("`", "")).strip().lower()
    return "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN").replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    in_code = False
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        m = None if in_code else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            s = _slug(m.group(2))
            n = seen.get(s, 0)
            found.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    found.update(re.findall(r'<a\s+(?:name|id)="([^"]+)"', text))
    return found


def _links(path: Path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)


def test_slug_follows_github_rules():
    assert _slug("Session comparison (`skinimg compare` and `skinimg track`)") == \
        "session-comparison-skinimg-compare-and-skinimg-track"
    assert _slug("What is measured, how well, where the details are") == \
        "what-is-measured-how-well-where-the-details-are"


def test_readme_is_short_and_shows_the_two_commands_first():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 15_000, "README.md must stay under 15 KB: details belong in docs/"
    first_section = text.index("\n## ")
    assert text.index("make demo") < text.index("## Quick start") and text.index("make test") < text.index("## Quick start")
    assert first_section < text.index("make demo")


def test_every_relative_link_and_anchor_resolves():
    problems = []
    for f in DOC_FILES:
        for target in _links(f):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            rel, _, frag = target.partition("#")
            dest = (f.parent / rel).resolve() if rel else f
            where = f"{f.relative_to(ROOT)} -> {target}"
            if not dest.exists():
                problems.append(f"{where}: no such file")
            elif ROOT not in dest.parents and dest != ROOT:
                problems.append(f"{where}: leaves the repository")
            elif frag and (dest.suffix != ".md" or frag not in _anchors(dest)):
                problems.append(f"{where}: no such anchor")
    assert not problems, problems


def test_the_link_checker_catches_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nope) [gone](missing.md)\n", encoding="utf-8")
    assert _links(page) == ["#title", "#nope", "missing.md"]
    assert "title" in _anchors(page) and "nope" not in _anchors(page)
