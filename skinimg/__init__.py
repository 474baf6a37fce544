"""skinimg: objective redness and pigmentation measurements from clinical skin photographs.

Subpackages by concept; the concept packages are pure functions on NumPy arrays:

``io``          load photographs (RGB, upright, size-limited), write outputs atomically, the
                one array gate (``check_rgb``) and 8-bit conversion, trained files (``models_dir``)
``color``       sRGB / linear RGB / XYZ / CIELAB / optical density, CIEDE2000, ITA
``calibrate``   colour-chart detection and correction, fallbacks without a chart
``segment``     skin masks (a small U-Net run by OpenCV, the YCrCb rules baseline), mask metrics
``indices``     erythema, melanin, CIELAB, ITA and chromophore maps, spots, statistics
``session``     registration, lighting normalisation and statistics of two sessions
``phantom``     skin phantoms from an optical model, with ground truth (tests and training)
``batch``       files in, files out: the per-file loops of every command, pipelines, executors, store
``report``      HTML reports and the regression check against expected results
``train``       training the models, fitting trained parameters, ``skinimg bench`` (optional)
``cli``         the ``skinimg`` command (the only package that imports click)

Dependencies point down: ``cli`` -> ``train``, ``batch`` -> ``report``, ``session`` ->
``calibrate``, ``segment``, ``indices`` -> ``color`` -> ``io``; ``phantom`` uses only ``color``
and ``io``; nothing in ``io``, ``color``, ``calibrate``, ``segment``, ``indices`` or ``session``
imports ``phantom``, ``train``, ``batch``, ``report`` or ``cli`` (``tests/test_layout.py``).
"""

from .errors import SkinImgError

__version__ = "0.1.0"

__all__ = ["SkinImgError", "__version__"]
