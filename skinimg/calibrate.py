"""Colour calibration: ColorChecker detection, colour-correction fitting, white-balance fallbacks.

A clinical photo is corrected in **linear RGB** so that the colours of an X-Rite ColorChecker
Classic (24 patches) in the frame match their published values under the sRGB reference light
(D65).  When there is no chart, a documented, weaker fallback is used and recorded.

Pipeline
--------
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

from __future__ import annotations

import json
import math
import re
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .colour import delta_e_2000, linear_rgb_to_lab, linear_to_srgb, srgb_to_linear
from .errors import SkinImgError
from .io import models_dir

__all__ = [
    "METHODS",
    "KINDS",
    "CalibrationParams",
    "ChartDetection",
    "Correction",
    "reference_chart",
    "detect_chart",
    "expansion_terms",
    "expand",
    "fit_correction",
    "chart_correction",
    "apply_correction",
    "white_region_correction",
    "gray_world_correction",
    "white_patch_correction",
    "identity_correction",
    "calibrate_image",
    "chart_mask",
    "CSV_COLUMNS",
    "calibrate_file",
]

#: Correction methods (names as recorded in the JSON).
METHODS = ("finlayson2015", "cheung2004", "linear3x3")
#: What a :class:`Correction` was derived from.
KINDS = ("chart", "white_patch", "gray_world", "white_patch_auto", "none")

_MODELS_DIR = models_dir()
_REFERENCE_FILES = {
    "classic24": "colorchecker_classic24.json",
    "classic24_before2014": "colorchecker_classic24_before2014.json",
}
_ROWS, _COLS = 4, 6
#: ColorChecker Classic patch side as a fraction of the patch pitch (about 40 mm patches on a
#: 46 mm pitch; measured 0.88 on the real photo in tests/data).
_PATCH_SIDE = 0.87
_SCHEMA = "skinimg.calibration/1"


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class CalibrationParams:
    """All tunable settings of calibration, recorded in every :class:`Correction`.

    Attributes
    ----------
    chart : str
        Reference values of the ColorChecker Classic (24 patches): ``"classic24"`` (X-Rite values
        for charts made after November 2014, default) or ``"classic24_before2014"`` (older charts;
        X-Rite changed the pigments in November 2014: "light skin" moved by about 3 CIEDE2000).
    reference : tuple of 24 (R, G, B) or None
        Own reference values (linear sRGB, D65, chart order), e.g. from a spectrophotometer
        measurement of the lab's chart; overrides ``chart``'s published values.
    skin_weight : float
        Weight of patches 1 "dark skin" and 2 "light skin" in the least squares (1 = ordinary
        least squares, exactly the published methods).  The default 4 trades about 0.2-0.3
        CIEDE2000 on the chart for 1-3 CIEDE2000 on skin under tungsten and fluorescent light
        (synthetic phantoms, see README); it needs the right chart edition (``chart``).
    keep_below : float
        When the chart's patches already match the reference within this mean CIEDE2000
        (a photo taken under the reference light), the photo is left as it is (the
        correction's ``method`` is ``"none"``, with a note): any fit would only trade
        chart error for a colour shift of the skin.  Measured on a D65 phantom: the
        fit moved a* of the skin by +2.5 (haemoglobin +57 %) for a chart already at
        0.95 mean CIEDE2000.  When one achromatic gain brings the chart within it (the
        reference light at another exposure), only that gain is applied (``method`` ``"gain"``):
        it keeps every chromaticity and makes brightness absolute.  0 disables both guards.
    method : str
        ``"finlayson2015"`` (root-polynomial, default), ``"cheung2004"`` (polynomial) or
        ``"linear3x3"`` (plain 3x3 matrix).
    degree : int
        Root-polynomial degree for ``finlayson2015`` (1-4; 2 gives 6 terms).
    terms : int
        Number of polynomial terms for ``cheung2004`` (one of 3, 4, 5, 7, 8, 10, 11, 14, 16,
        17, 19, 20, 22, 35, as defined by Cheung et al. 2004 / colour-science).
    sample_fraction : float
        Side of the sampled central square as a fraction of the patch side (0.5 = the central
        quarter of the patch area); the patch colour is the per-channel median there.
    detect_max_side : int
        Detection runs on a copy downscaled to at most this long side (pixels); if nothing is
        found and the image is larger, once more at twice this size.
    min_patch_px : int
        Smallest patch side (pixels, at detection scale) considered.
    min_patches : int
        Fewest patches that must be found as squares on a common grid to accept a chart.
    max_fit_delta_e : float
        A grid is accepted as a chart only if a 3x3 matrix maps its patch colours to the
        reference with a mean CIEDE2000 below this (guards against tiles, windows, ...).
    clip_level, black_level : float
        Encoded sRGB levels (fractions of full scale) at or above / at or below which a channel is
        clipped; patches with more than 5 % clipped pixels are excluded from the fit and the
        statistics (a clipped channel no longer measures the light).
    chart_margin : float
        :func:`chart_mask` extends the patch grid by this many patch pitches on every side to cover
        the chart's black frame and logos.
    fallback : str
        Without a chart and without ``white``: ``"gray_world"`` (default), ``"white_patch"``
        (bright non-skin pixels, max-RGB-like) or ``"none"`` (leave the photo as it is, recorded
        as ``kind="none"``).  Gray world assumes the non-skin scene averages to gray; on a coloured
        backdrop it shifts the skin's hue, and the separated haemoglobin is very sensitive to hue
        (sample patient P001: true 0.052, as photographed 0.049, after gray world 0.087), so
        pipelines comparing sessions shot under one light should use ``"none"``.
    max_gain : float
        Fallback gains are limited to ``[1/max_gain, max_gain]``.
    """

    chart: str = "classic24"
    reference: tuple | None = None
    skin_weight: float = 4.0
    keep_below: float = 1.5
    method: str = "finlayson2015"
    degree: int = 2
    terms: int = 10
    sample_fraction: float = 0.5
    detect_max_side: int = 1024
    min_patch_px: int = 6
    min_patches: int = 10
    max_fit_delta_e: float = 10.0
    clip_level: float = 0.98
    black_level: float = 0.01
    chart_margin: float = 0.4
    fallback: str = "gray_world"
    max_gain: float = 4.0

    def __post_init__(self):
        if self.chart not in _REFERENCE_FILES:
            raise ValueError(f"unknown chart {self.chart!r}; expected one of {sorted(_REFERENCE_FILES)}")
        if self.reference is not None:
            ref = np.asarray(self.reference, dtype=np.float64)
            if ref.shape != (24, 3) or not np.isfinite(ref).all():
                raise ValueError("reference must be 24 (R, G, B) linear sRGB triplets")
            object.__setattr__(self, "reference", tuple(tuple(float(v) for v in row) for row in ref))
        if not self.skin_weight > 0:
            raise ValueError("skin_weight must be > 0")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {METHODS}")
        if self.degree not in (1, 2, 3, 4):
            raise ValueError(f"degree must be 1-4, got {self.degree}")
        if self.terms not in _CHEUNG_TERMS:
            raise ValueError(f"terms must be one of {sorted(_CHEUNG_TERMS)}, got {self.terms}")
        if not 0.05 <= self.sample_fraction <= 1.0:
            raise ValueError("sample_fraction must be in [0.05, 1]")
        if self.fallback not in ("gray_world", "white_patch", "none"):
            raise ValueError("fallback must be 'gray_world', 'white_patch' or 'none'")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- reference


@lru_cache(maxsize=None)
def _load_reference(chart: str) -> dict:
    path = _MODELS_DIR / _REFERENCE_FILES[chart]
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SkinImgError(f"reference chart values missing ({exc.strerror or exc})", path) from None
    names = tuple(p["name"] for p in doc["patches"])
    lin = np.array([p["linear_srgb_d65"] for p in doc["patches"]], dtype=np.float64)
    lin.setflags(write=False)
    return {"names": names, "linear": lin, "provenance": doc.get("provenance", {})}


def reference_chart(chart: str = "classic24") -> tuple[tuple[str, ...], np.ndarray]:
    """Patch names and reference linear sRGB (D65) of a chart, in row-major chart order.

    Returns
    -------
    names : tuple of 24 str
    linear : ndarray, float64, shape (24, 3), linear sRGB (D65), unclipped (cyan's R < 0)

    Notes
    -----
    Values from ``models/colorchecker_classic24.json`` (X-Rite "after November 2014" CIELAB D50,
    Bradford-adapted to D65; generated by ``scripts/make_colorchecker_classic24.py``).
    """
    ref = _load_reference(chart)
    return ref["names"], ref["linear"]


def _reference_for(params: CalibrationParams) -> np.ndarray:
    if params.reference is not None:
        return np.asarray(params.reference, dtype=np.float64)
    return reference_chart(params.chart)[1]


# ----------------------------------------------------------------------------- results


@dataclass
class ChartDetection:
    """Result of :func:`detect_chart`.

    Attributes
    ----------
    found : bool
    corners : ndarray (4, 2) float64 or None
        Image pixel coordinates (x, y) of the outer corners of the patch grid (the cell grid
        including half a gap), in chart order: next to patch 1 "dark skin", patch 6 "bluish
        green", patch 24 "black", patch 19 "white" (clockwise on an upright chart).
    patch_centres : ndarray (24, 2) float64 or None
        Image (x, y) of each patch centre, chart order.
    patch_rgb : ndarray (24, 3) float64 or None
        Per-channel median linear RGB of each patch's central square.
    clipped : ndarray (24,) bool or None
        Patches with more than 5 % clipped pixels.
    score : float
        Mean CIEDE2000 of the best 3x3 fit of the patch colours to the reference (the
        orientation criterion; lower is better; ``inf`` when not found).
    n_detected : int
        Patches found as squares (the others were located by the grid).
    homography : ndarray (3, 3) or None
        Chart lattice (column, row) -> image pixels.
    reason : str
        Why no chart was found (empty when found).
    """

    found: bool
    corners: np.ndarray | None = None
    patch_centres: np.ndarray | None = None
    patch_rgb: np.ndarray | None = None
    clipped: np.ndarray | None = None
    score: float = math.inf
    n_detected: int = 0
    homography: np.ndarray | None = None
    reason: str = ""


def _stats(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "max": None}
    return {"mean": float(v.mean()), "max": float(v.max())}


@dataclass
class Correction:
    """A colour correction: what it was derived from, the matrix, and how well it fits.

    Applied as ``linear_out = clip(matrix @ expansion(linear_in), 0, 1)`` per pixel, where
    ``expansion`` lists :attr:`terms` (see :func:`expand`).

    Attributes
    ----------
    kind : str
        ``"chart"``, ``"white_patch"`` (user region), ``"gray_world"``, ``"white_patch_auto"``
        or ``"none"``.
    method : str
        ``"finlayson2015"``, ``"cheung2004"``, ``"linear3x3"``, ``"von_kries"`` (diagonal gains),
        ``"gain"`` (one achromatic gain: the chart differs from its reference by exposure only) or ``"none"``.
    matrix : list of 3 lists of float
        3 x len(terms); row = output channel (R, G, B).
    terms : list of str
        Expansion terms, e.g. ``["R", "G", "B", "(R*G)^(1/2)", "(G*B)^(1/2)", "(R*B)^(1/2)"]``.
    delta_e_before, delta_e_after : dict
        ``{"mean": float, "max": float}`` CIEDE2000 of the chart patches used, before and after
        correction (``None`` values without a chart).
    corners : list of 4 [x, y] or None
        Chart corners in image pixels (see :class:`ChartDetection`).
    patch_delta_e_before, patch_delta_e_after : list of 24 float/None or None
        Per-patch residuals (CIEDE2000); ``None`` for excluded (clipped) patches.
    patches_used : list of int or None
        1-based chart indices used in the fit.
    white_region : list of 4 int or None
        ``[x, y, w, h]`` of a user white/gray region.
    notes : list of str
        Plain-language remarks (fallback used and why, patches excluded, ...).
    params : dict
        The :class:`CalibrationParams` used.
    image : str or None
        The image this correction was fitted on (relative path), when known.
    image_size : [width, height] or None
    schema : str
        ``"skinimg.calibration/1"``.
    """

    kind: str
    method: str
    matrix: list
    terms: list
    delta_e_before: dict = field(default_factory=lambda: {"mean": None, "max": None})
    delta_e_after: dict = field(default_factory=lambda: {"mean": None, "max": None})
    corners: list | None = None
    patch_delta_e_before: list | None = None
    patch_delta_e_after: list | None = None
    patches_used: list | None = None
    white_region: list | None = None
    notes: list = field(default_factory=list)
    params: dict | None = None
    image: str | None = None
    image_size: list | None = None
    schema: str = _SCHEMA

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown correction kind {self.kind!r}")
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] != 3 or m.shape[1] != len(self.terms):
            raise ValueError(f"matrix must be 3 x {len(self.terms)} (one column per term), got {m.shape}")
        for t in self.terms:
            _parse_term(t)

    @property
    def matrix_array(self) -> np.ndarray:
        """The matrix as float64 ndarray (3, n_terms)."""
        return np.asarray(self.matrix, dtype=np.float64)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (inverse: :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Correction":
        """Rebuild from :meth:`to_dict` output (e.g. a saved ``calibration/*.json``)."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown correction fields {sorted(unknown)}")
        if d.get("schema", _SCHEMA) != _SCHEMA:
            raise ValueError(f"unsupported correction schema {d.get('schema')!r}")
        return cls(**{k: v for k, v in d.items()})


# ----------------------------------------------------------------------------- expansions

_TERM_RE = re.compile(r"^\((?P<mono>[RGB0-9^*]+)\)\^\(1/(?P<root>[0-9]+)\)$")
_CHEUNG_TERMS = {3, 4, 5, 7, 8, 10, 11, 14, 16, 17, 19, 20, 22, 35}


def _mono_name(e: tuple[int, int, int]) -> str:
    parts = []
    for ch, k in zip("RGB", e):
        if k == 1:
            parts.append(ch)
        elif k > 1:
            parts.append(f"{ch}^{k}")
    return "*".join(parts) if parts else "1"


def _term_name(e: tuple[int, int, int], root: int = 1) -> str:
    m = _mono_name(e)
    return m if root == 1 else f"({m})^(1/{root})"


def _parse_term(name: str) -> tuple[tuple[int, int, int], int]:
    """``"R^2*G"`` -> ((2, 1, 0), 1); ``"(R*G)^(1/2)"`` -> ((1, 1, 0), 2); ``"1"`` -> ((0, 0, 0), 1)."""
    root = 1
    mono = name
    m = _TERM_RE.match(name)
    if m:
        mono, root = m.group("mono"), int(m.group("root"))
    if mono == "1":
        return (0, 0, 0), root
    e = [0, 0, 0]
    for part in mono.split("*"):
        ch, _, k = part.partition("^")
        if ch not in "RGB" or len(ch) != 1 or (k and not k.isdigit()):
            raise ValueError(f"bad expansion term {name!r}")
        e["RGB".index(ch)] += int(k) if k else 1
    if root < 1:
        raise ValueError(f"bad expansion term {name!r}")
    return (e[0], e[1], e[2]), root


def _E(s: str) -> tuple[int, int, int]:
    return _parse_term(s)[0]


# Cheung et al. (2004) polynomial sets, in colour-science's order (matrix_augmented_Cheung2004).
_C3 = ["R", "G", "B"]
_C_PAIRS = ["R*G", "R*B", "G*B"]
_C_SQ = ["R^2", "G^2", "B^2"]
_C_CUBE = ["R^3", "G^3", "B^3"]
_CHEUNG = {
    3: _C3,
    4: _C3 + ["1"],
    5: _C3 + ["R*G*B", "1"],
    7: _C3 + _C_PAIRS + ["1"],
    8: _C3 + _C_PAIRS + ["R*G*B", "1"],
    10: _C3 + _C_PAIRS + _C_SQ + ["1"],
    11: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "1"],
    14: _C3 + _C_PAIRS + _C_SQ + ["R*G*B"] + _C_CUBE + ["1"],
    16: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2"] + _C_CUBE,
    17: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2"] + _C_CUBE + ["1"],
    19: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE,
    20: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE + ["1"],
    22: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE
    + ["R^2*G*B", "R*G^2*B", "R*G*B^2"],
    35: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE
    + ["R^3*G", "R^3*B", "R*G^3", "G^3*B", "R*B^3", "G*B^3", "R^2*G*B", "R*G^2*B", "R*G*B^2",
       "R^2*G^2", "R^2*B^2", "G^2*B^2", "R^4", "G^4", "B^4", "1"],
}

# Finlayson et al. (2015) root-polynomial terms by degree, in colour-science's order
# (polynomial_expansion_Finlayson2015): every monomial of total degree k, then its k-th root.
_F_DEG = {
    1: ["R", "G", "B"],
    2: ["R*G", "G*B", "R*B"],
    3: ["R*G^2", "G*B^2", "R*B^2", "R^2*G", "G^2*B", "R^2*B", "R*G*B"],
    4: ["R^3*G", "R^3*B", "R*G^3", "G^3*B", "R*B^3", "G*B^3", "R^2*G*B", "R*G^2*B", "R*G*B^2"],
}


def expansion_terms(method: str = "finlayson2015", *, degree: int = 2, terms: int = 10) -> list[str]:
    """The expansion term names of a correction method.

    Parameters
    ----------
    method : {"finlayson2015", "cheung2004", "linear3x3"}
    degree : int
        Root-polynomial degree (1-4) for ``finlayson2015``: 3, 6, 13 or 22 terms.
    terms : int
        Number of terms for ``cheung2004`` (3, 4, 5, 7, 8, 10, 11, 14, 16, 17, 19, 20, 22, 35).

    Returns
    -------
    list of str
        ``"R*G"`` is a monomial, ``"(R*G)^(1/2)"`` its square root, ``"1"`` a constant (offset).

    Notes
    -----
    Same terms and order as colour-science's ``matrix_augmented_Cheung2004`` and
    ``polynomial_expansion_Finlayson2015(root_polynomial_expansion=True)``, so the matrices are
    directly comparable (tested).  Cheung et al. 2004, doi:10.1111/j.1478-4408.2004.tb00201.x;
    Finlayson, Mackiewicz & Hurlbert 2015, doi:10.1109/TIP.2015.2405336.
    """
    if method == "linear3x3":
        return list(_C3)
    if method == "cheung2004":
        if terms not in _CHEUNG:
            raise ValueError(f"cheung2004 defines {sorted(_CHEUNG)} terms, not {terms}")
        return list(_CHEUNG[terms])
    if method == "finlayson2015":
        if degree not in _F_DEG:
            raise ValueError(f"finlayson2015 degree must be 1-4, got {degree}")
        out = []
        for k in range(1, degree + 1):
            out += [t if k == 1 else _term_name(_E(t), k) for t in _F_DEG[k]]
        return out
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def expand(linear: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    """Polynomial / root-polynomial expansion of linear RGB.

    Parameters
    ----------
    linear : ndarray, shape (N, 3), float, linear RGB (R, G, B), >= 0 expected
    terms : sequence of str
        Term names from :func:`expansion_terms`.

    Returns
    -------
    ndarray, shape (N, len(terms)), same float dtype as ``linear`` (float32 or float64).
    Roots of negative products are mirrored (sign kept), as colour-science's ``spow``.
    """
    x = np.asarray(linear)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    out = np.empty((x.shape[0], len(terms)), dtype=x.dtype)
    for j, name in enumerate(terms):
        (a, bb, c), root = _parse_term(name)
        v = np.ones_like(r)
        for ch, k in ((r, a), (g, bb), (b, c)):
            if k:
                v = v * (ch if k == 1 else ch**k)
        if root == 2:
            v = np.copysign(np.sqrt(np.abs(v)), v)
        elif root == 3:
            v = np.cbrt(v)
        elif root > 3:
            v = np.copysign(np.abs(v) ** (1.0 / root), v)
        out[:, j] = v
    return out


# ----------------------------------------------------------------------------- fitting


def _lab(linear: np.ndarray) -> np.ndarray:
    return linear_rgb_to_lab(np.asarray(linear, dtype=np.float32)).astype(np.float64)


def fit_correction(
    measured_linear: np.ndarray,
    reference_linear: np.ndarray,
    *,
    method: str = "finlayson2015",
    degree: int = 2,
    terms: int = 10,
    weights: np.ndarray | None = None,
) -> Correction:
    """Least-squares colour-correction matrix from measured to reference linear RGB.

    Solves ``min_M sum_i w_i^2 || M x(measured_i) - reference_i ||^2`` with
    :func:`numpy.linalg.lstsq` (minimum-norm solution, like colour-science's Moore-Penrose
    ``least_square_mapping``; ``w_i = 1`` by default, which is exactly colour-science's fit),
    where ``x`` is the expansion of :func:`expansion_terms`.

    Parameters
    ----------
    measured_linear : ndarray, shape (N, 3), float
        Camera colours of the patches, linear RGB in [0, 1] (R, G, B).
    reference_linear : ndarray, shape (N, 3), float
        Target colours, linear sRGB (D65), same order.
    method : {"finlayson2015", "cheung2004", "linear3x3"}
        Finlayson, Mackiewicz & Hurlbert 2015 root-polynomial (doi:10.1109/TIP.2015.2405336),
        Cheung et al. 2004 polynomial (doi:10.1111/j.1478-4408.2004.tb00201.x), or a 3x3 matrix.
    degree, terms : int
        Root-polynomial degree (finlayson2015) / number of polynomial terms (cheung2004).
    weights : ndarray (N,), optional
        Per-patch weights ``w_i`` (> 0).

    Returns
    -------
    Correction
        ``kind="chart"``; ``delta_e_before`` / ``delta_e_after`` are the CIEDE2000 (D65) mean and
        max over the N patches (after = corrected colours clipped to [0, 1], as an image shows
        them); per-patch values in ``patch_delta_e_*``.

    Raises
    ------
    ValueError
        Shapes differ, non-finite values, or fewer patches than terms.
    """
    m = np.asarray(measured_linear, dtype=np.float64)
    ref = np.asarray(reference_linear, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 3 or m.shape != ref.shape:
        raise ValueError(f"measured and reference must both be (N, 3), got {m.shape} and {ref.shape}")
    if not (np.isfinite(m).all() and np.isfinite(ref).all()):
        raise ValueError("measured and reference colours must be finite")
    names = expansion_terms(method, degree=degree, terms=terms)
    if m.shape[0] < len(names):
        raise ValueError(f"{method} with {len(names)} terms needs at least {len(names)} patches, got {m.shape[0]}")
    x = expand(m, names)
    if weights is None:
        sol, *_ = np.linalg.lstsq(x, ref, rcond=None)
    else:
        wv = np.asarray(weights, dtype=np.float64).reshape(-1, 1)
        if wv.shape[0] != m.shape[0] or not np.all(wv > 0):
            raise ValueError("weights must be N positive numbers")
        sol, *_ = np.linalg.lstsq(x * wv, ref * wv, rcond=None)
    matrix = sol.T
    pred = np.clip(x @ sol, 0.0, 1.0)
    lab_ref = _lab(ref)
    de_before = delta_e_2000(_lab(m), lab_ref)
    de_after = delta_e_2000(_lab(pred), lab_ref)
    return Correction(
        kind="chart",
        method=method,
        matrix=matrix.tolist(),
        terms=names,
        delta_e_before=_stats(de_before),
        delta_e_after=_stats(de_after),
        patch_delta_e_before=[float(v) for v in de_before],
        patch_delta_e_after=[float(v) for v in de_after],
    )


# ----------------------------------------------------------------------------- applying


@lru_cache(maxsize=None)
def _encode_lut8() -> np.ndarray:
    # 2**16 linear steps; near black one step is 12.92/65535*255 = 0.05 code values.
    lin = np.arange(65536, dtype=np.float64) / 65535.0
    return np.clip(np.rint(linear_to_srgb(lin.astype(np.float32)) * 255.0), 0, 255).astype(np.uint8)


def _apply_linear(lin: np.ndarray, matrix: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    if list(terms) == _C3:
        out = lin @ matrix.T.astype(np.float32)
    else:
        out = expand(lin, terms) @ matrix.T.astype(np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def apply_correction(rgb: np.ndarray, correction: Correction, *, chunk_pixels: int = 1 << 20) -> np.ndarray:
    """Apply a :class:`Correction` to every pixel of an sRGB image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 [0, 255], uint16 [0, 65535] or float [0, 1]
        Encoded sRGB, channel order R, G, B.
    correction : Correction
    chunk_pixels : int
        Pixels processed at a time (bounds memory: about 40 bytes per pixel per chunk).

    Returns
    -------
    ndarray, same shape and dtype as ``rgb`` (float input gives float32), sRGB-encoded.
    The correction is computed in linear RGB (float32) and clipped to [0, 1] before encoding.
    ``kind="none"`` returns a copy of ``rgb``.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    if correction.kind == "none":
        return rgb.copy()
    matrix = correction.matrix_array
    terms = list(correction.terms)
    flat = rgb.reshape(-1, 3)
    is_float = np.issubdtype(rgb.dtype, np.floating)
    out = np.empty(flat.shape, dtype=np.float32 if is_float else rgb.dtype)
    lut8 = _encode_lut8() if rgb.dtype == np.uint8 else None
    for start in range(0, flat.shape[0], chunk_pixels):
        sl = slice(start, start + chunk_pixels)
        lin = _apply_linear(srgb_to_linear(flat[sl]), matrix, terms)
        if lut8 is not None:
            out[sl] = lut8[np.rint(lin * np.float32(65535.0)).astype(np.uint16)]
        elif rgb.dtype == np.uint16:
            out[sl] = np.rint(linear_to_srgb(lin) * np.float32(65535.0)).astype(np.uint16)
        else:
            out[sl] = linear_to_srgb(lin)
    return out.reshape(rgb.shape)


# ----------------------------------------------------------------------------- detection helpers


def _max_value(rgb: np.ndarray) -> float:
    return 65535.0 if rgb.dtype == np.uint16 else 255.0 if rgb.dtype == np.uint8 else 1.0


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype == np.uint16:
        return (rgb >> 8).astype(np.uint8)
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _check_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    if rgb.dtype not in (np.uint8, np.uint16) and not np.issubdtype(rgb.dtype, np.floating):
        raise TypeError(f"unsupported image dtype {rgb.dtype}; expected uint8, uint16 or float in [0, 1]")
    return rgb


def _diagonal_intersection(q: np.ndarray):
    """Intersection of the diagonals q0-q2 and q1-q3 of a quadrilateral (4, 2), or None."""
    p, r = q[0], q[2] - q[0]
    u, v = q[1], q[3] - q[1]
    den = r[0] * v[1] - r[1] * v[0]
    if abs(den) < 1e-9:
        return None
    t = ((u[0] - p[0]) * v[1] - (u[1] - p[1]) * v[0]) / den
    return float(p[0] + t * r[0]), float(p[1] + t * r[1])


def _candidates(small: np.ndarray, params: CalibrationParams) -> np.ndarray:
    """Square-ish uniform regions: rows (cx, cy, side, angle_mod_90, fill)."""
    img = cv2.medianBlur(small, 3)
    k3 = np.ones((3, 3), np.uint8)
    grad = cv2.morphologyEx(img, cv2.MORPH_GRADIENT, k3).max(axis=2)
    h, w = grad.shape
    min_side = params.min_patch_px
    max_area = h * w / 16.0
    out = []
    for t in (6, 12, 24, 48):
        region = (grad < t).astype(np.uint8)
        region = cv2.morphologyEx(region, cv2.MORPH_OPEN, k3)
        contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            if len(c) < 4:
                continue
            area = cv2.contourArea(c)
            if area < min_side * min_side or area > max_area:
                continue
            (cx, cy), (rw, rh), ang = cv2.minAreaRect(c)
            if min(rw, rh) < min_side or max(rw, rh) > 1.8 * min(rw, rh):
                continue
            fill = area / (rw * rh)
            if fill < 0.8:
                continue
            hull_area = cv2.contourArea(cv2.convexHull(c))
            if hull_area <= 0 or area / hull_area < 0.92:
                continue
            # centre = intersection of the quadrilateral's diagonals (the projective centre; the
            # centroid of a foreshortened patch is biased towards its nearer side)
            quad = cv2.approxPolyDP(cv2.convexHull(c), 0.05 * cv2.arcLength(c, True), True).reshape(-1, 2)
            if len(quad) == 4:
                centre = _diagonal_intersection(quad.astype(np.float64))
                if centre is not None and abs(centre[0] - cx) < 0.25 * rw and abs(centre[1] - cy) < 0.25 * rh:
                    cx, cy = centre
            # the low-gradient region is the patch shrunk by about one pixel on each side
            out.append((cx, cy, math.sqrt(area) + 2.0, ang % 90.0, fill))
    if not out:
        return np.zeros((0, 5))
    cand = np.array(out, dtype=np.float64)
    # de-duplicate across thresholds: keep the best-filled region around each centre
    order = np.argsort(-cand[:, 4] - 1e-3 * cand[:, 2])
    kept: list[int] = []
    for i in order:
        if kept:
            d = np.hypot(cand[kept, 0] - cand[i, 0], cand[kept, 1] - cand[i, 1])
            if np.any(d < 0.5 * np.minimum(cand[kept, 2], cand[i, 2])):
                continue
        kept.append(int(i))
        if len(kept) >= 4000:
            break
    return cand[kept]


def _angle_diff90(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs((a - b) % 90.0)
    return np.minimum(d, 90.0 - d)


def _grid_components(cand: np.ndarray, min_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group candidates into grids; return [(indices, lattice_ij)] largest first."""
    n = len(cand)
    if n < min_size:
        return []
    c = cand[:, :2]
    s = cand[:, 2]
    th = cand[:, 3]
    dx = c[None, :, 0] - c[:, None, 0]
    dy = c[None, :, 1] - c[:, None, 1]
    dist = np.hypot(dx, dy)
    msize = 0.5 * (s[:, None] + s[None, :])
    ratio = np.maximum(s[:, None], s[None, :]) / np.minimum(s[:, None], s[None, :])
    phi = np.degrees(np.arctan2(dy, dx))
    ok = (dist >= 0.8 * msize) & (dist <= 1.9 * msize) & (ratio <= 1.5)
    ok &= _angle_diff90(phi, th[:, None]) <= 15.0
    ok &= _angle_diff90(phi, th[None, :]) <= 15.0
    np.fill_diagonal(ok, False)
    ok &= ok.T
    nbrs = [np.flatnonzero(ok[i]) for i in range(n)]
    seen = np.zeros(n, bool)
    comps = []
    for start in range(n):
        if seen[start] or len(nbrs[start]) == 0:
            continue
        # BFS assigning integer lattice coordinates along the component's mean axes
        members = [start]
        seen[start] = True
        q = deque([start])
        while q:
            a = q.popleft()
            for b in nbrs[a]:
                if not seen[b]:
                    seen[b] = True
                    members.append(int(b))
                    q.append(int(b))
        if len(members) < min_size:
            continue
        idx = np.array(members)
        th4 = np.radians(4.0 * th[idx])
        theta0 = math.degrees(math.atan2(np.sin(th4).mean(), np.cos(th4).mean())) / 4.0
        coords = {start: (0, 0)}
        q = deque([start])
        while q:
            a = q.popleft()
            for b in nbrs[a]:
                b = int(b)
                if b in coords:
                    continue
                rel = (phi[a, b] - theta0) % 360.0
                step = int(((rel + 45.0) % 360.0) // 90.0)
                di, dj = ((1, 0), (0, 1), (-1, 0), (0, -1))[step]
                coords[b] = (coords[a][0] + di, coords[a][1] + dj)
                q.append(b)
        ij = np.array([coords[int(i)] for i in idx], dtype=np.float64)
        comps.append((idx, ij))
    comps.sort(key=lambda t: -len(t[0]))
    return comps


_DIHEDRAL = (
    np.array([[1, 0], [0, 1]]),
    np.array([[-1, 0], [0, 1]]),
    np.array([[1, 0], [0, -1]]),
    np.array([[-1, 0], [0, -1]]),
    np.array([[0, 1], [1, 0]]),
    np.array([[0, -1], [1, 0]]),
    np.array([[0, 1], [-1, 0]]),
    np.array([[0, -1], [-1, 0]]),
)


def _cells() -> np.ndarray:
    """Chart lattice (column, row) of the 24 patches, row-major."""
    k = np.arange(_ROWS * _COLS)
    return np.stack([k % _COLS, k // _COLS], axis=1).astype(np.float64)


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(p, h).reshape(-1, 2)


def _sample_cells(rgb: np.ndarray, h: np.ndarray, half: float, params: CalibrationParams):
    """Median linear RGB and clipped flag of a square of half-side ``half`` (lattice units) per cell.

    Returns (rgb (24, 3) float64 with NaN for cells outside the image, clipped (24,) bool).
    """
    height, width = rgb.shape[:2]
    cells = _cells()
    offs = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    quads = _project(h, (cells[:, None, :] + offs[None]).reshape(-1, 2)).reshape(-1, 4, 2)
    out = np.full((len(cells), 3), np.nan)
    clipped = np.zeros(len(cells), bool)
    clip_at = params.clip_level * _max_value(rgb)
    black_at = params.black_level * _max_value(rgb)
    for k, q in enumerate(quads):
        x0, y0 = np.floor(q.min(axis=0)).astype(int)
        x1, y1 = np.ceil(q.max(axis=0)).astype(int) + 1
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height or not np.isfinite(q).all():
            continue
        crop = rgb[y0:y1, x0:x1]
        mask = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, np.rint(q - (x0, y0)).astype(np.int32), 1)
        px = crop[mask.astype(bool)]
        if px.shape[0] == 0:
            px = crop[(crop.shape[0] - 1) // 2 : crop.shape[0] // 2 + 1, (crop.shape[1] - 1) // 2 : crop.shape[1] // 2 + 1].reshape(-1, 3)
        clipped[k] = np.mean(np.any((px >= clip_at) | (px <= black_at), axis=1)) > 0.05
        out[k] = np.median(srgb_to_linear(px), axis=0)
    return out, clipped


def _fit3x3_score(measured: np.ndarray, ref: np.ndarray, use: np.ndarray) -> float:
    m, r = measured[use], ref[use]
    if m.shape[0] < 8:
        return math.inf
    sol, *_ = np.linalg.lstsq(m, r, rcond=None)
    pred = np.clip(m @ sol, 0.0, 1.0)
    return float(np.mean(delta_e_2000(_lab(pred), _lab(r))))


def _refine(hc: np.ndarray, cand: np.ndarray, n_det: int, rounds: int = 2) -> tuple[np.ndarray, int]:
    """Re-fit the chart homography on every candidate square near a predicted patch centre.

    The grid walk may miss patches (size jumps under strong perspective); their squares are
    usually among the candidates and pin the extrapolated side of the chart.
    """
    cells = _cells()
    for _ in range(rounds):
        pred = _project(hc, cells)
        pitch = np.hypot(*(_project(hc, cells + [0.5, 0.0]) - _project(hc, cells - [0.5, 0.0])).T)
        d = np.hypot(pred[:, None, 0] - cand[None, :, 0], pred[:, None, 1] - cand[None, :, 1])
        j = np.argmin(d, axis=1)
        ok = (d[np.arange(len(cells)), j] < 0.3 * pitch) & (cand[j, 2] < 1.15 * pitch) & (cand[j, 2] > 0.5 * pitch)
        if ok.sum() < 8:
            break
        h_new, _ = cv2.findHomography(cells[ok].reshape(-1, 1, 2), cand[j[ok], :2].reshape(-1, 1, 2), 0)
        if h_new is None:
            break
        hc, n_det = h_new, int(ok.sum())
    return hc, n_det


def _detect_at(rgb: np.ndarray, scale: float, params: CalibrationParams) -> ChartDetection:
    ref = _reference_for(params)
    h0, w0 = rgb.shape[:2]
    u8 = _to_u8(rgb)
    if scale < 1.0:
        small = cv2.resize(u8, (max(1, round(w0 * scale)), max(1, round(h0 * scale))), interpolation=cv2.INTER_AREA)
    else:
        small, scale = u8, 1.0
    cand = _candidates(small, params)
    comps = _grid_components(cand, params.min_patches)
    if not comps:
        return ChartDetection(found=False, reason=f"no grid of >= {params.min_patches} square patches ({len(cand)} candidate squares)")
    best = None
    cells = _cells()
    half_small = 0.5 * _PATCH_SIDE * params.sample_fraction
    for idx, ij in comps[:4]:
        centres = cand[idx, :2]
        side = float(np.median(cand[idx, 2]))
        hmat, inl = cv2.findHomography(ij.reshape(-1, 1, 2), centres.reshape(-1, 1, 2), cv2.RANSAC, max(1.0, 0.3 * side))
        if hmat is None:
            continue
        inl = inl.ravel().astype(bool)
        if inl.sum() < params.min_patches:
            continue
        ij_in = ij[inl]
        if len(np.unique(ij_in[:, 0])) < 2 or len(np.unique(ij_in[:, 1])) < 2:
            continue
        for t in _DIHEDRAL:
            cr = ij_in @ t.T
            lo, hi = cr.min(axis=0), cr.max(axis=0)
            for oc in range(int(-lo[0]), int(_COLS - 1 - hi[0]) + 1):
                for orow in range(int(-lo[1]), int(_ROWS - 1 - hi[1]) + 1):
                    # chart (c, r) -> lattice (i, j): ij = T^-1 (cr - off); T orthogonal so T^-1 = T^T
                    a = np.eye(3)
                    a[:2, :2] = t.T
                    a[:2, 2] = -t.T @ np.array([oc, orow])
                    hc = hmat @ a
                    meas, clip = _sample_cells(small, hc, half_small, params)
                    if not np.isfinite(meas).all():
                        continue
                    score = _fit3x3_score(meas, ref, ~clip)
                    if best is None or score < best[0]:
                        best = (score, hc, int(inl.sum()))
    if best is None:
        return ChartDetection(found=False, reason="patch grid does not fit a 4x6 chart inside the image")
    score, hc, n_det = best
    hc, n_det = _refine(hc, cand, n_det)
    if not score <= params.max_fit_delta_e:
        return ChartDetection(found=False, score=score, n_detected=n_det, reason=f"grid colours do not match the chart (fit mean dE00 {score:.1f})")
    # lattice -> full-resolution pixels
    s_inv = np.diag([1.0 / scale, 1.0 / scale, 1.0])
    shift = np.array([[1, 0, 0.5 / scale - 0.5], [0, 1, 0.5 / scale - 0.5], [0, 0, 1]])  # pixel-centre convention
    hf = shift @ s_inv @ hc
    hf /= hf[2, 2]
    corners = _project(hf, np.array([[-0.5, -0.5], [_COLS - 0.5, -0.5], [_COLS - 0.5, _ROWS - 0.5], [-0.5, _ROWS - 0.5]]))
    if not cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)):
        return ChartDetection(found=False, reason="degenerate chart geometry")
    patch_rgb, clipped = _sample_cells(rgb, hf, 0.5 * _PATCH_SIDE * params.sample_fraction, params)
    if not np.isfinite(patch_rgb).all():
        return ChartDetection(found=False, reason="chart partly outside the image")
    return ChartDetection(
        found=True,
        corners=corners,
        patch_centres=_project(hf, cells),
        patch_rgb=patch_rgb,
        clipped=clipped,
        score=score,
        n_detected=n_det,
        homography=hf,
    )


def detect_chart(rgb: np.ndarray, *, params: CalibrationParams | None = None) -> ChartDetection:
    """Find a ColorChecker Classic (24 patches) in a photo, without any trained model.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 [0, 255], uint16 [0, 65535] or float [0, 1]
        Encoded sRGB photo, channel order R, G, B.
    params : CalibrationParams, optional

    Returns
    -------
    ChartDetection
        ``found`` and, when found, the corners, patch centres and patch colours (per-channel
        median linear RGB of the central ``sample_fraction`` square of each patch, sampled at full
        resolution).  When not found, ``reason`` says why.  Never raises for a photo without a
        chart.

    Notes
    -----
    Geometry only (OpenCV): the per-pixel morphological gradient (max over R, G, B) is
    thresholded at 6, 12, 24 and 48 code values; connected low-gradient regions that are convex,
    rectangular (fill >= 0.8 of their minimum-area rectangle) and at most 1.8:1 are patch
    candidates.  Candidates of similar size (<= 1.5x) whose centres are 0.8-1.9 patch sides apart
    along their own axes (+-15 degrees) are neighbours; a breadth-first walk gives each an integer
    lattice coordinate; a RANSAC homography maps the lattice to the image.  Every placement of a
    4x6 chart over the lattice (8 rotations/reflections x offsets) is scored by the mean
    CIEDE2000 of the best 3x3 linear fit of its 24 sampled colours to the reference; the lowest
    wins and must be below ``max_fit_delta_e``.  Missing patches (e.g. the black one on the
    black frame) are located by the homography.  The whole chart must be inside the image.
    Detection runs at ``detect_max_side`` (then twice that if nothing is found).
    """
    params = params or CalibrationParams()
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    det = ChartDetection(found=False, reason="image too small")
    for target in (params.detect_max_side, 2 * params.detect_max_side):
        scale = min(1.0, target / long_side)
        det = _detect_at(rgb, scale, params)
        if det.found or scale >= 1.0:
            break
    return det


# ----------------------------------------------------------------------------- corrections


def identity_correction(note: str | None = None, *, params: CalibrationParams | None = None) -> Correction:
    """A correction that changes nothing (``kind="none"``)."""
    return Correction(
        kind="none", method="none", matrix=np.eye(3).tolist(), terms=list(_C3),
        notes=[note] if note else [], params=(params or CalibrationParams()).to_dict(),
    )


def _exposure_gain(measured_linear: np.ndarray, reference_linear: np.ndarray) -> tuple[float, np.ndarray]:
    """The one achromatic gain ``k`` (least squares, ``min sum ||k m - r||^2``) mapping the patches to the
    reference, and the patches' CIEDE2000 after it (clipped to [0, 1] like an image)."""
    m = np.asarray(measured_linear, dtype=np.float64)
    r = np.asarray(reference_linear, dtype=np.float64)
    k = float((m * r).sum() / max(float((m * m).sum()), 1e-12))
    return k, delta_e_2000(_lab(np.clip(m * k, 0.0, 1.0)), _lab(r))


def chart_correction(detection: ChartDetection, *, params: CalibrationParams | None = None) -> Correction:
    """Fit the correction of a found chart (clipped patches excluded) and record its geometry.

    Parameters
    ----------
    detection : ChartDetection
        With ``found=True``.
    params : CalibrationParams, optional
        ``method``, ``degree``, ``terms``.

    Returns
    -------
    Correction
        ``kind="chart"``; per-patch residual lists have 24 entries, ``None`` for excluded patches.
        With fewer usable patches than twice the number of terms the fit falls back to
        ``linear3x3`` (noted).

    Raises
    ------
    SkinImgError
        Fewer than 6 usable (unclipped) patches.
    """
    params = params or CalibrationParams()
    if not detection.found:
        raise ValueError("chart_correction needs a found chart")
    names = reference_chart(params.chart)[0]
    ref = _reference_for(params)
    use = ~np.asarray(detection.clipped, dtype=bool)
    notes = []
    if (~use).any():
        notes.append("excluded clipped patches: " + ", ".join(f"{i + 1} {names[i]}" for i in np.flatnonzero(~use)))
    if use.sum() < 6:
        raise SkinImgError(f"chart found but only {int(use.sum())} patches are not clipped (need 6)")
    method = params.method
    n_terms = len(expansion_terms(method, degree=params.degree, terms=params.terms))
    if use.sum() < 2 * n_terms and method != "linear3x3":
        notes.append(f"only {int(use.sum())} usable patches for {n_terms} terms: used linear3x3 instead of {method}")
        method = "linear3x3"
    w = np.ones(len(use))
    w[:2] = params.skin_weight
    corr = fit_correction(detection.patch_rgb[use], ref[use], method=method, degree=params.degree, terms=params.terms,
                          weights=None if params.skin_weight == 1.0 else w[use])
    before = [None] * len(use)
    after = [None] * len(use)
    for k, i in enumerate(np.flatnonzero(use)):
        before[i] = corr.patch_delta_e_before[k]
        after[i] = corr.patch_delta_e_after[k]
    mean_before = float(np.mean([v for v in before if v is not None]))
    gain, de_gain = _exposure_gain(detection.patch_rgb[use], ref[use])
    if mean_before <= params.keep_below:
        ident = identity_correction(params=params)
        corr.method, corr.matrix, corr.terms = "none", ident.matrix, ident.terms
        corr.delta_e_after = dict(corr.delta_e_before)
        after = list(before)
        notes.append(f"chart already within {params.keep_below:g} mean CIEDE2000 of its reference "
                     f"({mean_before:.2f}): photo left as it is")
    elif params.keep_below > 0 and float(de_gain.mean()) <= params.keep_below:
        # only the exposure differs: one gain, the same for R, G and B, keeps every chromaticity (and the
        # skin's hue, which a full fit would shift), and makes the photo's brightness absolute
        corr.method, corr.matrix, corr.terms = "gain", (gain * np.eye(3)).tolist(), list(_C3)
        corr.delta_e_after = _stats(de_gain)
        after = [None] * len(use)
        for k, i in enumerate(np.flatnonzero(use)):
            after[i] = float(de_gain[k])
        notes.append(f"chart within {params.keep_below:g} mean CIEDE2000 of its reference after one exposure gain "
                     f"x{gain:.4f} ({mean_before:.2f} -> {float(de_gain.mean()):.2f}): only that gain applied")
    corr.patch_delta_e_before = before
    corr.patch_delta_e_after = after
    corr.patches_used = [int(i) + 1 for i in np.flatnonzero(use)]
    corr.corners = np.asarray(detection.corners, dtype=np.float64).round(3).tolist()
    corr.notes = notes + [f"chart found ({detection.n_detected} of 24 patches seen as squares; orientation fit dE00 {detection.score:.2f})"]
    corr.params = params.to_dict()
    return corr


def _gain_correction(kind: str, mean_linear: np.ndarray, params: CalibrationParams, notes: list[str]) -> Correction:
    """von Kries diagonal gains making ``mean_linear`` neutral at its own luminance."""
    m = np.asarray(mean_linear, dtype=np.float64)
    y = float(0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2])
    gains = y / np.maximum(m, 1e-6)
    lo, hi = 1.0 / params.max_gain, params.max_gain
    if np.any(gains < lo) or np.any(gains > hi):
        notes.append(f"gains {np.round(gains, 3).tolist()} limited to [{lo:g}, {hi:g}]")
        gains = np.clip(gains, lo, hi)
    return Correction(
        kind=kind, method="von_kries", matrix=np.diag(gains).tolist(), terms=list(_C3),
        notes=notes, params=params.to_dict(),
    )


def white_region_correction(rgb: np.ndarray, white: Sequence[int], *, params: CalibrationParams | None = None) -> Correction:
    """White balance from a user-given white or gray region (von Kries diagonal gains).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 / uint16 / float [0, 1], encoded sRGB R, G, B
    white : (x, y, w, h)
        Region in image pixels (x to the right, y down), fully inside the image.

    Returns
    -------
    Correction
        ``kind="white_patch"``, ``method="von_kries"``, matrix ``diag(Y/R, Y/G, Y/B)`` where
        (R, G, B) is the region's per-channel median linear RGB and Y its luminance
        (0.2126 R + 0.7152 G + 0.0722 B): the region becomes neutral, brightness unchanged.

    Raises
    ------
    SkinImgError
        Region outside the image, empty, clipped or black.
    """
    params = params or CalibrationParams()
    rgb = _check_rgb(rgb)
    try:
        x, y, w, h = (int(v) for v in white)
    except (TypeError, ValueError):
        raise SkinImgError(f"--white must be x,y,w,h integers, got {white!r}") from None
    hh, ww = rgb.shape[:2]
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > ww or y + h > hh:
        raise SkinImgError(f"--white region {x},{y},{w},{h} is not inside the {ww}x{hh} image")
    px = rgb[y : y + h, x : x + w].reshape(-1, 3)
    if np.mean(np.any(px >= params.clip_level * _max_value(rgb), axis=1)) > 0.5:
        raise SkinImgError(f"--white region {x},{y},{w},{h} is clipped (overexposed); choose a gray patch")
    med = np.median(srgb_to_linear(px), axis=0).astype(np.float64)
    if np.any(med < 1e-3):
        raise SkinImgError(f"--white region {x},{y},{w},{h} is too dark (a channel is ~0)")
    corr = _gain_correction("white_patch", med, params, [f"white/gray region {x},{y},{w},{h}: median linear RGB {np.round(med, 4).tolist()}"])
    corr.white_region = [x, y, w, h]
    return corr


def _background_pixels(rgb: np.ndarray, skin_mask: np.ndarray | None, params: CalibrationParams, max_samples: int = 300_000):
    """Subsampled non-skin, unclipped, not-black pixels as linear float32 (N, 3) and a note."""
    h, w = rgb.shape[:2]
    step = max(1, int(math.ceil(math.sqrt(h * w / max_samples))))
    sub = rgb[::step, ::step]
    px = sub.reshape(-1, 3)
    if skin_mask is not None:
        sm = np.asarray(skin_mask, dtype=bool)
        if sm.shape != (h, w):
            raise ValueError(f"skin_mask shape {sm.shape} does not match the image {(h, w)}")
        keep = ~sm[::step, ::step].reshape(-1)
        how = "outside the given skin mask"
    else:
        # crude skin exclusion: Chai & Ngan (1999) Cr in [133, 173], Cb in [77, 127] (8-bit YCrCb)
        ycc = cv2.cvtColor(_to_u8(sub), cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
        skin = (ycc[:, 1] >= 133) & (ycc[:, 1] <= 173) & (ycc[:, 2] >= 77) & (ycc[:, 2] <= 127)
        keep = ~skin
        how = "outside skin-coloured pixels (Chai & Ngan 1999 YCrCb rule)"
    keep &= ~np.any(px >= params.clip_level * _max_value(rgb), axis=1)
    lin = srgb_to_linear(px[keep])
    lin = lin[lin.max(axis=1) > 0.01]
    return lin, how


def gray_world_correction(rgb: np.ndarray, *, skin_mask: np.ndarray | None = None, params: CalibrationParams | None = None) -> Correction:
    """Gray-world white balance on non-skin pixels (Buchsbaum 1980), von Kries gains.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 / uint16 / float [0, 1], encoded sRGB R, G, B
    skin_mask : ndarray (H, W) bool, optional
        Skin pixels to exclude.  Without it, skin-coloured pixels are excluded with the
        Chai & Ngan (1999) YCrCb box (crude, but keeps skin from dominating the average).

    Returns
    -------
    Correction
        ``kind="gray_world"``: gains ``Y / mean`` (per channel) from the mean linear RGB of the
        non-skin, unclipped, not-black pixels, so that their average becomes neutral at its own
        luminance; ``kind="none"`` when fewer than 1000 such pixels exist.

    Notes
    -----
    Why gray world and why non-skin: the average of a scene (walls, clothing, drapes) is closer
    to neutral than any single bright pixel, so gray world is less sensitive to specular
    highlights and clipping than white patch (max-RGB, Land & McCann 1971); skin itself is not
    gray, and a face-filling photo would otherwise be pulled towards blue.  It remains an
    assumption: a coloured wall or drape biases it.  Only use it when no chart is available.
    """
    params = params or CalibrationParams()
    rgb = _check_rgb(rgb)
    lin, how = _background_pixels(rgb, skin_mask, params)
    if lin.shape[0] < 1000:
        return identity_correction(f"no chart found and only {lin.shape[0]} non-skin pixels: not corrected", params=params)
    mean = lin.mean(axis=0, dtype=np.float64)
    return _gain_correction("gray_world", mean, params, [f"gray world over {lin.shape[0]} sampled pixels {how}"])


def white_patch_correction(rgb: np.ndarray, *, skin_mask: np.ndarray | None = None, params: CalibrationParams | None = None) -> Correction:
    """White-patch white balance (Land & McCann 1971): the brightest 1 % of non-skin, unclipped pixels.

    Same inputs and gains as :func:`gray_world_correction` but the reference colour is the mean of
    the brightest 1 % (by luminance) of the usable pixels; ``kind="white_patch_auto"``.
    """
    params = params or CalibrationParams()
    rgb = _check_rgb(rgb)
    lin, how = _background_pixels(rgb, skin_mask, params)
    if lin.shape[0] < 1000:
        return identity_correction(f"no chart found and only {lin.shape[0]} non-skin pixels: not corrected", params=params)
    y = lin @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    top = lin[y >= np.quantile(y, 0.99)]
    return _gain_correction("white_patch_auto", top.mean(axis=0, dtype=np.float64), params,
                            [f"white patch: brightest 1% of {lin.shape[0]} sampled pixels {how}"])


def calibrate_image(
    rgb: np.ndarray,
    *,
    mode: str = "auto",
    white: Sequence[int] | None = None,
    skin_mask: np.ndarray | None = None,
    require_chart: bool = False,
    params: CalibrationParams | None = None,
) -> tuple[np.ndarray, Correction]:
    """Colour-correct a photo: chart if present, otherwise a recorded fallback.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 [0, 255], uint16 [0, 65535] or float [0, 1]
        Encoded sRGB photo, R, G, B.
    mode : {"auto", "chart", "none"}
        ``"auto"``: chart if found, else ``white`` region, else ``params.fallback`` (gray world).
        ``"chart"``: chart only; no chart raises.  ``"none"``: no correction (``kind="none"``).
    white : (x, y, w, h), optional
        User white/gray region, used when no chart is found (see :func:`white_region_correction`).
    skin_mask : ndarray (H, W) bool, optional
        Skin pixels, excluded from the gray-world / white-patch fallback.
    require_chart : bool
        Like ``mode="chart"``: a missing chart raises.
    params : CalibrationParams, optional

    Returns
    -------
    corrected : ndarray, same shape and dtype as ``rgb``, encoded sRGB
    correction : Correction
        ``kind`` says what was used; the first note of a fallback starts with "no chart found".

    Raises
    ------
    SkinImgError
        "no chart found" (with the detector's reason) when a chart is required and missing; bad
        ``white`` region; chart found but unusable (too many clipped patches).
    """
    params = params or CalibrationParams()
    rgb = _check_rgb(rgb)
    if mode not in ("auto", "chart", "none"):
        raise ValueError(f"mode must be 'auto', 'chart' or 'none', got {mode!r}")
    if mode == "none":
        return rgb.copy(), identity_correction("calibration disabled", params=params)
    det = detect_chart(rgb, params=params)
    if det.found:
        corr = chart_correction(det, params=params)
        return apply_correction(rgb, corr), corr
    if mode == "chart" or require_chart:
        raise SkinImgError(f"no chart found ({det.reason})")
    if white is not None:
        corr = white_region_correction(rgb, white, params=params)
    elif params.fallback == "white_patch":
        corr = white_patch_correction(rgb, skin_mask=skin_mask, params=params)
    elif params.fallback == "none":
        corr = identity_correction(params=params)
        corr.notes.insert(0, f"no chart found ({det.reason}); photo left as it is (fallback none)")
        return rgb.copy(), corr
    else:
        corr = gray_world_correction(rgb, skin_mask=skin_mask, params=params)
    corr.notes.insert(0, f"no chart found ({det.reason}); used {corr.kind}")
    return apply_correction(rgb, corr), corr


def chart_mask(shape: Sequence[int], correction_or_detection: Correction | ChartDetection | None, *, margin: float | None = None) -> np.ndarray:
    """Pixels covered by the chart (patches, frame and logos), to exclude them from skin.

    Parameters
    ----------
    shape : (H, W) or (H, W, 3)
        Image shape.
    correction_or_detection : Correction, ChartDetection or None
        Anything with chart ``corners`` (a found detection, a ``kind="chart"`` correction).
    margin : float, optional
        Extension beyond the patch grid, in patch pitches (default ``CalibrationParams.chart_margin``
        = 0.4, which covers the frame of a ColorChecker Classic).

    Returns
    -------
    ndarray, bool, shape (H, W): True on the chart; all False when there is no chart.
    """
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), np.uint8)
    corners = getattr(correction_or_detection, "corners", None)
    if corners is None:
        return mask.astype(bool)
    m = CalibrationParams().chart_margin if margin is None else float(margin)
    src = np.array([[-0.5, -0.5], [_COLS - 0.5, -0.5], [_COLS - 0.5, _ROWS - 0.5], [-0.5, _ROWS - 0.5]], np.float32)
    hmat = cv2.getPerspectiveTransform(src, np.asarray(corners, dtype=np.float32).reshape(4, 2))
    grown = src + np.array([[-m, -m], [m, -m], [m, m], [-m, m]], np.float32)
    poly = _project(hmat, grown)
    cv2.fillPoly(mask, [np.rint(poly).astype(np.int32)], 1)
    return mask.astype(bool)


# ----------------------------------------------------------------------------- files (``skinimg calibrate``)

#: Columns of ``calibrate.csv`` (one row per input image).
CSV_COLUMNS = (
    "image", "status", "error", "kind", "method",
    "delta_e_before_mean", "delta_e_before_max", "delta_e_after_mean", "delta_e_after_max",
)


def calibrate_file(
    path,
    out_dir,
    *,
    relpath: str,
    out_stem: str,
    white: Sequence[int] | None = None,
    require_chart: bool = False,
    params: CalibrationParams | None = None,
    max_pixels: int | None = None,
) -> tuple[dict, str]:
    """Calibrate one photo file and write its corrected image and correction JSON.

    Parameters
    ----------
    path : path-like
        Input photo.
    out_dir : path-like
        Output root: writes ``calibrated/<out_stem>.png`` (same bit depth as the input, no
        metadata) and ``calibration/<out_stem>.json`` (:meth:`Correction.to_dict`).
    relpath : str
        Name of the input in messages and in the ``image`` column.
    out_stem : str
        Relative output name without extension.
    white, require_chart, params
        As :func:`calibrate_image` (``mode="auto"``).
    max_pixels : int, optional
        Passed to :func:`skinimg.io.load_image`.

    Returns
    -------
    row : dict
        The :data:`CSV_COLUMNS` values (``status`` "ok" or "error"; ``error`` the reason).
        A bad photo never raises; an output that cannot be written raises :class:`SkinImgError`.
    message : str
        One line for the user: ``"<image>: chart found; ..."``, ``"<image>: no chart found; used
        gray_world"`` or ``"<image>: <reason>"`` for an error.
    """
    from .io import DEFAULT_MAX_PIXELS, load_image, write_json, write_png

    params = params or CalibrationParams()
    row = {k: None for k in CSV_COLUMNS}
    row["image"] = relpath
    try:
        rgb, _meta = load_image(path, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels, label=relpath)
        corrected, corr = calibrate_image(rgb, mode="auto", white=white, require_chart=require_chart, params=params)
        corr.image = relpath
        corr.image_size = [int(rgb.shape[1]), int(rgb.shape[0])]
    except SkinImgError as exc:
        row.update(status="error", error=exc.reason)
        return row, f"{relpath}: {exc.reason}"
    # An output that cannot be written (full disk, read-only folder) is not the photo's fault:
    # SkinImgError propagates and stops the run.
    out_dir = Path(out_dir)
    write_png(out_dir / "calibrated" / f"{out_stem}.png", corrected)
    write_json(out_dir / "calibration" / f"{out_stem}.json", corr.to_dict())
    row.update(
        status="ok", error="", kind=corr.kind, method=corr.method,
        delta_e_before_mean=corr.delta_e_before["mean"], delta_e_before_max=corr.delta_e_before["max"],
        delta_e_after_mean=corr.delta_e_after["mean"], delta_e_after_max=corr.delta_e_after["max"],
    )
    if corr.kind == "chart":
        b, a = corr.delta_e_before, corr.delta_e_after
        msg = (f"{relpath}: chart found; CIEDE2000 mean {b['mean']:.2f} -> {a['mean']:.2f}, "
               f"max {b['max']:.2f} -> {a['max']:.2f} ({corr.method}, {len(corr.patches_used)} patches)")
    else:
        msg = f"{relpath}: no chart found; used {corr.kind}"
    return row, msg
