"""Parameters and result of the skin segmentation, and the choice lists every layer uses.

:data:`METHODS` (``model`` | ``rules``) and :data:`SECOND_STAGES` (``mlp`` | ``net`` | ``both``) are the
one home of these choices: the analyze, compare and pipeline parameters and the CLI options take them
from here.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import SkinImgError
from .filters import _upsample

__all__ = ["METHODS", "SECOND_STAGES", "AGREEMENT_MIN", "SegmentParams", "SegmentResult", "check_method",
           "check_second_stage"]

#: Colour classifiers of :func:`~skinimg.segment.segment_skin`: the trained table, or the YCrCb rule (a baseline).
METHODS = ("model", "rules")
#: Second stages of the ``"model"`` segmentation (``SegmentParams.stage2_model``): the per-pixel perceptron
#: (default), the U-Net, or the mean of their log-odds.
SECOND_STAGES = ("mlp", "net", "both")
#: ``segment_skin(check=True)``: a mask whose two second stages agree less than this (intersection over union)
#: is flagged ``mask_check = "check"``.  Chosen on 600 development phantoms (seeds 200000+, 480 x 640): below
#: 0.85 are 15 of the 24 photos whose mask has F1 < 0.90 and 1 of the 576 others (README, "Skin segmentation").
AGREEMENT_MIN = 0.85


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else a one-line :class:`SkinImgError`."""
    if method not in METHODS:
        raise SkinImgError(f"unknown segmentation method {method!r} (use 'model' or 'rules')")
    return method


def check_second_stage(second_stage: str) -> str:
    """``second_stage`` if it is one of :data:`SECOND_STAGES`, else a one-line :class:`SkinImgError`."""
    if second_stage not in SECOND_STAGES:
        raise SkinImgError(f"unknown second stage {second_stage!r} (use {', '.join(SECOND_STAGES)})")
    return second_stage


