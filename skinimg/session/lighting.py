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
#: Lowest 7 x 7 local mean (linear) of a reference pixel: 0.1, or DARK_FLOOR for a dark reference (below).
LINEAR_FLOOR = 0.1
#: A reference with too few pixels above LINEAR_FLOOR (a dark backdrop) is used from this local mean (linear;
#: sRGB code 32) with its consistency measured on the 7 x 7 local means, whose noise is 7x lower
#: (``docs/comparison.md#dark-backdrops``).
DARK_FLOOR = 0.015


def _dark_note(name: str) -> str:
    """The warning of a comparison whose lighting was normalised on a dark reference region ``name``."""
    return (f"lighting normalised on a dark reference ({name}, local means from linear {DARK_FLOOR:g}): "
            "a camera's tone curve in the shadows may bias it")


def _sample_idx(mask: np.ndarray, max_n: int = 200_000) -> np.ndarray:
    """Flat indices of the mask pixels, at most ``max_n`` (regular subsample)."""
    idx = np.flatnonzero(mask.ravel())
    if idx.size > max_n:
        idx = idx[:: int(math.ceil(idx.size / max_n))]
    return idx


def _linear_sample(rgb: np.ndarray, mask: np.ndarray, max_n: int = 200_000, *, xy: bool = False):
    """Linear RGB float32 (n, 3) of the mask pixels, at most ``max_n`` (regular subsample); with ``xy`` also their
    (x, y) pixel coordinates, float64 (n, 2)."""
    idx = _sample_idx(mask, max_n)
    lin = color.srgb_to_linear(rgb.reshape(-1, 3)[idx]).astype(np.float32, copy=False)
    if not xy:
        return lin
    return lin, np.column_stack([idx % mask.shape[1], idx // mask.shape[1]]).astype(np.float64)


def _gain_from(ref: np.ndarray, before: np.ndarray, after_w: np.ndarray):
    """(gain, n, spread, dark): :func:`_gain_from_sel`, and when the reference has too few pixels of a local mean
    above :data:`LINEAR_FLOOR` (a dark backdrop), again from :data:`DARK_FLOOR` with the spread of the local
    means (``dark`` True)."""
    # selection on 7x7 local means, so that a pixel's own noise does not decide whether it is used
    sel_b = cv2.blur(before, (7, 7))
    sel_a = cv2.blur(after_w, (7, 7))
    gain, n, spread = _gain_from_sel(ref, before, after_w, sel_b, sel_a)
    if gain is not None:
        return gain, n, spread, False
    gain, n_dark, spread = _gain_from_sel(ref, before, after_w, sel_b, sel_a, floor=DARK_FLOOR, local_spread=True)
    return gain, (n if gain is None else n_dark), spread, gain is not None


def _gain_from_sel(ref, before, after_w, sel_b, sel_a, floor: float = LINEAR_FLOOR, local_spread: bool = False):
    """(gain (3,) with NaN for unusable channels, n, spread) from the reference pixels (gain None if unusable).

    Per channel: pixels whose 7 x 7 local mean is outside [``floor``, 0.9] linear in either photo
    are dropped (noise and quantisation of dark values, clipping of bright ones; selecting
    on the local mean, not the pixel, avoids a selection bias from the pixel's noise), then those whose log ratio is
    more than 3 robust SDs from the median (moved objects, edges); the gain is the ratio
    of the sums of the rest (unbiased by texture, unlike a median of ratios).  A channel
    with fewer than 2000 such pixels (e.g. red on a blue backdrop) has no estimate.  ``local_spread``: the log
    ratios (outliers and spread) of the local means instead of the pixels (for a dark reference, whose pixel
    noise alone would exceed the spread limit).
    """
    lb, la = _linear_sample(before, ref), _linear_sample(after_w, ref)
    sb, sa = _linear_sample(sel_b, ref), _linear_sample(sel_a, ref)
    gain = np.full(3, np.nan)
    spreads, counts = [], []
    for c in range(3):
        b, a = lb[:, c], la[:, c]
        ok = (sb[:, c] > floor) & (sb[:, c] < 0.9) & (sa[:, c] > floor) & (sa[:, c] < 0.9) & (b > 0) & (a > 0)
        b, a = b[ok], a[ok]
        if b.size < 2000:
            continue
        lr = np.log(sb[ok, c]) - np.log(sa[ok, c]) if local_spread else np.log(b) - np.log(a)
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


def _apply_gain(rgb: np.ndarray, gain: np.ndarray, *, precise: bool = False) -> np.ndarray:
    """``rgb`` with its linear values multiplied by ``gain`` per channel (same dtype, clipped).

    ``precise``: an 8-bit photo comes back as 16-bit codes (for measuring): rounded to 8 bits again, every pixel of
    uniform skin would round the same way and the readings would move with the gain (haemoglobin by up to 5 % for
    gains 1 % apart, ``docs/comparison.md``)."""
    lin = color.srgb_to_linear(rgb)
    lin *= gain.astype(np.float32)
    np.clip(lin, 0.0, 1.0, out=lin)
    enc = color.linear_to_srgb(lin)
    del lin
    if rgb.dtype == np.uint8 and not precise:
        return np.clip(enc * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rgb.dtype in (np.uint8, np.uint16):
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
        gain, n, spread, dark = _gain_from(ref, before, after_w)
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
        if dark:
            rec["reference_level"] = "dark"
            notes.append(_dark_note(name))
        return gain, rec
    rec["note"] = "no stable unchanged reference: lighting not normalised"
    notes.append("lighting not normalised (no stable reference region): melanin, melanin_index, L*, a*, b* and ITA "
                 "may reflect exposure")
    return None, rec


# ----------------------------------------------------------------------------- unaligned pairs


def _centroid(mask: np.ndarray | None) -> np.ndarray | None:
    """(x, y) centroid of a bool mask in pixels, or None (no mask, or empty)."""
    if mask is None or not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _log_level(v: np.ndarray, xy: np.ndarray, at: np.ndarray | None, scale: float) -> tuple[float, float, bool]:
    """Log level of the values ``v`` (n,) at the point ``at`` (x, y) and the robust spread of the log values about it.

    A plane ``log v = a + g . (xy - at) / scale`` fitted by least squares, twice, the second time without the
    pixels more than 3 robust SDs (1.4826 MAD) from the first fit: ``a`` is the level at ``at``, the spread that of
    the residuals (a backdrop's smooth fall-off of light is not counted as inconsistency).  Without a point, or
    with the point outside the bounding box of ``xy`` (the plane would be extrapolated), the median and the
    spread about it (``planar`` False)."""
    lv = np.log(v.astype(np.float64))
    if at is None or not (xy[:, 0].min() <= at[0] <= xy[:, 0].max() and xy[:, 1].min() <= at[1] <= xy[:, 1].max()):
        med = float(np.median(lv))
        return med, 1.4826 * float(np.median(np.abs(lv - med))), False
    a = np.column_stack([np.ones(lv.size), (xy - at) / scale])
    keep = np.ones(lv.size, bool)
    for k in range(2):
        coef = np.linalg.lstsq(a[keep], lv[keep], rcond=None)[0]
        r = lv - a @ coef
        mid = float(np.median(r[keep]))
        spread = 1.4826 * float(np.median(np.abs(r[keep] - mid)))
        # a plain backdrop in 8 bits takes a few codes, so the MAD can be 0: trim at no less than 3 %
        trimmed = np.abs(r - mid) <= 3.0 * max(spread, 0.01)
        if k == 1 or trimmed.sum() < 0.5 * lv.size:
            break
        keep = trimmed
    return float(coef[0]), spread, True


def _unpaired_gain(before, after, ref_b, ref_a, *, at_b=None, at_a=None, max_spread: float = 0.15,
                   max_chroma: float = 0.08, min_pixels: int = 2000, floor: float = LINEAR_FLOOR):
    """Achromatic gain for AFTER from two *unpaired* reference regions (each photo's own), or None, and a record.

    Per channel: the ratio of the levels of the linear values of BEFORE's and AFTER's reference pixels whose
    7 x 7 local mean lies in [``floor``, 0.9] (``DARK_FLOOR`` for a dark reference).  The level of a region is
    read at the point ``at_b`` / ``at_a`` (x, y; the centroid of what is measured, so the same place of the scene
    in both photos) from a plane fitted to its log values (:func:`_log_level`): a backdrop lit unevenly shows a
    different mean level in a shifted frame, but the same level behind the same skin.  Without the points (or
    with a point outside the region's bounding box), the median.  The regions are different pixel sets (no
    alignment), so only an achromatic gain is applied (the geometric mean of the three): a colour difference
    between two parts of a backdrop is more likely framing than a change of white balance, and a false cast
    would bias the chromaticity-based indices.  Refused when the channel ratios disagree by more than
    ``max_chroma``, when a region's robust spread (1.4826 MAD of the log values about the plane or median)
    exceeds ``max_spread`` (a textured reference: its level depends on the framing), or with fewer than
    ``min_pixels`` usable pixels."""
    lb, xyb = _linear_sample(cv2.blur(before, (7, 7)), ref_b, xy=True)
    la, xya = _linear_sample(cv2.blur(after, (7, 7)), ref_a, xy=True)
    scale = float(min(ref_b.shape))
    gains, spreads, counts, planar = [], [], [], []
    for c in range(3):
        kb = (lb[:, c] > floor) & (lb[:, c] < 0.9)
        ka = (la[:, c] > floor) & (la[:, c] < 0.9)
        if int(kb.sum()) < min_pixels or int(ka.sum()) < min_pixels:
            continue
        (yb, sb, pb), (ya, sa, pa) = (_log_level(lb[kb, c], xyb[kb], at_b, scale),
                                      _log_level(la[ka, c], xya[ka], at_a, scale))
        if pb != pa:  # one plane and one median would compare different things: medians for both
            (yb, sb, _), (ya, sa, _) = _log_level(lb[kb, c], xyb[kb], None, scale), _log_level(la[ka, c], xya[ka],
                                                                                           None, scale)
        gains.append(float(np.exp(yb - ya)))
        spreads.append(max(sb, sa))
        counts.append(int(min(kb.sum(), ka.sum())))
        planar.append(pb and pa)
    if not counts:
        if floor > DARK_FLOOR:  # a dark backdrop: its local means from DARK_FLOOR
            gain, info = _unpaired_gain(before, after, ref_b, ref_a, at_b=at_b, at_a=at_a, max_spread=max_spread,
                                        max_chroma=max_chroma, min_pixels=min_pixels, floor=DARK_FLOOR)
            return gain, (dict(info, reference_level="dark") if gain is not None else
                          {"reason": f"fewer than {min_pixels} usable pixels"})
        return None, {"reason": f"fewer than {min_pixels} usable pixels"}
    g = np.array(gains)
    if max(spreads) > max_spread:
        return None, {"reason": f"inconsistent (spread {max(spreads):.3f} > {max_spread:g})"}
    if float(g.max() / g.min()) > 1.0 + max_chroma:
        return None, {"reason": f"channel gains disagree by {100 * (g.max() / g.min() - 1):.0f} % "
                                f"(> {100 * max_chroma:.0f} %)"}
    gain = float(np.exp(np.log(g).mean()))
    return np.full(3, gain), {"gain": [gain] * 3, "kind": "achromatic", "per_channel_estimate": gains,
                              "reference_pixels": min(counts), "spread": max(spreads),
                              "level": "plane at the measured skin's centroid" if all(planar) else "median"}


def _lighting_unpaired(before, after, mask_b, mask_a, roi_b, roi_a, exclude_b, exclude_a, mode, notes):
    """:func:`_lighting` for a pair without pixel alignment: gain (or None) and the ``lighting`` record.

    References, first usable of: ``skin_outside_roi`` (each photo's skin outside its own ROI, when both ROIs are
    given) and ``background`` (each photo's pixels more than 2 % of its shorter side away from its skin and its
    border); :func:`_unpaired_gain` on the pair of regions."""
    rec = {"method": "none", "gain": [1.0, 1.0, 1.0], "reference_pixels": 0, "spread": None}
    if mode == "none":
        rec["note"] = "disabled"
        return None, rec

    def background(mask, exclude):
        h, w = mask.shape
        r = max(2, int(round(0.02 * min(h, w))))
        out = ~cv2.dilate(mask.view(np.uint8), _disk(r)).astype(bool) & ~exclude
        out[:r], out[-r:], out[:, :r], out[:, -r:] = False, False, False, False
        return out

    refs = []
    if roi_b is not None and roi_a is not None:
        refs.append(("skin_outside_roi", mask_b & ~roi_b & ~exclude_b, mask_a & ~roi_a & ~exclude_a))
    refs.append(("background", background(mask_b, exclude_b), background(mask_a, exclude_a)))
    # each region's level is read behind the skin that is measured (the ROI when given): the same place of the scene
    at_b, at_a = _centroid(roi_b if roi_b is not None else mask_b), _centroid(roi_a if roi_a is not None else mask_a)
    for name, ref_b, ref_a in refs:
        gain, info = _unpaired_gain(before, after, ref_b, ref_a, at_b=at_b, at_a=at_a)
        if gain is None:
            notes.append(f"lighting reference {name} (unpaired): {info['reason']}")
            continue
        rec.update(method=f"gain:{name} (unpaired)", **info)
        if info.get("reference_level") == "dark":
            notes.append(_dark_note(name))
        return gain, rec
    rec["note"] = "no stable unchanged reference: lighting not normalised"
    notes.append("lighting not normalised (no stable reference region): melanin, melanin_index, L*, a*, b* and ITA "
                 "may reflect exposure")
    return None, rec
