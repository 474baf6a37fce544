"""The ``skinimg`` command: a thin Click layer over the library (the only package that imports click).

Each command validates its options, calls one library function, and formats the result; a
:class:`~skinimg.errors.SkinImgError` becomes one line on stderr (``skinimg: <file>: <reason>``) and exit
code 1.  Modules: ``group`` (the group, logging, exit codes), ``options`` (the shared options, one meaning
each), one module per command group (``images``: info, synth; ``segment``: segment, train-segmenter,
eval-segment; ``analyze``: analyze, calibrate; ``session``: compare, track; ``batch``: run, report, regress;
``bench``), and ``docs`` (the generated reference ``docs/cli.md``).

Exit codes (all commands):

== =========================================================================
0  success (every input processed)
1  fatal error: bad option value, nothing to process, output not writable
2  some inputs failed (the others were processed; see the status column), or
   a usage error detected by Click
== =========================================================================
"""

from __future__ import annotations

from .group import COMMAND_MODULES, EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, cli

# the command modules register their commands on ``cli`` when a command needs them (group.COMMAND_MODULES), so
# one command imports only its own part of the library

__all__ = ["cli", "main", "EXIT_OK", "EXIT_FATAL", "EXIT_PARTIAL", "COMMAND_MODULES", "cli_reference_markdown",
           "write_cli_reference"]


def __getattr__(name):  # the reference generator imports every command: only when asked for
    if name in ("cli_reference_markdown", "write_cli_reference"):
        from . import docs

        return getattr(docs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv=None) -> None:
    """Console-script entry point (``skinimg``)."""
    cli.main(args=argv, prog_name="skinimg")
