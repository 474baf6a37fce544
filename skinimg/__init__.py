"""skinimg: objective redness and pigmentation measurements from clinical skin photographs.

The library is a set of pure functions on NumPy arrays, one module per concept:

``io``          load photographs (RGB, upright, size-limited) and write outputs atomically
``colour``      sRGB / linear RGB / XYZ / CIELAB / optical density, CIEDE2000
``synth``       skin phantoms from an optical model, with ground truth
``segment``     skin masks
``indices``     erythema, melanin, CIELAB, ITA and chromophore maps
``calibrate``   colour-chart detection and correction
``register``    alignment of two sessions
``compare``     before/after statistics and verdicts
``store``       SQLite / CSV / Parquet results
``batch``       running stages over many images
``report``      HTML reports
``cli``         the ``skinimg`` command (the only module that imports click)
"""

from .errors import SkinImgError

__version__ = "0.1.0"

__all__ = ["SkinImgError", "__version__"]
