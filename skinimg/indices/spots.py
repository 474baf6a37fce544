"""Brown spots: connected regions of locally high melanin (:func:`detect_brown_spots`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .kernels import _crop_box, _pad
from .params import IndexParams

__all__ = ["SpotResult", "detect_brown_spots", "shared_spot_threshold"]

# ----------------------------------------------------------------------------- spots


@dataclass(frozen=True)
class SpotResult:
    """Brown spots found by :func:`detect_brown_spots`.

    Attributes
    ----------
    count : int
        Number of spots (connected regions above the size limit).
    area_fraction : float
        Spot area / skin area (at the working resolution), in [0, 1].
    labels : ndarray of int32, shape (h, w)
        Spot labels 1..count (0 elsewhere) at the working resolution, over the
        bounding box of the skin (grown by a few pixels).
    scale : float
        Working resolution / input resolution (<= 1).
    threshold : float
        The melanin excess over the local background that made a spot pixel (step 3 of
        :func:`detect_brown_spots`, or the ``threshold`` given); NaN without skin.
    """

    count: int
    area_fraction: float
    labels: np.ndarray
    scale: float
    threshold: float = float("nan")


def _normalised_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Skin-normalised Gaussian blur ``G(v * w) / G(w)``, NaN where ``G(w)`` ~ 0.

    For large sigma the blur runs on a copy reduced so that sigma is ~8 pixels
    (area averaging) and is interpolated back (bilinear): the background is smooth
    at that scale, and this keeps the cost independent of sigma.
    """
    return _blur_ratio(*_blurred_parts(values * weight, weight, sigma), values.shape)


