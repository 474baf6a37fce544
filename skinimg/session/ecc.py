"""Intensity-based alignment for photos with too few key points: starts and coarse-to-fine ECC.

Used by :func:`skinimg.session.register_chain` when ORB + RANSAC (:func:`skinimg.session.register`) finds
too few matches, as on smooth skin (a cheek, a forearm, an abdomen at modest resolution or slightly out
of focus).  Every transform is a 3 x 3 float64 matrix mapping BEFORE full-resolution pixel coordinates
``(x, y, 1)`` to AFTER full-resolution pixel coordinates (the convention of :class:`Registration`).

Starts (:func:`init_identity`, :func:`init_mask_moments`, :func:`init_phase_correlation`)
-----------------------------------------------------------------------------------------
* **identity**: centre onto centre, scaled by the photo sizes (1 for photos of one size);
* **mask moments**: the similarity that maps BEFORE's skin mask onto AFTER's: centroids give the
  translation, the major axes of the second moments the rotation (0 when either mask is nearly
  isotropic, eigenvalue ratio below 1.15, or the axis is ill-defined), the square root of the area
  ratio the scale (Hu 1962);
* **phase correlation**: rotation and scale from the phase correlation of the log-polar resampled,
  high-pass weighted magnitude spectra of the two grey photos (256 px, Hann window), the translation
  from the phase correlation of the de-rotated, rescaled photos (Reddy and Chatterji 1996; OpenCV
  ``cv2.warpPolar``, ``cv2.phaseCorrelate``).  The magnitude spectrum is symmetric, so both the angle
  and the angle + 180 degrees are tried and the higher translation peak is kept.

ECC (:func:`ecc_align`)
-----------------------
Enhanced correlation coefficient maximisation (Evangelidis and Psarakis 2008; ``cv2.findTransformECC``)
on grey (Rec. 709 luma) copies blurred by a Gaussian of ``ecc_blur`` px at every level of an image pyramid,
coarse to fine: finest level ``ecc_max_side`` px (longer side), each coarser level halved
(``cv2.pyrDown``) down to ``ecc_min_side``.  On the coarsest level a **Euclidean** motion (rotation and
translation) is estimated on AFTER pre-warped by the start (so the start's scale is kept); every finer
level refines an **affine** motion.  A last pass refines the affine motion on band-passed copies
(difference of Gaussians, sigmas ``refine_sigmas`` px) of the finest level, so spots, hair and outlines
rather than the smooth shading decide the final sub-pixel position.  ECC is invariant to an affine change
of brightness (gain and offset), so an exposure change does not bias it.  The correlation is computed on
BEFORE's skin grown by ``mask_grow`` of the shorter side ("skin" region) or on the whole photo.

Similarity finish (:func:`similarity_finish`)
---------------------------------------------
On a strip of smooth skin crossing the whole frame the affine optimum is flat along the strip: the outline
fixes the motion across it, a few faint spots hardly fix the stretch along it, and ECC may stop with a
stretch of a few per cent (a singular-value ratio of the linear part, "anisotropy", above 1) that a change
of camera pose cannot make.  The finish replaces such a result by a **similarity** (rotation, one scale,
translation): the rotation of the affine's polar decomposition, the point of BEFORE's skin centroid kept
where the affine puts it, and each scale on a log-spaced grid (``similarity_step``) from 1 % below the
smaller to 1 % above the larger singular value.  For every scale, a Euclidean ECC (``cv2.MOTION_EUCLIDEAN``,
so the scale is kept) refines the rotation and translation on the two finest levels and on the band-passed
finest level; the scale whose band-passed correlation is highest wins, refined once by a parabola through
it and its two neighbours (in log scale).  :func:`skinimg.session.register_chain` keeps the similarity only
when it passes the acceptance test and scores as well as the affine (see there).

References
----------
Evangelidis, G. D. and Psarakis, E. Z. (2008). Parametric image alignment using enhanced correlation
coefficient maximization. IEEE TPAMI 30(10), 1858-1865. https://doi.org/10.1109/TPAMI.2008.113

Reddy, B. S. and Chatterji, B. N. (1996). An FFT-based technique for translation, rotation, and
scale-invariant image registration. IEEE Transactions on Image Processing 5(8), 1266-1271.
https://doi.org/10.1109/83.506761

Hu, M.-K. (1962). Visual pattern recognition by moment invariants. IRE Transactions on Information
Theory 8(2), 179-187. https://doi.org/10.1109/TIT.1962.1057692
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .lighting import _centroid, _disk

__all__ = ["FallbackParams", "init_identity", "init_mask_moments", "init_phase_correlation", "ecc_align",
           "similarity_finish", "similarity", "to_level", "from_level", "shrink"]


@dataclass(frozen=True)
class FallbackParams:
    """Parameters of the ECC step of the registration chain and of its acceptance test.

    Recorded in ``comparison.json`` under ``params.registration.fallback``.  The thresholds were chosen
    on a development set of smooth phantom pairs and checked on held-out pairs (``docs/comparison.md``).

    Attributes
    ----------
    ecc_max_side, ecc_min_side : int
        Longer side (px) of the finest and coarsest pyramid level.
    ecc_blur : float
        Gaussian sigma (px of each level) applied before ECC.
    ecc_iterations : int
        Iterations per level.
    ecc_eps : float
        Convergence threshold of ``cv2.findTransformECC``.
    refine_sigmas : (float, float)
        Difference-of-Gaussian sigmas (px of the finest level) of the last, band-passed pass.
    mask_grow : float
        The "skin" region: BEFORE's skin mask grown by this fraction of the shorter side.
    min_mask_fraction : float
        Skin masks covering less of their photo are not used (no "skin" region, no moments start).
    check_side : int
        Longer side (px) at which the acceptance checks are computed.
    detail_frac : float
        Diameter of the black top-hat of the detail maps, fraction of the shorter side.
    min_cc : float
        Smallest accepted correlation of the blurred grey photos over the region.
    min_detail : float
        Smallest accepted correlation of the dark-detail maps over the overlap.
    inner_erode : float
        The skin's interior: both photos' hole-filled skin masks eroded by this fraction of the shorter side.
    min_inner_fraction : float
        A smaller interior (or no usable masks): the overlap without the bands around its coarse edges instead.
    min_inner_detail : float
        Smallest accepted correlation of the dark-detail maps inside the skin (outline excluded).
    min_detail_level : float
        Both photos with less dark detail than this (log units, 99.5th percentile) cannot be verified.
    max_anisotropy : float
        Largest ratio of the singular values of the linear part.
    scale_range : (float, float)
        Accepted scale of AFTER relative to BEFORE.
    min_overlap : float
        Smallest fraction of BEFORE covered by the warped AFTER.
    similarity_anisotropy : float
        An accepted ECC result with a larger anisotropy gets the similarity finish (:func:`similarity_finish`).
    similarity_step : float
        Relative step of the finish's grid of scales.
    similarity_tolerance : (float, float)
        The similarity is kept when its ``cc`` and ``inner_ncc`` are at most this much below the affine's.
    """

    ecc_max_side: int = 640
    ecc_min_side: int = 80
    ecc_blur: float = 1.0
    ecc_iterations: int = 100
    ecc_eps: float = 1e-6
    refine_sigmas: tuple = (1.0, 3.0)
    mask_grow: float = 0.05
    min_mask_fraction: float = 0.01
    check_side: int = 320
    detail_frac: float = 0.06
    min_cc: float = 0.90
    min_detail: float = 0.60
    inner_erode: float = 0.04
    min_inner_fraction: float = 0.02
    min_inner_detail: float = 0.90
    min_detail_level: float = 0.003
    max_anisotropy: float = 1.15
    scale_range: tuple = (0.67, 1.5)
    min_overlap: float = 0.5
    similarity_anisotropy: float = 1.005
    similarity_step: float = 0.01
    similarity_tolerance: tuple = (0.001, 0.005)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("refine_sigmas", "scale_range", "similarity_tolerance"):
            d[k] = list(d[k])
        return d


def shrink(img: np.ndarray, max_side: int, interp: int = cv2.INTER_AREA) -> tuple[np.ndarray, float]:
    """``img`` resized (area averaging) so its longer side is at most ``max_side``, and the scale factor (the working
    copies of both registration steps).

    ``img``: any dtype cv2.resize accepts (uint8 or float32 here), (H, W) or (H, W, C); returned with the same dtype
    and channels; the factor is a float in (0, 1] (1: not resized, the input itself)."""
    h, w = img.shape[:2]
    s = min(1.0, max_side / float(max(h, w)))
    if s < 1.0:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)
    return img, s


def to_level(h_full: np.ndarray, s_before: float, s_after: float) -> np.ndarray:
    """A full-resolution BEFORE->AFTER transform expressed between copies scaled by ``s_before`` / ``s_after``.

    ``h_full``: float (3, 3); returns float64 (3, 3)."""
    return np.diag([s_after, s_after, 1.0]) @ h_full @ np.diag([1.0 / s_before, 1.0 / s_before, 1.0])


def from_level(h_level: np.ndarray, s_before: float, s_after: float) -> np.ndarray:
    """Inverse of :func:`to_level`: float (3, 3) in, float64 (3, 3) out."""
    return np.diag([1.0 / s_after, 1.0 / s_after, 1.0]) @ h_level @ np.diag([s_before, s_before, 1.0])


def similarity(tx: float, ty: float, rotation_deg: float, scale: float, center=(0.0, 0.0)) -> np.ndarray:
    """float64 (3, 3) matrix ``p -> scale R(rotation) (p - center) + center + (tx, ty)`` (pixels, degrees)."""
    t = math.radians(rotation_deg)
    a = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    m = np.eye(3)
    m[:2, :2] = a
    c = np.asarray(center, dtype=np.float64)
    m[:2, 2] = c + np.array([tx, ty]) - a @ c
    return m


def init_identity(shape_before: tuple[int, int], shape_after: tuple[int, int]) -> np.ndarray:
    """Centre onto centre, scaled by the square root of the photos' area ratio (shapes (H, W)): float64 (3, 3)."""
    hb, wb = shape_before[:2]
    ha, wa = shape_after[:2]
    s = math.sqrt((ha * wa) / float(hb * wb))
    m = np.diag([s, s, 1.0])
    m[:2, 2] = np.array([(wa - 1) / 2.0, (ha - 1) / 2.0]) - s * np.array([(wb - 1) / 2.0, (hb - 1) / 2.0])
    return m


