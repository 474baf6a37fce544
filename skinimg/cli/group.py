"""The ``skinimg`` command group: one-line errors, logging to stderr, exit codes."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

# OpenCV's codecs print warnings ("PNG input buffer is incomplete") on stderr for the
# broken files skinimg reports itself in one line; keep them quiet here and in the
# worker processes, which inherit the environment.  A user's own setting wins.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

from .. import __version__  # noqa: E402
from ..errors import SkinImgError  # noqa: E402

__all__ = ["cli", "EXIT_OK", "EXIT_FATAL", "EXIT_PARTIAL", "is_quiet"]

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_PARTIAL = 2

log = logging.getLogger("skinimg")

#: Every command and the module of ``skinimg.cli`` that defines it, in the order of ``--help``.  A command's
#: module is imported only when the command runs (or help lists it): ``skinimg analyze`` does not pay for the
#: imports of ``report``, ``track`` or ``synth`` (tests/test_cli_options.py checks this table is complete).
COMMAND_MODULES = {
    "info": "images", "synth": "images",
    "segment": "segment", "train-segmenter": "segment", "eval-segment": "segment",
    "analyze": "analyze", "calibrate": "analyze",
    "compare": "session", "track": "session",
    "run": "batch", "report": "batch", "regress": "batch",
    "bench": "bench",
}


class SkinImgGroup(click.Group):
    """Click group that prints SkinImgError as one line instead of a traceback, and imports each command's
    module when that command is needed (:data:`COMMAND_MODULES`).

    ``commands`` (Click's name -> command dict) loads every command module first, so code that walks all
    commands (the reference docs, tests) sees them all.
    """

    def __init__(self, *args, **kwargs):
        self._commands: dict = {}
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> dict:
        for module in dict.fromkeys(COMMAND_MODULES.values()):
            importlib.import_module(f"{__package__}.{module}")
        return self._commands

    @commands.setter
    def commands(self, value) -> None:
        self._commands = dict(value or {})

    def add_command(self, cmd, name=None) -> None:
        name = name or cmd.name
        self._commands[name] = cmd

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self._commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return self._commands.get(cmd_name)

    def list_commands(self, ctx):  # the order of COMMAND_MODULES, then any command added by other code
        return list(COMMAND_MODULES) + [n for n in self._commands if n not in COMMAND_MODULES]

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SkinImgError as exc:
            click.echo(f"skinimg: {exc}", err=True)
            ctx.exit(EXIT_FATAL)


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Messages of skinimg's own loggers go to stderr; decoder libraries stay quiet.

    Pillow logs parse problems of broken files ("More samples per pixel ...") that
    skinimg already reports as one line per file.
    """
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("skinimg: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)
    logging.getLogger("PIL").setLevel(logging.CRITICAL if verbose < 2 else logging.DEBUG)


@click.group(cls=SkinImgGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="skinimg")
@click.option("-v", "--verbose", count=True, help="More messages on stderr (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """skinimg: objective redness and pigmentation measurements from skin photographs.

    Every command reads photographs (JPEG, PNG, TIFF, BMP, WebP; files or
    folders), never modifies them, and writes its results under --out.
    """
    _setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet



def is_quiet() -> bool:
    """Whether ``skinimg -q`` was given (no progress lines, no summaries; failures are still reported)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("quiet"))
