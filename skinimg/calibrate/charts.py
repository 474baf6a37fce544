"""Reference charts, calibration parameters and the records a calibration produces.

The ColorChecker Classic (24 patches) reference values under D65 (``models/colorchecker_*.json``),
:class:`CalibrationParams` (every tunable, recorded in every correction), :class:`ChartDetection`
(what :func:`~skinimg.calibrate.detect_chart` found), :class:`Correction` (what was applied; saved as
``calibration/<stem>.json``) and :func:`chart_mask` (the chart's pixels, never skin).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

from ..color import linear_rgb_to_lab
from ..errors import SkinImgError
from ..io import model_file

__all__ = ["METHODS", "KINDS", "REFERENCE_CHARTS", "FALLBACKS", "MODES", "CalibrationParams", "ChartDetection", "Correction", "reference_chart", "chart_mask"]

#: Correction methods (``CalibrationParams.method``; the model applied is recorded as ``Correction.method``):
#: ``auto`` chooses per photo by leave-one-patch-out error (:func:`~skinimg.calibrate.chart_correction`).
METHODS = ("auto", "finlayson2015", "cheung2004", "linear3x3", "tone_grey3x3", "tone_linear3x3", "tone_finlayson2015")
#: What a :class:`Correction` was derived from.
KINDS = ("chart", "white_patch", "gray_world", "white_patch_auto", "none")

_REFERENCE_FILES = {
    "classic24": "colorchecker_classic24.json",
    "classic24_before2014": "colorchecker_classic24_before2014.json",
}
#: Reference values of the ColorChecker Classic (``CalibrationParams.chart``): charts made after / before Nov 2014.
REFERENCE_CHARTS = tuple(_REFERENCE_FILES)
#: Corrections without a chart and without a white region (``CalibrationParams.fallback``).
FALLBACKS = ("gray_world", "white_patch", "none")
#: Modes of :func:`~skinimg.calibrate.calibrate_image` (and ``--calibrate`` of analyze, compare and track).
MODES = ("auto", "chart", "none")
_ROWS, _COLS = 4, 6
#: ColorChecker Classic patch side as a fraction of the patch pitch (about 40 mm patches on a
#: 46 mm pitch; measured 0.88 on the real photo in tests/data).
_PATCH_SIDE = 0.87
_SCHEMA = "skinimg.calibration/2"
#: Older correction files that :meth:`Correction.from_dict` still reads (version 1 had no tone curve).
_SCHEMAS_READ = ("skinimg.calibration/1", _SCHEMA)


# ----------------------------------------------------------------------------- expansion term names

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
        ``"auto"`` (default): the model is chosen per photo by leave-one-patch-out CIEDE2000 among
        ``gain``, ``linear3x3``, ``finlayson2015`` and the tone-curve models (see
        :mod:`skinimg.calibrate.select`); or one model: ``"finlayson2015"`` (root-polynomial),
        ``"cheung2004"`` (polynomial), ``"linear3x3"`` (plain 3x3 matrix), ``"tone_grey3x3"``,
        ``"tone_linear3x3"``, ``"tone_finlayson2015"`` (a per-channel tone curve fitted on the
        neutral patches, then a grey-preserving 3x3, a 3x3 or a root-polynomial).  Whatever the
        method, a correction that makes the skin patches or the greys 20-23 worse under leave-one-out is not
        applied (noted).
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
    warn_loo : float
        Chart-quality warning when the applied fit leaves a leave-one-patch-out mean CIEDE2000 above
        this (a genuine chart under one light is fitted to about 1-2.5; a printed, faded or different
        chart, or light that varies across the chart, stays above).
    warn_grey : float
        Chart-quality warning when the corrected neutral patches (19-24) stay off-grey: their mean
        CIELAB chroma distance ``sqrt(da*^2 + db*^2)`` to the reference greys above this (in-sample).
    reference_source : str or None
        Where ``reference`` came from (``--reference FILE``: the file and what it held), recorded.
    """

    chart: str = "classic24"
    reference: tuple | None = None
    skin_weight: float = 4.0
    keep_below: float = 1.5
    method: str = "auto"
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
    warn_loo: float = 4.0
    warn_grey: float = 3.0
    reference_source: str | None = None

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
        if self.fallback not in FALLBACKS:
            raise ValueError("fallback must be 'gray_world', 'white_patch' or 'none'")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- reference


