"""Fit models/chromophore_basis.json from the phantom optical model (reproducible, deterministic).

    .venv/bin/python benchmarks/fit_basis.py [--out models/chromophore_basis.json] [--check]

The fitting lives in :mod:`skinimg.train.basis` (what is fitted, from which model, and how it is
checked); this script is its command line.  ``--check`` re-fits and compares with the committed file
(numbers to a relative 1e-9) instead of writing it, and prints the inversion error on random model
colours.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinimg.train.basis import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
