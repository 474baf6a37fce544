"""Patch candidates and patch lattices for chart detection (geometry only, OpenCV + NumPy).

A chart photographed at an angle shows its square patches as parallelograms or trapezoids, rotated
anywhere in the image plane.  :func:`_candidates` finds uniform convex quadrilaterals;
:func:`_grid_components` links neighbouring ones in each candidate's own affine frame and gives every
member an integer lattice coordinate.  :mod:`skinimg.calibrate.detect` fits the chart on a lattice.
"""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np

__all__: list[str] = []

#: Morphological-gradient thresholds (8-bit code values) of the uniform regions.
_GRADIENT_THRESHOLDS = (6, 12, 24, 48)
#: A candidate's region covers 85-130 % of its 4-vertex polygon (above 100 %: the polygon, made of hull
#: points, cuts the rounded corners of a small rotated patch; a disc or an octagon is 140-160 %).
_MIN_FILL, _MAX_FILL = 0.85, 1.3
#: Interior angles of a candidate quadrilateral (degrees): a square seen at 50 degrees tilt and any
#: rotation keeps angles of about 65-115 degrees; perspective adds some.
_MIN_ANGLE = 40.0
#: Longest / shortest of two opposite sides (perspective), and of the two mean side lengths (tilt).
_MAX_OPPOSITE_RATIO = 1.7
_MAX_ASPECT = 2.6
#: Neighbour test in a candidate's own frame (units of its edge vectors; the chart pitch is 1.15 patch
#: sides): the step along one edge within [_STEP_LO, _STEP_HI], across it at most _STEP_ACROSS.
_STEP_LO, _STEP_HI, _STEP_ACROSS = 0.95, 1.7, 0.3
#: Pixels added to each edge vector's length: the low-gradient region is the patch less the edge blur and the
#: gradient's reach, about 1.5 px on each side.
_GROW_PX = 3.0

def _diagonal_intersection(q: np.ndarray):
    """Intersection of the diagonals q0-q2 and q1-q3 of a quadrilateral (4, 2), or None."""
    p, r = q[0], q[2] - q[0]
    u, v = q[1], q[3] - q[1]
    den = r[0] * v[1] - r[1] * v[0]
    if abs(den) < 1e-9:
        return None
    t = ((u[0] - p[0]) * v[1] - (u[1] - p[1]) * v[0]) / den
    return float(p[0] + t * r[0]), float(p[1] + t * r[1])

def _quad_of(hull: np.ndarray, perimeter: float) -> np.ndarray | None:
    """The 4-vertex Douglas-Peucker approximation of a convex hull, vertices in angular order, or None."""
    for eps in (0.02, 0.035, 0.05, 0.07, 0.09, 0.12):
        a = cv2.approxPolyDP(hull, eps * perimeter, True).reshape(-1, 2)
        if len(a) < 4:
            return None
        if len(a) == 4:
            q = a.astype(np.float64)
            c = q.mean(axis=0)
            return q[np.argsort(np.arctan2(q[:, 1] - c[1], q[:, 0] - c[0]))]
    return None

def _quad_shape_ok(q: np.ndarray, min_side: float) -> np.ndarray | None:
    """Edge vectors (4, 2) of a plausible patch quadrilateral, or None."""
    sides = np.roll(q, -1, axis=0) - q
    lens = np.hypot(sides[:, 0], sides[:, 1])
    if lens.min() < 0.7 * min_side:
        return None
    if max(lens[0], lens[2]) > _MAX_OPPOSITE_RATIO * min(lens[0], lens[2]):
        return None
    if max(lens[1], lens[3]) > _MAX_OPPOSITE_RATIO * min(lens[1], lens[3]):
        return None
    m1, m2 = lens[0] + lens[2], lens[1] + lens[3]
    if max(m1, m2) > _MAX_ASPECT * min(m1, m2):
        return None
    prev = -np.roll(sides, 1, axis=0)
    cosang = np.einsum("ij,ij->i", prev, sides) / (lens * np.roll(lens, 1))
    if np.max(np.abs(cosang)) > math.cos(math.radians(_MIN_ANGLE)):
        return None
    return sides