@lru_cache(maxsize=None)
def _load_reference(path: str) -> dict:
    try:
        doc = json.loads(open(path, encoding="utf-8").read())
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
    ref = _load_reference(str(model_file(_REFERENCE_FILES[chart])))
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
        Robust colour match of the chosen placement (mean CIEDE2000 of the best 75 % of the patches
        after a reweighted 3x3 fit, see :func:`~skinimg.calibrate.detect_chart`; the orientation
        criterion; lower is better; ``inf`` when not found).
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
        correction (in-sample; ``None`` values without a chart).  Plain (unweighted) means over the
        used patches: the fit's ``skin_weight`` never enters a reported figure.
    tone : list of 3 [a, g, o] or None
        Per-channel tone curve applied before the matrix, ``x = a * m ** g + o`` on linear ``m``
        (:mod:`skinimg.calibrate.tone`); None for models without one.
    delta_e_loo : dict
        ``{"mean", "max"}`` leave-one-patch-out CIEDE2000 of the applied model: each used patch
        predicted by the model fitted without it (:mod:`skinimg.calibrate.select`); for ``none`` the
        uncorrected errors.
    skin_delta_e, neutral_delta_e : dict
        ``{"before", "after", "loo"}`` mean CIEDE2000 over the used skin patches (1 dark skin,
        2 light skin) and neutral patches (19-24).
    models_loo : dict
        Leave-one-out mean CIEDE2000 of every model compared (``method="auto"``).
    patch_delta_e_loo : list of 24 float/None or None
        Per-patch leave-one-out residuals.
    warning : str or None
        One-line chart-quality warning (the chart does not match its reference, or the greys stay
        off-grey), also printed by ``skinimg calibrate``.
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
        ``"skinimg.calibration/2"`` (version 1 files, without a tone curve, are still read).
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
    tone: list | None = None
    delta_e_loo: dict = field(default_factory=lambda: {"mean": None, "max": None})
    patch_delta_e_loo: list | None = None
    skin_delta_e: dict = field(default_factory=lambda: {"before": None, "after": None, "loo": None})
    neutral_delta_e: dict = field(default_factory=lambda: {"before": None, "after": None, "loo": None})
    models_loo: dict = field(default_factory=dict)
    warning: str | None = None
    schema: str = _SCHEMA

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown correction kind {self.kind!r}")
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] != 3 or m.shape[1] != len(self.terms):
            raise ValueError(f"matrix must be 3 x {len(self.terms)} (one column per term), got {m.shape}")
        for t in self.terms:
            _parse_term(t)
        if self.tone is not None:
            t = np.asarray(self.tone, dtype=np.float64)
            if t.shape != (3, 3) or not np.isfinite(t).all() or np.any(t[:, 0] <= 0) or np.any(t[:, 1] <= 0):
                raise ValueError("tone must be 3 rows (a, g, o) with a > 0 and g > 0")

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
        if d.get("schema", _SCHEMA) not in _SCHEMAS_READ:
            raise ValueError(f"unsupported correction schema {d.get('schema')!r}")
        return cls(**{**{k: v for k, v in d.items()}, "schema": _SCHEMA})


# ----------------------------------------------------------------------------- expansions

def _lab(linear: np.ndarray) -> np.ndarray:
    return linear_rgb_to_lab(np.asarray(linear, dtype=np.float32)).astype(np.float64)


def _max_value(rgb: np.ndarray) -> float:
    return 65535.0 if rgb.dtype == np.uint16 else 255.0 if rgb.dtype == np.uint8 else 1.0


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(p, h).reshape(-1, 2)


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
