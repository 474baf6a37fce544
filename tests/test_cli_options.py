"""Option names mean one thing across commands: renamed options keep a working deprecated alias, every command
that prints results has --json, the shared choices come from the library."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from skinimg.batch import STAGES
from skinimg.calibrate import METHODS as CORRECTION_METHODS
from skinimg.cli import cli
from skinimg.cli.options import OPTION_MEANINGS, RENAMED
from skinimg.io import write_png
from skinimg.segment import METHODS, SECOND_STAGES

from .badcorpus import skin_like


def _param(command: str, name: str):
    return next(p for p in cli.commands[command].params if p.name == name)


def test_every_command_has_json():
    missing = [n for n, c in cli.commands.items() if "as_json" not in {p.name for p in c.params}]
    assert not missing, missing


def test_shared_choices_come_from_the_library():
    for command in ("segment", "eval-segment", "analyze", "compare", "track"):
        assert tuple(_param(command, "method").type.choices) == METHODS, command
        assert tuple(_param(command, "second_stage").type.choices) == SECOND_STAGES, command
    assert tuple(STAGES["segment"].options["method"].choices) == METHODS
    assert tuple(_param("calibrate", "correction").type.choices) == CORRECTION_METHODS


def test_one_meaning_per_option_name():
    """An option spelled the same way in two commands has the same choices (or none) in both, and the shared ones
    are documented in docs/cli.md's table (OPTION_MEANINGS)."""
    seen: dict[str, tuple] = {}
    for name, cmd in cli.commands.items():
        for p in cmd.params:
            if getattr(p, "hidden", False):
                continue
            choices = tuple(getattr(p.type, "choices", ()) or ())
            for opt in (o for o in p.opts if o.startswith("--")):
                first = seen.setdefault(opt, (name, choices))
                assert first[1] == choices, f"{opt}: {first[0]} {first[1]} vs {name} {choices}"
    documented = {o for pair, _ in OPTION_MEANINGS for o in pair.split(" / ")}
    for opt in ("--method", "--format", "--size", "--images", "--calibrate", "--json", "--preset", "--correction",
                "--image-format"):
        assert opt in documented and opt in seen, opt


@pytest.mark.parametrize("command,old,new", RENAMED)
def test_renamed_options_are_hidden_aliases(command, old, new):
    help_text = CliRunner().invoke(cli, [command, "--help"]).output
    assert new in help_text and f"{old} " not in help_text.replace(new, "")


def test_deprecated_alias_works_and_says_so(tmp_path):
    a = CliRunner().invoke(cli, ["synth", "--set", "grid", "--n", "1", "--size", "96x128", "--format", "png",
                                 "--no-maps", "--out", str(tmp_path / "old")])
    b = CliRunner().invoke(cli, ["synth", "--set", "grid", "--n", "1", "--size", "96x128", "--image-format", "png",
                                 "--no-maps", "--out", str(tmp_path / "new")])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    note = [line for line in a.stderr.splitlines() if " is deprecated " in line]
    assert note == ["skinimg: --format is deprecated for `skinimg synth`; use --image-format"]
    assert " is deprecated " not in b.stderr
    old = sorted(p.relative_to(tmp_path / "old") for p in (tmp_path / "old").rglob("*.png"))
    assert old and old == sorted(p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*.png"))
    both = CliRunner().invoke(cli, ["synth", "--format", "png", "--image-format", "jpg", "--out", str(tmp_path / "x")])
    assert both.exit_code == 2 and "give only --image-format" in both.output


def test_calibrate_method_alias_is_the_correction(tmp_path):
    img = skin_like(48, 64, seed=3)
    write_png(tmp_path / "in" / "a.png", img)
    runs = {}
    for opt in ("--correction", "--method"):
        r = CliRunner().invoke(cli, ["calibrate", str(tmp_path / "in"), "--out", str(tmp_path / opt[2:]), opt,
                                     "linear3x3", "--fallback", "gray_world", "--json"])
        assert r.exit_code == 0, r.output
        runs[opt] = [json.loads(line) for line in r.stdout.splitlines()]
    assert runs["--correction"] == runs["--method"] and runs["--method"][0]["image"] == "a.png"


def test_json_of_per_photo_commands_is_one_object_per_line(tmp_path):
    write_png(tmp_path / "in" / "a.png", skin_like(64, 80, seed=1))
    write_png(tmp_path / "in" / "b.png", np.full((40, 50, 3), (40, 60, 200), np.uint8))
    r = CliRunner().invoke(cli, ["segment", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--workers", "1",
                                 "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["image"] for x in rows] == ["a.png", "b.png"] and rows[1]["status"] == "no_skin"
    assert list(rows[0]) == ["image", "status", "error", "skin_fraction", "method", "stage_agreement", "mask_check",
                             "roi", "roi_source", "roi_pixels"]
    assert (rows[0]["roi"], rows[0]["roi_source"], rows[0]["roi_pixels"]) == ("", "none", None)


def test_every_command_is_in_the_lazy_table():
    """`skinimg CMD` imports only CMD's module (group.COMMAND_MODULES): the table lists every command, in the
    module that defines it, and --help lists them in its order."""
    from skinimg.cli import COMMAND_MODULES

    defined = {name: cmd.callback.__module__.rsplit(".", 1)[1] for name, cmd in cli.commands.items()}
    assert defined == COMMAND_MODULES
    out = CliRunner().invoke(cli, ["--help"]).output
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.startswith("  ")]
    assert listed == list(COMMAND_MODULES)


def test_analyze_imports_only_what_it_runs(tmp_path):
    """A one-photo `skinimg analyze` (no chart, no maps) imports no report, session, phantom or training code, and
    none of the heavy packages it does not call (issue 25: the fixed cost of every run and every worker)."""
    import subprocess
    import sys

    write_png(tmp_path / "a.png", skin_like(96, 128))
    code = ("import sys\nfrom skinimg.cli import cli\n"
            "try:\n    cli.main(sys.argv[1:], standalone_mode=False)\n"
            "finally:\n    print('\\n'.join(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code, "analyze", str(tmp_path / "a.png"), "--out",
                           str(tmp_path / "out"), "--no-maps", "--workers", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    unwanted = ("skinimg.report", "skinimg.session", "skinimg.phantom", "skinimg.train", "skinimg.stats",
                "skinimg.batch.run", "skinimg.batch.tracking", "scipy.spatial", "sklearn", "matplotlib", "dask",
                "pyarrow", "torch")
    found = sorted(m for m in loaded if m.startswith(unwanted))
    assert not found, found
    assert "skinimg.batch.analyze" in loaded  # the check sees the modules of the run
