"""Finding a ColorChecker Classic in a photo with OpenCV geometry only (no trained model).

Low-gradient regions -> square-ish contours -> neighbours on a grid -> integer lattice coordinates ->
RANSAC homography (lattice -> image) -> the 4x6 layout and its orientation chosen by matching the
patch colours with the reference colours (:func:`detect_chart`).
"""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np

from ..color import delta_e_2000, srgb_to_linear
from ..io import check_rgb, to_uint8
from .charts import (_COLS, _PATCH_SIDE, _ROWS, CalibrationParams, ChartDetection, _lab, _max_value, _project,
                     _reference_for)

__all__ = ["detect_chart"]


def _diagonal_intersection(q: np.ndarray):
    """Intersection of the diagonals q0-q2 and q1-q3 of a quadrilateral (4, 2), or None."""
    p, r = q[0], q[2] - q[0]
    u, v = q[1], q[3] - q[1]
    den = r[0] * v[1] - r[1] * v[0]
    if abs(den) < 1e-9:
        return None
    t = ((u[0] - p[0]) * v[1] - (u[1] - p[1]) * v[0]) / den
    return float(p[0] + t * r[0]), float(p[1] + t * r[1])


def _candidates(small: np.ndarray, params: CalibrationParams) -> np.ndarray:
    """Square-ish uniform regions: rows (cx, cy, side, angle_mod_90, fill)."""
    img = cv2.medianBlur(small, 3)
    k3 = np.ones((3, 3), np.uint8)
    grad = cv2.morphologyEx(img, cv2.MORPH_GRADIENT, k3).max(axis=2)
    h, w = grad.shape
    min_side = params.min_patch_px
    max_area = h * w / 16.0
    out = []
    for t in (6, 12, 24, 48):
        region = (grad < t).astype(np.uint8)
        region = cv2.morphologyEx(region, cv2.MORPH_OPEN, k3)
        contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            if len(c) < 4:
                continue
            area = cv2.contourArea(c)
            if area < min_side * min_side or area > max_area:
                continue
            (cx, cy), (rw, rh), ang = cv2.minAreaRect(c)
            if min(rw, rh) < min_side or max(rw, rh) > 1.8 * min(rw, rh):
                continue
            fill = area / (rw * rh)
            if fill < 0.8:
                continue
            hull_area = cv2.contourArea(cv2.convexHull(c))
            if hull_area <= 0 or area / hull_area < 0.92:
                continue
            # centre = intersection of the quadrilateral's diagonals (the projective centre; the
            # centroid of a foreshortened patch is biased towards its nearer side)
            quad = cv2.approxPolyDP(cv2.convexHull(c), 0.05 * cv2.arcLength(c, True), True).reshape(-1, 2)
            if len(quad) == 4:
                centre = _diagonal_intersection(quad.astype(np.float64))
                if centre is not None and abs(centre[0] - cx) < 0.25 * rw and abs(centre[1] - cy) < 0.25 * rh:
                    cx, cy = centre
            # the low-gradient region is the patch shrunk by about one pixel on each side
            out.append((cx, cy, math.sqrt(area) + 2.0, ang % 90.0, fill))
    if not out:
        return np.zeros((0, 5))
    cand = np.array(out, dtype=np.float64)
    # de-duplicate across thresholds: keep the best-filled region around each centre
    order = np.argsort(-cand[:, 4] - 1e-3 * cand[:, 2])
    kept: list[int] = []
    for i in order:
        if kept:
            d = np.hypot(cand[kept, 0] - cand[i, 0], cand[kept, 1] - cand[i, 1])
            if np.any(d < 0.5 * np.minimum(cand[kept, 2], cand[i, 2])):
                continue
        kept.append(int(i))
        if len(kept) >= 4000:
            break
    return cand[kept]