def _candidates(small: np.ndarray, min_side: int) -> np.ndarray:
    """Uniform convex quadrilaterals of an 8-bit RGB image.

    Returns
    -------
    ndarray (N, 9) float64
        Rows ``cx, cy, e1x, e1y, e2x, e2y, side, fill, area``: the projective centre (intersection of
        the diagonals: the centroid of a foreshortened patch is biased towards its nearer side), the
        quadrilateral's two mean edge vectors (grown by the ~1 px each side that the gradient erodes),
        ``side`` = square root of the area they span, and the region's fill of its quadrilateral.
    """
    img = cv2.medianBlur(small, 3)
    k3 = np.ones((3, 3), np.uint8)
    g3 = cv2.morphologyEx(img, cv2.MORPH_GRADIENT, k3)
    grad = cv2.max(cv2.max(g3[..., 0], g3[..., 1]), g3[..., 2])  # ndarray.max(axis=2) is ~20x slower
    h, w = grad.shape
    max_area, min_area = h * w / 12.0, 0.6 * min_side * min_side
    out = []
    for t in _GRADIENT_THRESHOLDS:
        region = cv2.morphologyEx((grad < t).astype(np.uint8), cv2.MORPH_OPEN, k3)
        contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            if len(c) < 4:
                continue
            area = cv2.contourArea(c)
            if area < min_area or area > max_area:
                continue
            hull = cv2.convexHull(c)
            hull_area = cv2.contourArea(hull)
            if hull_area <= 0 or area / hull_area < 0.9:
                continue
            q = _quad_of(hull, cv2.arcLength(hull, True))
            if q is None:
                continue
            q_area = cv2.contourArea(q.astype(np.float32))
            if q_area <= 0 or not _MIN_FILL <= area / q_area <= _MAX_FILL:
                continue
            sides = _quad_shape_ok(q, min_side)
            centre = None if sides is None else _diagonal_intersection(q)
            if centre is None:
                continue
            e1, e2 = 0.5 * (sides[0] - sides[2]), 0.5 * (sides[1] - sides[3])
            e1 = e1 * (1.0 + _GROW_PX / np.hypot(*e1))
            e2 = e2 * (1.0 + _GROW_PX / np.hypot(*e2))
            side = math.sqrt(abs(e1[0] * e2[1] - e1[1] * e2[0]))
            out.append((centre[0], centre[1], e1[0], e1[1], e2[0], e2[1], side, area / q_area, area))
    if not out:
        return np.zeros((0, 9))
    cand = np.array(out, dtype=np.float64)
    # de-duplicate across thresholds: keep the best-filled region around each centre
    order = np.argsort(-(cand[:, 7] - 2.0 * np.abs(cand[:, 7] - 1.0)) - 1e-4 * cand[:, 6])
    from scipy.spatial import cKDTree  # here, not at import: analyze without a chart never loads scipy.spatial

    near = cKDTree(cand[:, :2]).query_ball_point(cand[:, :2], r=0.4 * cand[:, 6])
    taken = np.zeros(len(cand), bool)
    kept: list[int] = []
    for i in order:
        if any(taken[k] and math.hypot(cand[k, 0] - cand[i, 0], cand[k, 1] - cand[i, 1]) < 0.4 * min(cand[k, 6], cand[i, 6])
               for k in near[i]):
            continue
        taken[i] = True
        kept.append(int(i))
    return cand[kept]

