"""Image filters of the segmentation: hysteresis, morphology, components, smoothing, resampling, guided filter.

Pure functions on float32 / bool working images (helpers of :mod:`skinimg.segment.skin`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["hysteresis_threshold", "guided_filter"]


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


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Slices of the bounding box of ``mask``'s pixels grown by ``margin`` (clipped to the image); None if empty."""
    x, y, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    if bw == 0 or bh == 0:
        return None
    h, w = mask.shape
    return slice(max(y - margin, 0), min(y + bh + margin, h)), slice(max(x - margin, 0), min(x + bw + margin, w))


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