def _angle_diff90(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs((a - b) % 90.0)
    return np.minimum(d, 90.0 - d)


def _grid_components(cand: np.ndarray, min_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group candidates into grids; return [(indices, lattice_ij)] largest first."""
    n = len(cand)
    if n < min_size:
        return []
    c = cand[:, :2]
    s = cand[:, 2]
    th = cand[:, 3]
    dx = c[None, :, 0] - c[:, None, 0]
    dy = c[None, :, 1] - c[:, None, 1]
    dist = np.hypot(dx, dy)
    msize = 0.5 * (s[:, None] + s[None, :])
    ratio = np.maximum(s[:, None], s[None, :]) / np.minimum(s[:, None], s[None, :])
    phi = np.degrees(np.arctan2(dy, dx))
    ok = (dist >= 0.8 * msize) & (dist <= 1.9 * msize) & (ratio <= 1.5)
    ok &= _angle_diff90(phi, th[:, None]) <= 15.0
    ok &= _angle_diff90(phi, th[None, :]) <= 15.0
    np.fill_diagonal(ok, False)
    ok &= ok.T
    nbrs = [np.flatnonzero(ok[i]) for i in range(n)]
    seen = np.zeros(n, bool)
    comps = []
    for start in range(n):
        if seen[start] or len(nbrs[start]) == 0:
            continue
        # BFS assigning integer lattice coordinates along the component's mean axes
        members = [start]
        seen[start] = True
        q = deque([start])
        while q:
            a = q.popleft()
            for b in nbrs[a]:
                if not seen[b]:
                    seen[b] = True
                    members.append(int(b))
                    q.append(int(b))
        if len(members) < min_size:
            continue
        idx = np.array(members)
        th4 = np.radians(4.0 * th[idx])
        theta0 = math.degrees(math.atan2(np.sin(th4).mean(), np.cos(th4).mean())) / 4.0
        coords = {start: (0, 0)}
        q = deque([start])
        while q:
            a = q.popleft()
            for b in nbrs[a]:
                b = int(b)
                if b in coords:
                    continue
                rel = (phi[a, b] - theta0) % 360.0
                step = int(((rel + 45.0) % 360.0) // 90.0)
                di, dj = ((1, 0), (0, 1), (-1, 0), (0, -1))[step]
                coords[b] = (coords[a][0] + di, coords[a][1] + dj)
                q.append(b)
        ij = np.array([coords[int(i)] for i in idx], dtype=np.float64)
        comps.append((idx, ij))
    comps.sort(key=lambda t: -len(t[0]))
    return comps


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


def _fit3x3_score(measured: np.ndarray, ref: np.ndarray, use: np.ndarray) -> float:
    m, r = measured[use], ref[use]
    if m.shape[0] < 8:
        return math.inf
    sol, *_ = np.linalg.lstsq(m, r, rcond=None)
    pred = np.clip(m @ sol, 0.0, 1.0)
    return float(np.mean(delta_e_2000(_lab(pred), _lab(r))))


def _refine(hc: np.ndarray, cand: np.ndarray, n_det: int, rounds: int = 2) -> tuple[np.ndarray, int]:
    """Re-fit the chart homography on every candidate square near a predicted patch centre.

    The grid walk may miss patches (size jumps under strong perspective); their squares are
    usually among the candidates and pin the extrapolated side of the chart.
    """
    cells = _cells()
    for _ in range(rounds):
        pred = _project(hc, cells)
        pitch = np.hypot(*(_project(hc, cells + [0.5, 0.0]) - _project(hc, cells - [0.5, 0.0])).T)
        d = np.hypot(pred[:, None, 0] - cand[None, :, 0], pred[:, None, 1] - cand[None, :, 1])
        j = np.argmin(d, axis=1)
        ok = (d[np.arange(len(cells)), j] < 0.3 * pitch) & (cand[j, 2] < 1.15 * pitch) & (cand[j, 2] > 0.5 * pitch)
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
    cand = _candidates(small, params)
    comps = _grid_components(cand, params.min_patches)
    if not comps:
        return ChartDetection(found=False, reason=f"no grid of >= {params.min_patches} square patches ({len(cand)} candidate squares)")
    best = None
    cells = _cells()
    half_small = 0.5 * _PATCH_SIDE * params.sample_fraction
    for idx, ij in comps[:4]:
        centres = cand[idx, :2]
        side = float(np.median(cand[idx, 2]))
        hmat, inl = cv2.findHomography(ij.reshape(-1, 1, 2), centres.reshape(-1, 1, 2), cv2.RANSAC, max(1.0, 0.3 * side))
        if hmat is None:
            continue
        inl = inl.ravel().astype(bool)
        if inl.sum() < params.min_patches:
            continue
        ij_in = ij[inl]
        if len(np.unique(ij_in[:, 0])) < 2 or len(np.unique(ij_in[:, 1])) < 2:
            continue
        for t in _DIHEDRAL:
            cr = ij_in @ t.T
            lo, hi = cr.min(axis=0), cr.max(axis=0)
            for oc in range(int(-lo[0]), int(_COLS - 1 - hi[0]) + 1):
                for orow in range(int(-lo[1]), int(_ROWS - 1 - hi[1]) + 1):
                    # chart (c, r) -> lattice (i, j): ij = T^-1 (cr - off); T orthogonal so T^-1 = T^T
                    a = np.eye(3)
                    a[:2, :2] = t.T
                    a[:2, 2] = -t.T @ np.array([oc, orow])
                    hc = hmat @ a
                    meas, clip = _sample_cells(small, hc, half_small, params)
                    if not np.isfinite(meas).all():
                        continue
                    score = _fit3x3_score(meas, ref, ~clip)
                    if best is None or score < best[0]:
                        best = (score, hc, int(inl.sum()))
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
    return ChartDetection(
        found=True,
        corners=corners,
        patch_centres=_project(hf, cells),
        patch_rgb=patch_rgb,
        clipped=clipped,
        score=score,
        n_detected=n_det,
        homography=hf,
    )


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
    Geometry only (OpenCV): the per-pixel morphological gradient (max over R, G, B) is
    thresholded at 6, 12, 24 and 48 code values; connected low-gradient regions that are convex,
    rectangular (fill >= 0.8 of their minimum-area rectangle) and at most 1.8:1 are patch
    candidates.  Candidates of similar size (<= 1.5x) whose centres are 0.8-1.9 patch sides apart
    along their own axes (+-15 degrees) are neighbours; a breadth-first walk gives each an integer
    lattice coordinate; a RANSAC homography maps the lattice to the image.  Every placement of a
    4x6 chart over the lattice (8 rotations/reflections x offsets) is scored by the mean
    CIEDE2000 of the best 3x3 linear fit of its 24 sampled colours to the reference; the lowest
    wins and must be below ``max_fit_delta_e``.  Missing patches (e.g. the black one on the
    black frame) are located by the homography.  The whole chart must be inside the image.
    Detection runs at ``detect_max_side`` (then twice that if nothing is found).
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
