"""Parameters and result of the skin segmentation, and the choice lists every layer uses.

:data:`METHODS` (``model`` | ``rules``) is the one home of that choice: the analyze, compare and pipeline
parameters and the CLI options take it from here.  :data:`SECOND_STAGES` (``mlp`` | ``net`` | ``both``) names the
second stages of the colour-table segmenter that the U-Net replaced (issue 22); the values are still accepted
everywhere (deprecated, no effect) so that existing scripts and pipeline files keep working.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import SkinImgError
from .filters import _upsample

__all__ = ["METHODS", "SECOND_STAGES", "AGREEMENT_MIN", "SegmentParams", "SegmentResult", "check_method",
           "check_second_stage"]

#: Segmentation methods of :func:`~skinimg.segment.segment_skin`: the trained network, or the YCrCb rule (a baseline).
METHODS = ("model", "rules")
#: Deprecated (issue 22): the second stages of the former colour-table segmenter.  Accepted, no effect.
SECOND_STAGES = ("mlp", "net", "both")
#: ``segment_skin(check=True)``: a mask whose agreement with the network's mirror-image opinion (intersection over
#: union at working resolution) is below this is flagged ``mask_check = "check"``.  Chosen on the development
#: photos (docs/segmentation.md, "--check").
AGREEMENT_MIN = 0.92


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else a one-line :class:`SkinImgError`."""
    if method not in METHODS:
        raise SkinImgError(f"unknown segmentation method {method!r} (use 'model' or 'rules')")
    return method


def check_second_stage(second_stage: str) -> str:
    """``second_stage`` if it is one of :data:`SECOND_STAGES` (deprecated, no effect), else a one-line
    :class:`SkinImgError`."""
    if second_stage not in SECOND_STAGES:
        raise SkinImgError(f"unknown second stage {second_stage!r} (use {', '.join(SECOND_STAGES)})")
    return second_stage


