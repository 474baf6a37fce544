"""Carrying a region of interest from one photo to another through their registration (arrays only).

A homography ``H`` of :func:`skinimg.session.register` maps BEFORE pixel coordinates ``(x, y, 1)`` to AFTER
pixel coordinates.  A polygon's vertices map exactly (a homography maps straight edges to straight edges, so the
mapped polygon is the image of the region), then the polygon is clipped to AFTER's frame (Sutherland and Hodgman
1974 [SH]_); a mask is resampled with nearest-neighbour.  :func:`propagate_regions` refuses (says why) when a
region would leave the photo: a person must then draw it.

References
----------
.. [SH] Sutherland, I. E. and Hodgman, G. W. (1974). Reentrant polygon clipping. Communications of the ACM
   17(1), 32-42. https://doi.org/10.1145/360767.360802
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["map_points", "clip_polygon", "polygon_area", "propagate_regions", "MIN_INSIDE"]

#: Smallest fraction of a mapped region's area that must fall inside the other photo for it to be propagated.
MIN_INSIDE = 0.9


def map_points(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """``points`` (n, 2) float ``[x, y]`` mapped by the 3x3 ``homography``: float64 (n, 2)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ np.asarray(homography, dtype=np.float64).T
    return q[:, :2] / q[:, 2:3]


def polygon_area(points: np.ndarray) -> float:
    """Area (shoelace formula) of a simple polygon ``points`` (n, 2), in squared pixels (>= 0)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_polygon(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """``points`` (n, 2) clipped to the pixel centres' rectangle ``[0, width - 1] x [0, height - 1]``.

    Sutherland-Hodgman against the four edges (any simple polygon against a convex window).  Returns float64
    (m, 2), possibly with fewer than 3 points when nothing is left.
    """
    poly = [tuple(map(float, q)) for q in np.asarray(points, dtype=np.float64).reshape(-1, 2)]
    edges = ((0, 0.0, 1), (0, float(width - 1), -1), (1, 0.0, 1), (1, float(height - 1), -1))
    for axis, limit, sign in edges:
        if not poly:
            break
        inside = [sign * (q[axis] - limit) >= 0 for q in poly]
        out = []
        for i, q in enumerate(poly):
            prev, prev_in = poly[i - 1], inside[i - 1]
            if inside[i] != prev_in:
                t = (limit - prev[axis]) / (q[axis] - prev[axis])
                out.append((prev[0] + t * (q[0] - prev[0]), prev[1] + t * (q[1] - prev[1])))
            if inside[i]:
                out.append(q)
        poly = out
    return np.array(poly, dtype=np.float64).reshape(-1, 2)


def propagate_regions(polygons: dict[str, np.ndarray] | None, mask: np.ndarray | None, homography: np.ndarray,
                      after_shape: tuple[int, int], *, min_inside: float = MIN_INSIDE) -> tuple[dict | None, str]:
    """BEFORE's regions in AFTER's frame: ``(regions, "")`` or ``(None, why)`` when they cannot be carried.

    Parameters
    ----------
    polygons : dict str -> ndarray float (n, 2), or None
        Vertices ``[x, y]`` in BEFORE's pixels per region name.
    mask : ndarray of bool (H, W), or None
        A mask ROI of BEFORE (when ``polygons`` is None).
    homography : ndarray (3, 3)
        BEFORE -> AFTER pixel coordinates (:attr:`skinimg.session.Registration.homography`).
    after_shape : (int, int)
        AFTER's height and width.
    min_inside : float
        Smallest fraction of each mapped region's area inside AFTER.

    Returns
    -------
    regions : dict str -> ndarray float64 (m, 2) (polygons, clipped to AFTER), or ndarray of bool (H', W') for a
        mask; None when a region falls outside AFTER.
    why : str
        Empty, or the reason (``"region 'x' maps largely outside the photo (62 % inside)"``).
    """
    h, w = int(after_shape[0]), int(after_shape[1])
    hm = np.asarray(homography, dtype=np.float64)
    if polygons is None:
        src = np.ascontiguousarray(mask, dtype=np.uint8)
        out = cv2.warpPerspective(src, hm, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=0).astype(bool)
        # the share of the region that lands in AFTER: mapped area (Jacobian at the centroid) vs what is inside
        ys, xs = np.nonzero(mask)
        c = np.array([[xs.mean(), ys.mean()]]) if xs.size else np.zeros((1, 2))
        box = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64) + c
        scale = polygon_area(map_points(box, hm))
        expected = xs.size * scale
        inside = out.sum() / expected if expected > 0 else 0.0
        if not inside >= min_inside:
            return None, f"the ROI maps largely outside the photo ({min(inside, 1.0):.0%} inside)"
        return out, ""
    out = {}
    for name, pts in polygons.items():
        mapped = map_points(pts, hm)
        area = polygon_area(mapped)
        clipped = clip_polygon(mapped, w, h)
        inside = polygon_area(clipped) / area if area > 0 else 0.0
        if len(clipped) < 3 or not inside >= min_inside:
            what = f"region '{name}'" if name else "the ROI"
            return None, f"{what} maps largely outside the photo ({inside:.0%} inside)"
        out[name] = clipped
    return out, ""
