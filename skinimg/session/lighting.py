"""Lighting normalisation of a registered pair: a per-channel gain on a reference region that did not change.

Step 4 of :mod:`skinimg.session` (:func:`_lighting`): a gain multiplies AFTER's linear RGB so that an
unchanged reference region (skin outside the ROI, else the background) matches BEFORE.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .. import color

__all__ = ["ACHROMATIC_TOLERANCE"]

#: Per-channel gains agreeing within this relative tolerance are replaced by one achromatic gain.
ACHROMATIC_TOLERANCE = 0.04


def _linear_sample(rgb: np.ndarray, mask: np.ndarray, max_n: int = 200_000) -> np.ndarray:
    """Linear RGB float32 (n, 3) of the mask pixels, at most ``max_n`` (regular subsample)."""
    idx = np.flatnonzero(mask.ravel())
    if idx.size > max_n:
        idx = idx[:: int(math.ceil(idx.size / max_n))]
    px = rgb.reshape(-1, 3)[idx]
    return color.srgb_to_linear(px).astype(np.float32, copy=False)


def _gain_from(ref: np.ndarray, before: np.ndarray, after_w: np.ndarray):
    # selection on 7x7 local means, so that a pixel's own noise does not decide whether it is used
    sel_b = cv2.blur(before, (7, 7))
    sel_a = cv2.blur(after_w, (7, 7))
    return _gain_from_sel(ref, before, after_w, sel_b, sel_a)


def _gain_from_sel(ref, before, after_w, sel_b, sel_a):
    """(gain (3,) with NaN for unusable channels, n, spread) from the reference pixels (gain None if unusable).

    Per channel: pixels whose 7 x 7 local mean is outside [0.1, 0.9] linear in either photo
    are dropped (noise and quantisation of dark values, clipping of bright ones; selecting
    on the local mean, not the pixel, avoids a selection bias from the pixel's noise), then those whose log ratio is
    more than 3 robust SDs from the median (moved objects, edges); the gain is the ratio
    of the sums of the rest (unbiased by texture, unlike a median of ratios).  A channel
    with fewer than 2000 such pixels (e.g. red on a blue backdrop) has no estimate.
    """
    lb, la = _linear_sample(before, ref), _linear_sample(after_w, ref)
    sb, sa = _linear_sample(sel_b, ref), _linear_sample(sel_a, ref)
    gain = np.full(3, np.nan)
    spreads, counts = [], []
    for c in range(3):
        b, a = lb[:, c], la[:, c]
        ok = (sb[:, c] > 0.1) & (sb[:, c] < 0.9) & (sa[:, c] > 0.1) & (sa[:, c] < 0.9) & (b > 0) & (a > 0)
        b, a = b[ok], a[ok]
        if b.size < 2000:
            continue
        lr = np.log(b) - np.log(a)
        med = float(np.median(lr))
        rsd = 1.4826 * float(np.median(np.abs(lr - med)))
        keep = np.abs(lr - med) <= 3.0 * max(rsd, 1e-3)
        if int(keep.sum()) < 2000:
            continue
        gain[c] = float(b[keep].sum(dtype=np.float64) / a[keep].sum(dtype=np.float64))
        spreads.append(rsd)
        counts.append(int(keep.sum()))
    if not counts:
        return None, int(len(lb)), float("nan")
    return gain, min(counts), float(max(spreads))


def _apply_gain(rgb: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``rgb`` with its linear values multiplied by ``gain`` per channel (same dtype, clipped)."""
    lin = color.srgb_to_linear(rgb)
    lin *= gain.astype(np.float32)
    np.clip(lin, 0.0, 1.0, out=lin)
    enc = color.linear_to_srgb(lin)
    del lin
    if rgb.dtype == np.uint8:
        return np.clip(enc * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rgb.dtype == np.uint16:
        return np.clip(enc * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
    return enc.astype(np.float32)


def _disk(r: int) -> np.ndarray:
    r = max(1, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _lighting(before, after, after_w, mask_b, mask_a_w, valid, roi, exclude, mode, notes):
    """Per-channel gain for AFTER (or None) and the ``lighting`` record."""
    rec = {"method": "none", "gain": [1.0, 1.0, 1.0], "reference_pixels": 0, "spread": None}
    if mode == "none":
        rec["note"] = "disabled"
        return None, rec
    h, w = mask_b.shape
    r = max(2, int(round(0.02 * min(h, w))))
    refs = []
    if roi is not None:
        outside = ~cv2.dilate(roi.view(np.uint8), _disk(r)).astype(bool)
        refs.append(("skin_outside_roi", mask_b & mask_a_w & valid & outside & ~exclude))
    skin_any = cv2.dilate((mask_b | mask_a_w).view(np.uint8), _disk(r)).astype(bool)
    valid_in = cv2.erode(valid.view(np.uint8), _disk(r)).astype(bool)
    refs.append(("background", ~skin_any & valid_in))
    for name, ref in refs:
        gain, n, spread = _gain_from(ref, before, after_w)
        if gain is None:
            notes.append(f"lighting reference {name}: only {n} usable pixels")
            continue
        if not spread < 0.08:
            notes.append(f"lighting reference {name}: inconsistent (spread {spread:.3f} > 0.08)")
            continue
        per_channel = [float(g) if math.isfinite(g) else None for g in gain]
        have = np.isfinite(gain)
        if not have.all() or float(gain[have].max() / gain[have].min()) < 1.0 + ACHROMATIC_TOLERANCE:
            gain = np.full(3, float(np.exp(np.log(gain[have]).mean())))
            kind = "achromatic" if have.all() else "achromatic from " + "".join("RGB"[c] for c in np.flatnonzero(have))
        else:
            kind = "per_channel"
        rec.update(method=f"gain:{name}", gain=[float(g) for g in gain], kind=kind, per_channel_estimate=per_channel,
                   reference_pixels=int(n), spread=spread)
        return gain, rec
    rec["note"] = "no stable unchanged reference: lighting not normalised"
    notes.append("lighting not normalised (no stable reference region): melanin, melanin_index, L*, a*, b* and ITA "
                 "may reflect exposure")
    return None, rec