@dataclass(frozen=True)
class SegmentParams:
    """Clean-up parameters (all methods).  Pixel sizes are in working-image pixels.

    Attributes
    ----------
    work_pixels : int
        The colour model and the spatial steps run on a copy downscaled by the
        smallest factor ``k`` in 2, 3, 4, 6, 8, 12, 16, 24 ... (``2**a`` or ``3 * 2**a``; mean of k x k
        blocks) that leaves at most this many pixels; smaller photos are used as they are.
    smooth_sigma : float
        Gaussian sigma (pixels) of the probability smoothing before the hysteresis.
    high, low : float
        Hysteresis thresholds on the smoothed probability, 0 < low <= high < 1.
    open_radius, close_radius : int
        Radii (pixels) of the elliptic opening / closing; 0 = skip.
    min_component : float
        Connected skin components smaller than this fraction of the image are removed.
    max_hole : float
        Holes smaller than this fraction of the image are filled.
    pixel_sigma : float
        Gaussian sigma (pixels) of the probability used by the pixel veto (0 = none).
    pixel_min : float
        Pixels whose lightly smoothed probability is below this are never skin.
    specular_level, dark_level : int
        8-bit levels: pixels with every channel >= ``specular_level`` (specular
        highlights, clipped white) or every channel <= ``dark_level`` are never skin.
    refine_weight, refine_bits, refine_sigma, refine_margin, refine_cap
        Per-image colour refinement (step 6 of the module documentation); weight 0 = off.
    strand_radius, strand_contrast, strand_llr
        Hair-strand veto (step 7); radius 0 = off.
    redness_z
        Lip veto: robust z-score of log(R/G) above this is not skin; 0 = off.
    stage2_threshold
        Region pixels whose second-stage P(skin) is below this are removed (step 7, when
        the model has a second stage; it then replaces the probability, strand and lip
        vetoes); 0 = use those rule-based vetoes instead.
    stage2_pixels
        The second stage runs on a copy of the working image downscaled by the smallest integer
        factor that leaves at most this many pixels (0 = always at working resolution); its
        log-odds are brought back by bilinear interpolation and a guided filter (step 7).
    stage2_model
        ``"mlp"`` (default): the per-pixel perceptron; ``"net"``: the convolutional second stage
        (:mod:`skinimg.segment.unet`) when the model has one, else the perceptron; ``"both"``: both, and a region pixel
        stays when the mean of their log-odds is at least ``logit(stage2_threshold)`` (an ensemble of two
        classifiers that fail on different photos; it also gives :attr:`SegmentResult.agreement` at no cost).
        ``"both"`` is the most accurate on the held-out phantoms (F1 >= 0.97 on every skin tone), but it is not
        the default: about 10-20 ms slower on a 12 MP photo (up to 1.3x its decode) and worse than the
        perceptron on the one real labelled photo (README, "Skin segmentation").
    guide_radius, guide_eps
        Window radius (working pixels) and regularisation (guide scaled to [0, 1]) of that guided
        filter; radius 0 = bilinear interpolation only.
    """

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
    refine_weight: float = 1.0
    refine_bits: int = 5
    refine_sigma: float = 1.0
    refine_margin: int = 3
    refine_cap: float = 3.0
    strand_radius: int = 2
    strand_contrast: float = 0.16
    redness_z: float = 4.0
    strand_llr: float = 0.0
    stage2_threshold: float = 0.5
    stage2_pixels: int = 160_000
    stage2_model: str = "mlp"
    guide_radius: int = 3
    guide_eps: float = 3e-4

    def __post_init__(self):
        if not (isinstance(self.work_pixels, int) and self.work_pixels >= 4096):
            raise SkinImgError(f"work_pixels must be an integer >= 4096, got {self.work_pixels!r}")
        if not 0.0 < self.low <= self.high < 1.0:
            raise SkinImgError(f"hysteresis thresholds need 0 < low <= high < 1, got low={self.low}, high={self.high}")
        if self.smooth_sigma < 0 or self.pixel_sigma < 0 or self.open_radius < 0 or self.close_radius < 0:
            raise SkinImgError("smoothing sigmas and morphology radii must be >= 0")
        if not (0.0 <= self.min_component < 1.0 and 0.0 <= self.max_hole < 1.0 and 0.0 <= self.pixel_min < 1.0):
            raise SkinImgError("min_component, max_hole and pixel_min must be in [0, 1)")
        if not 0.0 <= self.stage2_threshold < 1.0:
            raise SkinImgError(f"stage2_threshold must be in [0, 1), got {self.stage2_threshold!r}")
        if not (isinstance(self.stage2_pixels, int) and (self.stage2_pixels == 0 or self.stage2_pixels >= 4096)):
            raise SkinImgError(f"stage2_pixels must be 0 or an integer >= 4096, got {self.stage2_pixels!r}")
        if self.stage2_model not in SECOND_STAGES:
            raise SkinImgError(f"stage2_model must be one of {', '.join(SECOND_STAGES)}, got {self.stage2_model!r}")
        if self.guide_radius < 0 or self.guide_eps <= 0:
            raise SkinImgError("guide_radius must be >= 0 and guide_eps > 0")
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
        Smoothed P(skin | colour) (step 2 of the clean-up), resized to the photo on
        first access (a 12-MP float map costs 48 MB and a third of the segmentation
        time; analyze never needs it).
    skin_fraction : float
        ``mask.mean()``: skin pixels / all pixels of the photo (not of the ROI).
    status : {"ok", "no_skin"}
    method : str
        ``"model"`` or ``"rules"``.
    work_probability : ndarray, float32, (h, w)
        The probability at the working resolution (``h * w <= SegmentParams.work_pixels``).
    agreement : float or None
        ``segment_skin(check=True)`` or ``stage2_model="both"``: intersection over union, in [0, 1], of the
        masks the perceptron and the U-Net give alone, at working resolution and within the ROI; 1.0 when both
        are empty.  None otherwise (or when the model has only one second stage, or ``method="rules"``).
    """

    mask: np.ndarray
    skin_fraction: float
    status: str
    method: str
    work_probability: np.ndarray = field(repr=False, compare=False)
    agreement: float | None = None
    _geometry: tuple = field(repr=False, compare=False, default=())  # (hk, wk, h, w) when downscaled

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
