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

from .group import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, cli

# the command modules register their commands on ``cli`` in this order (the order of --help)
from . import images, segment, analyze, session, batch, bench  # noqa: E402,F401  isort: skip
from .docs import cli_reference_markdown, write_cli_reference  # noqa: E402

__all__ = ["cli", "main", "EXIT_OK", "EXIT_FATAL", "EXIT_PARTIAL", "cli_reference_markdown", "write_cli_reference"]


def main(argv=None) -> None:
    """Console-script entry point (``skinimg``)."""
    cli.main(args=argv, prog_name="skinimg")