def _blurred_parts(num: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``G(num)`` and ``G(weight)`` of :func:`_normalised_blur` (``num`` = values x weight), at the reduced size
    when sigma is large: the caller may free the full-size inputs before :func:`_blur_ratio` brings them back."""
    h, w = num.shape
    f = max(1.0, sigma / 8.0)
    den = weight if weight.dtype == np.float32 else weight.astype(np.float32)
    if f > 1.0:
        small = (max(1, round(w / f)), max(1, round(h / f)))
        num = cv2.resize(num, small, interpolation=cv2.INTER_AREA)
        den = cv2.resize(den, small, interpolation=cv2.INTER_AREA)
        sigma = sigma * small[0] / w
    num = cv2.GaussianBlur(num, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(den, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return num, den


def _blur_ratio(num: np.ndarray, den: np.ndarray, shape: tuple) -> np.ndarray:
    """``num / den`` at ``shape`` (bilinear from the reduced size), float32, NaN where ``den <= 1e-3``; computed
    in place on the full-size numerator (two full-size float32 arrays at most)."""
    h, w = shape[:2]
    if num.shape[:2] != (h, w):
        num = cv2.resize(num, (w, h), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(den, (w, h), interpolation=cv2.INTER_LINEAR)
    if num.dtype != np.float32:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 1e-3, num / np.maximum(den, 1e-12), np.nan).astype(np.float32)
    low = den <= 1e-3
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(num, den, out=num)
    num[low] = np.nan
    return num


def detect_brown_spots(melanin: np.ndarray, mask: np.ndarray, *, params: IndexParams | None = None,
                       threshold: float | None = None) -> SpotResult:
    """Connected regions of locally high melanin ("brown spots").

    Method (all sizes relative to the image, so the result does not depend on
    resolution):

    1. the melanin map is resampled by area averaging to at most
       ``params.spot_work_pixels`` pixels (skin-weighted, so background does not leak in);
    2. the local background is a skin-normalised Gaussian blur,
       ``G(m * mask) / G(mask)`` with sigma = ``spot_background_sigma`` x shorter side
       (computed at a resolution where sigma is ~8 px, interpolated back);
    3. spot pixels: skin where ``melanin - background`` exceeds
       ``max(spot_threshold, spot_noise_k x 1.4826 x MAD(melanin - background))``;
    4. 8-connected regions (``cv2.connectedComponentsWithStats``) with an area of at
       least ``spot_min_area`` x image area are counted.

    Parameters
    ----------
    melanin : ndarray, float, shape (H, W), NaN allowed off skin
    mask : ndarray of bool, shape (H, W)
    params : IndexParams, optional
    threshold : float, optional
        Use this excess threshold instead of step 3's (melanin units).  A paired comparison gives both photos
        of the same skin one threshold (:func:`shared_spot_threshold`): an area above a noise-dependent
        threshold otherwise changes with the photos' noise, not with their pigment.

    Returns
    -------
    SpotResult
    """
    p = params or IndexParams()
    mask = np.asarray(mask, dtype=bool)
    box = _crop_box(mask, _pad(p))
    mc = np.ascontiguousarray(mask[box])
    m0 = np.where(mc, np.nan_to_num(np.asarray(melanin, dtype=np.float32)[box], nan=0.0), np.float32(0.0))
    return _detect_spots(m0.astype(np.float32, copy=False), mc, p, mask.shape, threshold)


def shared_spot_threshold(melanin_maps, masks, *, params: IndexParams | None = None) -> tuple[list, float]:
    """Brown spots of two (or more) photos of the same skin found with one threshold: the largest of their own
    (step 3 of :func:`detect_brown_spots`), so that noise spots of the noisier photo count in neither.

    Returns ``(spot results in the order given, the threshold)``.
    """
    found = [detect_brown_spots(m, k, params=params) for m, k in zip(melanin_maps, masks)]
    thr = [s.threshold for s in found if np.isfinite(s.threshold)]
    if not thr:
        return found, float("nan")
    shared = max(thr)
    return [s if not np.isfinite(s.threshold) or s.threshold == shared
            else detect_brown_spots(m, k, params=params, threshold=shared)
            for s, m, k in zip(found, melanin_maps, masks)], shared


def _detect_spots(m: np.ndarray, mask: np.ndarray, p: IndexParams, full_shape: tuple[int, int],
                  threshold: float | None = None) -> SpotResult:
    """:func:`detect_brown_spots` on a crop (``m`` float32, 0 off skin) of an image of ``full_shape``.

    Scale, background sigma and minimum area refer to the full image.
    """
    fh, fw = full_shape
    h, w = mask.shape
    scale = min(1.0, math.sqrt(p.spot_work_pixels / float(fh * fw)))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        num = cv2.resize(m, size, interpolation=cv2.INTER_AREA)
        wt = cv2.resize(mask.view(np.uint8).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(wt > 0, num / np.maximum(wt, 1e-12), 0.0).astype(np.float32)
        skin = wt >= 0.5
        wt = skin.astype(np.float32)
    else:
        skin = mask
        wt = mask.astype(np.float32)
    hh, ww = skin.shape
    n_skin = int(np.count_nonzero(skin))
    empty = np.zeros((hh, ww), dtype=np.int32)
    if n_skin == 0:
        return SpotResult(0, float("nan"), empty, scale)
    bg = _normalised_blur(m, wt, p.spot_background_sigma * min(fh, fw) * scale)
    excess = m - bg
    ex = excess[skin & np.isfinite(excess)]
    thr = p.spot_threshold
    if threshold is not None:
        thr = float(threshold)
    elif ex.size:
        mad = float(np.median(np.abs(ex - np.median(ex))))
        thr = max(thr, p.spot_noise_k * 1.4826 * mad)
    with np.errstate(invalid="ignore"):
        cand = skin & (excess > thr)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    min_area = p.spot_min_area * fh * fw * scale * scale
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(1.0, min_area)
    remap = np.zeros(n, dtype=np.int32)
    remap[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    labels = remap[labels]
    area = int(stats[keep, cv2.CC_STAT_AREA].sum())
    return SpotResult(int(keep.sum()), area / n_skin, labels, scale, float(thr))