def _moments(mask: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    m = cv2.moments(np.asarray(mask, dtype=np.uint8), binaryImage=True)
    n = m["m00"]
    c = np.array([m["m10"] / n, m["m01"] / n])
    cov = np.array([[m["mu20"], m["mu11"]], [m["mu11"], m["mu02"]]]) / n
    ev, evec = np.linalg.eigh(cov)
    angle = math.atan2(evec[1, 1], evec[0, 1])  # direction of the major axis
    return c, float(n), angle, float(ev[1] / max(ev[0], 1e-9))


def init_mask_moments(mask_before: np.ndarray, mask_after: np.ndarray, *, min_elongation: float = 1.15) -> np.ndarray:
    """Similarity (float64 (3, 3)) mapping BEFORE's skin mask onto AFTER's (bool (H, W) / (H', W'), both non-empty).

    Translation from the centroids, scale from the square root of the area ratio, rotation from the
    major axes of the second central moments (axes are undirected: the smaller of the two angles; 0 when
    either mask's eigenvalue ratio is below ``min_elongation``)."""
    cb, nb, ab, eb = _moments(np.ascontiguousarray(mask_before, dtype=bool))
    ca, na, aa, ea = _moments(np.ascontiguousarray(mask_after, dtype=bool))
    s = math.sqrt(na / nb)
    rot = 0.0
    if eb > min_elongation and ea > min_elongation:
        rot = (math.degrees(aa - ab) + 90.0) % 180.0 - 90.0
    t = math.radians(rot)
    a = s * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = ca - a @ cb
    return m


def _log_polar_magnitude(img: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = img.shape
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    f = np.fft.fftshift(np.abs(np.fft.fft2(img * win)))
    yy = np.cos(np.pi * (np.arange(h) - h / 2.0) / h)[:, None]
    xx = np.cos(np.pi * (np.arange(w) - w / 2.0) / w)[None, :]
    hp = (1.0 - yy * xx) * (2.0 - yy * xx)  # high-pass emphasis of Reddy and Chatterji (1996)
    f = (np.log1p(f) * hp).astype(np.float32)
    rmax = min(h, w) / 2.0
    return cv2.warpPolar(f, (w, h), (w / 2.0, h / 2.0), rmax, cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR), rmax


def init_phase_correlation(grey_before: np.ndarray, grey_after: np.ndarray, *, side: int = 256) -> np.ndarray:
    """Similarity from log-polar phase correlation (rotation, scale) then phase correlation (translation).

    ``grey_before``, ``grey_after``: uint8 or float (H, W) grey photos.  Both are resampled so their longer side
    is ``side`` px and padded with their median to a square; returns a full-resolution float64 (3, 3) matrix."""
    def pad(g: np.ndarray) -> tuple[np.ndarray, float]:
        s = side / float(max(g.shape))
        im = cv2.resize(g.astype(np.float32), (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s))),
                        interpolation=cv2.INTER_AREA)
        out = np.full((side, side), float(np.median(im)), np.float32)
        out[: im.shape[0], : im.shape[1]] = im[:side, :side]
        return out, s

    pb, sb = pad(grey_before)
    pa, sa = pad(grey_after)
    lb, rmax = _log_polar_magnitude(pb)
    la, _ = _log_polar_magnitude(pa)
    (sx, sy), _ = cv2.phaseCorrelate(lb, la)
    rot = 360.0 * sy / lb.shape[0]
    scale = math.exp(-sx * math.log(rmax) / lb.shape[1])
    win = cv2.createHanningWindow((side, side), cv2.CV_32F)
    best = None
    for r in (rot, rot + 180.0):
        m = similarity(0.0, 0.0, r, scale, center=((side - 1) / 2.0, (side - 1) / 2.0))
        warped = cv2.warpAffine(pa, m[:2], (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
        (tx, ty), response = cv2.phaseCorrelate(pb, warped, win)
        if best is None or response > best[0]:
            t = np.eye(3)
            t[:2, 2] = (tx, ty)
            best = (response, m @ t)
    return from_level(best[1], sb, sa)


def _pyramid(grey: np.ndarray, p: FallbackParams) -> list[tuple[np.ndarray, float]]:
    top, s = shrink(grey.astype(np.float32), p.ecc_max_side)
    levels = [(top, s)]
    while max(levels[-1][0].shape) / 2.0 >= p.ecc_min_side:
        im = cv2.pyrDown(levels[-1][0])
        levels.append((im, levels[-1][1] * im.shape[1] / levels[-1][0].shape[1]))
    return [(cv2.GaussianBlur(im, (0, 0), p.ecc_blur), s) for im, s in levels[::-1]]  # coarse first


def _region(mask: np.ndarray | None, shape: tuple[int, int], grow: float) -> np.ndarray | None:
    if mask is None:
        return None
    m = cv2.resize(np.asarray(mask, dtype=np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    m = cv2.dilate(m, _disk(round(grow * min(shape))))
    return m if int(m.sum()) >= 200 else None


def _dog(img: np.ndarray, s1: float, s2: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), s1) - cv2.GaussianBlur(img, (0, 0), s2)


def ecc_align(grey_before: np.ndarray, grey_after: np.ndarray, h0: np.ndarray, *,
              region_mask: np.ndarray | None = None,
              params: FallbackParams | None = None) -> tuple[np.ndarray | None, float | str]:
    """Coarse-to-fine ECC from the start ``h0`` (see the module docstring).

    Parameters
    ----------
    grey_before, grey_after : ndarray, uint8 or float32, (H, W) / (H', W')
        Grey photos.
    h0 : ndarray, float64, (3, 3)
        Start: BEFORE -> AFTER, full-resolution pixels.
    region_mask : ndarray of bool, (H, W), optional
        BEFORE's skin: the correlation is computed on it, grown by ``mask_grow``; None = the whole photo.
    params : FallbackParams, optional

    Returns
    -------
    (h, cc) : the refined 3 x 3 transform and the correlation coefficient of the finest grey level, or
    ``(None, reason)`` when ECC did not converge.
    """
    p = params or FallbackParams()
    lb, la = _pyramid(grey_before, p), _pyramid(grey_after, p)
    n = min(len(lb), len(la))
    lb, la = lb[len(lb) - n:], la[len(la) - n:]
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, p.ecc_iterations, p.ecc_eps)
    h = np.asarray(h0, dtype=np.float64).copy()
    cc = float("nan")
    m = None
    for k, ((tb, sb), (ta, sa)) in enumerate(zip(lb, la)):
        m = _region(region_mask, tb.shape, p.mask_grow)
        hl = to_level(h, sb, sa)
        try:
            if k == 0:  # Euclidean on AFTER pre-warped by the start: keeps the start's scale
                pre = cv2.warpPerspective(ta, hl, (tb.shape[1], tb.shape[0]),
                                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
                cc, e = cv2.findTransformECC(tb, pre, np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN, crit, m, 5)
                hl = hl @ np.vstack([e.astype(np.float64), [0.0, 0.0, 1.0]])
            else:
                cc, w = cv2.findTransformECC(tb, ta, (hl / hl[2, 2])[:2].astype(np.float32), cv2.MOTION_AFFINE,
                                             crit, m, 5)
                hl = np.vstack([w.astype(np.float64), [0.0, 0.0, 1.0]])
        except cv2.error:
            return None, f"ECC did not converge (level {k + 1} of {n})"
        h = from_level(hl, sb, sa)
    # last pass on band-passed copies of the finest level: spots, hair and edges instead of the shading
    (tb, sb), (ta, sa) = lb[-1], la[-1]
    s1, s2 = p.refine_sigmas
    hl = to_level(h, sb, sa)
    try:
        _, w = cv2.findTransformECC(_dog(tb, s1, s2), _dog(ta, s1, s2), (hl / hl[2, 2])[:2].astype(np.float32),
                                    cv2.MOTION_AFFINE, crit, m, 1)
        h = from_level(np.vstack([w.astype(np.float64), [0.0, 0.0, 1.0]]), sb, sa)
    except cv2.error:
        pass  # the grey-level result stands
    return h, float(cc)


def _euclidean_finish(lb: list, la: list, h: np.ndarray, region_mask, p: FallbackParams):
    """Euclidean ECC of AFTER pre-warped by ``h`` on the two finest levels, then on the band-passed finest level
    (the scale of ``h`` is kept): the refined transform and the band-passed correlation, or None."""
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, p.ecc_iterations, p.ecc_eps)
    cc = float("nan")
    steps = ([(lb[-2], la[-2], False)] if len(lb) > 1 else []) + [(lb[-1], la[-1], False), (lb[-1], la[-1], True)]
    for (tb, sb), (ta, sa), band in steps:
        m = _region(region_mask, tb.shape, p.mask_grow)
        hl = to_level(h, sb, sa)
        if band:
            tb, ta = _dog(tb, *p.refine_sigmas), _dog(ta, *p.refine_sigmas)
        pre = cv2.warpPerspective(ta, hl, (tb.shape[1], tb.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE)
        try:
            cc, e = cv2.findTransformECC(tb, pre, np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN, crit, m,
                                         1 if band else 5)
        except cv2.error:
            return None
        h = from_level(hl @ np.vstack([e.astype(np.float64), [0.0, 0.0, 1.0]]), sb, sa)
    return h, float(cc)


def similarity_finish(grey_before: np.ndarray, grey_after: np.ndarray, h: np.ndarray, *,
                      region_mask: np.ndarray | None = None,
                      params: FallbackParams | None = None) -> tuple[np.ndarray | None, float]:
    """The similarity nearest an affine ECC result, its scale searched (see the module docstring).

    Parameters
    ----------
    grey_before, grey_after : ndarray, uint8 or float32, (H, W) / (H', W')
        Grey photos.
    h : ndarray, float64, (3, 3)
        The affine result, BEFORE -> AFTER, full-resolution pixels.
    region_mask : ndarray of bool, (H, W), optional
        BEFORE's skin: the correlation region (grown by ``mask_grow``) and the pivot (its centroid); None = the
        whole photo and its centre.
    params : FallbackParams, optional

    Returns
    -------
    (h_sim, cc) : float64 (3, 3) similarity and its band-passed correlation, or ``(None, nan)`` when ``h`` is
    not orientation-preserving or ECC failed at every scale.
    """
    p = params or FallbackParams()
    h = np.asarray(h, dtype=np.float64) / h[2, 2]
    a = h[:2, :2]
    if np.linalg.det(a) <= 0:
        return None, float("nan")
    u, sv, vt = np.linalg.svd(a)
    rot = u @ vt
    pivot = _centroid(region_mask)
    if pivot is None:
        pivot = np.array([(grey_before.shape[1] - 1) / 2.0, (grey_before.shape[0] - 1) / 2.0])
    target = a @ pivot + h[:2, 2]
    lb, la = _pyramid(grey_before, p), _pyramid(grey_after, p)
    n = min(len(lb), len(la))
    lb, la = lb[len(lb) - n:], la[len(la) - n:]

    def fit(scale: float):
        m = np.eye(3)
        m[:2, :2] = scale * rot
        m[:2, 2] = target - m[:2, :2] @ pivot
        return _euclidean_finish(lb, la, m, region_mask, p)

    lo, hi = math.log(sv[1] / 1.01), math.log(sv[0] * 1.01)
    grid = np.linspace(lo, hi, max(3, int(math.ceil((hi - lo) / math.log1p(p.similarity_step))) + 1))
    fits = [fit(math.exp(x)) for x in grid]
    ccs = np.array([f[1] if f is not None else -np.inf for f in fits])
    i = int(np.argmax(ccs))
    if not np.isfinite(ccs[i]):
        return None, float("nan")
    best = fits[i]
    if 0 < i < len(grid) - 1 and all(np.isfinite(ccs[i - 1:i + 2])):
        y0, y1, y2 = ccs[i - 1:i + 2]
        den = y0 - 2.0 * y1 + y2
        if den < 0:  # a maximum: one more fit at the parabola's vertex
            f = fit(math.exp(grid[i] + 0.5 * (grid[1] - grid[0]) * (y0 - y2) / den))
            if f is not None and f[1] > best[1]:
                best = f
    return best
