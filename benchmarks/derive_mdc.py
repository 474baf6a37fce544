"""Derive the default minimal detectable changes (``models/mdc.json``) from phantom retakes.

    .venv/bin/python benchmarks/derive_mdc.py [--n 40] [--n-crosstalk 20] [--n-dark 40] [--seed 0]
                                              [--out models/mdc.json] [--masks truth|segmenter]

Reproducible: about 2 minutes on one core; rewrites ``models/mdc.json`` byte for byte from the same
skinimg version.  The derivation lives in :mod:`skinimg.train.mdc` (retake design, tone bands,
cross-talk allowance, formula and references); this script is its command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinimg.train.mdc import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
