"""Statistics of measurements on 1-D arrays: agreement with a reference, reliability, repeatability.

A leaf of the package graph (it imports nothing from skinimg): pure functions on per-photo values, with no
photo, mask or file in sight, for the benchmark's agreement suite (:mod:`skinimg.train.bench`) and any
other layer.

- ``method_comparison.py``: :func:`correlation` (Pearson / Spearman with a BCa bootstrap interval over photos or
  subjects), :func:`linear_calibration`, :func:`calibrated_predictions` (cross-validated),
  :func:`bland_altman` (Bland & Altman 1986) and :func:`agreement` (everything for one index and one
  reference);
- ``reliability.py``: :func:`icc` (Shrout & Fleiss 1979, McGraw & Wong 1996 intervals), :func:`koo_li`
  (Koo & Li 2016 words), :func:`repeatability` (SEM, MDC95, CV: Weir 2005).
"""

from .method_comparison import (BOOTSTRAP_RESAMPLES, agreement, bland_altman, calibrated_predictions, correlation,
                                linear_calibration)
from .reliability import KOO_LI_BANDS, icc, koo_li, repeatability

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "KOO_LI_BANDS",
    "correlation",
    "linear_calibration",
    "calibrated_predictions",
    "icc",
    "koo_li",
    "bland_altman",
    "repeatability",
    "agreement",
]