@dataclass(frozen=True)
class SegmentParams:
    """Segmentation parameters.

    Attributes
    ----------
    work_side : int
        ``method="model"``: the network runs on a copy whose long side is at most this many pixels (area
        averaging; smaller photos are used as they are).
    threshold : float
        ``method="model"``: a pixel is skin when the network's P(skin) is at least this, in (0, 1) (0.4: chosen on
        the development split, docs/segmentation.md).
    neutral_chroma : float
        ``method="model"``: grey pixels are never skin: a pixel whose YCrCb chroma ``hypot(Cr - 128, Cb - 128)``
        (8-bit levels) is below this is dropped from the mask, unless it lies in a hole of the mask of at most
        ``neutral_hole`` of the image area (a specular spot on skin stays skin).  0 = off.
    neutral_hole : float
        The largest hole, as a fraction of the image area, in which grey pixels stay skin.
    guide_side : int
        ``method="model"``: the network's log-odds are brought back to the photo along its edges on a copy whose long
        side is at most this (0 = bilinear only): a guided filter whose guide is that copy's grey level.
    guide_eps : float
        Regularisation of that guided filter (guide scaled to [0, 1]).
    guide_radius : int
        Its window's radius, in pixels of the network's working copy (times the ratio of the two copies): how far
        the boundary may move to meet an edge of the photo.
    work_pixels : int
        ``method="rules"``: the rule and its clean-up run on a copy downscaled by the smallest factor ``k`` in 2, 3, 4,
        6, 8, 12, 16, 24 ... (mean of k x k blocks) that leaves at most this many pixels.
    smooth_sigma, high, low, open_radius, close_radius, min_component, max_hole, pixel_sigma, pixel_min,
    specular_level, dark_level
        ``method="rules"``: the clean-up of the rule's mask (Gaussian smoothing, hysteresis, opening and closing,
        small components and holes; pixels whose rule mask smoothed by ``pixel_sigma`` is below ``pixel_min``,
        specular and very dark pixels are never skin; :mod:`skinimg.segment`).
    stage2_model : {"mlp", "net", "both"}
        Deprecated, no effect (the second stage of the former colour-table segmenter).
    """

    work_side: int = 320
    threshold: float = 0.4
    neutral_chroma: float = 4.0
    neutral_hole: float = 0.01
    guide_side: int = 640
    guide_eps: float = 0.002
    guide_radius: int = 3
    work_pixels: int = 320_000
    smooth_sigma: float = 1.5
    high: float = 0.7
    low: float = 0.4
    open_radius: int = 1
    close_radius: int = 2
    min_component: float = 0.002
    max_hole: float = 0.002
    pixel_sigma: float = 0.7
    pixel_min: float = 0.5
    specular_level: int = 250
    dark_level: int = 10
    stage2_model: str = "mlp"

    def __post_init__(self):
        if not (isinstance(self.work_side, int) and self.work_side >= 32):
            raise SkinImgError(f"work_side must be an integer >= 32, got {self.work_side!r}")
        if not 0.0 < self.threshold < 1.0:
            raise SkinImgError(f"threshold must be in (0, 1), got {self.threshold!r}")
        if not (self.neutral_chroma >= 0 and 0.0 <= self.neutral_hole < 1.0):
            raise SkinImgError("neutral_chroma must be >= 0 and neutral_hole in [0, 1)")
        if not (isinstance(self.guide_side, int) and self.guide_side >= 0) or self.guide_eps <= 0:
            raise SkinImgError("guide_side must be an integer >= 0 and guide_eps > 0")
        if not (isinstance(self.guide_radius, int) and self.guide_radius >= 1):
            raise SkinImgError(f"guide_radius must be an integer >= 1, got {self.guide_radius!r}")
        if not (isinstance(self.work_pixels, int) and self.work_pixels >= 4096):
            raise SkinImgError(f"work_pixels must be an integer >= 4096, got {self.work_pixels!r}")
        if not 0.0 < self.low <= self.high < 1.0:
            raise SkinImgError(f"hysteresis thresholds need 0 < low <= high < 1, got low={self.low}, high={self.high}")
        if self.smooth_sigma < 0 or self.pixel_sigma < 0 or self.open_radius < 0 or self.close_radius < 0:
            raise SkinImgError("smoothing sigmas and morphology radii must be >= 0")
        if not (0.0 <= self.min_component < 1.0 and 0.0 <= self.max_hole < 1.0 and 0.0 <= self.pixel_min < 1.0):
            raise SkinImgError("min_component, max_hole and pixel_min must be in [0, 1)")
        if self.stage2_model not in SECOND_STAGES:
            raise SkinImgError(f"stage2_model must be one of {', '.join(SECOND_STAGES)}, got {self.stage2_model!r}")
        if not (0 <= self.dark_level < self.specular_level <= 256):
            raise SkinImgError("need 0 <= dark_level < specular_level <= 256 (8-bit levels)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SegmentResult:
    """Result of :func:`segment_skin`.

    Attributes
    ----------
    mask : ndarray, bool, (H, W)
        Skin pixels (after clean-up and ROI), size of the input photo.
    probability : ndarray, float32, (H, W), [0, 1]
        ``method="model"``: the network's P(skin) after the edge-aware upsampling; ``"rules"``: the smoothed rule
        mask (step 2 of its clean-up).  Resized to the photo on first access (a 12-MP float map costs 48 MB;
        analyze never needs it).
    skin_fraction : float
        ``mask.mean()``: skin pixels / all pixels of the photo (not of the ROI).
    status : {"ok", "no_skin"}
    method : str
        ``"model"`` or ``"rules"``.
    work_probability : ndarray, float32, (h, w)
        The probability at the resolution it was computed at (``model``: the guided filter's copy, long side
        at most ``SegmentParams.guide_side``; ``rules``: the working copy).
    agreement : float or None
        ``segment_skin(check=True)``: intersection over union, in [0, 1], of the network's mask and the mask it gives
        on the mirror image (mirrored back), at working resolution and within the ROI; 1.0 when both are empty.
        None otherwise (and for ``method="rules"``).
    """

    mask: np.ndarray
    skin_fraction: float
    status: str
    method: str
    work_probability: np.ndarray = field(repr=False, compare=False)
    agreement: float | None = None
    _geometry: tuple = field(repr=False, compare=False, default=())  # (hk, wk, h, w) when resized

    @property
    def mask_check(self) -> str | None:
        """``"ok"``, ``"check"`` (:attr:`agreement` below :data:`AGREEMENT_MIN`: look at this mask), or None when
        not checked."""
        if self.agreement is None:
            return None
        return "ok" if self.agreement >= AGREEMENT_MIN else "check"

    @property
    def flag_columns(self) -> dict:
        """The ``stage_agreement`` (rounded to 4 decimals) and ``mask_check`` columns of ``segment.csv``,
        ``indices.csv`` and the pipelines' tables; both None when not checked."""
        return {"stage_agreement": None if self.agreement is None else round(float(self.agreement), 4),
                "mask_check": self.mask_check}

    @functools.cached_property
    def probability(self) -> np.ndarray:
        ps = self.work_probability
        if self._geometry:
            ps = _upsample(ps, *self._geometry)  # bilinear: stays within [0, 1]
        return np.asarray(ps, dtype=np.float32)
