"""Finding a ColorChecker Classic in a photo with OpenCV geometry only (no trained model).

Uniform convex quadrilaterals -> neighbours in each one's own frame -> integer lattice coordinates
(:mod:`skinimg.calibrate.grid`) -> RANSAC homography (lattice -> image) -> the 4x6 chart placed on the
lattice in any of its 8 orientations (4 rotations, mirrored or not) and offsets, chosen by matching
the patch colours with the reference colours (:func:`detect_chart`).  Works for charts rotated to
any angle in the image plane and tilted up to about 50 degrees out of it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..color import delta_e_2000, srgb_to_linear
from ..io import check_rgb, to_uint8
from .charts import (_COLS, _PATCH_SIDE, _ROWS, CalibrationParams, ChartDetection, _lab, _max_value, _project,
                     _reference_for)
from .grid import _candidates, _grid_components

__all__ = ["detect_chart"]

#: Neutral patches 19-24 (0-based indices) of the ColorChecker Classic.
_NEUTRAL = slice(18, 24)


_DIHEDRAL = (
    np.array([[1, 0], [0, 1]]),
    np.array([[-1, 0], [0, 1]]),
    np.array([[1, 0], [0, -1]]),
    np.array([[-1, 0], [0, -1]]),
    np.array([[0, 1], [1, 0]]),
    np.array([[0, -1], [1, 0]]),
    np.array([[0, 1], [-1, 0]]),
    np.array([[0, -1], [-1, 0]]),
)


def _cells() -> np.ndarray:
    """Chart lattice (column, row) of the 24 patches, row-major."""
    k = np.arange(_ROWS * _COLS)
    return np.stack([k % _COLS, k // _COLS], axis=1).astype(np.float64)


def _sample_cells(rgb: np.ndarray, h: np.ndarray, half: float, params: CalibrationParams):
    """Median linear RGB and clipped flag of a square of half-side ``half`` (lattice units) per cell.

    Returns (rgb (24, 3) float64 with NaN for cells outside the image, clipped (24,) bool).
    """
    height, width = rgb.shape[:2]
    cells = _cells()
    offs = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    quads = _project(h, (cells[:, None, :] + offs[None]).reshape(-1, 2)).reshape(-1, 4, 2)
    out = np.full((len(cells), 3), np.nan)
    clipped = np.zeros(len(cells), bool)
    clip_at = params.clip_level * _max_value(rgb)
    black_at = params.black_level * _max_value(rgb)
    for k, q in enumerate(quads):
        x0, y0 = np.floor(q.min(axis=0)).astype(int)
        x1, y1 = np.ceil(q.max(axis=0)).astype(int) + 1
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height or not np.isfinite(q).all():
            continue
        crop = rgb[y0:y1, x0:x1]
        mask = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, np.rint(q - (x0, y0)).astype(np.int32), 1)
        px = crop[mask.astype(bool)]
        if px.shape[0] == 0:
            px = crop[(crop.shape[0] - 1) // 2 : crop.shape[0] // 2 + 1, (crop.shape[1] - 1) // 2 : crop.shape[1] // 2 + 1].reshape(-1, 3)
        clipped[k] = np.mean(np.any((px >= clip_at) | (px <= black_at), axis=1)) > 0.05
        out[k] = np.median(srgb_to_linear(px), axis=0)
    return out, clipped


def _neutral_linearised(meas: np.ndarray, ref: np.ndarray) -> np.ndarray | None:
    """Patch colours through a per-channel power law fitted on the six neutral patches (log-log least
    squares), or None when the neutral row is not a usable ramp.  A cheap, tone-curve-robust input
    for the orientation score only (the correction has its own tone curve, :mod:`.tone`)."""
    out = np.empty_like(meas)
    nm = np.log(np.clip(meas[_NEUTRAL], 1e-4, None))
    nr = np.log(np.clip(ref[_NEUTRAL], 1e-4, None))
    logm = np.log(np.clip(meas, 1e-4, None))
    for ch in range(3):
        if np.ptp(nm[:, ch]) < 0.3:
            return None
        slope, icpt = np.polyfit(nm[:, ch], nr[:, ch], 1)
        if not 0.2 < slope <= 5.0:
            return None
        out[:, ch] = np.exp(slope * logm[:, ch] + icpt)
    return out


def _inputs(meas: np.ndarray, ref: np.ndarray, use: np.ndarray):
    """The used patches' (measured, reference) colours, raw and neutral-linearised (when the grey row allows);
    nothing when fewer than 8 patches are usable."""
    if int(np.sum(use)) < 8:
        return []
    lin = _neutral_linearised(meas, ref)
    return [(m[use], ref[use]) for m in ((meas,) if lin is None else (meas, lin))]


def _cheap_score(meas: np.ndarray, ref: np.ndarray, use: np.ndarray) -> float:
    """First ranking of placements: mean CIE 1976 distance after a 3x3 least-squares fit, the lower of
    the raw and the neutral-linearised colours."""
    best = math.inf
    for mm, rr in _inputs(meas, ref, use):
        sol, *_ = np.linalg.lstsq(mm, rr, rcond=None)
        best = min(best, float(np.linalg.norm(_lab(np.clip(mm @ sol, 0, 1)) - _lab(rr), axis=1).mean()))
    return best


def _placement_score(meas: np.ndarray, ref: np.ndarray, use: np.ndarray) -> float:
    """Robust colour match of a placement: a 3x3 fit by iteratively reweighted least squares (weights
    ``1 / max(1, dE00 / 4)``, 3 rounds), scored by the mean CIEDE2000 of the best 75 % of the used
    patches; the lower of raw and neutral-linearised colours.  A shadow over a few patches, a printed
    chart or a non-linear tone curve still match; tiles, keyboards and other colour grids do not
    (measured: charts <= 10.2, chart-free clutter >= 14.6 on the development renders)."""
    best = math.inf
    for mm, rr in _inputs(meas, ref, use):
        w = np.ones(len(mm))
        lab_r = _lab(rr)
        for _ in range(3):
            sol, *_ = np.linalg.lstsq(mm * w[:, None], rr * w[:, None], rcond=None)
            de = delta_e_2000(_lab(np.clip(mm @ sol, 0, 1)), lab_r)
            w = 1.0 / np.maximum(1.0, de / 4.0)
        k = int(math.ceil(0.75 * len(de)))
        best = min(best, float(np.sort(de)[:k].mean()))
    return best


def _sample_one(small: np.ndarray, hmat: np.ndarray, cell, half: float, clip_lo: float, clip_hi: float):
    """Median colour (as linear RGB) and clipped flag of a square of half-side ``half`` (lattice units)
    around lattice cell ``cell`` of an 8-bit image; None when outside the image."""
    h, w = small.shape[:2]
    q = _project(hmat, np.asarray(cell, float) + np.array([[-half, -half], [half, -half], [half, half], [-half, half]]))
    if not np.isfinite(q).all():
        return None
    x0, y0 = np.floor(q.min(axis=0)).astype(int)
    x1, y1 = np.ceil(q.max(axis=0)).astype(int) + 1
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return None
    crop = small[y0:y1, x0:x1]
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.rint(q - (x0, y0)).astype(np.int32), 1)
    if not mask.any():
        mask[(y1 - y0) // 2, (x1 - x0) // 2] = 1
    px = crop[mask.astype(bool)]
    clipped = bool(np.mean(np.any((px >= clip_hi) | (px <= clip_lo), axis=1)) > 0.05)
    return srgb_to_linear(np.median(px, axis=0).astype(np.uint8)[None])[0].astype(np.float64), clipped


def _placements(small: np.ndarray, hmat: np.ndarray, ij: np.ndarray, ref: np.ndarray, params: CalibrationParams):
    """Every placement of the 4x6 chart on a lattice: ``(cheap score, chart -> lattice 3x3, colours, clipped,
    n inside, n outside)``.  A placement covers at least ``min_patches`` lattice patches, and at most half as
    many lattice patches fall outside it (a chart lying on tiles); colours are sampled once per cell."""
    half = 0.5 * _PATCH_SIDE * params.sample_fraction
    hi_clip, lo_clip = params.clip_level * 255.0, params.black_level * 255.0
    cache: dict = {}
    cells = _cells()
    out = []
    for t in _DIHEDRAL:
        cr = ij @ t.T
        lo, hi = cr.min(axis=0), cr.max(axis=0)
        for oc in range(int(-hi[0]), int(_COLS - lo[0])):
            for orow in range(int(-hi[1]), int(_ROWS - lo[1])):
                p = cr + np.array([oc, orow])
                inside = (p[:, 0] >= 0) & (p[:, 0] < _COLS) & (p[:, 1] >= 0) & (p[:, 1] < _ROWS)
                n_in, n_out = int(inside.sum()), int((~inside).sum())
                if n_in < params.min_patches or n_out > 0.5 * n_in:
                    continue
                # chart (c, r) -> lattice (i, j) = T^T ((c, r) - offset); T is orthogonal
                lattice = np.rint((cells - np.array([oc, orow])) @ t).astype(int)
                vals = []
                for a, b in lattice:
                    if (a, b) not in cache:
                        cache[(a, b)] = _sample_one(small, hmat, (a, b), half, lo_clip, hi_clip)
                    vals.append(cache[(a, b)])
                if any(v is None for v in vals):
                    continue
                meas = np.array([v[0] for v in vals])
                clip = np.array([v[1] for v in vals])
                a3 = np.eye(3)
                a3[:2, :2] = t.T
                a3[:2, 2] = -t.T @ np.array([oc, orow])
                out.append((_cheap_score(meas, ref, ~clip) + 0.2 * n_out, a3, meas, clip, n_in, n_out))
    return out


def _refine(hc: np.ndarray, cand: np.ndarray, n_det: int, rounds: int = 2) -> tuple[np.ndarray, int]:
    """Re-fit the chart homography on every candidate near a predicted patch centre.

    The grid walk may miss patches (size jumps under strong perspective); their quadrilaterals are
    usually among the candidates and pin the extrapolated side of the chart.
    """
    cells = _cells()
    for _ in range(rounds):
        pred = _project(hc, cells)
        p1 = np.hypot(*(_project(hc, cells + [0.5, 0.0]) - _project(hc, cells - [0.5, 0.0])).T)
        p2 = np.hypot(*(_project(hc, cells + [0.0, 0.5]) - _project(hc, cells - [0.0, 0.5])).T)
        pm = np.minimum(p1, p2)
        d = np.hypot(pred[:, None, 0] - cand[None, :, 0], pred[:, None, 1] - cand[None, :, 1])
        j = np.argmin(d, axis=1)
        size = cand[j, 6]
        ok = (d[np.arange(len(cells)), j] < 0.25 * pm) & (size < 1.15 * np.maximum(p1, p2)) & (size > 0.4 * pm)
        if ok.sum() < 8:
            break
        h_new, _ = cv2.findHomography(cells[ok].reshape(-1, 1, 2), cand[j[ok], :2].reshape(-1, 1, 2), 0)
        if h_new is None:
            break
        hc, n_det = h_new, int(ok.sum())
    return hc, n_det


def _detect_at(rgb: np.ndarray, scale: float, params: CalibrationParams) -> ChartDetection:
    ref = _reference_for(params)
    h0, w0 = rgb.shape[:2]
    u8 = to_uint8(rgb)
    if scale < 1.0:
        small = cv2.resize(u8, (max(1, round(w0 * scale)), max(1, round(h0 * scale))), interpolation=cv2.INTER_AREA)
    else:
        small, scale = u8, 1.0
    cand = _candidates(small, params.min_patch_px)
    comps = _grid_components(cand, params.min_patches)
    if not comps:
        return ChartDetection(found=False, reason=f"no grid of >= {params.min_patches} patches ({len(cand)} candidate quadrilaterals)")
    best = None
    for idx, ij in comps[:4]:
        side = float(np.median(cand[idx, 6]))
        hmat, inl = cv2.findHomography(ij.reshape(-1, 1, 2), cand[idx, :2].reshape(-1, 1, 2), cv2.RANSAC, max(1.0, 0.2 * side))
        if hmat is None:
            continue
        inl = inl.ravel().astype(bool)
        if inl.sum() < params.min_patches:
            continue
        ij_in = ij[inl]
        if len(np.unique(ij_in[:, 0])) < 2 or len(np.unique(ij_in[:, 1])) < 2:
            continue
        places = sorted(_placements(small, hmat, ij_in, ref, params), key=lambda z: z[0])
        for _cheap, a3, meas, clip, n_in, n_out in places[:3]:
            score = _placement_score(meas, ref, ~clip) + 0.2 * n_out
            if best is None or score < best[0]:
                best = (score, hmat @ a3, n_in)
    if best is None:
        return ChartDetection(found=False, reason="patch grid does not fit a 4x6 chart inside the image")
    score, hc, n_det = best
    hc, n_det = _refine(hc, cand, n_det)
    if not score <= params.max_fit_delta_e:
        return ChartDetection(found=False, score=score, n_detected=n_det, reason=f"grid colours do not match the chart (fit mean dE00 {score:.1f})")
    # lattice -> full-resolution pixels
    s_inv = np.diag([1.0 / scale, 1.0 / scale, 1.0])
    shift = np.array([[1, 0, 0.5 / scale - 0.5], [0, 1, 0.5 / scale - 0.5], [0, 0, 1]])  # pixel-centre convention
    hf = shift @ s_inv @ hc
    hf /= hf[2, 2]
    corners = _project(hf, np.array([[-0.5, -0.5], [_COLS - 0.5, -0.5], [_COLS - 0.5, _ROWS - 0.5], [-0.5, _ROWS - 0.5]]))
    if not cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)):
        return ChartDetection(found=False, reason="degenerate chart geometry")
    patch_rgb, clipped = _sample_cells(rgb, hf, 0.5 * _PATCH_SIDE * params.sample_fraction, params)
    if not np.isfinite(patch_rgb).all():
        return ChartDetection(found=False, reason="chart partly outside the image")
    return ChartDetection(found=True, corners=corners, patch_centres=_project(hf, _cells()), patch_rgb=patch_rgb,
                          clipped=clipped, score=score, n_detected=n_det, homography=hf)


def detect_chart(rgb: np.ndarray, *, params: CalibrationParams | None = None) -> ChartDetection:
    """Find a ColorChecker Classic (24 patches) in a photo, without any trained model.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 [0, 255], uint16 [0, 65535] or float [0, 1]
        Encoded sRGB photo, channel order R, G, B.
    params : CalibrationParams, optional

    Returns
    -------
    ChartDetection
        ``found`` and, when found, the corners, patch centres and patch colours (per-channel
        median linear RGB of the central ``sample_fraction`` square of each patch, sampled at full
        resolution).  When not found, ``reason`` says why.  Never raises for a photo without a
        chart.

    Notes
    -----
    Geometry only (OpenCV): the per-pixel morphological gradient (max over R, G, B) is thresholded at
    6, 12, 24 and 48 code values; connected low-gradient regions that are convex and fill their
    4-vertex polygon (Douglas-Peucker) to 85-130 %, with interior angles of 40-140 degrees, opposite
    sides within 1:1.7 and mean sides within 1:2.6, are patch candidates (a square patch seen at up to
    about 50 degrees tilt, at any rotation).  Two candidates are neighbours when each lies one step
    (0.95-1.7 edge lengths along one edge, at most 0.3 across) from the other in its own edge frame; a
    breadth-first walk carrying the frame from patch to patch gives each an integer lattice coordinate;
    a RANSAC homography maps the lattice to the image.  Every placement of a 4x6 chart over the lattice
    (8 rotations/reflections x offsets) is ranked by a 3x3 fit of its 24 sampled colours to the
    reference; the three best are scored robustly (:func:`_placement_score`: 3x3 by reweighted least
    squares on raw and on neutral-linearised colours, mean CIEDE2000 of the best 75 % of patches); the
    lowest wins and must be below ``max_fit_delta_e``.  Missing patches (e.g. the black one on the black
    frame) are located by the homography.  The whole chart must be inside the image.  Detection runs at
    ``detect_max_side`` (then twice that if nothing is found).
    """
    params = params or CalibrationParams()
    rgb = check_rgb(rgb)
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    det = ChartDetection(found=False, reason="image too small")
    for target in (params.detect_max_side, 2 * params.detect_max_side):
        scale = min(1.0, target / long_side)
        det = _detect_at(rgb, scale, params)
        if det.found or scale >= 1.0:
            break
    return det
