"""``python -m skinimg.cli``: the ``skinimg`` command."""

from . import main

main()
