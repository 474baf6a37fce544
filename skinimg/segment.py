"""Skin segmentation: a colour model (lookup table) plus spatial clean-up.

Two per-pixel colour classifiers are available:

``model`` (default)
    A Bayesian colour histogram (Jones and Rehg 2002, *Statistical color models with
    application to skin detection*, IJCV 46:81-96, DOI 10.1023/A:1013200319198).  Skin
    and non-skin colour histograms over quantised sRGB (``2**bits`` levels per
    channel, default 64**3 bins) are counted on labelled pixels, smoothed with a
    Gaussian of ``hist_sigma`` bins, and turned into the log-likelihood ratio
    ``LLR(c) = log((H_s(c) + e_s) / (H_n(c) + e_n))`` with equal class priors, so
    ``P(skin | c) = 1 / (1 + exp(-LLR(c)))``.  ``e_n > e_s`` makes colours never
    seen in training lean to non-skin.  The table is stored as uint8-quantised
    log-odds in ``models/skin_lut.npz`` (provenance in ``models/skin_lut.json``);
    inference is one indexed gather per pixel.  Training data: the UCI Skin
    Segmentation pixels (Bhatt and Dhall 2009, DOI 10.24432/C5T30C, CC BY 4.0) and
    pixels of ``skinimg.synth`` phantoms spanning melanin 0.003-0.45 (very light to
    very dark skin), several illuminants and exposures, with hair, lips, eyes,
    clothing, shadows and wood/beige/cloth/dark backgrounds as non-skin.
    ``train_segmenter`` rebuilds it (fixed seeds: the same inputs give the same bytes).

``rules``
    The explicit YCrCb box of Chai and Ngan (1999), *Face segmentation using
    skin-color map in videophone applications*, IEEE TCSVT 9(4):551-564,
    DOI 10.1109/76.767122: skin when ``133 <= Cr <= 173`` and ``77 <= Cb <= 127``
    (ITU-R BT.601 YCrCb of 8-bit sRGB, offsets 128).  A baseline for comparison.

Spatial clean-up (parameters in :class:`SegmentParams`; the rules baseline gets steps
1-5, 7's specular/dark veto and 8, the model all of them), on a copy
downscaled to at most ``work_pixels`` pixels (block means of k x k pixels, ``k`` the smallest
of 1, 2, 3, 4, 6, 8, 12, 16 ... that fits: made of 2 x 2 steps, the fastest); the
mask and probability are resized back (bilinear) to the photo's size at the end, so
the cost hardly grows with the megapixels:

1. ``p``: per-pixel P(skin | colour) from the table (rules: 0 or 1).
2. ``ps``: ``p`` smoothed with a Gaussian of ``smooth_sigma`` pixels.
3. Hysteresis threshold (Canny 1986): pixels with ``ps > high`` seed regions that
   grow over 4-connected pixels with ``ps > low`` (:func:`hysteresis_threshold`, the same
   result as ``skimage.filters.apply_hysteresis_threshold``, faster).
4. Morphological opening (``open_radius``) then closing (``close_radius``), elliptic
   structuring elements.
5. Connected components (8-connected) smaller than ``min_component`` x image area
   are removed; holes (background components not touching the border) smaller
   than ``max_hole`` x image area are filled.
6. Per-image colour refinement: colour histograms (``2**refine_bits`` levels per
   channel, smoothed by ``refine_sigma`` bins) of this photo's confident skin (inside
   the region, ``ps >= high``, eroded by ``refine_margin``) and of its surroundings
   (outside the region dilated by ``refine_margin``) give a per-image log-likelihood
   ratio, clipped to +-``refine_cap`` and added with weight ``refine_weight`` to the
   pixel's global log-odds (``p`` smoothed by ``pixel_sigma``): a self-training step
   in the spirit of GrabCut's per-image colour models (Rother et al. 2004,
   DOI 10.1145/1015706.1015720), without the graph cut.
7. Pixel veto inside the region: combined probability below ``pixel_min``; thin
   dark or light lines (hair strands) found by a grey-level black-hat / top-hat
   of radius ``strand_radius`` with relative contrast ``strand_contrast`` (the
   DullRazor idea, Lee et al. 1997, DOI 10.1016/S0010-4825(97)00020-6) whose colour
   is more frequent around the skin than on it (per-image log-likelihood ratio of
   step 6 below ``strand_llr``: hair, not pores or wrinkles); pixels much redder than the photo's own
   skin (lips: robust z-score of ``log(R/G)`` above ``redness_z``, skipped when it
   would remove more than 20 % of the region); specular
   highlights (every channel >= ``specular_level``) and very dark pixels (every
   channel <= ``dark_level``), both on the 8-bit scale.
   With a second stage in the model (the default model has two), it replaces the probability, strand
   and lip vetoes: by default a perceptron over colour, texture and context features of every region
   pixel (:data:`FEATURE_NAMES`); with ``stage2_model="net"`` a small U-Net (:mod:`skinimg.unet`;
   Ronneberger, Fischer and Brox 2015, DOI 10.1007/978-3-319-24574-4_28) that sees the photo, the colour
   log-odds and the region on the region's bounding box and vetoes the region pixels it gives log-odds
   below ``logit(stage2_threshold)``; with ``stage2_model="both"`` the mean of the two's log-odds (a
   two-member ensemble; Dietterich 2000, *Ensemble methods in machine learning*, MCS 2000,
   DOI 10.1007/3-540-45014-9_1).  Either runs on the working image when that has at most
   ``stage2_pixels`` pixels, otherwise on a copy downscaled by the smallest integer factor that
   fits; its log-odds then come back by bilinear interpolation sharpened with a guided filter
   (He, Sun and Tang 2013, *Guided image filtering*, IEEE TPAMI 35(6):1397-1409,
   DOI 10.1109/TPAMI.2012.213) whose guide is the working image's grey level, so the outline
   follows the photo's edges.
8. Optional region of interest (``roi``): everything outside it is removed.

A photo without any skin pixel left gets ``status="no_skin"`` (not an exception).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import io as _io
import json
import logging
import math
import multiprocessing
import os
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import __version__
from .errors import SkinImgError
from .io import (
    InputImage,
    _reason_text,
    discover_images,
    load_image,
    load_npz,
    models_dir,
    read_mask,
    remove_stale_temp_files,
    safe_output_path,
    write_bytes,
    write_csv,
    write_json,
    write_png,
)

__all__ = [
    "DEFAULT_MODEL_PATH",
    "SEGMENT_COLUMNS",
    "AGREEMENT_MIN",
    "EVAL_COLUMNS",
    "EVAL_TONE_COLUMNS",
    "METHODS",
    "SegmentParams",
    "SegmentResult",
    "SkinModel",
    "segment_skin",
    "rules_mask",
    "hysteresis_threshold",
    "load_uci",
    "uci_split",
    "load_model",
    "load_roi",
    "evaluate_masks",
    "evaluate_folders",
    "true_skin_tone",
    "error_budget",
    "pooled_tone_metrics",
    "phantom_tone_metrics",
    "tone_group",
    "TONE_GROUPS",
    "segment_paths",
    "train_segmenter",
    "phantom_specs",
]

log = logging.getLogger("skinimg")

METHODS = ("model", "rules")
#: Default colour model (the JSON provenance sits beside it with the same stem).
DEFAULT_MODEL_PATH = models_dir() / "skin_lut.npz"
#: Columns of ``segment.csv`` (the issue's contract, then ``skinimg segment --check``'s two, empty without it).
SEGMENT_COLUMNS = ("image", "status", "error", "skin_fraction", "method", "stage_agreement", "mask_check")
#: ``segment_skin(check=True)``: a mask whose two second stages agree less than this (intersection over union)
#: is flagged ``mask_check = "check"``.  Chosen on 600 development phantoms (seeds 200000+, 480 x 640): below
#: 0.85 are 15 of the 24 photos whose mask has F1 < 0.90 and 1 of the 576 others (README, "Skin segmentation").
AGREEMENT_MIN = 0.85
#: Columns of the ``eval-segment`` table.
EVAL_COLUMNS = ("image", "status", "error", "precision", "recall", "f1", "iou", "pred_fraction", "true_fraction",
                "pixels", "ita_deg", "tone", "stage_agreement", "mask_check")
#: Columns of the per-tone table of :func:`evaluate_folders` (``eval_segment_tones.csv``).
EVAL_TONE_COLUMNS = ("tone", "n_images", "precision", "recall", "f1", "iou", "worst_f1", "worst_image")
#: Default UCI Skin Segmentation file (columns B G R label; 1 = skin, 2 = non-skin).
#: Looked up in ``../shared/data/uci-skin/`` beside the repository (or one level higher, for a git worktree).
_REPO = Path(__file__).resolve().parent.parent
UCI_CANDIDATES = tuple(base / "shared" / "data" / "uci-skin" / "Skin_NonSkin.txt"
                       for base in (_REPO.parent, _REPO.parent.parent))

_LLR_RANGE = 8.0
#: Values of ``SegmentParams.stage2_model``: the U-Net, the perceptron, or the mean of their log-odds.
STAGE2_MODELS = ("net", "mlp", "both")
#: Arrays of the second-stage classifier in the model NPZ (stored with the prefix ``s2_``).
STAGE2_ARRAYS = ("mu", "inv_sd", "W1", "b1", "W2", "b2")  # stored log-odds are clipped to [-8, 8] and quantised to uint8


# ----------------------------------------------------------------------------- parameters and result


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
        (:mod:`skinimg.unet`) when the model has one, else the perceptron; ``"both"``: both, and a region pixel
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
        if self.stage2_model not in STAGE2_MODELS:
            raise SkinImgError(f"stage2_model must be one of {', '.join(STAGE2_MODELS)}, got {self.stage2_model!r}")
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


# ----------------------------------------------------------------------------- colour model


@dataclass(frozen=True)
class SkinModel:
    """A compiled colour lookup table.

    Attributes
    ----------
    bits : int
        Quantisation: ``2**bits`` levels per sRGB channel.
    prob : ndarray, float32, (2**(3*bits),)
        P(skin | colour bin), index ``(r << 2b) | (g << b) | b`` of the quantised levels.
    provenance : dict
        The model's JSON (data, split, date, metrics), ``{}`` if there is none.
    sha256 : str
        Digest of the NPZ file.
    stage2 : dict or None
        Second-stage pixel classifier (:data:`STAGE2_ARRAYS`, float32): a one-hidden-layer
        perceptron over :data:`FEATURE_NAMES`; None = the rule-based vetoes of step 7.
    net : skinimg.unet.NetRunner or None
        Convolutional second stage (a small U-Net, :mod:`skinimg.unet`); used instead of ``stage2`` when
        ``SegmentParams.stage2_model == "net"``.
    """

    bits: int
    prob: np.ndarray
    provenance: dict = field(default_factory=dict)
    sha256: str = ""
    stage2: dict | None = None
    net: object = None

    def stage2_logit(self, features: np.ndarray) -> np.ndarray:
        """Log-odds of skin, float32 (N,), for float32 (N, F) rows of :func:`_pixel_features`.

        ``relu(((x - mu) / sd) W1 + b1) W2 + b2`` (a multilayer perceptron trained with
        scikit-learn's ``MLPClassifier``, weights stored as plain arrays).
        """
        s = self.stage2
        h = (features - s["mu"]) * s["inv_sd"]
        h = h @ s["W1"]
        h += s["b1"]
        np.maximum(h, np.float32(0), out=h)
        return h @ s["W2"][:, 0] + s["b2"][0]

    def predict_stage2(self, features: np.ndarray) -> np.ndarray:
        """P(skin | pixel features), float32 (N,): the sigmoid of :meth:`stage2_logit`."""
        return np.float32(1) / (np.float32(1) + np.exp(-self.stage2_logit(features)))

    def index(self, rgb8: np.ndarray) -> np.ndarray:
        """Flat LUT index (int32, (H, W)) of a uint8 RGB image."""
        s = 8 - self.bits
        q = rgb8 >> np.uint8(s) if s else rgb8
        idx = q[..., 0].astype(np.int32)
        idx <<= self.bits
        idx |= q[..., 1]
        idx <<= self.bits
        idx |= q[..., 2]
        return idx

    def predict(self, rgb8: np.ndarray) -> np.ndarray:
        """P(skin | colour), float32 (H, W), for a uint8 (H, W, 3) RGB image: one gather per pixel."""
        return self.prob[self.index(rgb8)]


def _llr_from_uint8(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) * np.float32(2 * _LLR_RANGE / 255.0) - np.float32(_LLR_RANGE))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _load_model_cached(path: str) -> SkinModel:
    arrays = load_npz(path, label=Path(path).name)
    if "log_odds" not in arrays or "bits" not in arrays:
        raise SkinImgError("not a skinimg colour model (needs arrays 'log_odds' and 'bits')", Path(path).name)
    bits = int(arrays["bits"].reshape(-1)[0])
    q = arrays["log_odds"]
    if q.dtype != np.uint8 or q.size != 1 << (3 * bits) or not 3 <= bits <= 8:
        raise SkinImgError(f"colour model has a wrong table ({q.dtype}, {q.size} entries for {bits} bits)",
                           Path(path).name)
    prob = _sigmoid(_llr_from_uint8(q.reshape(-1)))
    prob.setflags(write=False)
    meta_path = Path(path).with_suffix(".json")
    prov = {}
    if meta_path.is_file():
        try:
            prov = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SkinImgError(f"cannot read model provenance ({_reason_text(exc, meta_path)})", meta_path.name) from None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    stage2 = None
    if all(f"s2_{k}" in arrays for k in STAGE2_ARRAYS):
        stage2 = {k: np.ascontiguousarray(arrays[f"s2_{k}"], dtype=np.float32) for k in STAGE2_ARRAYS}
        nf, nh = len(FEATURE_NAMES), stage2["W1"].shape[-1]
        shapes = {"mu": (nf,), "inv_sd": (nf,), "W1": (nf, nh), "b1": (nh,), "W2": (nh, 1), "b2": (1,)}
        if any(stage2[k].shape != v for k, v in shapes.items()) or not all(np.isfinite(a).all() for a in stage2.values()):
            raise SkinImgError("colour model has a malformed second-stage classifier", Path(path).name)
    net = None
    net_arrays = {k[4:]: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items() if k.startswith("net_")}
    if net_arrays:
        from .unet import NetRunner, check_weights

        check_weights(net_arrays, Path(path).name)
        net = NetRunner(net_arrays)
    return SkinModel(bits=bits, prob=prob, provenance=prov, sha256=digest, stage2=stage2, net=net)


def load_model(path: str | os.PathLike | None = None) -> SkinModel:
    """Load a colour lookup table (default ``models/skin_lut.npz``); cached per path.

    The NPZ is read with ``allow_pickle=False`` (:func:`skinimg.io.load_npz`).

    Raises
    ------
    SkinImgError
        Missing, corrupt or pickled file, or a table of the wrong size.
    """
    return _load_model_cached(os.fspath(Path(path) if path is not None else DEFAULT_MODEL_PATH))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """The one dtype gate: uint8 as is, uint16 -> uint8 (upper byte, rounded)."""
    if rgb.dtype == np.uint8:
        return rgb
    # rounding division by 257 maps 0..65535 onto 0..255 exactly at the ends
    return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _check_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise SkinImgError(f"expected an RGB image of shape (H, W, 3), got shape {rgb.shape}")
    if rgb.dtype not in (np.uint8, np.uint16):
        raise SkinImgError(f"expected a uint8 or uint16 RGB image, got {rgb.dtype}")
    return rgb


def rules_mask(rgb: np.ndarray) -> np.ndarray:
    """Explicit YCrCb skin rule of Chai and Ngan (1999), DOI 10.1109/76.767122.

    Skin when ``133 <= Cr <= 173`` and ``77 <= Cb <= 127``, with ITU-R BT.601
    ``Cr = 0.713 (R - Y) + 128``, ``Cb = 0.564 (B - Y) + 128``,
    ``Y = 0.299 R + 0.587 G + 0.114 B`` on 8-bit sRGB values (OpenCV's conversion).

    Parameters
    ----------
    rgb : ndarray, uint8 or uint16, (H, W, 3), RGB order

    Returns
    -------
    ndarray, bool, (H, W)
    """
    rgb8 = _to_uint8(_check_rgb(rgb))
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2YCrCb)
    return cv2.inRange(ycc, (0, 133, 77), (255, 173, 127)) > 0


# ----------------------------------------------------------------------------- ROI


def load_roi(path: str | os.PathLike, shape: tuple[int, int], *, label: str | None = None) -> np.ndarray:
    """Region of interest as a bool mask of ``shape`` (H, W).

    Parameters
    ----------
    path : path-like
        ``.json``: a polygon ``[[x, y], ...]`` (at least 3 points, image pixel
        coordinates, x to the right, y down; pixel centres inside are in the ROI), or
        ``{"polygon": [[x, y], ...]}``.
        Anything else: a mask image (PNG ...), non-zero = inside; it must have the
        photo's size.
    shape : (int, int)
        Height and width of the (upright) photo.

    Raises
    ------
    SkinImgError
        Unreadable file, malformed polygon, size mismatch, or an empty ROI.
    """
    p = Path(path)
    shown = label or p.name
    h, w = int(shape[0]), int(shape[1])
    if p.suffix.lower() == ".json":
        try:
            pts = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SkinImgError("ROI file not found", shown) from None
        except (OSError, ValueError) as exc:
            raise SkinImgError(f"ROI is not valid JSON ({_reason_text(exc, p)})", shown) from None
        if isinstance(pts, dict):  # {"polygon": [[x, y], ...]} is accepted too
            pts = pts.get("polygon")
        ok = (isinstance(pts, list) and len(pts) >= 3
              and all(isinstance(q, (list, tuple)) and len(q) == 2
                      and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in q)
                      for q in pts))
        if not ok:
            raise SkinImgError("ROI polygon must be a JSON list of at least 3 [x, y] number pairs", shown)
        poly = np.array(pts, dtype=np.float64)
        if np.abs(poly).max() > 1e7:
            raise SkinImgError("ROI polygon coordinates are out of range", shown)
        m = np.zeros((h, w), np.uint8)
        # 4 fractional bits: vertices at sub-pixel precision, pixel centres at integer coordinates
        cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=4)
        roi = m > 0
    else:
        roi = read_mask(p, label=shown)
        if roi.shape != (h, w):
            raise SkinImgError(f"ROI mask is {roi.shape[1]}x{roi.shape[0]} pixels but the photo is {w}x{h}", shown)
    if not roi.any():
        raise SkinImgError("ROI covers no pixel of the photo", shown)
    return roi


# ----------------------------------------------------------------------------- segmentation


def hysteresis_threshold(a: np.ndarray, low: float, high: float) -> np.ndarray:
    """Hysteresis thresholding (Canny 1986, DOI 10.1109/TPAMI.1986.4767851).

    Pixels ``> low`` that are 4-connected to at least one pixel ``> high``; the same
    result as ``skimage.filters.apply_hysteresis_threshold(a, low, high)``, computed
    with OpenCV's connected components (faster).

    Parameters
    ----------
    a : ndarray, float32, (H, W)

    Returns
    -------
    ndarray, bool, (H, W)
    """
    weak = (a > np.float32(low)).view(np.uint8)
    if not weak.any():
        return weak.view(bool)
    n, lab = cv2.connectedComponents(weak, connectivity=4)
    keep = np.zeros(n, dtype=bool)
    keep[lab[a > np.float32(high)]] = True
    keep[0] = False
    return keep[lab]


def _ellipse(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _remove_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    if min_area <= 1 or not mask.any():
        return mask
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[lab]


def _fill_small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    if max_area < 1:
        return mask
    inv = (~mask).view(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = mask.shape
    x, y, bw, bh, area = (stats[:, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH,
                                                 cv2.CC_STAT_HEIGHT, cv2.CC_STAT_AREA))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h) & (area <= max_area)
    inner[0] = False  # label 0 = the skin pixels themselves
    return mask | inner[lab]


def _gauss(a: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return a
    return cv2.GaussianBlur(a, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, np.float32(0.01), np.float32(0.99))
    return np.log(q / (np.float32(1.0) - q))


def _image_llr(rgb8: np.ndarray, region: np.ndarray, confident: np.ndarray, params: SegmentParams
               ) -> np.ndarray | None:
    """Per-image colour log-likelihood ratio (skin core vs. surroundings), float32 (H, W), or None.

    Histograms (``2**refine_bits`` levels per channel) of the pixels well inside the
    region (eroded by ``refine_margin``) and well outside it (beyond a dilation by
    ``refine_margin``), each normalised and smoothed with a Gaussian of
    ``refine_sigma`` bins; ``log((h_in + e) / (h_out + e))``, ``e`` = 1e-4 / bins,
    clipped to +-``refine_cap``.  "Inside" also requires the smoothed global probability
    >= ``high`` (confident skin).
    """
    from scipy.ndimage import gaussian_filter

    k = _ellipse(params.refine_margin)
    inner = cv2.erode((region & confident).view(np.uint8), k).view(bool)
    outer = ~cv2.dilate(region.view(np.uint8), k).view(bool)
    n_in, n_out = int(np.count_nonzero(inner)), int(np.count_nonzero(outer))
    if n_in < 64 or n_out < 64:
        return None
    b = params.refine_bits
    q = rgb8 >> np.uint8(8 - b)
    idx = q[..., 0].astype(np.int32)
    idx <<= b
    idx |= q[..., 1]
    idx <<= b
    idx |= q[..., 2]
    nb = 1 << (3 * b)
    h_in = np.bincount(idx[inner], minlength=nb).astype(np.float32) / np.float32(n_in)
    h_out = np.bincount(idx[outer], minlength=nb).astype(np.float32) / np.float32(n_out)
    if params.refine_sigma > 0:
        h_in = gaussian_filter(h_in.reshape((1 << b,) * 3), params.refine_sigma, mode="nearest").reshape(-1)
        h_out = gaussian_filter(h_out.reshape((1 << b,) * 3), params.refine_sigma, mode="nearest").reshape(-1)
    e = np.float32(1e-4 / nb)
    cap = params.refine_cap
    table = np.clip(np.log(h_in + e) - np.log(h_out + e), -cap, cap).astype(np.float32)
    return table[idx]


def _thin_structures(rgb8: np.ndarray, params: SegmentParams) -> np.ndarray:
    """Thin dark or light lines (hair strands): morphological black-hat / top-hat of the luminance.

    After the DullRazor idea (Lee et al. 1997, DOI 10.1016/S0010-4825(97)00020-6):
    a pixel darker than ``(1 - strand_contrast)`` x its grey-level closing, or brighter
    than ``(1 + strand_contrast)`` x its opening, with an elliptic element of radius
    ``strand_radius`` pixels, lies on a structure thinner than the element.
    """
    y = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32)
    k = _ellipse(params.strand_radius)
    c = np.float32(params.strand_contrast)
    closed = cv2.morphologyEx(y, cv2.MORPH_CLOSE, k)
    opened = cv2.morphologyEx(y, cv2.MORPH_OPEN, k)
    return (y < (1 - c) * closed - 2) | (y > (1 + c) * opened + 2)


def _redness_outliers(rgb8: np.ndarray, mask: np.ndarray, params: SegmentParams) -> np.ndarray:
    """Pixels much redder than the image's own skin (lips): robust z of log(R/G) above ``redness_z``.

    ``z = (x - median) / (1.4826 MAD)`` over the skin pixels of this image, ``x = log((R+1)/(G+1))``.
    """
    r = rgb8[..., 0].astype(np.float32) + 1
    g = rgb8[..., 1].astype(np.float32) + 1
    x = np.log(r / g)
    v = x[mask]
    med = np.float32(np.median(v))
    mad = np.float32(1.4826 * np.median(np.abs(v - med))) + np.float32(0.01)
    return (x - med) > np.float32(params.redness_z) * mad



#: Names of the second-stage pixel features (:func:`_pixel_features`), in column order.
FEATURE_NAMES = ("global_llr", "image_llr", "log_lum", "blackhat1", "blackhat2", "tophat1", "tophat2", "local_std",
                 "dL", "da", "db", "local_da", "local_db", "depth", "core_dist", "dL_top", "da_top", "db_top",
                 "region_fraction",
                 # texture without colour: structure tensor (strand orientation coherence, gradient energy,
                 # anisotropy) at two scales and band-pass energy at three
                 "coherence1", "grad_energy1", "anisotropy1", "coherence2", "grad_energy2", "anisotropy2",
                 "band1", "band2", "band4",
                 # thin structures in every CIELAB channel: pixel minus its 3 x 3 / 5 x 5 median, chroma hats
                 "medres3_L", "medres3_a", "medres3_b", "medres5_L", "medres5_a", "medres5_b",
                 "tophat_a", "blackhat_a", "tophat_b", "blackhat_b",
                 # context of the colour log-odds
                 "local_llr", "local_image_llr", "wide_image_llr")


def _pixel_features(rgb8: np.ndarray, llr: np.ndarray, img: np.ndarray | None, mask: np.ndarray,
                    core: np.ndarray, photo_pixels: int | None = None) -> np.ndarray:
    """Second-stage features of the region's pixels: float32 (N, len(FEATURE_NAMES)), rows in ``mask`` order.

    Colour: the global log-odds ``llr``, the per-image log-likelihood ratio ``img``
    (0 when absent), CIELAB differences (L*, a*, b*) to the median of this photo's
    confident skin ``core`` and the same for 7 x 7 box means of a*, b*; CIELAB differences to a
    second reference, the median of the core's most skin-coloured quarter (highest ``llr``), which
    differs from the first when a skin-coloured wall or garment joined the core; the region's
    fraction of the photo (``photo_pixels``, default ``mask.size``: the arrays may be a crop).  Texture:
    log luminance relative to the core median; relative grey-level black-hat and
    top-hat (Lee et al. 1997 DullRazor idea) at radii 1 and 2; local standard deviation
    (5 x 5) of luminance relative to the core median.  Geometry: distance (pixels,
    capped at 15) to the outside of ``mask`` and to ``core``.

    Hair strands of the skin's own colour (added after the per-tone diagnosis): the structure tensor of
    log luminance at integration scales 1.5 and 3 (coherence ``(l1 - l2) / (l1 + l2)``, log trace, log
    ``l1 - l2``; strands are oriented, skin texture is not), log band-pass energy at sigma 1, 2, 4 (differences
    of Gaussians, squared, smoothed at the same sigma), pixel minus its 3 x 3 and 5 x 5 median in L*, a*, b*
    (a one-pixel line differs from its median in hue even where its lightness matches), grey-level top-hat and
    black-hat of a*, b* (radius 1), and 7 x 7 / 15 x 15 box means of the two colour log-odds (context).
    """
    f32 = np.float32
    y = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(f32)
    lab = cv2.cvtColor(rgb8.astype(f32) * f32(1 / 255.0), cv2.COLOR_RGB2Lab)
    cref = core if np.count_nonzero(core) >= 64 else mask
    full = np.flatnonzero(cref.reshape(-1))
    sub = full[::4]
    labv = lab.reshape(-1, 3)[sub]
    ref = np.median(labv, axis=0).astype(f32)
    ymed = f32(np.median(y.reshape(-1)[sub])) + f32(8.0)
    # second reference: the core's most skin-coloured quarter (global log-odds); differs from the first when a
    # large skin-coloured background or garment joined the core
    lv = llr.reshape(-1)[full]
    top = full[lv >= np.quantile(lv, 0.75)][::2] if full.size >= 256 else sub
    ref_hi = np.median(lab.reshape(-1, 3)[top], axis=0).astype(f32)
    feats = [np.clip(llr, -6, 6), img if img is not None else np.zeros_like(llr), np.log((y + 8) / ymed)]
    for op in (cv2.MORPH_CLOSE, cv2.MORPH_OPEN):
        for r in (1, 2):
            m = cv2.morphologyEx(y, op, _ellipse(r))
            feats.append((m - y) / (m + 8) if op == cv2.MORPH_CLOSE else (y - m) / (y + 8))
    mu = cv2.blur(y, (5, 5))
    var = cv2.blur(y * y, (5, 5)) - mu * mu
    feats.append(np.sqrt(np.maximum(var, 0)) / ymed)
    for c in range(3):
        feats.append(lab[..., c] - ref[c])
    for c in (1, 2):
        feats.append(cv2.blur(lab[..., c], (7, 7)) - ref[c])
    m8 = mask.view(np.uint8)
    feats.append(np.minimum(cv2.distanceTransform(m8, cv2.DIST_L2, 3), 15))
    feats.append(np.minimum(cv2.distanceTransform((~core).view(np.uint8), cv2.DIST_L2, 3), 15))
    for c in range(3):
        feats.append(lab[..., c] - ref_hi[c])
    feats.append(np.full_like(y, f32(np.count_nonzero(mask) / (photo_pixels or mask.size))))
    # structure tensor of log luminance (Bigun and Granlund 1987; Weickert 1999): hair strands run in one
    # direction (coherence near 1), skin texture and noise do not; plus band-pass energy at sigma 1, 2, 4
    ly = np.log(y + f32(8))
    gx = cv2.Sobel(ly, cv2.CV_32F, 1, 0, ksize=3) * f32(0.125)
    gy = cv2.Sobel(ly, cv2.CV_32F, 0, 1, ksize=3) * f32(0.125)
    gxx, gyy, gxy = gx * gx, gy * gy, gx * gy
    for s in (1.5, 3.0):
        jxx, jyy, jxy = _gauss(gxx, s), _gauss(gyy, s), _gauss(gxy, s)
        tr = jxx + jyy
        d = np.sqrt((jxx - jyy) ** 2 + f32(4) * jxy * jxy)
        feats += [d / (tr + f32(1e-4)), np.log(tr + f32(1e-5)), np.log(d + f32(1e-5))]
    prev = ly
    for s in (1.0, 2.0, 4.0):
        g = _gauss(ly, s)
        band = prev - g
        feats.append(np.log(_gauss(band * band, s) + f32(1e-5)))
        prev = g
    chans = [np.ascontiguousarray(lab[..., c]) for c in range(3)]
    for k in (3, 5):
        feats += [ch - cv2.medianBlur(ch, k) for ch in chans]
    e1 = _ellipse(1)
    for ch in chans[1:]:
        feats += [ch - cv2.morphologyEx(ch, cv2.MORPH_OPEN, e1), cv2.morphologyEx(ch, cv2.MORPH_CLOSE, e1) - ch]
    img0 = feats[1]
    feats += [cv2.blur(feats[0], (7, 7)), cv2.blur(img0, (7, 7)), cv2.blur(img0, (15, 15))]
    idx = np.flatnonzero(mask.reshape(-1))
    out = np.empty((len(feats), idx.size), dtype=f32)  # one row per feature, gathered by integer index
    for j, f in enumerate(feats):
        np.take(f.reshape(-1), idx, out=out[j])
    return out.T  # (N, F), Fortran-ordered view



#: Margin (working pixels) of the crop around the region in which the second stage runs: more than the
#: reach of every spatial filter behind a region pixel's features (the widest: band-pass energy at sigma 4,
#: a Gaussian of radius 16 (OpenCV's float kernel, 4 sigma) on the difference of Gaussians of radii 8 and 16
#: = 32 pixels; structure tensor at sigma 3 = 12 + 1; 15 x 15 box = 7; grey-level closing/opening of radius 2
#: = 4; and the Gaussian of ``pixel_sigma``, about 4 sigma), so the crop gives the region the same values as
#: the whole image.
_CROP_MARGIN = 36


@functools.lru_cache(maxsize=1)
def _blas_pools():
    """This process's BLAS thread pools (threadpoolctl; found once, about 10 ms), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None
    return ThreadpoolController().select(user_api="blas")


def _stage2_logit_one_thread(model: SkinModel, f: np.ndarray) -> np.ndarray:
    """``model.stage2_logit(f)`` with the BLAS on one thread (the same values: each product element is
    computed alike).  A few milliseconds of matrix product gain little from a second thread, and its
    wake-up and spinning cost far more when the other cores are busy (a batch runs one photo per core)."""
    pools = _blas_pools()
    if pools is None or not pools.lib_controllers:  # pragma: no cover
        return model.stage2_logit(f)
    with pools.limit(limits=1):
        return model.stage2_logit(f)


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Slices of the bounding box of ``mask``'s pixels grown by ``margin`` (clipped to the image); None if empty."""
    x, y, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    if bw == 0 or bh == 0:
        return None
    h, w = mask.shape
    return slice(max(y - margin, 0), min(y + bh + margin, h)), slice(max(x - margin, 0), min(x + bw + margin, w))


def _stage2_logit(rgb8: np.ndarray, p: np.ndarray, mask: np.ndarray, confident: np.ndarray, params: SegmentParams,
                  model: SkinModel) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Second-stage log-odds of the region's pixels: ``(box, m, z)`` with ``box`` the region's bounding box
    grown by :data:`_CROP_MARGIN` (the features are computed on it), ``m = mask[box]`` and ``z`` float32 (N,)
    in ``m`` order; None for an empty region."""
    if model.net is not None and params.stage2_model == "net":
        return _net_logit(rgb8, p, mask, model.net)
    box = _bbox(mask, max(_CROP_MARGIN, int(4 * params.pixel_sigma) + 2))
    if box is None:
        return None
    img = _image_llr(rgb8, mask, confident, params) if params.refine_weight > 0 else None
    m = np.ascontiguousarray(mask[box])
    core = cv2.erode((m & confident[box]).view(np.uint8), _ellipse(params.refine_margin)).view(bool)
    llr = _logit(_gauss(np.ascontiguousarray(p[box]), params.pixel_sigma))
    f = _pixel_features(np.ascontiguousarray(rgb8[box]), llr, None if img is None else img[box], m, core,
                        photo_pixels=mask.size)
    return box, m, _stage2_logit_one_thread(model, f)


#: Margin (pixels) of the crop around the region in which the convolutional second stage runs (see
#: :func:`_net_logit`).
_NET_MARGIN = 8


def _net_logit(rgb8: np.ndarray, p: np.ndarray, mask: np.ndarray, net) -> tuple | None:
    """The convolutional second stage's log-odds of the region's pixels, as :func:`_stage2_logit`.

    The network sees the region's bounding box grown by :data:`_NET_MARGIN` (it was trained on crops of
    photos, whose borders it sees as zero padding).  8 pixels, not the 32 of earlier versions: on the 600
    development phantoms (seeds 200000+, 480 x 640) F1 per tone moved by at most 0.0004, and the network's input
    shrinks by 35-60 % on a 12 MP face or forearm (its time with it).
    """
    box = _bbox(mask, _NET_MARGIN)
    if box is None:
        return None
    m = np.ascontiguousarray(mask[box])
    from .unet import net_input

    z = net(net_input(np.ascontiguousarray(rgb8[box]), np.ascontiguousarray(p[box]), m))
    return box, m, z[m]


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Grey-level guided filter (He, Sun and Tang 2013, *Guided image filtering*, IEEE TPAMI 35(6):1397-1409,
    DOI 10.1109/TPAMI.2012.213): the output is locally ``a * guide + b``, fitted to ``src`` by least squares in
    each (2 radius + 1)^2 window with ridge ``eps``, then the coefficients averaged; edges of ``guide`` are kept.

    ``guide`` and ``src`` are float32 (H, W) (the guide in [0, 1] for ``eps`` to have its documented
    scale); returns float32 (H, W).  Box means with reflected borders (OpenCV ``blur``).
    """
    k = (2 * radius + 1, 2 * radius + 1)
    m_i = cv2.blur(guide, k)
    m_p = cv2.blur(src, k)
    cov = cv2.blur(guide * src, k) - m_i * m_p
    var = cv2.blur(guide * guide, k) - m_i * m_i
    a = cov / (var + np.float32(eps))
    b = m_p - a * m_i
    return cv2.blur(a, k) * guide + cv2.blur(b, k)


#: Log-odds bound of the second stage when it runs downscaled: the values are clipped to +-this (P = 0.99)
#: before interpolation, and pixels outside the region get -this (not skin).
_Z_CAP = 4.595


def _scatter(shape: tuple[int, int], box: tuple[slice, slice], m: np.ndarray, values: np.ndarray,
             cap: np.float32) -> np.ndarray:
    """A float32 map of ``shape``: ``values`` at the pixels of ``m`` (the region within ``box``, in row order),
    ``-cap`` elsewhere."""
    z = np.full(shape, -cap, dtype=np.float32)
    sub = np.full(m.shape, -cap, dtype=np.float32)
    sub[m] = values
    z[box] = sub
    return z


def _stage2_z(rgb8: np.ndarray, p: np.ndarray, mask: np.ndarray, confident: np.ndarray, params: SegmentParams,
              model: SkinModel, stages: Sequence[str]) -> list[np.ndarray] | None:
    """Second-stage log-odds at working resolution: one float32 map of ``mask``'s shape per stage of ``stages``
    (``"mlp"``, ``"net"``), or None for an empty region.  Only the region's pixels are meaningful.

    At most ``stage2_pixels`` pixels: at working resolution.  Larger: on a copy downscaled by the smallest
    integer factor ``k`` that fits (block means of colours and probabilities; a block is in the region when any
    of its pixels is, confident when most are); the log-odds, clipped to +-:data:`_Z_CAP` and -:data:`_Z_CAP`
    outside the region, are resized back bilinearly and sharpened by :func:`guided_filter` with the working
    image's grey level as guide (``guide_radius``, ``guide_eps``), so that the region's outline follows the
    photo's edges rather than the k x k blocks.  Saves about three quarters of the second stage's time (the
    larger part of the segmentation of a close-up) for a drop of pooled F1 on the 480 x 640 sample photos from
    0.986 to 0.985.  The downscaled copy and the guide are shared by the stages.
    """
    h, w = mask.shape
    k = min(max(1, math.ceil(math.sqrt(h * w / float(params.stage2_pixels)))), h, w) if params.stage2_pixels else 1
    cap = np.float32(_Z_CAP)
    if k == 1:
        outs = [_stage2_logit(rgb8, p, mask, confident, replace(params, stage2_model=s), model) for s in stages]
        if outs[0] is None:
            return None
        return [_scatter(mask.shape, box, m, zv, cap) for box, m, zv in outs]
    hk, wk = (h // k) * k, (w // k) * k
    rgb2 = _block_mean(rgb8[:hk, :wk], k)
    p2 = _block_mean(p[:hk, :wk], k)
    mask2 = _block_mean(mask[:hk, :wk].view(np.uint8) * np.uint8(255), k) > 0
    conf2 = _block_mean(confident[:hk, :wk].view(np.uint8) * np.uint8(255), k) >= 128
    r = params.guide_radius
    box = _bbox(mask, 2 * r + 1)
    grey = None
    if r > 0 and box is not None:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb8[box]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        grey *= np.float32(1 / 255.0)
    zs = []
    for s in stages:
        out = _stage2_logit(rgb2, p2, mask2, conf2, replace(params, stage2_model=s), model)
        if out is None:
            return None
        box2, m2, z2v = out
        z = _upsample(_scatter(mask2.shape, box2, m2, np.clip(z2v, -cap, cap), cap), hk, wk, h, w)
        if grey is not None:
            z[box] = guided_filter(grey, np.ascontiguousarray(z[box]), r, params.guide_eps)
        zs.append(z)
    return zs


def _stage2_plan(params: SegmentParams, model: SkinModel, check: bool) -> tuple[list[str], bool]:
    """The second stages to run and whether the mask is their mean: ``(stages, mean)``.

    ``stage2_model="both"`` runs both and averages their log-odds; ``"mlp"`` (default) or ``"net"`` one of them
    (``check`` adds the other, for the agreement only).  A model with only one second stage uses that one.
    """
    if model.net is None:
        return ["mlp"], False
    if model.stage2 is None:
        return ["net"], False
    if params.stage2_model == "both":
        return ["mlp", "net"], True
    if check:
        return ([params.stage2_model, "net" if params.stage2_model == "mlp" else "mlp"]), False
    return [params.stage2_model], False


def _region(p: np.ndarray, params: SegmentParams) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-5 of the clean-up on P(skin) float32 (h, w): (region bool, smoothed probability float32).

    The region is what the second stage judges.  Components run on the bounding box (1 pixel margin: what
    touches it is background connected to the image border).
    """
    area = p.size
    ps = _gauss(p, params.smooth_sigma)
    mask = hysteresis_threshold(ps, params.low, params.high)
    if params.open_radius:
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, _ellipse(params.open_radius)).view(bool)
    if params.close_radius:
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_CLOSE, _ellipse(params.close_radius),
                                borderType=cv2.BORDER_REPLICATE).view(bool)
    box = _bbox(mask, 1)
    if box is None:
        return np.zeros(mask.shape, dtype=bool), ps
    sub = _remove_small(np.ascontiguousarray(mask[box]), int(math.ceil(params.min_component * area)))
    sub = _fill_small_holes(sub, int(params.max_hole * area))
    mask = np.zeros(mask.shape, dtype=bool)
    mask[box] = sub
    return mask, ps


def _clean(p: np.ndarray, rgb8: np.ndarray, params: SegmentParams, *, refine: bool = True,
           model: SkinModel | None = None, collect: list | None = None, check: bool = False
           ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Spatial clean-up at working resolution: (mask bool, smoothed probability float32, pair).

    ``pair``: the masks the perceptron and the U-Net give alone, when both ran (``stage2_model="both"``, or
    ``check``) and the model has both; else None.

    ``refine=False`` (the rules baseline) skips the per-image refinement and the strand
    and lip vetoes, which need graded probabilities.

    Speed (same results): the component steps run on the region's bounding box (1 pixel
    margin: what touches it is background connected to the image border); with a second
    stage, its features are computed on the bounding box grown by :data:`_CROP_MARGIN`
    (every filter behind a region pixel's features reaches less far), and the rule-based
    probability veto it replaces is not computed.
    """
    mask, ps = _region(p, params)
    high = np.float32(params.high)
    stage2 = (refine and model is not None and (model.stage2 is not None or model.net is not None)
              and params.stage2_threshold > 0)
    if stage2 and collect is None:
        stages, mean = _stage2_plan(params, model, check)
        zs = _stage2_z(rgb8, p, mask, ps >= high, params, model, stages)
        box = _bbox(mask, 0)
        if zs is None or box is None:
            return mask, ps, ((mask, mask.copy()) if len(stages) == 2 else None)
        thr = params.stage2_threshold
        zthr = np.float32(math.log(thr / (1.0 - thr)))
        r, g, b = cv2.split(rgb8[box])
        never = cv2.min(cv2.min(r, g), b) >= params.specular_level
        never |= cv2.max(cv2.max(r, g), b) <= params.dark_level
        keep = mask[box] & ~never
        zb = [z[box] for z in zs]
        pair = None
        if len(stages) == 2:
            pair = []
            for name in ("mlp", "net"):
                one = np.zeros_like(mask)
                one[box] = keep & (zb[stages.index(name)] >= zthr)
                pair.append(one)
            pair = tuple(pair)
        if mean:  # the mean of the two stages' log-odds
            z = zb[0] + zb[1]
            keep &= z >= np.float32(2) * zthr
        else:
            keep &= zb[0] >= zthr
        mask[box] = keep
        return mask, ps, pair
    llr = _logit(_gauss(p, params.pixel_sigma))
    llr_global = llr.copy()
    img = None
    if refine and params.refine_weight > 0 and mask.any():
        img = _image_llr(rgb8, mask, ps >= high, params)
        if img is not None:
            llr += np.float32(params.refine_weight) * img
    veto = llr < np.float32(math.log(params.pixel_min / (1.0 - params.pixel_min)))
    if collect is not None and mask.any():  # training the second stage: its features and the region
        core = cv2.erode((mask & (ps >= high)).view(np.uint8), _ellipse(params.refine_margin)).view(bool)
        collect.append((_pixel_features(rgb8, llr_global, img, mask, core), mask.copy()))
    if stage2 and mask.any():
        core = cv2.erode((mask & (ps >= high)).view(np.uint8), _ellipse(params.refine_margin)).view(bool)
        f = _pixel_features(rgb8, llr_global, img, mask, core)
        veto = np.zeros_like(mask)
        veto[mask] = model.predict_stage2(f) < np.float32(params.stage2_threshold)
    elif refine and params.strand_radius > 0:
        # a thin line whose colour is more common around the skin than on it (hair)
        gate = img if img is not None else llr
        veto |= _thin_structures(rgb8, params) & (gate < np.float32(params.strand_llr))
    if refine and not stage2 and params.redness_z > 0 and mask.any():  # noqa: SIM102
        core = mask & (ps >= high)
        if core.any():
            red = _redness_outliers(rgb8, core, params)
            # lips are a small part of the skin: a "redness outlier" covering much of the
            # region means the region is mostly not skin (a beige wall) - then skip the veto
            if np.count_nonzero(red & mask) <= 0.2 * np.count_nonzero(mask):
                veto |= red
    r, g, b = cv2.split(rgb8)
    veto |= cv2.min(cv2.min(r, g), b) >= params.specular_level
    veto |= cv2.max(cv2.max(r, g), b) <= params.dark_level
    mask &= ~veto
    return mask, ps, None


def _upsample(a: np.ndarray, hk: int, wk: int, h: int, w: int) -> np.ndarray:
    """Bilinear resize to (hk, wk), then replicate the last row/column out to (h, w)."""
    if (hk, wk) == (h, w):
        return cv2.resize(a, (wk, hk), interpolation=cv2.INTER_LINEAR)
    up = np.empty((h, w), dtype=a.dtype)
    r = cv2.resize(a, (wk, hk), dst=up[:hk, :wk], interpolation=cv2.INTER_LINEAR)  # in place (a strided view)
    if not np.shares_memory(r, up):  # pragma: no cover - an OpenCV that copies strided outputs
        up[:hk, :wk] = r
    up[:hk, wk:] = up[:hk, wk - 1:wk]
    up[hk:] = up[hk - 1]
    return up


def _upsample_mask(m: np.ndarray, hk: int, wk: int, h: int, w: int) -> np.ndarray:
    """A working-resolution bool mask back to (h, w): ``_upsample`` of the mask as 0/255, then ``>= 128``.

    The same values as ``_upsample(m * 255, ...) >= 128`` with one full-size array instead of
    four: the resize writes into the output, the threshold runs in place and gives 0/1 bytes
    that are viewed as bool.
    """
    up = _upsample(m.view(np.uint8) * np.uint8(255), hk, wk, h, w)
    r = cv2.threshold(up, 127, 1, cv2.THRESH_BINARY, dst=up)[1]
    return r.view(bool)


def _work_factor(pixels: int, limit: int) -> int:
    """The downscaling factor of the working copy: the smallest ``k`` of the form ``2**a`` or ``3 * 2**a``
    with ``pixels / k**2 <= limit`` (those factors are made of 2 x 2 steps, which OpenCV averages several
    times faster than one step of 5 or 7)."""
    k_min = max(1, math.ceil(math.sqrt(pixels / float(limit))))
    p = 1
    while 2 * p < k_min:
        p *= 2
    return next(k for k in (p, 3 * p // 2 if p >= 2 else 2, 2 * p, 3 * p) if k >= k_min)


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Means of the k x k blocks of ``a`` (height and width multiples of ``k``), same dtype (rounded).

    2 x 2 steps while ``k`` is even (OpenCV's fast path of ``INTER_AREA``), then one step of the odd rest:
    the same means as one k x k step up to the rounding of each step (half a level per step).
    """
    while k % 2 == 0:
        a = cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA)
        k //= 2
    if k > 1:
        a = cv2.resize(a, (a.shape[1] // k, a.shape[0] // k), interpolation=cv2.INTER_AREA)
    return a


def segment_skin(rgb: np.ndarray, *, method: str = "model", roi: np.ndarray | None = None,
                 params: SegmentParams | None = None, model: SkinModel | str | os.PathLike | None = None,
                 check: bool = False) -> SegmentResult:
    """Segment the skin of a photo.

    Parameters
    ----------
    rgb : ndarray, uint8 or uint16, (H, W, 3), sRGB, RGB order
        The upright photo.
    method : {"model", "rules"}
        Colour classifier: the trained lookup table (Jones and Rehg 2002) or the
        YCrCb rule of Chai and Ngan (1999).  See the module documentation.
    roi : ndarray, bool, (H, W), optional
        Region of interest (:func:`load_roi`): skin outside it is dropped.
    params : SegmentParams, optional
        Clean-up parameters.
    model : SkinModel or path-like, optional
        Colour model for ``method="model"`` (default ``models/skin_lut.npz``).
    check : bool
        Also run the other second stage and report how far the two masks agree
        (``SegmentResult.agreement``; below :data:`AGREEMENT_MIN` the mask deserves a look).  The two stages
        fail on different photos, so a low agreement marks most of the masks that went wrong.  Costs the other
        second stage (10-20 ms on one thread for a 12 MP photo); implied by ``stage2_model="both"``.

    Returns
    -------
    SegmentResult
        ``status="no_skin"`` with ``skin_fraction=0`` when no skin pixel is left.

    Raises
    ------
    SkinImgError
        Bad array, unknown method, ROI of the wrong shape, unreadable model.
    """
    rgb = _check_rgb(rgb)
    params = params or SegmentParams()
    if method not in METHODS:
        raise SkinImgError(f"unknown segmentation method {method!r} (use 'model' or 'rules')")
    h, w = rgb.shape[:2]
    if roi is not None:
        roi = np.asarray(roi, dtype=bool)
        if roi.shape != (h, w):
            raise SkinImgError(f"ROI is {roi.shape[1]}x{roi.shape[0]} pixels but the photo is {w}x{h}")
    if method == "model" and not isinstance(model, SkinModel):
        model = load_model(model)
    # working copy: downscaled by an integer factor k (area averaging of k x k blocks; the
    # last h % k rows and w % k columns are dropped here and replicated back at the end)
    k = min(_work_factor(h * w, params.work_pixels), h, w)  # min: a strip one pixel high is not reduced
    if k > 1:
        hk, wk = (h // k) * k, (w // k) * k
        work = _block_mean(rgb[:hk, :wk], k)
    else:
        work = rgb
    work8 = np.ascontiguousarray(_to_uint8(work))
    if method == "model":
        p = model.predict(work8)
    else:
        p = rules_mask(work8).astype(np.float32)
    mask, ps, pair = _clean(p, work8, params, refine=method == "model", model=model if method == "model" else None,
                            check=check)
    agreement = None
    if pair is not None:
        a, b = pair
        if roi is not None:
            roi_w = roi if k == 1 else _block_mean(roi[:hk, :wk].view(np.uint8) * np.uint8(255), k) >= 128
            a, b = a & roi_w, b & roi_w
        agreement = evaluate_masks(a, b)["iou"]  # 1.0 when both are empty
    geometry = ()
    if k > 1:
        geometry = (hk, wk, h, w)
        mask = _upsample_mask(mask, *geometry)
    if roi is not None:
        mask &= roi
    n = int(np.count_nonzero(mask))
    return SegmentResult(mask=mask, skin_fraction=n / float(h * w), status="ok" if n else "no_skin", method=method,
                         work_probability=np.asarray(ps, dtype=np.float32), agreement=agreement, _geometry=geometry)


# ----------------------------------------------------------------------------- evaluation


def evaluate_masks(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Pixel agreement of a predicted and a true skin mask.

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
    ``f1 = 2 TP / (2 TP + FP + FN)`` (the Dice coefficient, Dice 1945,
    DOI 10.2307/1932409) and ``iou = TP / (TP + FP + FN)`` (Jaccard 1912).
    A ratio whose denominator is 0 is 1.0 when both masks are empty (perfect
    agreement) and 0.0 otherwise.

    Parameters
    ----------
    pred, truth : ndarray, bool (or 0/non-zero), same shape

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``iou`` (floats) and the counts
    ``tp``, ``fp``, ``fn``, ``tn`` (ints).
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    truth = np.asarray(truth).astype(bool, copy=False)
    if pred.shape != truth.shape:
        raise SkinImgError(f"masks differ in size: {pred.shape} vs {truth.shape}")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    tn = pred.size - tp - fp - fn
    return _metrics(tp, fp, fn, tn)


def _metrics(tp: int, fp: int, fn: int, tn: int) -> dict:
    def ratio(a, b):
        return a / b if b else (1.0 if tp + fp + fn == 0 else 0.0)

    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "iou": ratio(tp, tp + fp + fn), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _find_truth_mask(masks_dir: Path, item: InputImage) -> Path | None:
    stem = item.stem_rel
    for cand in (f"{stem}.png", f"{stem}_mask.png", f"{stem}.bmp", f"{stem}_mask.bmp"):
        p = masks_dir / cand
        if p.is_file():
            return p
    return None


def true_skin_tone(rgb: np.ndarray, truth: np.ndarray) -> tuple[float, str]:
    """Skin tone of a labelled photo: the mean ITA of its true skin pixels and the ITA class of that mean.

    ``rgb`` uint8 or uint16 (H, W, 3) sRGB as photographed (no calibration); ``truth`` bool (H, W).  ITA
    ``atan2(L* - 50, b*)`` in degrees (Chardon, Cretois and Hourseau 1991, DOI 10.1111/j.1467-2494.1991.tb00561.x)
    from CIELAB D65, classes of Del Bino and Bernerd 2013 (DOI 10.1111/bjd.12529), as the ``ita_deg`` and
    ``ita_category`` columns of ``skinimg analyze``.  ``(nan, "unknown")`` when the photo has no true skin.
    """
    from .colour import rgb_to_lab
    from .indices import ita_category, ita_deg

    px = np.asarray(rgb)[np.asarray(truth, dtype=bool)]
    if not px.size:
        return float("nan"), "unknown"
    lab = rgb_to_lab(px)
    ita = float(np.mean(ita_deg(lab[:, 0], lab[:, 2]), dtype=np.float64))
    return ita, ita_category(ita)


def _tone_table(rows: list[dict], counts: dict[str, list[int]]) -> list[dict]:
    """Pixel-pooled metrics per tone (ITA classes lightest first, then "unknown") over ok rows."""
    from .indices import ITA_CATEGORIES

    out = []
    for tone in (*ITA_CATEGORIES, "unknown"):
        sel = [r for r in rows if r["status"] == "ok" and r["tone"] == tone]
        if not sel:
            continue
        worst = min(sel, key=lambda r: r["f1"])
        m = _metrics(*counts[tone])
        out.append({"tone": tone, "n_images": len(sel), "precision": m["precision"], "recall": m["recall"],
                    "f1": m["f1"], "iou": m["iou"], "worst_f1": worst["f1"], "worst_image": worst["image"]})
    return out


def evaluate_folders(images: str | os.PathLike, masks: str | os.PathLike, *, method: str = "model",
                     params: SegmentParams | None = None, pred_masks: str | os.PathLike | None = None,
                     check: bool = False) -> dict:
    """Segment every photo under ``images`` and compare with the true masks under ``masks``.

    The true mask of ``images/<rel>/<stem>.<ext>`` is ``masks/<rel>/<stem>.png`` or
    ``masks/<rel>/<stem>_mask.png`` (the layout of ``skinimg synth`` truth folders);
    non-zero = skin.  With ``pred_masks`` the predictions are read from that folder
    (same naming, e.g. the ``masks/`` of a ``skinimg segment`` run) instead of
    being computed.  ``check=True`` (computed masks of ``method="model"``): each row also gets
    ``stage_agreement`` and ``mask_check`` as ``skinimg segment --check`` writes them, so that the flag can be
    judged against the truth on one's own labelled photos.

    Returns
    -------
    dict
        ``rows`` (one per image, :data:`EVAL_COLUMNS`; images without a true mask or
        unreadable are ``status="error"``), ``overall`` (pixel-pooled precision,
        recall, f1, iou over all ok images), ``by_tone`` (the same pooled per skin tone,
        :data:`EVAL_TONE_COLUMNS`: the ITA class of each photo's true skin, :func:`true_skin_tone`),
        ``mean_f1`` (mean of per-image F1), ``n_images``, ``n_ok``, ``n_error``, ``method``, and ``check``
        (None unless checked: ``n_flagged``, ``mean_f1_flagged``, ``mean_f1_not_flagged``, the latter two None
        when there is no such photo).
    """
    images, masks = Path(images), Path(masks)
    items = discover_images([images])
    items = [i for i in items if not Path(i.relpath).with_suffix("").name.endswith("_mask")
             or _find_truth_mask(masks, i) is not None]
    if not items:
        raise SkinImgError("no image files found", os.fspath(images))
    if not masks.is_dir():
        raise SkinImgError("mask folder not found", os.fspath(masks))
    if method == "model" and pred_masks is None:
        _require_both_stages(load_model(), check)
    rows, tot, by_tone = [], [0, 0, 0, 0], {}
    for item in items:
        row = {c: None for c in EVAL_COLUMNS}
        row["image"] = item.relpath
        try:
            tpath = _find_truth_mask(masks, item)
            if tpath is None:
                raise SkinImgError(f"no true mask ({item.stem_rel}.png or {item.stem_rel}_mask.png) in the mask folder")
            truth = read_mask(tpath, label=tpath.relative_to(masks).as_posix())
            rgb = None
            if pred_masks is not None:
                ppath = Path(pred_masks) / f"{item.stem_rel}.png"
                pred = read_mask(ppath, label=f"{item.stem_rel}.png")
                try:  # only for the tone: a photo that cannot be read leaves it "unknown"
                    rgb, _ = load_image(item.path, label=item.relpath)
                except SkinImgError:
                    pass
            else:
                rgb, _ = load_image(item.path, label=item.relpath)
                res = segment_skin(rgb, method=method, params=params, check=check)
                pred = res.mask
                if res.agreement is not None:
                    row.update(stage_agreement=res.agreement, mask_check=res.mask_check)
            if pred.shape != truth.shape:
                raise SkinImgError(f"true mask is {truth.shape[1]}x{truth.shape[0]} pixels, the photo "
                                   f"{pred.shape[1]}x{pred.shape[0]}")
            m = evaluate_masks(pred, truth)
        except SkinImgError as exc:
            row.update(status="error", error=exc.reason)
            rows.append(row)
            continue
        ita, tone = true_skin_tone(rgb, truth) if rgb is not None and rgb.shape[:2] == truth.shape else (
            float("nan"), "unknown")
        counts = by_tone.setdefault(tone, [0, 0, 0, 0])
        for k, key in enumerate(("tp", "fp", "fn", "tn")):
            tot[k] += m[key]
            counts[k] += m[key]
        row.update(status="ok", error=None, precision=m["precision"], recall=m["recall"], f1=m["f1"], iou=m["iou"],
                   pred_fraction=(m["tp"] + m["fp"]) / truth.size, true_fraction=(m["tp"] + m["fn"]) / truth.size,
                   pixels=int(truth.size), ita_deg=None if math.isnan(ita) else ita, tone=tone)
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    overall = {k: v for k, v in _metrics(*tot).items()} if ok else None
    checked = None
    if any(r["mask_check"] is not None for r in ok):
        def mean_f1(flag):
            f = [r["f1"] for r in ok if r["mask_check"] == flag]
            return float(np.mean(f)) if f else None

        checked = {"n_flagged": sum(r["mask_check"] == "check" for r in ok), "mean_f1_flagged": mean_f1("check"),
                   "mean_f1_not_flagged": mean_f1("ok")}
    return {
        "rows": rows,
        "overall": overall,
        "by_tone": _tone_table(rows, by_tone),
        "mean_f1": float(np.mean([r["f1"] for r in ok])) if ok else None,
        "n_images": len(rows),
        "n_ok": len(ok),
        "n_error": len(rows) - len(ok),
        "method": "masks" if pred_masks is not None else method,
        "check": checked,
    }


# ----------------------------------------------------------------------------- batch


def _require_both_stages(model: SkinModel, check: bool) -> None:
    """``check`` compares the two second stages: a model without one of them is a one-line error."""
    if check and (model.stage2 is None or model.net is None):
        raise SkinImgError("the colour model lacks one of the two second stages (trained with --no-net?): "
                           "--check needs both")


def _segment_one(job) -> dict:
    item, out, method, roi_path, params, max_pixels, check = job
    row = {"image": item.relpath, "status": "error", "error": None, "skin_fraction": None, "method": method,
           "stage_agreement": None, "mask_check": None}
    try:
        rgb, _ = load_image(item.path, max_pixels=max_pixels, label=item.relpath)
        roi = load_roi(roi_path, rgb.shape[:2]) if roi_path is not None else None
        res = segment_skin(rgb, method=method, roi=roi, params=params, check=check)
    except SkinImgError as exc:
        row["error"] = exc.reason
        return row
    except MemoryError:
        row["error"] = "out of memory (try --max-pixels or fewer --workers)"
        return row
    target = safe_output_path(Path(out) / "masks", f"{item.stem_rel}.png", what="mask path")
    write_png(target, res.mask.view(np.uint8) * np.uint8(255))
    row.update(status=res.status, error=None if res.status == "ok" else "no skin found",
               skin_fraction=res.skin_fraction)
    row.update(res.flag_columns)
    return row


def _init_worker() -> None:
    cv2.setNumThreads(1)


def segment_paths(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, method: str = "model",
                  roi: str | os.PathLike | None = None, workers: int | None = None,
                  params: SegmentParams | None = None, max_pixels: int = 80_000_000, check: bool = False) -> dict:
    """Segment every photo under ``paths``; write ``out/masks/<rel>/<stem>.png`` and ``out/segment.csv``.

    Masks are 8-bit PNGs, 255 = skin, 0 = not, the size of the upright photo.
    ``segment.csv`` has the columns :data:`SEGMENT_COLUMNS`; a file that cannot be
    read (or an ROI that does not fit it) is a ``status="error"`` row with the
    reason and no mask; a photo without skin is ``status="no_skin"`` (an all-zero
    mask is written).  ``check=True`` (``method="model"``): each row also gets ``stage_agreement``
    (:attr:`SegmentResult.agreement`) and ``mask_check`` (``"ok"``, or ``"check"`` below :data:`AGREEMENT_MIN`);
    both are empty otherwise.

    Returns
    -------
    dict
        ``rows`` (sorted by image), ``n_images``, ``n_ok``, ``n_no_skin``, ``n_error``, ``n_check`` (masks flagged
        by ``check``), ``elapsed_s``.

    Raises
    ------
    SkinImgError
        No image found, missing input path, missing ROI file, unreadable model,
        output folder not writable (fatal: the run stops).
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise SkinImgError(f"unknown segmentation method {method!r} (use 'model' or 'rules')")
    params = params or SegmentParams()
    items = discover_images(paths)
    if not items:
        raise SkinImgError("no image files found", " ".join(os.fspath(p) for p in paths))
    if roi is not None and not Path(roi).is_file():
        raise SkinImgError("ROI file not found", os.fspath(roi))
    if method == "model":
        _require_both_stages(load_model(), check)  # a missing model is fatal before any work
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinImgError(f"cannot create output folder ({exc.strerror or exc})", os.fspath(out)) from None
    remove_stale_temp_files(out)
    jobs = [(item, os.fspath(out), method, None if roi is None else os.fspath(roi), params, max_pixels, check)
            for item in items]
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    if n_workers <= 1:
        rows = [_segment_one(j) for j in jobs]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker) as ex:
            try:
                rows = list(ex.map(_segment_one, jobs, chunksize=1))
            except BaseException:
                ex.shutdown(wait=True, cancel_futures=True)
                raise
    rows.sort(key=lambda r: r["image"])
    write_csv(out / "segment.csv", rows, SEGMENT_COLUMNS)
    remove_stale_temp_files(out)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "no_skin", "error")}
    return {"rows": rows, "n_images": len(rows), "n_ok": counts["ok"], "n_no_skin": counts["no_skin"],
            "n_error": counts["error"], "n_check": sum(r["mask_check"] == "check" for r in rows),
            "elapsed_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- training


def load_uci(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """UCI Skin Segmentation pixels: ``(rgb uint8 (N, 3) RGB order, is_skin bool (N,))``.

    The file's columns are ``B G R label`` (label 1 = skin, 2 = non-skin).
    """
    p = Path(path)
    try:
        raw = np.loadtxt(p, dtype=np.int64, ndmin=2)
    except FileNotFoundError:
        raise SkinImgError("UCI skin data file not found", os.fspath(p)) from None
    except (OSError, ValueError) as exc:
        raise SkinImgError(f"cannot read the UCI skin data ({_reason_text(exc, p)})", os.fspath(p)) from None
    if raw.shape[1] != 4 or raw[:, :3].min() < 0 or raw[:, :3].max() > 255 or not np.isin(raw[:, 3], (1, 2)).all():
        raise SkinImgError("UCI skin data must have 4 columns B G R label (0-255, label 1 or 2)", os.fspath(p))
    rgb = raw[:, 2::-1].astype(np.uint8)
    return rgb, raw[:, 3] == 1


def phantom_specs(seeds: Sequence[int], *, size: tuple[int, int] = (240, 320)):
    """Deterministic varied phantom specs (one per seed) covering the whole tone range.

    Melanin log-uniform 0.003-0.45 (very light to very dark), haemoglobin log-uniform
    0.004-0.08, daylight illuminants D65 (half), D50 and D75 (the model assumes
    daylight or white-balanced photos: calibrate tungsten/fluorescent photos first), exposure 0.55-1.6, both sites, every
    background, random distractor subsets (hair always on faces), pose, noise, JPEG.
    """
    from .synth import BACKGROUNDS, DISTRACTORS, PhantomSpec

    illums = ("D65", "D65", "D50", "D75")
    specs = []
    for s in seeds:
        rng = np.random.default_rng([int(s), 3])
        site = ("face", "forearm")[int(rng.integers(0, 2))]
        extra = [d for d in DISTRACTORS if rng.random() < 0.75]
        if site == "face" and "hair" not in extra:
            extra.insert(0, "hair")
        specs.append(PhantomSpec(
            melanin=float(np.exp(rng.uniform(np.log(0.003), np.log(0.45)))),
            hemoglobin=float(np.exp(rng.uniform(np.log(0.004), np.log(0.08)))),
            seed=int(s), size=tuple(size), site=site,
            background=BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))],
            distractors=tuple(extra), spots=int(rng.integers(0, 10)), red_patches=int(rng.integers(0, 4)),
            illuminant=illums[int(rng.integers(0, len(illums)))],
            exposure=float(rng.uniform(0.55, 1.6)),
            pose=(float(rng.uniform(-30, 30)), float(rng.uniform(-20, 20)), float(rng.uniform(-15, 15)),
                  float(rng.uniform(0.85, 1.15))),
            noise=float(rng.uniform(0.003, 0.03)),
            jpeg_quality=None if rng.random() < 0.5 else int(rng.integers(70, 96)),
        ))
    return specs


def _hist(rgb8: np.ndarray, bits: int) -> np.ndarray:
    s = 8 - bits
    q = (rgb8 >> s).astype(np.int64) if s else rgb8.astype(np.int64)
    idx = (q[..., 0] << (2 * bits)) | (q[..., 1] << bits) | q[..., 2]
    return np.bincount(idx.reshape(-1), minlength=1 << (3 * bits)).astype(np.float64)


def _lut_from_hists(hs: list[np.ndarray], hn: list[np.ndarray], weights: Sequence[float], bits: int,
                    sigma: float) -> np.ndarray:
    """uint8-quantised log-odds LUT from per-source skin/non-skin histograms."""
    from scipy.ndimage import gaussian_filter

    n = 1 << bits
    ds = np.zeros(n ** 3)
    dn = np.zeros(n ** 3)
    wsum = float(sum(weights))
    for a, b, wgt in zip(hs, hn, weights):
        ds += (wgt / wsum) * a / max(a.sum(), 1.0)
        dn += (wgt / wsum) * b / max(b.sum(), 1.0)
    if sigma > 0:
        ds = gaussian_filter(ds.reshape(n, n, n), sigma, mode="nearest").reshape(-1)
        dn = gaussian_filter(dn.reshape(n, n, n), sigma, mode="nearest").reshape(-1)
    e = 1e-3 / n ** 3
    llr = np.log(ds + e) - np.log(dn + 10 * e)
    q = np.round((np.clip(llr, -_LLR_RANGE, _LLR_RANGE) + _LLR_RANGE) * (255.0 / (2 * _LLR_RANGE)))
    return q.astype(np.uint8)


def _stage2_specs(seeds_tones: int, size_hi: tuple[int, int], n_varied: int = 200) -> list:
    """Extra second-stage training phantoms: every ladder tone with all distractors (seeds 800000+),
    larger photos (seeds 300+, ``size_hi``) so that the texture features see two scales, and ``n_varied``
    more varied phantoms (seeds 1000+; photo-level cases such as a skin-coloured wood wall or garment are
    rare, and the perceptron needs many of them), and the tan to dark ones (melanin >= 0.1) among the varied
    phantoms of seeds 2000 .. 2000 + 5 ``n_varied`` - 1 (306 for the default 200: dark skin with hair of its own
    colour is the largest remaining error).  All disjoint from the held-out seeds (100000+, 200000+, 500000+,
    700000+)."""
    from .synth import BACKGROUNDS, LADDER_TONES, SET_EXPOSURE, PhantomSpec

    specs = [PhantomSpec(melanin=m, hemoglobin=h, seed=800_000 + 100 * r + i, size=(240, 320), exposure=SET_EXPOSURE,
                         background=BACKGROUNDS[(i + r) % len(BACKGROUNDS)])
             for r in range(seeds_tones) for i, (m, h) in enumerate(LADDER_TONES)]
    dark = [s for s in phantom_specs(range(2000, 2000 + 5 * n_varied)) if s.melanin >= 0.1]
    return specs + phantom_specs(range(300, 324), size=size_hi) + phantom_specs(range(1000, 1000 + n_varied)) + dark


def _train_stage2(model: SkinModel, train_specs, phantom_size, hidden: int, seed: int, say, n_extra: int = 200
                  ) -> tuple[dict, dict]:
    """Fit the second-stage perceptron on region pixels of training phantoms; (arrays, provenance)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    from .synth import render_phantom

    rng = np.random.default_rng([seed, 2])
    specs = list(train_specs) + _stage2_specs(8, (2 * phantom_size[0], 2 * phantom_size[1]), n_extra)
    cap = 8000
    xs, ys = [], []
    params = SegmentParams()
    for k, spec in enumerate(specs):
        ph = render_phantom(spec)
        rows: list = []
        _clean(model.predict(ph.image), ph.image, params, model=model, collect=rows)
        if not rows:
            continue
        f, region = rows[0]
        y = ph.mask[region]
        if len(y) > cap:
            sel = np.sort(rng.choice(len(y), cap, replace=False))
            f, y = f[sel], y[sel]
        xs.append(f)
        ys.append(y)
        if (k + 1) % 50 == 0:
            say(f"second stage: {k + 1}/{len(specs)} phantoms")
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate(ys)
    mu = x.mean(axis=0)
    sd = x.std(axis=0) + 1e-6
    say(f"second stage: fitting a {hidden}-unit perceptron on {len(y)} pixels")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((hidden,), max_iter=40, random_state=seed, batch_size=512, alpha=1e-4).fit((x - mu) / sd, y)
    arrays = {"mu": mu, "inv_sd": 1.0 / sd, "W1": mlp.coefs_[0], "b1": mlp.intercepts_[0], "W2": mlp.coefs_[1],
              "b2": mlp.intercepts_[1]}
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
    info = {"model": "multilayer perceptron, 1 hidden ReLU layer (scikit-learn MLPClassifier, adam, 40 epochs, "
                     "batch 512, alpha 1e-4)",
            "hidden": hidden, "features": list(FEATURE_NAMES), "n_pixels": int(len(y)), "n_images": len(xs),
            "pixels_per_image_max": cap, "skin_fraction": float(y.mean()),
            "data": "region pixels (after steps 1-5) of the training phantoms (seeds 0 .. n-1), 48 ladder-tone "
                    "phantoms with all distractors (seeds 800000+), 24 at twice the size (seeds 300-323) and "
                    f"{n_extra} more varied phantoms (seeds 1000+) and the varied phantoms with melanin >= 0.1 "
                    f"among seeds 2000-{2000 + 5 * n_extra - 1}",
            "labels": "phantom true skin mask"}
    return arrays, info


_NET_DATA_MODEL: list = []  # the colour table of the process rendering the convolutional stage's training data


def _net_data_init(bits: int, prob: np.ndarray) -> None:
    cv2.setNumThreads(1)
    _NET_DATA_MODEL[:] = [SkinModel(bits=bits, prob=prob)]


def _net_sample(spec) -> tuple:
    """One training photo of the convolutional stage: (image, P(skin) x 255 uint8, region, truth)."""
    from .synth import render_phantom

    ph = render_phantom(spec)
    p = _NET_DATA_MODEL[0].predict(ph.image)
    region, _ = _region(p, SegmentParams())
    return ph.image, (p * 255 + 0.5).astype(np.uint8), region, ph.mask


def _train_net(model: SkinModel, n_phantoms: int, phantom_size, phases, width: int, seed: int, workers: int, say
               ) -> tuple[dict, dict]:
    """Train the convolutional second stage (:func:`skinimg.unet.train_unet`) on the phantoms of seeds
    ``0 .. n_phantoms - 1``: their photo, the colour table's P(skin), the clean-up region and the true mask."""
    from .unet import _require_torch, train_unet

    _require_torch()
    specs = phantom_specs(range(n_phantoms), size=phantom_size)
    say(f"convolutional stage: rendering {n_phantoms} training phantoms")
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_net_data_init,
                                 initargs=(model.bits, model.prob)) as ex:
            rows = list(ex.map(_net_sample, specs, chunksize=16))
    else:
        threads = cv2.getNumThreads()
        _net_data_init(model.bits, model.prob)
        cv2.setNumThreads(threads)
        rows = [_net_sample(spec) for spec in specs]
    image, p8, region, truth = (np.stack([r[i] for r in rows]) for i in range(4))
    del rows
    weights, info = train_unet(image, p8, region, truth, phases=phases, width=width, seed=seed, say=say)
    info["data"] = (f"phantoms of seeds 0-{n_phantoms - 1} ({phantom_size[0]} x {phantom_size[1]}): photo, colour-table "
                    "P(skin) rounded to 8 bits, clean-up region (steps 1-5), true skin mask")
    return weights, info


def _write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """NPZ with fixed zip timestamps (``np.savez`` stamps the current time): same arrays, same bytes."""
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            b = _io.BytesIO()
            np.lib.format.write_array(b, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, b.getvalue(), compresslevel=9)
    write_bytes(path, buf.getvalue())


def _balanced(pred: np.ndarray, truth: np.ndarray) -> dict:
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = int(pred.size - tp - fp - fn)
    m = _metrics(tp, fp, fn, tn)
    tpr = tp / max(tp + fn, 1)
    tnr = tn / max(tn + fp, 1)
    return {"balanced_accuracy": (tpr + tnr) / 2, "accuracy": (tp + tn) / max(pred.size, 1), "tpr": tpr, "tnr": tnr,
            "precision": m["precision"], "recall": m["recall"], "f1": m["f1"], "n": int(pred.size),
            "n_skin": int(tp + fn)}


#: Tone groups of the phantom test metrics (melanin volume fraction ranges).
TONE_GROUPS = (("very light", 0.0, 0.01), ("light", 0.01, 0.03), ("intermediate", 0.03, 0.07),
               ("tan", 0.07, 0.15), ("brown", 0.15, 0.3), ("dark", 0.3, 1.0))


def uci_split(n_rows: int, is_skin: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean test mask of a stratified random split of the UCI rows (fixed seed)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(n_rows, dtype=bool)
    for cls in (True, False):
        idx = np.flatnonzero(is_skin == cls)
        k = int(round(test_fraction * idx.size))
        test[rng.permutation(idx)[:k]] = True
    return test


def tone_group(melanin: float) -> str:
    """The :data:`TONE_GROUPS` name of a melanin volume fraction."""
    return next(g for g, lo, hi in TONE_GROUPS if lo <= melanin < hi)


def pooled_tone_metrics(records: Sequence[tuple[str, int, int, int, int]], *, bootstrap: int = 0,
                        seed: int = 0) -> dict:
    """Per-group mask metrics from per-image counts, pixels pooled within each group.

    Parameters
    ----------
    records : sequence of ``(group, tp, fp, fn, tn)``
        One per image (counts of :func:`evaluate_masks`); groups are reported in :data:`TONE_GROUPS`
        order, then any other names in order of appearance, then ``all``.
    bootstrap : int
        With ``B > 0``, ``f1_ci95`` = the 2.5 and 97.5 percentiles of the pooled F1 over ``B`` resamples of
        the group's images with replacement (percentile bootstrap, Efron and Tibshirani 1993, *An Introduction
        to the Bootstrap*, DOI 10.1201/9780429246593): how far the figure could move with another draw of
        as many photos.  ``all`` resamples within each group (stratified).  ``numpy.random.default_rng(seed)``.

    Returns
    -------
    dict
        ``{group: {n_images, precision, recall, f1, min_image_f1[, f1_ci95]}}``.
    """
    order = [g for g, _, _ in TONE_GROUPS]
    order += [g for g in dict.fromkeys(r[0] for r in records) if g not in order]
    by = {g: np.array([r[1:5] for r in records if r[0] == g], dtype=np.int64).reshape(-1, 4) for g in order}
    by = {g: c for g, c in by.items() if len(c)}
    rng = np.random.default_rng(seed)

    def f1(c):  # c: (..., 4) summed counts
        den = 2 * c[..., 0] + c[..., 1] + c[..., 2]
        return np.where(den > 0, 2 * c[..., 0] / np.maximum(den, 1), 1.0)

    tab: dict = {}
    boot_all = None
    for g, c in by.items():
        mm = _metrics(*(int(v) for v in c.sum(axis=0)))
        tab[g] = {"n_images": len(c), "precision": mm["precision"], "recall": mm["recall"], "f1": mm["f1"],
                  "min_image_f1": float(f1(c).min())}
        if bootstrap > 0:
            sums = c[rng.integers(0, len(c), size=(bootstrap, len(c)))].sum(axis=1)  # (B, 4)
            lo, hi = np.percentile(f1(sums), [2.5, 97.5])
            tab[g]["f1_ci95"] = [float(lo), float(hi)]
            boot_all = sums if boot_all is None else boot_all + sums
    if by:
        c = np.concatenate(list(by.values()))
        mm = _metrics(*(int(v) for v in c.sum(axis=0)))
        tab["all"] = {"n_images": len(c), "precision": mm["precision"], "recall": mm["recall"], "f1": mm["f1"],
                      "min_image_f1": float(f1(c).min())}
        if boot_all is not None:
            lo, hi = np.percentile(f1(boot_all), [2.5, 97.5])
            tab["all"]["f1_ci95"] = [float(lo), float(hi)]
    else:
        tab["all"] = {"n_images": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "min_image_f1": float("nan")}
    return tab


def phantom_tone_metrics(specs, *, method: str = "model", model: SkinModel | None = None,
                         params: SegmentParams | None = None, per_image: list | None = None,
                         bootstrap: int = 0, seed: int = 0) -> dict:
    """Mask precision, recall and F1 per tone group (:data:`TONE_GROUPS`) over rendered phantoms.

    Counts are pooled over the pixels of a group's images (``f1`` is the pooled Dice);
    ``min_image_f1`` is the worst single image; ``bootstrap``, ``seed``: the ``f1_ci95`` interval of
    :func:`pooled_tone_metrics`.  The held-out metrics of :func:`train_segmenter` come from here.  With
    ``per_image`` (a list), one ``(spec, phantom, result, metrics)`` tuple per phantom is appended (diagnosis).
    """
    from .synth import render_phantom

    records = []
    for spec in specs:
        ph = render_phantom(spec)
        r = segment_skin(ph.image, method=method, model=model, params=params)
        m = evaluate_masks(r.mask, ph.mask)
        if per_image is not None:
            per_image.append((spec, ph, r, m))
        records.append((tone_group(spec.melanin), m["tp"], m["fp"], m["fn"], m["tn"]))
    return pooled_tone_metrics(records, bootstrap=bootstrap, seed=seed)


def error_budget(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, *,
                 label_names: dict[int, str] | None = None, edge: float = 1.5) -> dict[str, int]:
    """Where a skin mask's errors are, in pixels (a diagnosis of :func:`evaluate_masks`'s FP and FN).

    Missed skin (``fn_*``): ``fn_beside_thin`` within one pixel (3 x 3 cross) of a thin non-skin structure,
    ``fn_edge`` other missed skin within ``edge`` pixels (Euclidean) of non-skin, ``fn_inside`` the rest.
    False skin (``fp_<label>_thin`` / ``fp_<label>``): per true label, split into thin structures (pixels
    of that label removed by a 3 x 3 cross opening of it: single hair strands, the tips of brows) and the
    rest.  The ``fn_*`` and ``fp_*`` counts add up to FN and FP.

    Parameters
    ----------
    pred, truth : ndarray, bool, (H, W)
        Predicted and true skin.
    labels : ndarray, integer, (H, W)
        True label codes (e.g. ``Phantom.labels``, :data:`skinimg.synth.LABELS`); only read off skin.
    label_names : dict, optional
        Code -> name (default: the phantom labels); unknown codes are named by their number.
    """
    from .synth import LABELS

    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    labels = np.asarray(labels)
    if not (pred.shape == truth.shape == labels.shape):
        raise SkinImgError(f"masks and labels differ in size: {pred.shape}, {truth.shape}, {labels.shape}")
    names = label_names if label_names is not None else {v: k for k, v in LABELS.items()}
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    thin = np.zeros(truth.shape, dtype=bool)
    for code in np.unique(labels[~truth]):
        lab = ((labels == code) & ~truth).view(np.uint8)
        thin |= lab.view(bool) & ~cv2.morphologyEx(lab, cv2.MORPH_OPEN, cross).view(bool)
    out: dict[str, int] = {}
    fn = truth & ~pred
    beside = fn & cv2.dilate(thin.view(np.uint8), cross).view(bool)
    near = cv2.distanceTransform(truth.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= edge
    out["fn_beside_thin"] = int(np.count_nonzero(beside))
    out["fn_edge"] = int(np.count_nonzero(fn & near & ~beside))
    out["fn_inside"] = int(np.count_nonzero(fn & ~near & ~beside))
    fp = pred & ~truth
    for code in np.unique(labels[fp]):
        sel = fp & (labels == code)
        name = names.get(int(code), str(int(code)))
        out[f"fp_{name}_thin"] = int(np.count_nonzero(sel & thin))
        out[f"fp_{name}"] = int(np.count_nonzero(sel & ~thin))
    return out


def train_segmenter(out: str | os.PathLike | None = None, *, uci: str | os.PathLike | None = None,
                    bits: int = 6, hist_sigma: float = 0.5, n_train_phantoms: int = 200,
                    n_test_phantoms: int = 36, phantom_size: tuple[int, int] = (240, 320),
                    uci_weight: float = 0.1, phantom_weight: float = 1.0, seed: int = 0, stage2_hidden: int = 32,
                    n_stage2_extra: int = 200, net: bool = True, n_net_phantoms: int = 3000,
                    net_phases=((10, 3e-3), (20, 1e-3), (20, 5e-4), (20, 3e-4)), net_width: int = 12,
                    workers: int = 2,
                    date: str | None = None, progress=None) -> dict:
    """Train the colour lookup table and write ``skin_lut.npz`` + ``skin_lut.json`` into ``out``.

    Data: the UCI pixels (stratified 80/20 split by ``seed``: 80 % train, 20 % held
    out) and phantom pixels (``phantom_specs`` with seeds ``0 .. n_train_phantoms-1``
    for training and ``100000 + k`` held out).  Histograms of both sources are
    normalised, mixed with the given weights (equal by default), smoothed and turned
    into log-odds (see the module documentation).  Metrics on the held-out parts go
    into the JSON: UCI pixel balanced accuracy (P >= 0.5), phantom mask precision,
    recall, F1 per tone group after clean-up, and the rules baseline on both.

    Second stage (:func:`_train_stage2`): a small perceptron over the pixel features of
    the clean-up region (:data:`FEATURE_NAMES`), trained on the training phantoms'
    region pixels after the colour table is built.

    Convolutional second stage (``net=True``, the default; needs PyTorch, ``pip install 'skinimg[train]'``):
    the U-Net of :mod:`skinimg.unet` trained by :func:`skinimg.unet.train_unet` on ``n_net_phantoms``
    phantoms (seeds 0 ..) with ``net_phases`` and width ``net_width`` (the defaults: 70 epochs, about 90 minutes
    on 2 cores and 12 GB of memory for 3 000 phantoms).  Its weights go into the NPZ as ``net_*`` arrays; it
    replaces the perceptron at inference with ``SegmentParams(stage2_model="net")``.

    Reproducible: no clock, no unseeded randomness, one BLAS thread while training the perceptron, two PyTorch
    threads while training the network; the NPZ has fixed zip timestamps, so the same inputs give byte-identical
    files on the same machine (PyTorch's float results may differ between CPU types).  The JSON's ``date``
    is ``date`` if given, else ``$SOURCE_DATE_EPOCH`` if set, else today (UTC).

    Returns
    -------
    dict
        The provenance written to ``skin_lut.json``.
    """
    from .synth import render_phantom

    say = progress or (lambda msg: None)
    if net:  # before minutes of colour-table training: a missing PyTorch is a one-line error at once
        from .unet import _require_torch

        _require_torch()
    out = Path(out) if out is not None else DEFAULT_MODEL_PATH.parent
    uci_path = Path(uci) if uci is not None else next((p for p in UCI_CANDIDATES if p.is_file()), UCI_CANDIDATES[0])
    uci_bytes = uci_path.read_bytes() if uci_path.is_file() else None
    if uci_bytes is None:
        raise SkinImgError("UCI skin data file not found (give --uci)", os.fspath(uci_path))
    rgb_u, skin_u = load_uci(uci_path)
    test_u = uci_split(len(rgb_u), skin_u, seed=seed)
    say(f"UCI: {len(rgb_u)} pixels ({int(skin_u.sum())} skin), {int(test_u.sum())} held out")
    hs_u = _hist(rgb_u[~test_u & skin_u], bits)
    hn_u = _hist(rgb_u[~test_u & ~skin_u], bits)
    train_specs = phantom_specs(range(n_train_phantoms), size=phantom_size)
    hs_p = np.zeros(1 << (3 * bits))
    hn_p = np.zeros(1 << (3 * bits))
    for k, spec in enumerate(train_specs):
        ph = render_phantom(spec)
        hs_p += _hist(ph.image[ph.mask], bits)
        hn_p += _hist(ph.image[~ph.mask], bits)
        if (k + 1) % 20 == 0:
            say(f"phantoms: {k + 1}/{len(train_specs)} rendered")
    lut = _lut_from_hists([hs_u, hs_p], [hn_u, hn_p], [uci_weight, phantom_weight], bits, hist_sigma)
    model = SkinModel(bits=bits, prob=_sigmoid(_llr_from_uint8(lut)))
    stage2, s2_info = _train_stage2(model, train_specs, phantom_size, stage2_hidden, seed, say,
                                    n_stage2_extra)
    net_weights, net_info = None, None
    if net:
        net_weights, net_info = _train_net(model, n_net_phantoms, phantom_size, net_phases, net_width, seed, workers,
                                           say)
    model = SkinModel(bits=bits, prob=model.prob, stage2=stage2)
    if net_weights is not None:
        from .unet import NetRunner

        model = SkinModel(bits=bits, prob=model.prob, stage2=stage2, net=NetRunner(net_weights))
    out.mkdir(parents=True, exist_ok=True)
    npz_path = out / "skin_lut.npz"
    arrays = {"log_odds": lut.reshape((1 << bits,) * 3), "bits": np.array([bits], np.int32)}
    arrays.update({f"s2_{k}": v for k, v in stage2.items()})
    if net_weights is not None:
        arrays.update({f"net_{k}": v for k, v in net_weights.items()})
    _write_npz_deterministic(npz_path, arrays)
    _load_model_cached.cache_clear()

    # ---- held-out metrics
    say("evaluating on the held-out data")
    pred_u = model.predict(rgb_u[test_u][None])[0] >= 0.5
    metrics = {"uci_test": _balanced(pred_u, skin_u[test_u]),
               "uci_test_rules": _balanced(rules_mask(rgb_u[test_u][None])[0], skin_u[test_u]),
               "uci_train": _balanced(model.predict(rgb_u[~test_u][None])[0] >= 0.5, skin_u[~test_u])}
    test_specs = phantom_specs([100_000 + k for k in range(n_test_phantoms)], size=phantom_size)
    for meth in METHODS:
        metrics["phantom_test" if meth == "model" else "phantom_test_rules"] = phantom_tone_metrics(
            test_specs, method=meth, model=model)
    if net_weights is not None:
        metrics["phantom_test_net"] = phantom_tone_metrics(test_specs, model=model,
                                                           params=SegmentParams(stage2_model="net"))

    if date is None:
        sde = os.environ.get("SOURCE_DATE_EPOCH")
        stamp = _dt.datetime.fromtimestamp(int(sde), _dt.timezone.utc) if sde else _dt.datetime.now(_dt.timezone.utc)
        date = stamp.date().isoformat()
    prov = {
        "model": "Bayesian colour histogram lookup table (Jones and Rehg 2002, DOI 10.1023/A:1013200319198)",
        "format": {"file": "skin_lut.npz", "arrays": {"log_odds": f"uint8 ({1 << bits},)*3, index [R>>{8 - bits}, G>>{8 - bits}, B>>{8 - bits}] of 8-bit sRGB",
                                                      "bits": "int32 (1,)",
                                                      "s2_*": "float32 second-stage perceptron: mu, inv_sd (F,), W1 (F, H), b1 (H,), W2 (H, 1), b2 (1,)",
                                                      "net_*": "float32 convolutional second stage (skinimg.unet): net_<layer>_w (out, in, k, k), net_<layer>_b (out,)"},
                   "decode": f"llr = q * {2 * _LLR_RANGE}/255 - {_LLR_RANGE}; P(skin) = 1/(1+exp(-llr))",
                   "sha256": hashlib.sha256(npz_path.read_bytes()).hexdigest()},
        "training": {"bits": bits, "hist_sigma_bins": hist_sigma, "priors": "equal (0.5/0.5)",
                     "source_weights": {"uci": uci_weight, "phantoms": phantom_weight},
                     "unseen_colour_bias": "e_n = 10 e_s, e_s = 1e-3 / bins",
                     "stage2": s2_info, "net": net_info},
        "data": {
            "uci": {"name": "UCI Skin Segmentation (Bhatt and Dhall 2009)", "doi": "10.24432/C5T30C",
                    "licence": "CC BY 4.0", "file": uci_path.name,
                    "sha256": hashlib.sha256(uci_bytes).hexdigest(), "n_pixels": int(len(rgb_u)),
                    "n_skin": int(skin_u.sum()),
                    "split": {"method": "stratified random by class, numpy default_rng", "seed": seed,
                              "test_fraction": 0.2, "n_train": int((~test_u).sum()), "n_test": int(test_u.sum())}},
            "phantoms": {"generator": "skinimg.synth.render_phantom via skinimg.segment.phantom_specs",
                         "size": list(phantom_size), "train_seeds": [0, n_train_phantoms - 1],
                         "test_seeds": [100_000, 100_000 + n_test_phantoms - 1],
                         "melanin_range": [0.003, 0.45], "labels": "skin = PhantomSpec label 'skin'; "
                         "hair, lips, eyes, clothing, background, shadowed background = non-skin"},
        },
        "metrics": metrics,
        "clean_up_params": SegmentParams().to_dict(),
        "date": date,
        "skinimg_version": __version__,
        "command": "skinimg train-segmenter",
    }
    write_json(out / "skin_lut.json", prov)
    _load_model_cached.cache_clear()
    return prov
