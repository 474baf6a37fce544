"""Colour calibration: ColorChecker detection, colour-correction fitting, white-balance fallbacks.

A clinical photo is corrected in **linear RGB** so that the colours of an X-Rite ColorChecker
Classic (24 patches) in the frame match their published values under the sRGB reference light
(D65).  When there is no chart, a documented, weaker fallback is used and recorded.

Pipeline
--------
Modules: ``charts`` (reference values, parameters, records, chart mask), ``detect`` (chart
detection), ``fit`` (correction models), ``fallback`` (corrections without a chart and
:func:`calibrate_image`).  Calibrating files is :func:`skinimg.batch.calibrate_file`.

1. :func:`detect_chart` finds the chart with OpenCV geometry only (no downloaded model):
   low-gradient regions -> square-ish contours -> neighbours on a grid -> integer lattice
   coordinates -> RANSAC homography (lattice -> image) -> the 4x6 layout and its orientation
   (any of the 4 rotations, mirrored or not) chosen by matching the patch colours with the
   reference colours.  Each patch is sampled at full resolution as the **median** of a central
   square (``sample_fraction`` of the patch side).
2. :func:`fit_correction` fits a colour-correction matrix by linear least squares
   (``numpy.linalg.lstsq``) from measured to reference linear sRGB, on a polynomial expansion of
   the measured colours: Cheung et al. (2004) polynomials, or Finlayson et al. (2015)
   root-polynomials (default, degree 2: ``R, G, B, sqrt(RG), sqrt(GB), sqrt(RB)``; exposure
   invariant: scaling the input by ``k`` scales the output by ``k``).
3. :func:`apply_correction` applies it to every pixel (sRGB decode -> expansion -> matrix ->
   clip to [0, 1] -> sRGB encode), keeping dtype and shape.
4. Fallbacks when no chart is found (:func:`calibrate_image`): a user-given white/gray region
   (von Kries diagonal gains), otherwise gray-world on non-skin pixels (see
   :func:`gray_world_correction` for why gray-world and why non-skin).

References
----------
.. [Cheung2004] Cheung, V., Westland, S., Connah, D. and Ripamonti, C. (2004). A comparative
   study of the characterisation of colour cameras by means of neural networks and polynomial
   transforms. Coloration Technology 120(1), 19-25.
   https://doi.org/10.1111/j.1478-4408.2004.tb00201.x
.. [Finlayson2015] Finlayson, G. D., Mackiewicz, M. and Hurlbert, A. (2015). Color correction
   using root-polynomial regression. IEEE Transactions on Image Processing 24(5), 1460-1470.
   https://doi.org/10.1109/TIP.2015.2405336
.. [vonKries] von Kries, J. (1902). Chromatic adaptation. Festschrift der Albrecht-Ludwigs-
   Universitaet; diagonal gains as in Fairchild, M. D. (2013), Color Appearance Models, 3rd ed.,
   Wiley, ch. 9. https://doi.org/10.1002/9781118653128
.. [Buchsbaum1980] Buchsbaum, G. (1980). A spatial processor model for object colour
   perception. Journal of the Franklin Institute 310(1), 1-26.
   https://doi.org/10.1016/0016-0032(80)90058-7  (gray world)
.. [Land1971] Land, E. H. and McCann, J. J. (1971). Lightness and retinex theory. JOSA 61(1),
   1-11. https://doi.org/10.1364/JOSA.61.000001  (white patch / max-RGB)
.. [ChaiNgan1999] Chai, D. and Ngan, K. N. (1999). Face segmentation using skin-color map in
   videophone applications. IEEE TCSVT 9(4), 551-564. https://doi.org/10.1109/76.767122
.. [XRite2014] X-Rite ColorChecker Classic reference values for charts made after November
   2014 (CIELAB D50), as distributed by colour-science (``CCS_COLOURCHECKERS``); see
   ``models/colorchecker_classic24.json`` for the provenance and the D50 -> D65 Bradford
   adaptation.
"""

from .charts import (FALLBACKS, KINDS, METHODS, MODES, REFERENCE_CHARTS, CalibrationParams, ChartDetection, Correction,
                     chart_mask, reference_chart)
from .detect import detect_chart
from .fallback import calibrate_image, gray_world_correction, white_patch_correction, white_region_correction
from .fit import apply_correction, expand, expansion_terms, fit_correction, identity_correction
from .select import chart_correction, choose_model
from .reference import load_reference
from .tone import apply_tone_curve, fit_tone_curve

__all__ = [
    "METHODS",
    "KINDS",
    "REFERENCE_CHARTS",
    "FALLBACKS",
    "MODES",
    "CalibrationParams",
    "ChartDetection",
    "Correction",
    "reference_chart",
    "detect_chart",
    "expansion_terms",
    "expand",
    "fit_correction",
    "chart_correction",
    "choose_model",
    "fit_tone_curve",
    "apply_tone_curve",
    "load_reference",
    "apply_correction",
    "white_region_correction",
    "gray_world_correction",
    "white_patch_correction",
    "identity_correction",
    "calibrate_image",
    "chart_mask",
]
