"""The working size: measure a large photo on an area-averaged copy of a fixed number of pixels.

Every spatial scale of the indices (the linear-light smoothing, the shading correction, the brown spots' sizes) is
set in pixels.  On the photo's own pixels the same skin photographed at 3 and at 24 megapixels would therefore be
smoothed and counted at different physical scales.  A working copy of a fixed pixel count makes them fractions of
the frame, whatever the camera, and makes a large photo as fast to measure as a small one
(``docs/images.md#working-size``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["DEFAULT_WORK_PIXELS", "REDUCED_FLAGS", "parse_resolution", "reduce_image", "reduce_mask",
           "reduced_decode_factor", "resolution_text", "work_size"]

#: Default working size of ``skinimg analyze`` (pixels): 0.75 megapixels, 1000 x 750 for a 4:3 photo.
DEFAULT_WORK_PIXELS = 750_000

#: OpenCV's flags for a JPEG decoded at 1/k of its side (libjpeg's scaled inverse DCT).
REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def work_size(width: int, height: int, work_pixels: int | None) -> tuple[int, int]:
    """``(w, h)`` of the working copy of a ``width`` x ``height`` photo: the photo's own size when it has at most
    ``work_pixels`` pixels (or ``work_pixels`` is None), otherwise the same aspect ratio scaled to about
    ``work_pixels`` pixels (each side rounded, at least 1)."""
    width, height = int(width), int(height)
    if not work_pixels or width * height <= work_pixels:
        return width, height
    s = math.sqrt(work_pixels / float(width * height))
    return max(1, round(width * s)), max(1, round(height * s))


def reduced_decode_factor(size: tuple[int, int], target: tuple[int, int]) -> int:
    """Largest k in (1, 2, 4, 8) such that a JPEG of ``size`` (w, h) decoded at 1/k of its side (libjpeg rounds
    the sides up) is still at least ``target`` (w, h) on both sides, so only area averaging is left to do."""
    w, h = size
    k = 1
    for kk in (2, 4, 8):
        if -(-w // kk) >= target[0] and -(-h // kk) >= target[1]:
            k = kk
    return k


def reduce_image(rgb: np.ndarray, work_pixels: int | None) -> np.ndarray:
    """An (H, W, 3) image (any dtype OpenCV resizes: uint8, uint16, float32) area-averaged
    (``cv2.INTER_AREA``) to :func:`work_size`; the array itself when it is not larger."""
    target = work_size(rgb.shape[1], rgb.shape[0], work_pixels)
    if target == (rgb.shape[1], rgb.shape[0]):
        return rgb
    return cv2.resize(np.ascontiguousarray(rgb), target, interpolation=cv2.INTER_AREA)


def reduce_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool (H, W) mask brought to ``shape`` (h, w): reduced, the pixels at least half covered (area average
    >= 0.5); enlarged, the pixels whose bilinear interpolation is >= 0.5; the mask itself when it already has that
    shape."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(shape):
        return mask
    h, w = int(shape[0]), int(shape[1])
    inter = cv2.INTER_AREA if h * w <= mask.size else cv2.INTER_LINEAR
    return cv2.resize(mask.astype(np.uint8) * np.uint8(255), (w, h), interpolation=inter) >= 128


def parse_resolution(value) -> int | None:
    """``--resolution``: ``"full"`` (or None) -> None (every photo at its own size); a number of megapixels
    (``0.75``, ``"2"``) -> the working size in pixels.

    Raises
    ------
    ValueError
        Anything else, or a size under 0.01 megapixels.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "full"):
        return None
    if isinstance(value, bool):
        raise ValueError(f"resolution must be 'full' or a number of megapixels, not {value!r}")
    try:
        mp = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be 'full' or a number of megapixels, not {value!r}") from None
    if not math.isfinite(mp) or mp < 0.01:
        raise ValueError(f"resolution must be 'full' or at least 0.01 megapixels, not {value!r}")
    return int(round(mp * 1e6))


def resolution_text(work_pixels: int | None) -> str:
    """The ``--resolution`` value of a working size: ``"full"`` or megapixels (``"0.75"``)."""
    return "full" if work_pixels is None else f"{work_pixels / 1e6:g}"
