"""The registration chain of a comparison: features, then ECC from several starts, then no alignment.

:func:`register_chain` (``CompareParams.registration_mode``, ``--registration``):

1. **features** (``"auto"``, ``"features"``): ORB + RANSAC with ECC refinement, :func:`register`, with
   its own acceptance test (30 RANSAC inliers, residual, plausible geometry, overlap; see
   :mod:`skinimg.session.register`).  Method ``"orb+ransac"`` / ``"orb+ransac+ecc"``.
2. **ECC** (``"auto"`` when step 1 fails, ``"ecc"``): :func:`skinimg.session.ecc.ecc_align` from the starts
   of :data:`STARTS` in order (identity, mask moments and phase correlation on BEFORE's grown skin, then
   identity and phase correlation on the whole photo, and the features' rejected homography when there
   is one), stopping at the first candidate that passes the acceptance test below.  Method
   ``"ecc (<start> start)"``.  An accepted affine whose anisotropy exceeds ``similarity_anisotropy`` (1.005)
   gets the similarity finish (:func:`skinimg.session.ecc.similarity_finish`): the similarity replaces it
   when it passes the acceptance test too and its ``cc`` and ``inner_ncc`` are no more than 0.001 and 0.005
   below the affine's.  A camera moved between visits makes a similarity (plus a little perspective), not a
   stretch; two results that fit the photos equally well are decided for the one a camera can make.
   ``checks.finish`` says which was kept (``"affine"`` / ``"similarity"``), ``attempts`` whether it was tried.
3. **none**: no candidate passed (or ``"none"`` was asked for): ``ok = False``, method
   ``"none (region statistics)"``; the comparison then uses each photo's own skin
   (:func:`skinimg.session.measure_unaligned`).  A comparison never stops for want of an alignment.

Acceptance test of an ECC candidate (:func:`acceptance`; thresholds in :class:`FallbackParams`)
-----------------------------------------------------------------------------------------
Computed at ``check_side`` px (:func:`alignment_checks`), in this order:

* plausible camera change: scale of AFTER 0.67-1.5, anisotropy (ratio of the singular values of the
  linear part) at most 1.15, the warped AFTER covering at least half of BEFORE;
* ``cc`` >= 0.90: Pearson correlation of the grey photos (Gaussian sigma 1 px) over BEFORE's grown skin
  (the whole overlap without usable masks) -- the outline, the shading and the backdrop agree;
* ``detail_ncc`` >= 0.60: Pearson correlation over the overlap of the two **dark-detail maps**, the
  black top-hat (morphological closing minus image, elliptical element of ``detail_frac`` = 6 % of the
  shorter side) of the log grey photo.  Thin dark structures -- pigmented spots, moles, hair, creases --
  light up; smooth shading and a gently curved outline do not.  Photos with no dark detail at all
  (99.5th percentile below ``min_detail_level`` in both) cannot be verified and are not aligned;
* ``inner_ncc`` >= 0.90: the same correlation **inside the skin**, where the outline cannot help: both
  photos' skin masks with their holes filled (hair, moles and spots the segmenter left out), eroded by
  ``inner_erode`` = 4 % of the shorter side; without usable masks (or an interior under 2 % of the photo),
  the overlap minus bands around its long coarse edges (outline, clothing; compact spots are kept).  Two
  different sites share an outline and a tone far more often than the positions of their spots and
  hairs, and the limb-edge shading of any two arms forms the same dark rim, so this is the check that
  rejects a wrong site; without detail inside the skin a pair cannot be verified.

Chosen on development pairs only (``benchmarks/registration_chain.py --candidates``: smooth same-site and
wrong-site pairs of :mod:`skinimg.phantom.smooth`, pairs of two different people photographed alike from
:mod:`skinimg.phantom`, true and segmented masks; ``docs/comparison.md``): correct candidates (residual <= 2 px)
had ``cc`` >= 0.975 and ``detail_ncc`` >= 0.866, and with true masks ``inner_ncc`` >= 0.965 (5th percentile);
wrong-site candidates with a plausible geometry reached ``cc`` 0.996 (a look-alike outline), ``detail_ncc``
0.904 and ``inner_ncc`` 0.79 (two faces framed alike), and no wrong-site candidate passed all the checks but
one except ``inner_ncc`` (at most 0.107 there).  The warped skin-mask IoU is reported (``checks.mask_iou``) but
not used: on the same development pairs correct alignments scored IoU down to 0.14 with the default segmenter's
(poor) masks of smooth skin, while wrong sites scored up to 0.98 (0.997 with true masks: a look-alike outline).

``inner_ncc`` was raised from 0.80 to 0.90 (issue 23, 2026-12-04) when the real-photo segmenter (issue 22) made the
skin interior usable on every development pair: with its masks, correct candidates scored ``inner_ncc`` >= 0.967
(218 candidates of 30 smooth and 12 textured same-site pairs) and two different people photographed alike up to
0.856 (60 development pairs, seed 5000; one of them, 0.833, was accepted at 0.80).  0.90 is the middle of that gap.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .ecc import (FallbackParams, ecc_align, init_identity, init_mask_moments, init_phase_correlation, shrink,
                  similarity_finish, to_level)
from .lighting import _disk
from .register import Registration, RegistrationParams, _geometry, _overlap, register, to_grey8

__all__ = ["REGISTRATION_MODES", "NO_ALIGNMENT", "STARTS", "register_chain", "alignment_checks", "acceptance",
           "dark_detail"]

#: ``--registration`` choices: the chain, features only, ECC only, no pixel alignment.
REGISTRATION_MODES = ("auto", "features", "ecc", "none")
#: ``registration.method`` of a comparison without pixel alignment.
NO_ALIGNMENT = "none (region statistics)"
#: ECC starts in the order tried: (start, region); "skin" = BEFORE's grown skin mask, "photo" = everything.
STARTS = (("identity", "skin"), ("mask moments", "skin"), ("phase correlation", "skin"),
          ("identity", "photo"), ("phase correlation", "photo"))


def _log_grey(grey: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(grey.astype(np.float32), 1.0) / 255.0)


def dark_detail(grey: np.ndarray, frac: float = 0.06) -> np.ndarray:
    """Dark-detail map: black top-hat of the log grey photo (float32 (H, W), >= 0, log units).

    ``grey``: uint8 (H, W).  Structuring element: ellipse of diameter ``frac`` x the shorter side."""
    lg = cv2.GaussianBlur(_log_grey(grey), (0, 0), 0.8)
    d = max(3, int(round(frac * min(grey.shape))) | 1)
    return cv2.morphologyEx(lg, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)))


def _pearson(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    if int(where.sum()) < 100:
        return float("nan")
    x = a[where].astype(np.float64)
    y = b[where].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool) with every region not connected to the border added: hair, moles and spots the segmenter
    left out are inside the skin."""
    pad = np.pad(np.asarray(mask, np.uint8), 1)
    cv2.floodFill(pad, np.zeros((pad.shape[0] + 2, pad.shape[1] + 2), np.uint8), (0, 0), 2)
    return pad[1:-1, 1:-1] != 2


