"""Calibration without a chart (recorded, weaker fallbacks) and the front function :func:`calibrate_image`.

A user-given white/gray region (von Kries diagonal gains), otherwise gray world or white patch on
non-skin pixels (see :func:`gray_world_correction` for why gray world and why non-skin).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..color import srgb_to_linear
from ..errors import SkinImgError
from ..io import check_rgb, to_uint8
from .charts import MODES, CalibrationParams, Correction, _max_value
from .detect import detect_chart
from .fit import _C3, apply_correction, identity_correction
from .select import chart_correction

__all__ = ["white_region_correction", "gray_world_correction", "white_patch_correction", "calibrate_image"]


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
    rgb = check_rgb(rgb)
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
        ycc = cv2.cvtColor(to_uint8(sub), cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
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
    rgb = check_rgb(rgb)
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
    rgb = check_rgb(rgb)
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
    rgb = check_rgb(rgb)
    if mode not in MODES:
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