def _neighbours(cand: np.ndarray) -> list[list[int]]:
    """Candidates one lattice step apart, tested in the frames of both."""
    n = len(cand)
    c, s = cand[:, :2], cand[:, 6]
    fr = cand[:, 2:6].reshape(-1, 2, 2)  # rows e1, e2
    from scipy.spatial import cKDTree

    lists = cKDTree(c).query_ball_point(c, r=2.4 * s)
    ii = np.repeat(np.arange(n), [len(x) for x in lists])
    jj = np.fromiter((j for x in lists for j in x), dtype=np.int64, count=len(ii))
    pairs = np.stack([ii, jj], 1)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    si, sj = s[pairs[:, 0]], s[pairs[:, 1]]
    dist = np.hypot(*(c[pairs[:, 1]] - c[pairs[:, 0]]).T)
    pairs = pairs[(dist > 0.6 * np.minimum(si, sj)) & (np.maximum(si, sj) < 1.7 * np.minimum(si, sj))]
    nbrs: list[list[int]] = [[] for _ in range(n)]
    if not len(pairs):
        return nbrs
    det = fr[:, 0, 0] * fr[:, 1, 1] - fr[:, 0, 1] * fr[:, 1, 0]
    # inv[k] maps an image vector to its coordinates (a, b) in candidate k's frame (columns e1, e2)
    inv = np.stack([np.stack([fr[:, 1, 1], -fr[:, 1, 0]], -1), np.stack([-fr[:, 0, 1], fr[:, 0, 0]], -1)], 1) / det[:, None, None]
    dv = c[pairs[:, 1]] - c[pairs[:, 0]]
    ok = np.ones(len(pairs), bool)
    for node, sign in ((pairs[:, 0], 1.0), (pairs[:, 1], -1.0)):
        ab = np.abs(np.einsum("kij,kj->ki", inv[node], sign * dv))
        big, across = ab.max(axis=1), ab.min(axis=1)
        ok &= (big >= _STEP_LO) & (big <= _STEP_HI) & (across <= _STEP_ACROSS)
    for i, j in pairs[ok]:
        nbrs[i].append(int(j))
        nbrs[j].append(int(i))
    return nbrs

def _aligned_frame(fb: np.ndarray, fa: np.ndarray) -> np.ndarray:
    """``fb``'s two edge vectors, swapped and signed to point like ``fa``'s."""
    ub = fb / np.hypot(fb[:, 0], fb[:, 1])[:, None]
    ua = fa / np.hypot(fa[:, 0], fa[:, 1])[:, None]
    cm = ub @ ua.T
    if abs(cm[0, 0]) + abs(cm[1, 1]) >= abs(cm[0, 1]) + abs(cm[1, 0]):
        return np.stack([np.sign(cm[0, 0]) * fb[0], np.sign(cm[1, 1]) * fb[1]])
    return np.stack([np.sign(cm[1, 0]) * fb[1], np.sign(cm[0, 1]) * fb[0]])

def _grid_components(cand: np.ndarray, min_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group candidates into lattices: ``[(indices, lattice_ij (n, 2))]``, largest first.

    A breadth-first walk over neighbours assigns integer coordinates; the frame (edge vectors) is
    carried from patch to patch, re-ordered to match, so a lattice that perspective bends slowly
    keeps consistent axes.
    """
    n = len(cand)
    if n < min_size:
        return []
    c = cand[:, :2]
    fr = cand[:, 2:6].reshape(-1, 2, 2)
    nbrs = _neighbours(cand)
    seen = np.zeros(n, bool)
    comps = []
    for start in range(n):
        if seen[start] or not nbrs[start]:
            continue
        frame = {start: fr[start].copy()}
        coords = {start: (0, 0)}
        seen[start] = True
        q = deque([start])
        while q:
            a = q.popleft()
            for b in nbrs[a]:
                if b in coords:
                    continue
                ab = np.linalg.solve(frame[a].T, c[b] - c[a])
                step = (int(np.sign(ab[0])), 0) if abs(ab[0]) >= abs(ab[1]) else (0, int(np.sign(ab[1])))
                coords[b] = (coords[a][0] + step[0], coords[a][1] + step[1])
                frame[b] = _aligned_frame(fr[b], frame[a])
                seen[b] = True
                q.append(b)
        if len(coords) < min_size:
            continue
        idx = np.array(list(coords), dtype=np.int64)
        comps.append((idx, np.array([coords[int(i)] for i in idx], dtype=np.float64)))
    comps.sort(key=lambda t: -len(t[0]))
    return comps