def _coarse_edges(grey: np.ndarray, sigma_frac: float = 0.02, band_frac: float = 0.03, rel: float = 0.25,
                  min_length: float = 0.15) -> np.ndarray:
    """Bands around the long large-scale edges of a grey photo (outline, clothing, shadows), bool: the log grey
    photo blurred by ``sigma_frac`` of the shorter side, gradient above ``rel`` x its 99th percentile, connected
    pieces at least ``min_length`` of the shorter side long (compact spots and moles are kept out of the band),
    grown by ``band_frac`` of the shorter side."""
    c = cv2.GaussianBlur(_log_grey(grey), (0, 0), sigma_frac * min(grey.shape))
    e = np.hypot(cv2.Sobel(c, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(c, cv2.CV_32F, 0, 1, ksize=3))
    n, lab, st, _ = cv2.connectedComponentsWithStats((e > rel * np.percentile(e, 99)).astype(np.uint8), connectivity=8)
    long_ = np.zeros(n, bool)
    long_[1:] = np.maximum(st[1:, cv2.CC_STAT_WIDTH], st[1:, cv2.CC_STAT_HEIGHT]) >= min_length * min(grey.shape)
    return cv2.dilate(long_[lab].astype(np.uint8), _disk(round(band_frac * min(grey.shape)))).astype(bool)


def _usable(mask: np.ndarray | None, frac: float) -> bool:
    return mask is not None and mask.size > 0 and float(np.count_nonzero(mask)) >= frac * mask.size


def alignment_checks(grey_before: np.ndarray, grey_after: np.ndarray, h: np.ndarray, *,
                     before_mask: np.ndarray | None = None, after_mask: np.ndarray | None = None,
                     params: FallbackParams | None = None) -> dict:
    """The acceptance checks of a BEFORE->AFTER transform ``h`` (3 x 3, full-resolution pixels).

    Parameters
    ----------
    grey_before, grey_after : ndarray, uint8, (H, W) / (H', W')
    h : ndarray, float64, (3, 3)
    before_mask, after_mask : ndarray of bool, optional
        Skin masks (the correlation region, and the reported IoU).
    params : FallbackParams, optional

    Returns
    -------
    dict
        ``scale``, ``rotation_deg``, ``anisotropy``, ``overlap``, ``cc``, ``detail_ncc``, ``detail_before``,
        ``detail_after`` (99.5th percentiles of the detail maps over the overlap), ``inner_ncc`` and ``inner_detail``
        (the same inside the skin: both hole-filled masks eroded by ``inner_erode``, or without usable masks the
        overlap minus the bands around its coarse edges; ``inner_region`` says which, ``inner_fraction`` its
        share of BEFORE), ``mask_iou`` (NaN without usable masks).
    """
    p = params or FallbackParams()
    tb, sb = shrink(grey_before, p.check_side)
    ta, sa = shrink(grey_after, p.check_side)
    hl = to_level(h, sb, sa)
    size = (tb.shape[1], tb.shape[0])
    inv = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    valid = cv2.warpPerspective(np.ones(ta.shape, np.uint8), hl, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    valid[:4], valid[-4:], valid[:, :4], valid[:, -4:] = 0, 0, 0, 0
    valid = cv2.erode(valid, np.ones((9, 9), np.uint8)).astype(bool)
    scale, rot, aniso, _ = _geometry(h, grey_before.shape[:2])
    out = {"scale": scale, "rotation_deg": rot, "anisotropy": aniso,
           "overlap": _overlap(h, grey_before.shape[:2], grey_after.shape[:2]), "mask_iou": float("nan")}
    region = valid
    inner = None
    masks = _usable(before_mask, p.min_mask_fraction) and _usable(after_mask, p.min_mask_fraction)
    if masks:
        mb = cv2.resize(np.asarray(before_mask, np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        ma = cv2.resize(np.asarray(after_mask, np.uint8), (ta.shape[1], ta.shape[0]), interpolation=cv2.INTER_NEAREST)
        maw = cv2.warpPerspective(ma, hl, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP).astype(bool)
        union = int(((mb | maw) & valid).sum())
        out["mask_iou"] = float((mb & maw & valid).sum() / union) if union else float("nan")
        grown = cv2.dilate(mb.view(np.uint8), _disk(round(p.mask_grow * min(tb.shape))))
        region = valid & grown.astype(bool)
        # the skin's interior in both photos: the outline (shared by any two arms or cheeks) is left out
        k = _disk(round(p.inner_erode * min(tb.shape)))
        fb = cv2.resize(_fill_holes(before_mask).view(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        fa = cv2.resize(_fill_holes(after_mask).view(np.uint8), (ta.shape[1], ta.shape[0]), interpolation=cv2.INTER_NEAREST)
        faw = cv2.warpPerspective(fa, hl, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        inner = valid & cv2.erode(fb, k).astype(bool) & cv2.erode(faw, k).astype(bool)
    out["inner_region"] = "skin"
    if inner is None or inner.mean() < p.min_inner_fraction:
        edges_a = cv2.warpPerspective(_coarse_edges(ta).view(np.uint8), hl, size,
                                      flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP).astype(bool)
        inner = valid & ~_coarse_edges(tb) & ~edges_a
        out["inner_region"] = "away from edges"
    out["inner_fraction"] = float(inner.mean())
    ftb, fta = tb.astype(np.float32), ta.astype(np.float32)
    warped = cv2.warpPerspective(fta, hl, size, flags=inv)
    out["cc"] = _pearson(cv2.GaussianBlur(ftb, (0, 0), 1.0), cv2.GaussianBlur(warped, (0, 0), 1.0), region)
    db = dark_detail(tb, p.detail_frac)
    dw = cv2.warpPerspective(dark_detail(ta, p.detail_frac), hl, size, flags=inv)
    out["detail_ncc"] = _pearson(db, dw, valid)
    out["detail_before"] = float(np.percentile(db[valid], 99.5)) if valid.any() else 0.0
    out["detail_after"] = float(np.percentile(dw[valid], 99.5)) if valid.any() else 0.0
    out["inner_ncc"] = _pearson(db, dw, inner)
    out["inner_detail"] = (max(float(np.percentile(db[inner], 99.5)), float(np.percentile(dw[inner], 99.5)))
                           if inner.sum() >= 100 else 0.0)
    return out


def acceptance(checks: dict, params: FallbackParams | None = None) -> str:
    """``""`` when an ECC candidate's :func:`alignment_checks` pass the acceptance test, else the first reason."""
    p = params or FallbackParams()
    c = checks
    if not (p.scale_range[0] <= c["scale"] <= p.scale_range[1]):
        return f"implausible scale x{c['scale']:.2f}"
    if not c["anisotropy"] <= p.max_anisotropy:
        return f"implausible distortion (anisotropy {c['anisotropy']:.2f} > {p.max_anisotropy:g})"
    if not c["overlap"] >= p.min_overlap:
        return f"AFTER covers only {c['overlap']:.0%} of BEFORE"
    if not c["cc"] >= p.min_cc:
        return f"correlation {c['cc']:.3f} < {p.min_cc:g}"
    if max(c["detail_before"], c["detail_after"]) < p.min_detail_level:
        return "no spots, hair or other dark detail to verify the alignment"
    if not c["detail_ncc"] >= p.min_detail:
        return f"dark details do not line up (correlation {c['detail_ncc']:.3f} < {p.min_detail:g})"
    if c["inner_detail"] < p.min_detail_level:
        return "no spots or other dark detail inside the skin to verify the alignment"
    if not c["inner_ncc"] >= p.min_inner_detail:
        return (f"dark details inside the skin do not line up (correlation {c['inner_ncc']:.3f} < "
                f"{p.min_inner_detail:g})")
    return ""


def _start(name: str, g_b, g_a, mask_b, mask_a, feature_h):
    if name == "identity":
        return init_identity(g_b.shape, g_a.shape)
    if name == "mask moments":
        return init_mask_moments(mask_b, mask_a)
    if name == "phase correlation":
        return init_phase_correlation(g_b, g_a)
    return feature_h


def _finish(g_b, g_a, h, checks, region_mask, before_mask, after_mask, fp: FallbackParams, attempts: list):
    """The similarity finish of an accepted ECC affine ``h`` (module docstring): the kept transform and its checks."""
    checks["finish"] = "affine"
    if not checks["anisotropy"] > fp.similarity_anisotropy:
        return h, checks
    hs, _ = similarity_finish(g_b, g_a, h, region_mask=region_mask, params=fp)
    why = "no similarity found"
    if hs is not None:
        c2 = alignment_checks(g_b, g_a, hs, before_mask=before_mask, after_mask=after_mask, params=fp)
        tol_cc, tol_inner = fp.similarity_tolerance
        why = acceptance(c2, fp) or (
            "" if c2["cc"] >= checks["cc"] - tol_cc and c2["inner_ncc"] >= checks["inner_ncc"] - tol_inner else
            f"fits worse than the affine (cc {c2['cc']:.4f} vs {checks['cc']:.4f}, inner_ncc {c2['inner_ncc']:.4f} "
            f"vs {checks['inner_ncc']:.4f})")
    attempts.append({"step": f"similarity finish (anisotropy {checks['anisotropy']:.3f})", "ok": not why,
                     "reason": why or None})
    if why:
        return h, checks
    c2["finish"] = "similarity"
    return hs, c2


def register_chain(before: np.ndarray, after: np.ndarray, *, before_mask: np.ndarray | None = None,
                   after_mask: np.ndarray | None = None, mode: str = "auto",
                   params: RegistrationParams | None = None) -> Registration:
    """Align AFTER onto BEFORE with the chain of the module docstring.

    Parameters
    ----------
    before, after : ndarray, (H, W, 3) / (H', W', 3), encoded sRGB uint8, uint16 or float in [0, 1], R, G, B
    before_mask, after_mask : ndarray of bool, (H, W) / (H', W'), optional
        Skin masks.
    mode : {"auto", "features", "ecc", "none"}
    params : RegistrationParams, optional
        Features step parameters; ``params.fallback`` for the ECC step and its acceptance test.

    Returns
    -------
    Registration
        ``ok`` True with ``method`` naming the step that aligned the pair, or ``ok`` False with
        ``method = NO_ALIGNMENT`` and ``reason`` listing why each step failed.  ``attempts`` records every
        step tried, ``checks`` the acceptance checks of the result.  Never raises for a bad pair.
    """
    if mode not in REGISTRATION_MODES:
        raise ValueError(f"unknown registration mode {mode!r}")
    rp = params or RegistrationParams()
    fp = rp.fallback
    attempts: list[dict] = []
    if mode == "none":
        return Registration(False, NO_ALIGNMENT, 0, float("nan"), reason="--registration none",
                            attempts=[{"step": "none", "ok": False, "reason": "asked for"}])
    g_b, g_a = to_grey8(before), to_grey8(after)
    feature_h = None
    if mode in ("auto", "features"):
        reg = register(before, after, before_mask=before_mask, after_mask=after_mask, params=rp)
        attempts.append({"step": "features", "ok": bool(reg.ok), "reason": reg.reason or None})
        if reg.ok:
            reg.checks = alignment_checks(g_b, g_a, reg.homography, before_mask=before_mask, after_mask=after_mask,
                                          params=fp)
            reg.attempts = attempts
            return reg
        feature_h = reg.homography
    if mode in ("auto", "ecc"):
        masks = _usable(before_mask, fp.min_mask_fraction) and _usable(after_mask, fp.min_mask_fraction)
        starts = [s for s in STARTS if masks or (s[1] == "photo")]
        if feature_h is not None:
            starts.insert(0, ("features", "skin" if masks else "photo"))
        for name, region in starts:
            step = f"ecc from {name} ({region})"
            h, cc = ecc_align(g_b, g_a, _start(name, g_b, g_a, before_mask, after_mask, feature_h),
                              region_mask=before_mask if region == "skin" else None, params=fp)
            if h is None:
                attempts.append({"step": step, "ok": False, "reason": cc})
                continue
            checks = alignment_checks(g_b, g_a, h, before_mask=before_mask, after_mask=after_mask, params=fp)
            why = acceptance(checks, fp)
            attempts.append({"step": step, "ok": not why, "reason": why or None})
            if not why:
                h, checks = _finish(g_b, g_a, h, checks, before_mask if region == "skin" else None, before_mask,
                                    after_mask, fp, attempts)
                return Registration(True, f"ecc ({name} start)", 0, float("nan"), h, 0, checks["scale"],
                                    checks["rotation_deg"], checks["overlap"], cc, "", [], checks, attempts)
    why = "; ".join(f"{a['step']}: {a['reason']}" for a in attempts if a["reason"])
    return Registration(False, NO_ALIGNMENT, 0, float("nan"), reason=why or "no step tried", attempts=attempts)
