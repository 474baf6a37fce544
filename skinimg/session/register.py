"""Registration of a follow-up photo (AFTER) onto a reference photo (BEFORE).

Method
------
1. **Features**: both photos are converted to 8-bit grey (Rec. 709 luma of the
   encoded values), downscaled (area averaging) so the longer side is at most
   :attr:`RegistrationParams.feature_max_side`, contrast-equalised (CLAHE) and searched
   for ORB key points (Rublee et al. 2011 [ORB]_; OpenCV's ``cv2.ORB_create``).  When
   skin masks are given, key points are searched only on the skin grown by
   :attr:`RegistrationParams.mask_grow` of the shorter side (the body part moves, the
   room may not), falling back to the whole photo when that gives too few key points.
2. **Matching**: brute-force Hamming matching with Lowe's ratio test
   (``ratio``; Lowe 2004 [Lowe]_) in both directions (mutual best matches only).
3. **Homography**: RANSAC (Fischler and Bolles 1981 [RANSAC]_; ``cv2.findHomography``,
   reprojection threshold ``ransac_px`` working pixels).
4. **ECC refinement** (Evangelidis and Psarakis 2008 [ECC]_; ``cv2.findTransformECC``,
   homography motion) on a smaller grey copy (``ecc_max_side``), starting from the
   RANSAC homography.  It is kept only "where it helps": when it raises the
   enhanced correlation coefficient over the skin and moves no image corner by more
   than ``ecc_max_shift`` of the shorter side; otherwise the RANSAC homography stays.
   ECC is invariant to an affine change of brightness, so exposure differences do not
   bias it.

Reported: ``method`` (``"orb+ransac"`` or ``"orb+ransac+ecc"``), ``inliers`` (RANSAC
inlier matches), ``residual_px`` = root-mean-square distance, in BEFORE's full-resolution
pixels, between the inlier key points of BEFORE and their AFTER matches mapped by the
final homography.

Failure thresholds (:attr:`RegistrationParams`; a failed registration is never used):

* fewer than ``min_inliers`` (30) RANSAC inliers, or an inlier ratio below
  ``min_inlier_ratio`` (0.25) of the mutual ratio-test matches;
* ``residual_px`` above ``max_residual_px`` (3 px) x the full-resolution / working scale
  (i.e. 3 working pixels);
* an implausible camera change: scale outside ``scale_range`` (0.67-1.5), anisotropy
  (ratio of the singular values of the linear part) above 1.25, or a perspective term
  that changes the scale across the photo by more than 25 %;
* the warped AFTER covering less than ``min_overlap`` (50 %) of BEFORE.

References
----------
.. [ORB] Rublee, E., Rabaud, V., Konolige, K. and Bradski, G. (2011). ORB: an efficient
   alternative to SIFT or SURF. ICCV 2011, 2564-2571. https://doi.org/10.1109/ICCV.2011.6126544
.. [Lowe] Lowe, D. G. (2004). Distinctive image features from scale-invariant keypoints.
   International Journal of Computer Vision 60(2), 91-110.
   https://doi.org/10.1023/B:VISI.0000029664.99615.94
.. [RANSAC] Fischler, M. A. and Bolles, R. C. (1981). Random sample consensus: a paradigm
   for model fitting with applications to image analysis and automated cartography.
   Communications of the ACM 24(6), 381-395. https://doi.org/10.1145/358669.358692
.. [ECC] Evangelidis, G. D. and Psarakis, E. Z. (2008). Parametric image alignment using
   enhanced correlation coefficient maximization. IEEE TPAMI 30(10), 1858-1865.
   https://doi.org/10.1109/TPAMI.2008.113
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import to_uint8
from .ecc import FallbackParams, from_level, shrink, to_level
from .lighting import _disk

__all__ = ["RegistrationParams", "Registration", "register", "warp_image", "warp_map", "to_grey8"]


@dataclass(frozen=True)
class RegistrationParams:
    """Parameters of :func:`register` (recorded in ``comparison.json``).

    Attributes
    ----------
    feature_max_side : int
        Longer side of the working image for key points (pixels).
    n_features : int
        ORB key points per photo.
    ratio : float
        Lowe ratio test threshold.
    ransac_px : float
        RANSAC reprojection threshold, working pixels.
    min_inliers : int
        Fewer RANSAC inliers = failure.
    min_inlier_ratio : float
        Inliers / mutual ratio-test matches below this = failure.
    max_residual_px : float
        Largest accepted RMS residual, in working pixels (reported in full-resolution pixels).
    scale_range : (float, float)
        Accepted range of the scale of AFTER relative to BEFORE.
    max_anisotropy : float
        Largest ratio of the singular values of the homography's linear part.
    max_perspective : float
        Largest relative change of the local scale across the photo.
    min_overlap : float
        Smallest fraction of BEFORE covered by the warped AFTER.
    mask_grow : float
        Growth of the skin masks for key-point search, fraction of the shorter side.
    min_keypoints : int
        Fewer key points on the grown skin: search the whole photo instead.
    ecc : bool
        Try the ECC refinement.
    ecc_max_side : int
        Longer side of the ECC working image.
    ecc_iterations : int
    ecc_eps : float
    ecc_max_shift : float
        Largest corner displacement accepted from ECC, fraction of the shorter side.
    fallback : FallbackParams
        The intensity-based step of :func:`skinimg.session.register_chain` and its acceptance test.
    """

    feature_max_side: int = 1600
    n_features: int = 5000
    ratio: float = 0.8
    ransac_px: float = 3.0
    min_inliers: int = 30
    min_inlier_ratio: float = 0.25
    max_residual_px: float = 3.0
    scale_range: tuple = (0.67, 1.5)
    max_anisotropy: float = 1.25
    max_perspective: float = 0.25
    min_overlap: float = 0.5
    mask_grow: float = 0.05
    min_keypoints: int = 100
    ecc: bool = True
    ecc_max_side: int = 640
    ecc_iterations: int = 60
    ecc_eps: float = 1e-5
    ecc_max_shift: float = 0.02
    fallback: FallbackParams = field(default_factory=FallbackParams)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scale_range"] = list(self.scale_range)
        d["fallback"] = self.fallback.to_dict()
        return d


@dataclass
class Registration:
    """Result of :func:`register`.

    Attributes
    ----------
    ok : bool
    method : str
        ``"orb+ransac"`` or ``"orb+ransac+ecc"`` (``"none"`` when it failed early).
    inliers : int
    residual_px : float
        RMS key-point residual in BEFORE's full-resolution pixels (NaN when not computed).
    homography : ndarray (3, 3) float64 or None
        Maps BEFORE pixel coordinates (x, y, 1) to AFTER pixel coordinates (full resolution).
    matches : int
        Mutual ratio-test matches.
    scale : float
        Scale of AFTER relative to BEFORE (square root of the linear part's determinant).
    rotation_deg : float
    overlap : float
        Fraction of BEFORE covered by the warped AFTER.
    ecc_cc : float or None
        Enhanced correlation coefficient after refinement (when tried).
    reason : str
        Why it failed ("" when ok).
    notes : list of str
    checks : dict or None
        The acceptance checks of :func:`skinimg.session.register_chain` (correlations, mask IoU, geometry).
    attempts : list of dict
        The steps the chain tried: ``{"step", "ok", "reason"}``.
    """

    ok: bool
    method: str
    inliers: int
    residual_px: float
    homography: np.ndarray | None = None
    matches: int = 0
    scale: float = float("nan")
    rotation_deg: float = float("nan")
    overlap: float = float("nan")
    ecc_cc: float | None = None
    reason: str = ""
    notes: list = field(default_factory=list)
    checks: dict | None = None
    attempts: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The ``registration`` object of ``comparison.json``."""
        return {
            "ok": bool(self.ok),
            "method": self.method,
            "inliers": int(self.inliers),
            "residual_px": None if not math.isfinite(self.residual_px) else round(float(self.residual_px), 4),
            "matches": int(self.matches),
            "scale": _r(self.scale),
            "rotation_deg": _r(self.rotation_deg),
            "overlap": _r(self.overlap),
            "ecc_cc": _r(self.ecc_cc),
            "homography": None if self.homography is None else [[float(v) for v in row] for row in self.homography],
            "reason": self.reason or None,
            "notes": list(self.notes),
            "checks": None if self.checks is None else {k: _r(v, 4) if isinstance(v, float) else v
                                                        for k, v in self.checks.items()},
            "attempts": list(self.attempts),
        }


def _r(v, nd: int = 6):
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if math.isfinite(v) else None


def to_grey8(rgb: np.ndarray) -> np.ndarray:
    """Grey uint8 (H, W) from an encoded RGB photo (uint8, uint16 or float in [0, 1]), Rec. 709 weights."""
    return cv2.cvtColor(np.ascontiguousarray(to_uint8(rgb)), cv2.COLOR_RGB2GRAY)


def _grow(mask: np.ndarray | None, shape: tuple[int, int], frac: float) -> np.ndarray | None:
    if mask is None:
        return None
    m = cv2.resize(mask.astype(np.uint8) * 255, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.dilate(m, _disk(round(frac * min(shape))))


def _features(orb, grey: np.ndarray, mask: np.ndarray | None, min_kp: int):
    kp, des = orb.detectAndCompute(grey, mask)
    if mask is not None and len(kp) < min_kp:
        kp, des = orb.detectAndCompute(grey, None)
    return kp, des


def _mutual_ratio_matches(des_b, des_a, ratio: float):
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    fwd = bf.knnMatch(des_b, des_a, k=2)
    bwd = bf.knnMatch(des_a, des_b, k=2)
    back = {}
    for m in bwd:
        if len(m) == 2 and m[0].distance < ratio * m[1].distance:
            back[m[0].queryIdx] = m[0].trainIdx
        elif len(m) == 1:
            back[m[0].queryIdx] = m[0].trainIdx
    out = []
    for m in fwd:
        if not m:
            continue
        best = m[0]
        if len(m) == 2 and not best.distance < ratio * m[1].distance:
            continue
        if back.get(best.trainIdx) == best.queryIdx:
            out.append(best)
    return out


def _geometry(h: np.ndarray, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """scale, rotation (deg), anisotropy, perspective scale change of BEFORE->AFTER homography ``h``."""
    hh, ww = shape
    a = h[:2, :2] / h[2, 2]
    sv = np.linalg.svd(a, compute_uv=False)
    det = float(np.linalg.det(a))
    scale = math.sqrt(abs(det)) if det > 0 else float("nan")
    rot = math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
    aniso = float(sv[0] / max(sv[1], 1e-12))
    corners = np.array([[0, 0, 1], [ww - 1, 0, 1], [ww - 1, hh - 1, 1], [0, hh - 1, 1]], np.float64)
    w = corners @ h[2]
    w = w / w.mean()
    persp = float(w.max() / max(w.min(), 1e-12) - 1.0) if (w > 0).all() else float("inf")
    return scale, rot, aniso, persp


def _overlap(h: np.ndarray, before_shape: tuple[int, int], after_shape: tuple[int, int]) -> float:
    """Fraction of BEFORE whose mapped position falls inside AFTER (sampled on a 64 x 64 grid)."""
    hh, ww = before_shape
    ys, xs = np.mgrid[0 : hh - 1 : 64j, 0 : ww - 1 : 64j]
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=0)
    q = h @ p
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = q[0] / q[2], q[1] / q[2]
        inside = (q[2] > 0) & (x >= 0) & (x <= after_shape[1] - 1) & (y >= 0) & (y <= after_shape[0] - 1)
    return float(inside.mean())


def _ecc_refine(g_b: np.ndarray, g_a: np.ndarray, h_full: np.ndarray, mask_b: np.ndarray | None,
                p: RegistrationParams, notes: list) -> tuple[np.ndarray, float | None, bool]:
    """ECC refinement of the BEFORE->AFTER homography (full-resolution frames)."""
    sb_img, sb = shrink(g_b, p.ecc_max_side)
    sa_img, sa = shrink(g_a, p.ecc_max_side)
    tmpl = cv2.GaussianBlur(sb_img, (0, 0), 1.0).astype(np.float32)
    inp = cv2.GaussianBlur(sa_img, (0, 0), 1.0).astype(np.float32)
    m = None
    if mask_b is not None:
        m = cv2.resize(mask_b.astype(np.uint8), (tmpl.shape[1], tmpl.shape[0]), interpolation=cv2.INTER_NEAREST)
        if int(m.sum()) < 500:
            m = None
    # ECC's warp maps template (BEFORE) coordinates to input (AFTER) coordinates, as ours does.
    h0 = to_level(h_full, sb, sa)
    h0 = (h0 / h0[2, 2]).astype(np.float32)
    warped0 = cv2.warpPerspective(inp, h0, (tmpl.shape[1], tmpl.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    try:
        cc0 = float(cv2.computeECC(tmpl, warped0, m))
    except cv2.error:
        cc0 = -1.0
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, p.ecc_iterations, p.ecc_eps)
    try:
        cc1, h1 = cv2.findTransformECC(tmpl, inp, h0.copy(), cv2.MOTION_HOMOGRAPHY, crit, m, 5)
    except cv2.error:
        notes.append("ECC refinement did not converge; RANSAC homography kept")
        return h_full, cc0, False
    warped1 = cv2.warpPerspective(inp, h1, (tmpl.shape[1], tmpl.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    try:
        cc1 = float(cv2.computeECC(tmpl, warped1, m))  # same measure as cc0 (findTransformECC's own is on a blurred copy)
    except cv2.error:
        cc1 = -1.0
    h1 = from_level(h1.astype(np.float64), sb, sa)
    hh, ww = g_b.shape
    corners = np.array([[0, 0, 1], [ww - 1, 0, 1], [ww - 1, hh - 1, 1], [0, hh - 1, 1]], np.float64).T
    c0, c1 = h_full @ corners, h1 @ corners
    shift = float(np.max(np.hypot(c0[0] / c0[2] - c1[0] / c1[2], c0[1] / c0[2] - c1[1] / c1[2])))
    if not cc1 > cc0:
        notes.append(f"ECC did not raise the correlation ({cc0:.4f} -> {cc1:.4f}); RANSAC homography kept")
        return h_full, cc0, False
    if shift > p.ecc_max_shift * min(hh, ww):
        notes.append(f"ECC moved a corner by {shift:.1f} px (> {p.ecc_max_shift:g} of the shorter side); "
                     "RANSAC homography kept")
        return h_full, cc0, False
    return h1 / h1[2, 2], float(cc1), True


def register(before: np.ndarray, after: np.ndarray, *, before_mask: np.ndarray | None = None,
             after_mask: np.ndarray | None = None, params: RegistrationParams | None = None) -> Registration:
    """Register AFTER onto BEFORE (ORB + RANSAC homography, ECC refinement).

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3) / (H', W', 3), encoded sRGB uint8, uint16 or float in [0, 1], R, G, B
    before_mask, after_mask : ndarray of bool, shape (H, W) / (H', W'), optional
        Skin masks: key points are searched on the (grown) skin.
    params : RegistrationParams, optional

    Returns
    -------
    Registration
        ``ok`` False with ``reason`` when a threshold of the module docstring is not met
        (never raises for a bad pair; the caller decides).
    """
    p = params or RegistrationParams()
    notes: list[str] = []
    g_b, g_a = to_grey8(before), to_grey8(after)
    w_b, s_b = shrink(g_b, p.feature_max_side)
    w_a, s_a = shrink(g_a, p.feature_max_side)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    e_b, e_a = clahe.apply(w_b), clahe.apply(w_a)
    fail = Registration(False, "orb+ransac", 0, float("nan"), notes=notes)
    if min(w_b.shape) < 2 or min(w_a.shape) < 2:  # ORB's pyramid cannot shrink a 1-pixel side (cv2.error)
        fail.reason = f"image too small for key points ({g_b.shape[1]}x{g_b.shape[0]} and {g_a.shape[1]}x{g_a.shape[0]})"
        return fail
    orb = cv2.ORB_create(nfeatures=p.n_features, scaleFactor=1.2, nlevels=8, fastThreshold=10)
    kp_b, des_b = _features(orb, e_b, _grow(before_mask, w_b.shape, p.mask_grow), p.min_keypoints)
    kp_a, des_a = _features(orb, e_a, _grow(after_mask, w_a.shape, p.mask_grow), p.min_keypoints)
    if des_b is None or des_a is None or len(kp_b) < 4 or len(kp_a) < 4:
        fail.reason = f"too few key points ({len(kp_b)} in BEFORE, {len(kp_a)} in AFTER)"
        return fail
    matches = _mutual_ratio_matches(des_b, des_a, p.ratio)
    fail.matches = len(matches)
    if len(matches) < max(4, p.min_inliers):
        fail.reason = f"{len(matches)} feature matches < {p.min_inliers}"
        return fail
    pb = np.float32([kp_b[m.queryIdx].pt for m in matches])
    pa = np.float32([kp_a[m.trainIdx].pt for m in matches])
    h_w, inl = cv2.findHomography(pb, pa, cv2.RANSAC, p.ransac_px, maxIters=5000, confidence=0.999)
    n_in = int(inl.sum()) if inl is not None else 0
    fail.inliers = n_in
    if h_w is None or n_in < p.min_inliers:
        fail.reason = f"{n_in} inliers < {p.min_inliers}"
        return fail
    if n_in < p.min_inlier_ratio * len(matches):
        fail.reason = f"{n_in} inliers of {len(matches)} matches (< {p.min_inlier_ratio:.0%})"
        return fail
    inl = inl.ravel().astype(bool)
    h_full = from_level(h_w, s_b, s_a)
    h_full /= h_full[2, 2]
    method = "orb+ransac"
    cc = None
    if p.ecc:
        h_full, cc, used = _ecc_refine(g_b, g_a, h_full, before_mask, p, notes)
        if used:
            method = "orb+ransac+ecc"
    # residual of the inlier key points under the final homography, in BEFORE full-resolution pixels
    xb = pb[inl].astype(np.float64) / s_b
    xa = pa[inl].astype(np.float64) / s_a
    h_inv = np.linalg.inv(h_full)
    q = np.c_[xa, np.ones(len(xa))] @ h_inv.T
    proj = q[:, :2] / q[:, 2:3]
    resid = float(np.sqrt(np.mean(np.sum((proj - xb) ** 2, axis=1))))
    scale, rot, aniso, persp = _geometry(h_full, g_b.shape)
    overlap = _overlap(h_full, g_b.shape, g_a.shape)
    reg = Registration(True, method, n_in, resid, h_full, len(matches), scale, rot, overlap, cc, "", notes)
    limit = p.max_residual_px / s_b
    if not resid <= limit:
        reg.ok, reg.reason = False, f"residual {resid:.2f} px > {limit:.2f} px"
    elif not (p.scale_range[0] <= scale <= p.scale_range[1]):
        reg.ok, reg.reason = False, f"implausible scale change x{scale:.2f} (accepted {p.scale_range[0]:g}-{p.scale_range[1]:g})"
    elif aniso > p.max_anisotropy or persp > p.max_perspective:
        reg.ok, reg.reason = False, f"implausible distortion (anisotropy {aniso:.2f}, perspective {persp:.2f})"
    elif overlap < p.min_overlap:
        reg.ok, reg.reason = False, f"AFTER covers only {overlap:.0%} of BEFORE (< {p.min_overlap:.0%})"
    return reg


def warp_image(after: np.ndarray, reg: Registration, before_shape: tuple[int, int], *,
               interpolation: int = cv2.INTER_LINEAR, border_value=0) -> np.ndarray:
    """AFTER resampled into BEFORE's pixel grid (same dtype; ``border_value`` outside AFTER).

    Parameters
    ----------
    after : ndarray, shape (H', W') or (H', W', C), any dtype OpenCV can warp (uint8, uint16, float32)
    reg : Registration (``homography`` not None)
    before_shape : (H, W)
    """
    if reg.homography is None:
        raise SkinImgError("registration failed: no homography")
    h, w = int(before_shape[0]), int(before_shape[1])
    src = np.ascontiguousarray(after)
    if src.dtype == bool:
        src = src.view(np.uint8)
        out = cv2.warpPerspective(src, reg.homography, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out.astype(bool)
    return cv2.warpPerspective(src, reg.homography, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def warp_map(values: np.ndarray, reg: Registration, before_shape: tuple[int, int]) -> np.ndarray:
    """A float map of AFTER (NaN off skin) resampled bilinearly into BEFORE's grid.

    A BEFORE pixel is NaN when any of the four AFTER pixels it interpolates is NaN or
    when it falls outside AFTER, so values never mix skin with background.

    Returns
    -------
    ndarray, float32, shape before_shape
    """
    v = np.asarray(values, dtype=np.float32)
    return warp_image(v, reg, before_shape, interpolation=cv2.INTER_LINEAR, border_value=float("nan"))
