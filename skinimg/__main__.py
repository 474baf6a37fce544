"""``python -m skinimg``: the ``skinimg`` command."""

from .cli import main

main()
